import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Core } from '../ts/core/core.js';
import { isGraphstreamError } from '../ts/errors.js';
import { Journal } from '../ts/journal/journal.js';
import { readJournal } from '../ts/journal/reader.js';
import { cores } from './helpers/cores.js';
import { crashedCopy, entryFor, readAll, tempDir } from './helpers/journal-fixtures.js';

async function segmentNames(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /^journal-\d{16}\.hadbj$/.test(n)).sort();
}

async function writeJournal(core: Core, count: number, maxSegmentBytes = 1024) {
  const dir = await tempDir();
  const journal = await Journal.open(dir, { core, maxSegmentBytes });
  const results = [];
  for (let i = 0; i < count; i++) results.push(await journal.append(entryFor(i)));
  await journal.close();
  return { dir, results };
}

async function failure(iterable: AsyncIterable<unknown>): Promise<{ code: string; message: string; yielded: number }> {
  let yielded = 0;
  try {
    for await (const _ of iterable) yielded++;
  } catch (err) {
    expect(isGraphstreamError(err)).toBe(true);
    return { code: (err as { code: string }).code, message: (err as Error).message, yielded };
  }
  throw new Error('expected the iteration to fail');
}

describe.each(cores)('readJournal ($kind core)', (core) => {
  test('yields every entry in order with its chain hash, across sealed segments', async () => {
    const { dir, results } = await writeJournal(core, 50);
    expect((await segmentNames(dir)).length).toBeGreaterThan(3);
    const records = await readAll(dir, core);
    expect(records.map((r) => r.sequence)).toEqual(results.map((r) => r.sequence));
    expect(records.map((r) => r.chainHash)).toEqual(results.map((r) => r.chainHash));
    expect(records[7]!.entry.query).toBe(entryFor(7).query);
    expect(records[7]!.entry.sequence).toBe(8);
  });

  test('raw: the payload bytes as appended', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    await journal.appendRaw(Buffer.from([0, 1, 2]));
    await journal.appendRaw(Buffer.from('engine-specific'));
    await journal.close();
    const payloads = [];
    for await (const record of readJournal(dir, { core, raw: true })) payloads.push(Buffer.from(record.payload));
    expect(payloads).toEqual([Buffer.from([0, 1, 2]), Buffer.from('engine-specific')]);
  });

  test('fromSeq starts mid-journal, verified from the segment before; initialHash anchors it explicitly', async () => {
    const { dir, results } = await writeJournal(core, 50);
    for (const fromSeq of [1, 2, 17, 49, 50]) {
      const sequences = [];
      for await (const record of readJournal(dir, { core, fromSeq })) sequences.push(record.sequence);
      expect(sequences).toEqual(results.slice(fromSeq - 1).map((r) => r.sequence));
      const anchored = [];
      const initialHash = fromSeq === 1 ? Buffer.alloc(32) : results[fromSeq - 2]!.chainHash;
      for await (const record of readJournal(dir, { core, fromSeq, initialHash })) anchored.push(record.sequence);
      expect(anchored).toEqual(sequences);
    }
    const wrong = await failure(readJournal(dir, { core, fromSeq: 20, initialHash: results[5]!.chainHash }));
    expect(wrong.code).toBe('chain_broken');
    expect(wrong.yielded).toBe(0);
    expect(await readAll(dir, core).then((r) => r.length)).toBe(50);
  });

  test('a damaged segment fails the read, naming the file and the sequence', async () => {
    const { dir } = await writeJournal(core, 50);
    const names = await segmentNames(dir);
    const path = join(dir, names[2]!);
    const bytes = await readFile(path);
    bytes[200] = bytes[200]! ^ 0x40;
    await writeFile(path, bytes);
    const firstSeq = Number(names[2]!.slice(8, 24));
    const { code, message, yielded } = await failure(readJournal(dir, { core }));
    expect(code).toBe('checksum_mismatch');
    expect(message).toContain(path);
    expect(message).toContain(`sequence ${firstSeq}`);
    expect(yielded).toBe(firstSeq - 1);
  });

  test('a missing segment is a gap, naming the file after it', async () => {
    const { dir } = await writeJournal(core, 50);
    const names = await segmentNames(dir);
    await rm(join(dir, names[1]!));
    const { code, message } = await failure(readJournal(dir, { core }));
    expect(code).toBe('gap');
    expect(message).toContain(names[2]!);
  });

  test('the unsealed tail is read up to its last whole entry; a torn end is not an error', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
    for (let i = 0; i < 30; i++) await journal.append(entryFor(i));
    const crashed = await crashedCopy(dir);
    await journal.close();
    const live = join(crashed, (await segmentNames(crashed)).at(-1)!);
    await writeFile(live, Buffer.concat([await readFile(live), Buffer.from('half an entry')]));
    const records = await readAll(crashed, core);
    expect(records.map((r) => r.sequence)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(records[29]!.chainHash).toEqual(journal.chainHash);
  });

  test('reading while a writer appends yields a verified prefix that holds every acknowledged entry', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 2048 });
    let acknowledged = 0;
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let k = 0; !stop; k++) {
        await journal.append(entryFor(w * 1_000_000 + k));
        acknowledged = Math.max(acknowledged, journal.sequence);
      }
    });
    for (let round = 0; round < 10; round++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const before = acknowledged;
      const records = await readAll(dir, core);
      expect(records.length).toBeGreaterThanOrEqual(before);
      records.forEach((record, i) => expect(record.sequence).toBe(i + 1));
    }
    stop = true;
    await Promise.all(writers);
    await journal.close();
    expect((await readAll(dir, core)).length).toBe(journal.sequence);
  });

  test('next() may be called again before a record arrives: records still come once each, in order, across segments', async () => {
    const { dir, results } = await writeJournal(core, 50);
    const iterator = readJournal(dir, { core, raw: true })[Symbol.asyncIterator]();
    const steps = await Promise.all(Array.from({ length: 30 }, () => iterator.next()));
    expect(steps.map((step) => step.value?.sequence)).toEqual(results.slice(0, 30).map((r) => r.sequence));
    // return() while a next() is pending: the pending call gets its record, the iteration then ends
    const pending = iterator.next();
    const closed = iterator.return!();
    expect((await pending).value?.sequence).toBe(31);
    expect(await closed).toEqual({ value: undefined, done: true });
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
  });

  test('an empty or missing journal', async () => {
    const dir = await tempDir();
    expect(await readAll(dir, core)).toEqual([]);
    const { code } = await failure(readJournal(join(dir, 'absent'), { core }));
    expect(code).toBe('not_found');
  });

  test('options are validated', async () => {
    const dir = await tempDir();
    expect((await failure(readJournal(dir, { core, fromSeq: 0 }))).code).toBe('invalid_argument');
    expect((await failure(readJournal(dir, { core, initialHash: Buffer.alloc(3) }))).code).toBe('invalid_argument');
  });
});
