/** Temporary journal directories and a crashed-state snapshot for the journal suites. */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { Core } from '../../ts/core.js';
import { readJournal, type JournalRecord } from '../../ts/reader.js';

const made: string[] = [];

afterEach(async () => {
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A fresh empty directory, removed after the test. */
export async function tempDir(label = 'journal'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `graphstream-${label}-`));
  made.push(dir);
  return dir;
}

/**
 * Copies a journal directory while its writer is still open (after a flush):
 * the copy is what a crash at that moment leaves on disk, lock file included.
 */
export async function crashedCopy(dir: string): Promise<string> {
  const copy = await tempDir('crashed');
  await cp(dir, copy, { recursive: true });
  return copy;
}

/** Every record of the journal, verified end to end. */
export async function readAll(dir: string, core: Core): Promise<JournalRecord[]> {
  const records: JournalRecord[] = [];
  for await (const record of readJournal(dir, { core })) records.push(record);
  return records;
}

export function entryFor(i: number): { query: string; params: { i: number; name: string } } {
  return { query: 'CREATE (:Item {i: $i, name: $name})', params: { i, name: `item-${i}` } };
}
