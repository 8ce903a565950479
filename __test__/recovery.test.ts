import { appendFile, cp, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Core } from '../ts/core/core.js';
import { isGraphstreamError } from '../ts/errors.js';
import { FLAG_SEALED } from '../ts/format/constants.js';
import { HEAD_HINT_FILE as HEAD_HINT } from '../ts/journal/head-hint.js';
import { Journal } from '../ts/journal/journal.js';
import { recoverJournalState, writeRecoveryState, type RecoverOptions } from '../ts/journal/recovery.js';
import { cores } from './helpers/cores.js';
import { crashedCopy, entryFor, readAll, tempDir } from './helpers/journal-fixtures.js';

const ZERO_HASH = Buffer.alloc(32);

function name(firstSeq: number): string {
  return `journal-${String(firstSeq).padStart(16, '0')}.hadbj`;
}

/**
 * A journal of `count` entries in segments of at most `maxSegmentBytes`, left
 * as a crash would leave it (writer never closed: the last segment unsealed).
 * The zeros the native 'fsync' writer writes ahead of its entries are cut from
 * the live segment, so that it ends at its last entry (the tests below add their
 * own tails; a zero tail has tests of its own, "issue 15: ...").
 */
async function crashedJournal(core: Core, count: number, maxSegmentBytes = 1024) {
  const dir = await tempDir();
  const journal = await Journal.open(dir, { core, maxSegmentBytes });
  for (let i = 0; i < count; i++) await journal.append(entryFor(i));
  const crashed = await crashedCopy(dir);
  const live = join(crashed, (await segmentNames(crashed)).at(-1)!);
  const bytes = await readFile(live);
  if ((core.decodeHeader(bytes).flags & FLAG_SEALED) === 0) {
    await truncate(live, (await core.decodeSegmentAsync(bytes, { allowTornTail: true })).validLength);
  }
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

async function readHint(dir: string): Promise<unknown> {
  return JSON.parse(await readFile(join(dir, HEAD_HINT), 'utf8'));
}

async function writeHint(dir: string, hint: object | string): Promise<void> {
  await writeFile(join(dir, HEAD_HINT), typeof hint === 'string' ? hint : JSON.stringify(hint) + '\n');
}

/** Every file of a directory with its bytes. */
async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const names = (await readdir(dir)).sort();
  return new Map(await Promise.all(names.map(async (n) => [n, await readFile(join(dir, n))] as const)));
}

/** A recovered state with the directory taken out of its paths, or the error's code and message. */
async function recoveredIn(dir: string, core: Core): Promise<unknown> {
  const inDir = (path: string | null) => (path === null ? null : relative(dir, path));
  try {
    const state = await recoverJournalState(dir, { core });
    return {
      ...state,
      chainHash: state.chainHash.toString('hex'),
      liveSegment: inDir(state.liveSegment),
      lastSealedSegment: inDir(state.lastSealedSegment),
      retiredSegments: state.retiredSegments.map(inDir),
      removedFiles: state.removedFiles.map(inDir),
    };
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message.replaceAll(dir, '<dir>') };
  }
}

/** Turns a sealed segment back into the unsealed file it was sealed from. */
async function unsealWith(core: Core, path: string): Promise<void> {
  const sealed = core.decodeSegment(await readFile(path));
  await writeFile(path, Buffer.concat([core.encodeHeader({ firstSeq: sealed.header.firstSeq, createdMs: sealed.header.createdMs }), sealed.body]));
}

describe.each(cores)('recovery ($kind core)', (core) => {
  /**
   * Recovers `dir` as it is, head hint included, and a copy of it without the
   * hint (the full path, which lists the directory): the states (or errors)
   * and the files left afterwards, the rewritten hint included, are the same.
   * Returns the state with paths relative to `dir`.
   */
  async function expectSameAsFullPath(dir: string): Promise<Record<string, unknown>> {
    const listed = await tempDir('listed');
    await cp(dir, listed, { recursive: true });
    await rm(join(listed, HEAD_HINT), { force: true });
    const viaHint = await recoveredIn(dir, core);
    expect(viaHint).toEqual(await recoveredIn(listed, core));
    expect(await filesOf(dir)).toEqual(await filesOf(listed));
    return viaHint as Record<string, unknown>;
  }

  const unseal = (path: string) => unsealWith(core, path);

  test('an empty directory starts at sequence 0 with the zero hash', async () => {
    const dir = await tempDir();
    const state = await recoverJournalState(dir, { core });
    expect(state).toMatchObject({ sequence: 0, liveSegment: null, lastSealedSegment: null, truncatedBytes: 0, removedFiles: [] });
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

  test('writeRecoveryState and recoverJournalState validate their arguments', async () => {
    const dir = await tempDir();
    await expectCode(writeRecoveryState(dir, -1, ZERO_HASH), 'invalid_argument');
    await expectCode(writeRecoveryState(dir, 1, Buffer.alloc(31)), 'invalid_argument');
    await expectCode(recoverJournalState(dir, null as unknown as RecoverOptions), 'invalid_argument');
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

  test('a spare segment a native writer left (a crash under \'fsync\') is removed by recovery, whichever core opens the journal; a dry run keeps it', async () => {
    const { dir, sequence } = await crashedJournal(core, 30);
    const spare = join(dir, '.spare-segment');
    await writeFile(spare, Buffer.alloc(64 * 1024));
    expect(await recoverJournalState(dir, { core, dryRun: true })).toMatchObject({ sequence, removedFiles: [spare] });
    expect(await readdir(dir)).toContain('.spare-segment');
    const journal = await Journal.open(dir, { core, durability: 'none' });
    expect(journal.recovery).toMatchObject({ sequence, removedFiles: [spare] });
    expect(await readdir(dir)).not.toContain('.spare-segment');
    expect((await journal.append(entryFor(1))).sequence).toBe(sequence + 1);
    await journal.close();
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

  test('an unsealed tail that does not continue the chain is corrupt, naming the file', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    for (let i = 0; i < 5; i++) await journal.append(entryFor(i));
    await journal.close();
    const foreign = Buffer.concat([
      core.encodeHeader({ firstSeq: 6, createdMs: Date.now() }),
      core.encodeEntry(6, core.computeEntryHash(ZERO_HASH, Buffer.from('elsewhere')), Buffer.from('x')),
    ]);
    await writeFile(join(dir, name(6)), foreign);
    await expectCode(recoverJournalState(dir, { core }), 'corrupt', `${name(6)} (sequence 6) at byte offset 144: prev_hash does not match`);
    await expectCode(Journal.open(dir, { core }), 'corrupt', name(6));
  });

  test('a tail segment that skips sequences is corrupt (a gap)', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    for (let i = 0; i < 5; i++) await journal.append(entryFor(i));
    await journal.close();
    // A head hint is checked up to the successor of the newest segment: a segment further on is
    // not a state a writer leaves, and only the listing of a journal without a hint finds it.
    await rm(join(dir, HEAD_HINT));
    await writeFile(join(dir, name(9)), core.encodeHeader({ firstSeq: 9, createdMs: Date.now() }));
    await expectCode(recoverJournalState(dir, { core }), 'corrupt', `${name(9)} (sequence 6) at byte offset 0: the journal ends at sequence 5`);
  });
  describe('head hint', () => {
    test('both writers name the newest segment and the one before it, also in a later session', async () => {
      const dir = await tempDir();
      const journal = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
      for (let i = 0; i < 40; i++) await journal.append(entryFor(i));
      // The writer names a new segment once it has answered the append that created it: by the
      // time a later request (close, which creates no segment) is answered, the hint is written.
      await journal.close();
      const names = await segmentNames(dir);
      expect(names.length).toBeGreaterThan(3);
      expect(await readHint(dir)).toEqual({ segment: names.at(-1), previous: names.at(-2) });

      const reopened = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
      await reopened.append(entryFor(40));
      await reopened.close();
      const after = await segmentNames(dir);
      expect(after).toHaveLength(names.length + 1);
      expect(await readHint(dir)).toEqual({ segment: after.at(-1), previous: names.at(-1) });
    });

    test('a hint that cannot be written fails no append, and recovery does without it', async () => {
      const dir = await tempDir();
      await mkdir(join(dir, 'head.json.tmp')); // writing the temp file fails
      const journal = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
      for (let i = 0; i < 40; i++) await journal.append(entryFor(i));
      expect((await segmentNames(dir)).length).toBeGreaterThan(3);
      const crashed = await crashedCopy(dir);
      await journal.close();
      expect(await readdir(dir)).not.toContain(HEAD_HINT);
      const state = await recoverJournalState(crashed, { core });
      expect(state.sequence).toBe(40);
      expect(state.chainHash).toEqual(journal.chainHash);
    });

    test('a cleanly closed journal', async () => {
      const dir = await tempDir();
      const journal = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
      for (let i = 0; i < 40; i++) await journal.append(entryFor(i));
      await journal.close();
      const state = await expectSameAsFullPath(dir);
      expect(state).toMatchObject({ sequence: 40, liveSegment: null, lastSealedSegment: (await segmentNames(dir)).at(-1) });
    });

    test('a crash with a torn tail: cut back, then continued', async () => {
      const { dir, sequence, chainHash } = await crashedJournal(core, 30);
      const livePath = join(dir, (await segmentNames(dir)).at(-1)!);
      await appendFile(livePath, core.encodeEntry(sequence + 1, chainHash, Buffer.from('never acknowledged')).subarray(0, 30));
      const state = await expectSameAsFullPath(dir);
      expect(state).toMatchObject({ sequence, liveSegment: basename(livePath), truncatedBytes: 30 });

      const journal = await Journal.open(dir, { core, maxSegmentBytes: 1024 });
      for (let i = 30; i < 40; i++) await journal.append(entryFor(i));
      await journal.close();
      expect((await readAll(dir, core)).map((r) => r.sequence)).toEqual(Array.from({ length: sequence + 10 }, (_, i) => i + 1));
    });

    test('a stale hint naming an older segment, near and far', async () => {
      for (const back of [2, 3, 12]) {
        const closed = await tempDir();
        const journal = await Journal.open(closed, { core, maxSegmentBytes: 1024 });
        for (let i = 0; i < 150; i++) await journal.append(entryFor(i));
        const crashed = await crashedCopy(closed);
        await journal.close();
        for (const dir of [closed, crashed]) {
          const names = await segmentNames(dir);
          expect(names.length).toBeGreaterThan(back + 1);
          await writeHint(dir, { segment: names.at(-back), previous: names.at(-back - 1) });
          const state = await expectSameAsFullPath(dir);
          expect(state.sequence).toBe(150);
          // recovery rewrote the hint
          expect(await readHint(dir)).toEqual({ segment: names.at(-1), previous: names.at(-2) });
        }
      }
    });

    test('a hint naming a missing file', async () => {
      const { dir } = await crashedJournal(core, 30);
      const names = await segmentNames(dir);
      await writeHint(dir, { segment: name(100_000), previous: null });
      await expectSameAsFullPath(dir);
      await writeHint(dir, { segment: names.at(-1), previous: name(3) });
      await expectSameAsFullPath(dir);
    });

    test('a hint that is not one', async () => {
      const { dir } = await crashedJournal(core, 30);
      const [first] = await segmentNames(dir);
      const garbage = [
        'not json',
        '{"segment":',
        '[]',
        'null',
        '{"segment":42,"previous":null}',
        `{"segment":"${first}","previous":7}`,
        '{"segment":"../recovery.json","previous":null}',
        '{"segment":"journal-1.hadbj","previous":null}',
      ];
      for (const text of garbage) {
        await writeHint(dir, text);
        const state = await expectSameAsFullPath(dir);
        expect(state.sequence).toBe(30);
      }
    });

    test('a hint whose previous segment is still unsealed (a crash before the background seal)', async () => {
      const { dir, sequence } = await crashedJournal(core, 30);
      const names = await segmentNames(dir);
      await unseal(join(dir, names.at(-2)!));
      expect(await readHint(dir)).toEqual({ segment: names.at(-1), previous: names.at(-2) });
      const state = await expectSameAsFullPath(dir);
      expect(state).toMatchObject({ sequence, liveSegment: names.at(-1), lastSealedSegment: names.at(-3), retiredSegments: [names.at(-2)] });
    });

    test('an unsealed segment left before the live one is sealed by the writer when the journal reopens', async () => {
      const { dir, sequence } = await crashedJournal(core, 30);
      const names = await segmentNames(dir);
      await unseal(join(dir, names.at(-2)!));
      const journal = await Journal.open(dir, { core });
      await journal.append(entryFor(30));
      await journal.close();
      for (const segment of await segmentNames(dir)) {
        expect(core.decodeHeader(await readFile(join(dir, segment))).flags & 0x04, segment).toBe(0x04);
      }
      expect((await readAll(dir, core)).map((record) => record.sequence)).toEqual(Array.from({ length: sequence + 1 }, (_, i) => i + 1));
    });

    test('a segment created after the hint was last written', async () => {
      for (const unsealedBefore of [false, true]) {
        const { dir, sequence } = await crashedJournal(core, 30);
        const names = await segmentNames(dir);
        // the crash came between creating the newest segment and naming it in the hint
        await writeHint(dir, { segment: names.at(-2), previous: names.at(-3) });
        if (unsealedBefore) await unseal(join(dir, names.at(-2)!));
        const state = await expectSameAsFullPath(dir);
        expect(state).toMatchObject({ sequence, liveSegment: names.at(-1) });
      }
    });

    test('corruption is found and reported the same with the hint as without it', async () => {
      const damages: ((dir: string, names: string[]) => Promise<void>)[] = [
        async (dir, names) => {
          const live = join(dir, names.at(-1)!);
          await flipBit(live, entryOffsets(core, await readFile(live))[2]! + 50);
        },
        async (dir, names) => flipBit(join(dir, names.at(-2)!), (await stat(join(dir, names.at(-2)!))).size - 1),
        async (dir, names) => setByte(join(dir, names.at(-2)!), 6, 0),
      ];
      for (const damage of damages) {
        const { dir } = await crashedJournal(core, 60);
        await damage(dir, await segmentNames(dir));
        const listed = await tempDir('listed');
        await cp(dir, listed, { recursive: true });
        await rm(join(listed, HEAD_HINT));
        const viaHint = await recoveredIn(dir, core);
        expect(viaHint).toMatchObject({ code: 'corrupt' });
        expect(viaHint).toEqual(await recoveredIn(listed, core));
      }
    });

    test('the first segment, after recovery.json or at sequence 1, and an empty live segment', async () => {
      const restored = await tempDir();
      await writeRecoveryState(restored, 41, core.computeEntryHash(ZERO_HASH, Buffer.from('snapshot')));
      const journal = await Journal.open(restored, { core });
      for (let i = 0; i < 3; i++) await journal.append(entryFor(i));
      const crashed = await crashedCopy(restored);
      await journal.close();
      expect(await readHint(crashed)).toEqual({ segment: name(42), previous: null });
      expect(await expectSameAsFullPath(crashed)).toMatchObject({ sequence: 44, liveSegment: name(42), lastSealedSegment: null });

      const { dir } = await crashedJournal(core, 3);
      expect(await readHint(dir)).toEqual({ segment: name(1), previous: null });
      expect(await expectSameAsFullPath(dir)).toMatchObject({ sequence: 3, liveSegment: name(1) });

      // a crash right after a new segment's header was written
      const closed = await tempDir();
      const writer = await Journal.open(closed, { core });
      for (let i = 0; i < 5; i++) await writer.append(entryFor(i));
      await writer.close();
      await writeFile(join(closed, name(6)), core.encodeHeader({ firstSeq: 6, createdMs: Date.now() }));
      await writeHint(closed, { segment: name(6), previous: name(1) });
      expect(await expectSameAsFullPath(closed)).toMatchObject({ sequence: 5, liveSegment: name(6), lastSealedSegment: name(1) });
    });
  });
});

/** Offsets of the entries of an unsealed segment, in order. */
/** Offsets of the whole entries of an unsealed segment, up to its torn tail (the zeros a native 'fsync' writer writes ahead, in a crashed copy). */
function entryOffsets(core: Core, bytes: Buffer): number[] {
  const offsets: number[] = [];
  for (let offset = 128; offset < bytes.length; ) {
    let size: number;
    try {
      size = core.decodeEntry(bytes, offset).size;
    } catch {
      break;
    }
    offsets.push(offset);
    offset += size;
  }
  return offsets;
}

/** How many bytes at the end of `bytes` are zero. */
function trailingZeros(bytes: Buffer): number {
  let at = bytes.length;
  while (at > 0 && bytes[at - 1] === 0) at--;
  return bytes.length - at;
}

async function flipBit(path: string, offset: number, mask = 0x01): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = bytes[offset]! ^ mask;
  await writeFile(path, bytes);
}

async function setByte(path: string, offset: number, value: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = value;
  await writeFile(path, bytes);
}

/** The segment files of a directory with their bytes (the lock file aside, which an open rewrites). */
async function segmentFilesOf(dir: string): Promise<Map<string, Buffer>> {
  const files = await filesOf(dir);
  files.delete('.lock');
  return files;
}

async function corruptErrorOf(promise: Promise<unknown>): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isGraphstreamError(err), `expected a GraphstreamError, got ${String(err)}`).toBe(true);
  return err as { code: string; message: string; details: Record<string, unknown> };
}

describe.each(cores)('torn tail or corruption ($kind core)', (core) => {
  /**
   * The journal of issue 12: 400 entries appended under 'fsync' in 3 segment files, either
   * closed (all sealed) or as a crash leaves it (the last one live).
   */
  async function issueJournal(state: 'closed' | 'crashed') {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core, durability: 'fsync', maxSegmentBytes: 20 * 1024 });
    for (let i = 0; i < 400; i++) await journal.append(entryFor(i));
    const copy = state === 'crashed' ? await crashedCopy(dir) : null;
    const { chainHash } = journal;
    await journal.close();
    const at = copy ?? dir;
    const names = await segmentNames(at);
    expect(names).toHaveLength(3);
    return { dir: at, names, paths: names.map((n) => join(at, n)), firstSeqs: names.map((n) => Number(n.slice(8, 24))), chainHash };
  }

  /** Open and recovery both fail with `corrupt` naming `mentions`, and no segment file changes. */
  async function expectCorrupt(dir: string, mentions: string[], details: Record<string, unknown>): Promise<void> {
    const before = await segmentFilesOf(dir);
    for (const attempt of [() => Journal.open(dir, { core }), () => recoverJournalState(dir, { core }), () => recoverJournalState(dir, { core, repair: false })]) {
      const err = await corruptErrorOf(attempt());
      expect(err.code).toBe('corrupt');
      for (const text of mentions) expect(err.message).toContain(text);
      expect(err.details).toMatchObject(details);
    }
    expect(await segmentFilesOf(dir)).toEqual(before);
  }

  test('issue 12, 1: a bit flipped inside entry 10 of the live segment is corruption: open fails and cuts nothing', async () => {
    const { dir, paths, firstSeqs } = await issueJournal('crashed');
    const live = paths[2]!;
    const offsets = entryOffsets(core, await readFile(live));
    expect(offsets.length).toBeGreaterThan(20);
    await flipBit(live, offsets[10]! + 60); // inside the payload of entry 10
    expect(await readdir(dir)).toContain(HEAD_HINT); // the hint path sees it too
    const sequence = firstSeqs[2]! + 10;
    await expectCorrupt(dir, [live, `(sequence ${sequence})`, `at byte offset ${offsets[10]}`], { file: live, offset: offsets[10], sequence });
  });

  test('an entry of the live segment that does not continue the chain is corruption at that entry; quarantine keeps the entries before it', async () => {
    const { dir, paths, firstSeqs } = await issueJournal('crashed');
    const live = paths[2]!;
    const bytes = await readFile(live);
    const offsets = entryOffsets(core, bytes);
    const entry = core.decodeEntry(bytes, offsets[10]!);
    const payload = bytes.subarray(entry.payloadOffset, entry.payloadOffset + entry.payloadLength);
    // a whole entry with a valid CRC, chained from elsewhere
    core.encodeEntry(entry.sequence, core.computeEntryHash(ZERO_HASH, Buffer.from('elsewhere')), payload).copy(bytes, offsets[10]!);
    await writeFile(live, bytes);
    const sequence = firstSeqs[2]! + 10;
    await expectCorrupt(dir, [live, `(sequence ${sequence})`, `at byte offset ${offsets[10]}`], { file: live, offset: offsets[10], sequence });
    const journal = await Journal.open(dir, { core, repair: 'quarantine' });
    expect(journal.sequence).toBe(sequence - 1);
    expect(journal.recovery.quarantine!.moved).toMatchObject([{ from: live, offset: offsets[10] }]);
    await journal.close();
  });

  test('issue 12, 1: the flags byte of the last sealed segment set to 0 is corruption, not a torn unsealed segment', async () => {
    const closed = await issueJournal('closed');
    await setByte(closed.paths[2]!, 6, 0);
    await expectCorrupt(closed.dir, [closed.paths[2]!, 'unsealed', 'last_seq'], { file: closed.paths[2], offset: 20, sequence: closed.firstSeqs[2] });

    const crashed = await issueJournal('crashed');
    await setByte(crashed.paths[1]!, 6, 0);
    await expectCorrupt(crashed.dir, [crashed.paths[1]!, 'unsealed'], { file: crashed.paths[1], sequence: crashed.firstSeqs[1] });
  });

  /** The live segment of a crashed issueJournal cut to its entries, then `tail` appended: what a crash of a writer that wrote zeros ahead leaves. */
  async function withTail(live: string, tail: Buffer): Promise<{ valid: number; count: number }> {
    const bytes = await readFile(live);
    const offsets = entryOffsets(core, bytes);
    const valid = offsets.at(-1)! + core.decodeEntry(bytes, offsets.at(-1)!).size;
    await writeFile(live, Buffer.concat([bytes.subarray(0, valid), tail]));
    return { valid, count: offsets.length };
  }

  test('issue 15: zeros after the last entry of the live segment (a preallocating writer\'s crash) are a torn tail: cut, reported as zeros, nothing lost', async () => {
    const { dir, paths, chainHash } = await issueJournal('crashed');
    const live = paths[2]!;
    const zeros = (1 << 20) + 3;
    const { valid, count } = await withTail(live, Buffer.alloc(zeros));
    const decoded = await core.decodeSegmentAsync(await readFile(live), { allowTornTail: true });
    expect({ entries: decoded.entryOffsets.length, validLength: decoded.validLength, tornTail: decoded.tornTail }).toEqual({ entries: count, validLength: valid, tornTail: true });
    expect((await readAll(dir, core)).at(-1)!.sequence).toBe(400);
    expect(await recoverJournalState(dir, { core, repair: false })).toMatchObject({ sequence: 400, truncatedBytes: zeros, zeroTailBytes: zeros });
    const journal = await Journal.open(dir, { core });
    expect(journal.recovery).toMatchObject({ sequence: 400, liveSegment: live, truncatedBytes: zeros, zeroTailBytes: zeros, removedFiles: [] });
    expect(journal.chainHash).toEqual(chainHash);
    expect((await stat(live)).size).toBe(valid);
    expect((await journal.append(entryFor(400))).sequence).toBe(401);
    await journal.close();
    expect((await readAll(dir, core)).map((r) => r.sequence)).toEqual(Array.from({ length: 401 }, (_, i) => i + 1));
  });

  test('issue 15: a torn entry before the zeros is cut with them; only the zeros count as zeros', async () => {
    const { dir, paths, chainHash } = await issueJournal('crashed');
    const torn = core.encodeEntry(401, chainHash, Buffer.from('never acknowledged')).subarray(0, 40);
    await withTail(paths[2]!, Buffer.concat([torn, Buffer.alloc(4096)]));
    const state = await recoverJournalState(dir, { core });
    expect(state).toMatchObject({ sequence: 400, truncatedBytes: 40 + 4096, zeroTailBytes: 4096 + trailingZeros(torn) });
  });

  test('issue 15: a bit flipped in a middle entry of a live segment ending in zeros is still corruption, not a torn tail', async () => {
    const { dir, paths, firstSeqs } = await issueJournal('crashed');
    const live = paths[2]!;
    await withTail(live, Buffer.alloc(1 << 20));
    const offsets = entryOffsets(core, await readFile(live));
    await flipBit(live, offsets[10]! + 60);
    const sequence = firstSeqs[2]! + 10;
    await expectCorrupt(dir, [live, `(sequence ${sequence})`, `at byte offset ${offsets[10]}`], { file: live, offset: offsets[10], sequence });
  });

  test('issue 15: zeros after the entries of an unsealed segment that is not the last are corruption (a writer cuts them before the next segment)', async () => {
    const { dir, paths, firstSeqs, chainHash } = await issueJournal('crashed');
    await withTail(paths[2]!, Buffer.alloc(4096));
    // a later segment holding an entry makes the zeros a middle, not a tail
    const next = firstSeqs[2]! + entryOffsets(core, (await readFile(paths[2]!))).length;
    await writeFile(
      join(dir, name(next)),
      Buffer.concat([core.encodeHeader({ firstSeq: next, createdMs: Date.now() }), core.encodeEntry(next, chainHash, Buffer.from('later'))]),
    );
    await expectCode(recoverJournalState(dir, { core }), 'corrupt', paths[2]!);
  });

  test('issue 12, 2: one bit flipped in the last sealed segment\'s last_seq is corruption', async () => {
    for (const state of ['closed', 'crashed'] as const) {
      const { dir, paths, firstSeqs } = await issueJournal(state);
      const victim = state === 'closed' ? 2 : 1;
      await flipBit(paths[victim]!, 27, 0x10); // last_seq + 16
      await expectCorrupt(dir, [paths[victim]!, 'last_seq'], { file: paths[victim], sequence: firstSeqs[victim] });
    }
  });

  test('issue 12, 2: one bit flipped in the last sealed segment\'s trailer is corruption', async () => {
    for (const state of ['closed', 'crashed'] as const) {
      const { dir, paths, firstSeqs } = await issueJournal(state);
      const victim = state === 'closed' ? 2 : 1;
      const size = (await stat(paths[victim]!)).size;
      await flipBit(paths[victim]!, size - 1);
      await expectCorrupt(dir, [paths[victim]!, 'trailer', `at byte offset ${size - 32}`], { file: paths[victim], offset: size - 32, sequence: firstSeqs[victim] });
    }
  });

  test('a bit flipped in what no checksum covers of a sealed header (unknown flags, reserved bytes) is corruption, as the Uploader finds it', async () => {
    for (const [offset, bit, what] of [[6, 0x20, 'flags'], [9, 0x01, 'reserved header byte 9'], [100, 0x80, 'reserved header byte 100']] as const) {
      const { dir, paths, firstSeqs } = await issueJournal('closed');
      await flipBit(paths[2]!, offset, bit);
      await expectCorrupt(dir, [paths[2]!, what], { file: paths[2], offset, sequence: firstSeqs[2] });
      // verify checks every segment with the same rules
      const full = await issueJournal('closed');
      await flipBit(full.paths[0]!, offset, bit);
      await expectCode(recoverJournalState(full.dir, { core, verify: 'full' }), 'corrupt', `${full.paths[0]} (sequence 1) at byte offset ${offset}`);
    }
  });

  test('a dry run (repair: false) reports the bytes it would cut and the files it would remove, changing nothing', async () => {
    const { dir, sequence, chainHash } = await crashedJournal(core, 30);
    const livePath = join(dir, (await segmentNames(dir)).at(-1)!);
    await appendFile(livePath, core.encodeEntry(sequence + 1, chainHash, Buffer.from('x')).subarray(0, 10));
    await writeFile(join(dir, name(sequence + 1)), Buffer.alloc(0));
    const before = await filesOf(dir);
    const state = await recoverJournalState(dir, { core, repair: false });
    expect(state).toMatchObject({ sequence, truncatedBytes: 10, removedFiles: [join(dir, name(sequence + 1))], quarantine: null });
    expect(await filesOf(dir)).toEqual(before);
    const repaired = await recoverJournalState(dir, { core });
    expect(repaired).toMatchObject({ sequence, truncatedBytes: 10, removedFiles: [join(dir, name(sequence + 1))] });
  });

  test('issue 21: three sealed segments followed by two 0-byte segments open and continue at the next sequence', async () => {
    const { dir, names, chainHash } = await issueJournal('closed');
    const last = 400;
    // what a power loss left: the new live segment and the one after it, both without their data
    await writeFile(join(dir, name(last + 1)), Buffer.alloc(0));
    await writeFile(join(dir, name(last + 65)), Buffer.alloc(0));
    for (const hint of ['', JSON.stringify({ segment: name(last + 65), previous: name(last + 1) })]) {
      const copy = await tempDir('issue21');
      await cp(dir, copy, { recursive: true });
      await writeFile(join(copy, HEAD_HINT), hint);
      expect((await readAll(copy, core)).at(-1)!.sequence).toBe(last);
      const journal = await Journal.open(copy, { core });
      expect(journal.sequence).toBe(last);
      expect(journal.chainHash).toEqual(chainHash);
      expect(journal.recovery.removedFiles.sort()).toEqual([join(copy, name(last + 1)), join(copy, name(last + 65))]);
      expect((await journal.append(entryFor(last))).sequence).toBe(last + 1);
      await journal.close();
      expect((await readAll(copy, core)).map((r) => r.sequence)).toEqual(Array.from({ length: last + 1 }, (_, i) => i + 1));
      expect(await segmentNames(copy)).toEqual([...names, name(last + 1)]);
    }
  });

  test('a trailing run of segments holding no entry (partial header, header alone, header and part of an entry) is the torn tail', async () => {
    const { dir, chainHash } = await issueJournal('closed');
    const header = core.encodeHeader({ firstSeq: 401, createdMs: Date.now() });
    const partialEntry = core.encodeEntry(401, chainHash, Buffer.from('never acknowledged')).subarray(0, 40);
    await writeFile(join(dir, name(401)), Buffer.concat([header, partialEntry]));
    await writeFile(join(dir, name(450)), header.subarray(0, 60));
    await writeFile(join(dir, name(500)), core.encodeHeader({ firstSeq: 500, createdMs: Date.now() }));
    expect((await readAll(dir, core)).at(-1)!.sequence).toBe(400);
    const journal = await Journal.open(dir, { core });
    expect(journal.sequence).toBe(400);
    // the first is the live segment, cut back to its header; the others are gone
    expect(journal.recovery).toMatchObject({ liveSegment: join(dir, name(401)), truncatedBytes: 40, removedFiles: [join(dir, name(450)), join(dir, name(500))] });
    expect((await journal.append(entryFor(400))).sequence).toBe(401);
    await journal.close();
    expect(await readAll(dir, core)).toHaveLength(401);
  });

  test('a segment holding no entry followed by one that holds entries is corruption (a gap), not a torn tail', async () => {
    const { dir, chainHash } = await issueJournal('closed');
    await writeFile(join(dir, name(401)), core.encodeHeader({ firstSeq: 401, createdMs: Date.now() }));
    const later = Buffer.concat([
      core.encodeHeader({ firstSeq: 410, createdMs: Date.now() }),
      core.encodeEntry(410, core.computeEntryHash(chainHash, Buffer.from('lost')), Buffer.from('kept')),
    ]);
    await writeFile(join(dir, name(410)), later);
    await expectCorrupt(dir, [join(dir, name(401)), 'sequences 401..409 are in no file', '[gap]'], { file: join(dir, name(401)), sequence: 401 });
  });

  test("verify: 'full' checks every segment and the chain across them; only the oldest segments may be missing", async () => {
    const damaged = await issueJournal('closed');
    await flipBit(damaged.paths[0]!, 200);
    expect((await recoverJournalState(damaged.dir, { core })).sequence).toBe(400); // open reads the tail only
    await expectCode(recoverJournalState(damaged.dir, { core, verify: 'full' }), 'corrupt', damaged.paths[0]);

    const middle = await issueJournal('closed');
    await rm(middle.paths[1]!);
    await expectCode(recoverJournalState(middle.dir, { core, verify: 'full' }), 'corrupt', `${middle.paths[2]} (sequence ${middle.firstSeqs[2]}) at byte offset 0`);

    const prefix = await issueJournal('closed'); // what the upload cache's cleanup leaves
    await rm(prefix.paths[0]!);
    expect((await recoverJournalState(prefix.dir, { core, verify: 'full' })).sequence).toBe(400);
  });

  describe("repair: 'quarantine'", () => {
    test('the damaged end of the live segment is moved aside, the journal continues after the last entry that verifies', async () => {
      const { dir, paths, names, firstSeqs } = await issueJournal('crashed');
      const live = paths[2]!;
      const original = await readFile(live);
      const offsets = entryOffsets(core, original);
      await flipBit(live, offsets[10]! + 60);
      const damagedBytes = await readFile(live);

      const dry = await recoverJournalState(dir, { core, repair: 'quarantine', dryRun: true });
      expect(await readdir(dir)).not.toContain('quarantine');
      const journal = await Journal.open(dir, { core, repair: 'quarantine' });
      const kept = firstSeqs[2]! + 9;
      expect(journal.sequence).toBe(kept);
      const report = journal.recovery.quarantine!;
      expect(report.dropped).toEqual({ first: kept + 1, last: 400 });
      expect(report.corruptions[0]).toMatchObject({ path: live, offset: offsets[10], sequence: kept + 1 });
      expect(report.moved).toEqual([{ from: live, to: join(report.directory, `${names[2]}.from-${offsets[10]}`), offset: offsets[10] }]);
      // the dry run said the same, moving nothing
      const summary = (q: typeof report) => ({ ...q, directory: relative(dir, dirname(q.directory)), moved: q.moved.map((m) => ({ ...m, to: basename(m.to) })) });
      expect(summary(dry.quarantine!)).toEqual(summary(report));
      expect(relative(dir, report.directory)).toMatch(/^quarantine\/\d{4}-\d\d-\d\dT/);
      expect(await readFile(report.moved[0]!.to)).toEqual(damagedBytes.subarray(offsets[10]));
      expect(await readFile(live)).toEqual(original.subarray(0, offsets[10]));

      expect((await journal.append(entryFor(999))).sequence).toBe(kept + 1);
      await journal.close();
      expect((await readAll(dir, core)).map((r) => r.sequence)).toEqual(Array.from({ length: kept + 1 }, (_, i) => i + 1));
    });

    test('a damaged sealed segment and every later one are moved aside whole', async () => {
      const { dir, paths, names, firstSeqs } = await issueJournal('crashed');
      await flipBit(paths[1]!, (await stat(paths[1]!)).size - 1); // its trailer
      const damaged = [await readFile(paths[1]!), await readFile(paths[2]!)];
      const journal = await Journal.open(dir, { core, repair: 'quarantine' });
      const kept = firstSeqs[1]! - 1;
      expect(journal.sequence).toBe(kept);
      const report = journal.recovery.quarantine!;
      expect(report.dropped).toEqual({ first: kept + 1, last: 400 });
      expect(report.moved.map((m) => m.from)).toEqual([paths[2], paths[1]]);
      expect(await readFile(join(report.directory, names[1]!))).toEqual(damaged[0]);
      expect(await readFile(join(report.directory, names[2]!))).toEqual(damaged[1]);
      expect(await segmentNames(dir)).toEqual([names[0]]);
      expect((await journal.append(entryFor(0))).sequence).toBe(kept + 1);
      await journal.close();
      expect(await readAll(dir, core)).toHaveLength(kept + 1);
      // a later open finds nothing to repair
      const again = await Journal.open(dir, { core, repair: 'quarantine' });
      expect(again.recovery.quarantine).toBeNull();
      await again.close();
    });
  });
});
