import { appendFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Core } from '../ts/core.js';
import { isGraphstreamError } from '../ts/errors.js';
import { Journal } from '../ts/journal.js';
import { recoverJournalState, writeRecoveryState } from '../ts/recovery.js';
import { cores } from './helpers/cores.js';
import { crashedCopy, entryFor, readAll, tempDir } from './helpers/journal-fixtures.js';

const ZERO_HASH = Buffer.alloc(32);

function name(firstSeq: number): string {
  return `journal-${String(firstSeq).padStart(16, '0')}.hadbj`;
}

/**
 * A journal of `count` entries in segments of at most `maxSegmentBytes`, left
 * as a crash would leave it (writer never closed: the last segment unsealed).
 */
async function crashedJournal(core: Core, count: number, maxSegmentBytes = 1024) {
  const dir = await tempDir();
  const journal = await Journal.open(dir, { core, maxSegmentBytes });
  for (let i = 0; i < count; i++) await journal.append(entryFor(i));
  const crashed = await crashedCopy(dir);
  const state = { sequence: journal.sequence, chainHash: journal.chainHash };
  await journal.close();
  return { dir: crashed, ...state };
}

async function segmentNames(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /^journal-\d{16}\.hadbj$/.test(n)).sort();
}

async function expectCode(promise: Promise<unknown>, code: string, mentions?: string): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isGraphstreamError(err), `expected a GraphstreamError, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  if (mentions !== undefined) expect((err as Error).message).toContain(mentions);
}

describe.each(cores)('recovery ($kind core)', (core) => {
  test('an empty directory starts at sequence 0 with the zero hash', async () => {
    const dir = await tempDir();
    const state = await recoverJournalState(dir, { core });
    expect(state).toMatchObject({ sequence: 0, liveSegment: null, lastSealedSegment: null, segmentCount: 0 });
    expect(state.chainHash).toEqual(ZERO_HASH);
  });

  test('a missing directory is not_found', async () => {
    const dir = await tempDir();
    await expectCode(recoverJournalState(join(dir, 'absent'), { core }), 'not_found');
  });

  test('only recovery.json: the journal continues its sequence and chain', async () => {
    const dir = await tempDir();
    const snapshotHash = core.computeEntryHash(ZERO_HASH, Buffer.from('snapshot'));
    await writeRecoveryState(dir, 41, snapshotHash);
    expect(JSON.parse(await readFile(join(dir, 'recovery.json'), 'utf8'))).toEqual({
      last_seq: 41,
      chain_hash: snapshotHash.toString('hex'),
    });
    expect((await readdir(dir)).sort()).toEqual(['recovery.json']);
    const state = await recoverJournalState(dir, { core });
    expect(state.sequence).toBe(41);
    expect(state.chainHash).toEqual(snapshotHash);

    const journal = await Journal.open(dir, { core });
    const first = await journal.append(entryFor(42));
    expect(first.sequence).toBe(42);
    await journal.close();
    const records = await readAll(dir, core); // anchored on recovery.json
    expect(records.map((r) => r.sequence)).toEqual([42]);
    const segment = core.decodeSegment(await readFile(join(dir, name(42))));
    expect(segment.startHash).toEqual(snapshotHash);
  });

  test('writeRecoveryState validates its arguments', async () => {
    const dir = await tempDir();
    await expectCode(writeRecoveryState(dir, -1, ZERO_HASH), 'invalid_argument');
    await expectCode(writeRecoveryState(dir, 1, Buffer.alloc(31)), 'invalid_argument');
  });

  test('sealed segments only: state from the last header and trailer', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
    for (let i = 0; i < 40; i++) await journal.append(entryFor(i));
    await journal.close();
    const state = await recoverJournalState(dir, { core });
    const names = await segmentNames(dir);
    expect(names.length).toBeGreaterThan(3);
    expect(state).toMatchObject({ sequence: 40, liveSegment: null, lastSealedSegment: join(dir, names.at(-1)!) });
    expect(state.chainHash).toEqual(journal.chainHash);
  });

  test('recovery reads only the last sealed segment and the tail after it', async () => {
    const { dir, sequence, chainHash } = await crashedJournal(core, 40);
    const names = await segmentNames(dir);
    // damage the body of the first sealed segment: recovery never reads it, the reader does
    const firstPath = join(dir, names[0]!);
    const bytes = await readFile(firstPath);
    bytes[bytes.length - 40] = bytes[bytes.length - 40]! ^ 0xff;
    await writeFile(firstPath, bytes);
    const state = await recoverJournalState(dir, { core });
    expect(state.sequence).toBe(sequence);
    expect(state.chainHash).toEqual(chainHash);
    await expectCode(readAll(dir, core), 'checksum_mismatch', firstPath);
  });

  test('sealed segments followed by an unsealed tail: the tail is continued, not replaced', async () => {
    const { dir, sequence, chainHash } = await crashedJournal(core, 30);
    const names = await segmentNames(dir);
    const livePath = join(dir, names.at(-1)!);
    expect(core.decodeHeader(await readFile(livePath)).flags).toBe(0); // unsealed
    const state = await recoverJournalState(dir, { core });
    expect(state).toMatchObject({ sequence, liveSegment: livePath, truncatedBytes: 0 });
    expect(state.chainHash).toEqual(chainHash);

    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
    expect((await journal.append(entryFor(30))).sequence).toBe(sequence + 1);
    await journal.close();
    const records = await readAll(dir, core);
    expect(records.map((r) => r.sequence)).toEqual(Array.from({ length: sequence + 1 }, (_, i) => i + 1));
  });

  test('a torn tail is cut back to the last whole entry and appending continues after it', async () => {
    const { dir, sequence, chainHash } = await crashedJournal(core, 30);
    const livePath = join(dir, (await segmentNames(dir)).at(-1)!);
    const validSize = (await stat(livePath)).size;
    // half an entry: a crash in the middle of a write
    const partial = core.encodeEntry(sequence + 1, chainHash, Buffer.from('never acknowledged')).subarray(0, 30);
    await appendFile(livePath, partial);
    const state = await recoverJournalState(dir, { core });
    expect(state).toMatchObject({ sequence, liveSegment: livePath, truncatedBytes: 30 });
    expect((await stat(livePath)).size).toBe(validSize);

    const journal = await Journal.open(dir, { core });
    expect((await journal.append(entryFor(99))).sequence).toBe(sequence + 1);
    await journal.close();
    expect((await readAll(dir, core)).map((r) => r.sequence).at(-1)).toBe(sequence + 1);
  });

  test('a last entry whose CRC does not match is a torn tail too', async () => {
    const { dir, sequence } = await crashedJournal(core, 30);
    const livePath = join(dir, (await segmentNames(dir)).at(-1)!);
    const bytes = await readFile(livePath);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x01;
    await writeFile(livePath, bytes);
    const state = await recoverJournalState(dir, { core });
    expect(state.sequence).toBe(sequence - 1);
    expect(state.truncatedBytes).toBeGreaterThan(48);
  });

  test('repair: false reports the state without touching the files', async () => {
    const { dir, sequence, chainHash } = await crashedJournal(core, 30);
    const livePath = join(dir, (await segmentNames(dir)).at(-1)!);
    await appendFile(livePath, core.encodeEntry(sequence + 1, chainHash, Buffer.from('x')).subarray(0, 10));
    const size = (await stat(livePath)).size;
    const state = await recoverJournalState(dir, { core, repair: false });
    expect(state.sequence).toBe(sequence);
    expect((await stat(livePath)).size).toBe(size);
  });

  test('a sealed segment without a trailer is decoded instead', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
    for (let i = 0; i < 40; i++) await journal.append(entryFor(i));
    await journal.close();
    const names = await segmentNames(dir);
    for (const segmentName of names.slice(-2)) {
      const path = join(dir, segmentName);
      const bytes = await readFile(path);
      const header = core.decodeHeader(bytes);
      const withoutTrailer = Buffer.concat([
        core.encodeHeader({ ...header, flags: header.flags & ~0x08 }),
        bytes.subarray(128, 128 + header.bodyLen),
      ]);
      await writeFile(path, withoutTrailer);
    }
    const state = await recoverJournalState(dir, { core });
    expect(state.sequence).toBe(40);
    expect(state.chainHash).toEqual(journal.chainHash);
    expect((await readAll(dir, core)).length).toBe(40);
  });

  test('a crash between the temporary sealed file and the rename: the temp is removed, the unsealed segment continued', async () => {
    const { dir, sequence, chainHash } = await crashedJournal(core, 30);
    const livePath = join(dir, (await segmentNames(dir)).at(-1)!);
    const sealed = core.sealSegment(await readFile(livePath));
    await writeFile(`${livePath}.seal.tmp`, sealed.subarray(0, sealed.length >> 1));
    const state = await recoverJournalState(dir, { core });
    expect(state).toMatchObject({ sequence, liveSegment: livePath, removedFiles: [`${livePath}.seal.tmp`] });
    expect(state.chainHash).toEqual(chainHash);
    expect((await readdir(dir)).some((n) => n.endsWith('.seal.tmp'))).toBe(false);
    const journal = await Journal.open(dir, { core });
    expect((await journal.append(entryFor(1))).sequence).toBe(sequence + 1);
    await journal.close();
    expect(await readAll(dir, core)).toHaveLength(sequence + 1);
  });

  test('a segment that died before its header was written is removed and re-created', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    for (let i = 0; i < 5; i++) await journal.append(entryFor(i));
    await journal.close();
    await writeFile(join(dir, name(6)), Buffer.alloc(40));
    const state = await recoverJournalState(dir, { core });
    expect(state).toMatchObject({ sequence: 5, liveSegment: null, removedFiles: [join(dir, name(6))] });
    const reopened = await Journal.open(dir, { core });
    expect((await reopened.append(entryFor(5))).sequence).toBe(6);
    await reopened.close();
    expect(await readAll(dir, core)).toHaveLength(6);
  });

  test('an unsealed tail that does not continue the chain is chain_broken, naming the file', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    for (let i = 0; i < 5; i++) await journal.append(entryFor(i));
    await journal.close();
    const foreign = Buffer.concat([
      core.encodeHeader({ firstSeq: 6, createdMs: Date.now() }),
      core.encodeEntry(6, core.computeEntryHash(ZERO_HASH, Buffer.from('elsewhere')), Buffer.from('x')),
    ]);
    await writeFile(join(dir, name(6)), foreign);
    await expectCode(recoverJournalState(dir, { core }), 'chain_broken', name(6));
    await expectCode(Journal.open(dir, { core }), 'chain_broken', name(6));
  });

  test('a tail segment that skips sequences is a gap', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    for (let i = 0; i < 5; i++) await journal.append(entryFor(i));
    await journal.close();
    await writeFile(join(dir, name(9)), core.encodeHeader({ firstSeq: 9, createdMs: Date.now() }));
    await expectCode(recoverJournalState(dir, { core }), 'gap', name(9));
  });
});
