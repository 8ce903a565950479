/** Temporary journal directories and a crashed-state snapshot for the journal suites. */
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { Core } from '../../ts/core/core.js';
import { FLAG_SEALED, HEADER_SIZE } from '../../ts/format/constants.js';
import { decodeHeader } from '../../ts/pure/format.js';
import { readJournal, type JournalRecord } from '../../ts/journal/reader.js';

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
 * Copies a journal directory while its writer is still open and idle (after
 * its appends resolved): the copy is what a crash at that moment leaves on
 * disk, lock file included. Segments retired by rotation are sealed in the
 * background, so it first waits for that to finish: every segment but the
 * newest sealed, no temporary sealed file.
 */
export async function crashedCopy(dir: string): Promise<string> {
  for (let attempt = 0; !(await sealingDone(dir)); attempt++) {
    if (attempt === 500) throw new Error(`${dir}: background sealing did not finish`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const copy = await tempDir('crashed');
  await cp(dir, copy, { recursive: true });
  return copy;
}

async function sealingDone(dir: string): Promise<boolean> {
  const names = await readdir(dir);
  if (names.some((name) => name.endsWith('.seal.tmp'))) return false;
  const segments = names.filter((name) => /^journal-\d{16}\.hadbj$/.test(name)).sort();
  for (const name of segments.slice(0, -1)) {
    const head = await readFile(join(dir, name));
    if ((decodeHeader(head.subarray(0, HEADER_SIZE)).flags & FLAG_SEALED) === 0) return false;
  }
  return true;
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
