import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  compactOnce,
  runBackgroundCompaction,
  sealRawEntries,
  type CompactionConfigInit,
  type CompactionResult,
} from '../ts/replication/compaction.js';
import type { Core } from '../ts/core/core.js';
import { GraphstreamError } from '../ts/errors.js';
import { Follower } from '../ts/replication/follower.js';
import { createFormatApi } from '../ts/format/format.js';
import { compactionManifestKey, segmentKey } from '../ts/replication/layout.js';
import { restore } from '../ts/replication/restore.js';
import { MemoryStorage } from '../ts/storage/memory.js';
import type { PutOptions, PutResult, SegmentStorage } from '../ts/storage/types.js';
import { cores } from './helpers/cores.js';
import { ListRecordingStorage, journalRecords, openLeader, untilAborted, type TestLeader } from './helpers/replication.js';
import { s3BackendsAndCores } from './helpers/s3.js';

const DB = 'graph';
let testCounter = 0;

/** Entries of segments, flattened: what a reader gets. */
interface FlatEntry {
  sequence: number;
  prevHash: string;
  payload: string;
}

function entriesOf(core: Core, segments: Uint8Array[]): { entries: FlatEntry[]; chainHash: string } {
  const format = createFormatApi(core);
  const entries: FlatEntry[] = [];
  let chainHash = '';
  for (const bytes of segments) {
    const decoded = format.decodeSegment(bytes);
    for (const entry of decoded.entries) {
      entries.push({ sequence: entry.sequence, prevHash: entry.prevHash.toString('hex'), payload: entry.payload.toString('hex') });
    }
    chainHash = decoded.chainHash.toString('hex');
  }
  return { entries, chainHash };
}

/** Sealed originals of a random journal: `sizes[i]` entries in segment i. */
async function buildOriginals(core: Core, payloads: Uint8Array[], sizes: number[], level: number): Promise<Buffer[]> {
  const segments: Buffer[] = [];
  let prevHash: Buffer = Buffer.alloc(32);
  let next = 0;
  for (const size of sizes) {
    const batch = core.encodeEntries(next + 1, prevHash, payloads.slice(next, next + size));
    segments.push(await sealRawEntries(core, next + 1, 1_000 + next, [batch.bytes], level));
    prevHash = Buffer.from(batch.chainHashes.subarray(batch.chainHashes.length - 32));
    next += size;
  }
  return segments;
}

async function objects(storage: SegmentStorage, prefix: string): Promise<Uint8Array[]> {
  return Promise.all((await storage.list(prefix)).map(async (key) => (await storage.get(key))!));
}

describe.each(cores)('compaction equivalence ($kind core)', (core) => {
  it('a compacted segment decodes to exactly the entries and chain hash of its inputs (random journals)', async () => {
    const journal = fc
      .array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: 2, maxLength: 60 })
      .chain((payloads) =>
        fc.record({
          payloads: fc.constant(payloads),
          // cut points split the entries into segments of at least one entry
          cuts: fc.uniqueArray(fc.integer({ min: 1, max: payloads.length - 1 }), { maxLength: payloads.length - 1 }),
          maxOutputBytes: fc.integer({ min: 200, max: 20_000 }),
          threshold: fc.integer({ min: 2, max: 6 }),
          inputLevel: fc.constantFrom(0, 1, 3),
          level: fc.constantFrom(0, 3, 9),
        }),
      );
    await fc.assert(
      fc.asyncProperty(journal, async ({ payloads, cuts, maxOutputBytes, threshold, inputLevel, level }) => {
        const bounds = [0, ...[...cuts].sort((a, b) => a - b), payloads.length];
        const sizes = bounds.slice(1).map((bound, i) => bound - bounds[i]!);
        const originals = await buildOriginals(core, payloads, sizes, inputLevel);
        const storage = new MemoryStorage();
        for (const [i, bytes] of originals.entries()) {
          await storage.put(segmentKey('wal/', DB, 0, bounds[i]! + 1), bytes);
        }
        const result = await compactOnce({ storage, prefix: 'wal/', db: DB, core, config: { threshold, level, maxOutputBytes } });

        const compacted = await objects(storage, `wal/${DB}/8000/`);
        expect(compacted).toHaveLength(result.compacted.length);
        const inputs = entriesOf(core, originals);
        if (originals.length < threshold) {
          expect(compacted).toEqual([]);
          return;
        }
        const merged = entriesOf(core, compacted);
        // compacted segments cover the journal from its start, end on original boundaries ...
        const covered = merged.entries.length;
        expect(bounds).toContain(covered);
        expect(merged.entries).toEqual(inputs.entries.slice(0, covered));
        // ... and the rest stays for a later pass, fewer than threshold originals
        expect(result.uncompacted).toBeLessThan(threshold);
        expect(bounds.length - 1 - bounds.indexOf(covered)).toBe(result.uncompacted);
        const chainAtCover = covered === payloads.length ? inputs.chainHash : inputs.entries[covered]!.prevHash;
        expect(merged.chainHash).toBe(chainAtCover);
        for (const [i, record] of result.compacted.entries()) {
          const decoded = createFormatApi(core).decodeSegment(compacted[i]!);
          expect(decoded.header.firstSeq).toBe(record.firstSeq);
          expect(decoded.header.lastSeq).toBe(record.lastSeq);
          expect(decoded.chainHash.toString('hex')).toBe(record.chainHash);
          // memory bound: an output holds at most maxOutputBytes of entries, unless one original alone is bigger
          if (record.originals.length > 1) expect(decoded.entries.reduce((n, e) => n + 48 + e.payload.length, 0)).toBeLessThanOrEqual(maxOutputBytes);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('options that are not an object, or no storage, are invalid_argument', async () => {
    for (const options of [undefined, null, { db: DB }]) {
      await expect(compactOnce(options as unknown as Parameters<typeof compactOnce>[0])).rejects.toMatchObject({ code: 'invalid_argument' });
      expect(() => runBackgroundCompaction(options as unknown as Parameters<typeof runBackgroundCompaction>[0])).toThrow(
        expect.objectContaining({ code: 'invalid_argument' }),
      );
    }
  });

  it('runBackgroundCompaction compacts on its own until stopped', async () => {
    const storage = new MemoryStorage();
    const payloads = Array.from({ length: 40 }, (_, i) => Buffer.from(`entry ${i}`));
    const originals = await buildOriginals(core, payloads, Array.from({ length: 8 }, () => 5), 3);
    for (const [i, bytes] of originals.entries()) await storage.put(segmentKey('', DB, 0, i * 5 + 1), bytes);
    const passes: CompactionResult[] = [];
    let reportCompacted!: () => void;
    const compacted = new Promise<void>((resolve) => (reportCompacted = resolve));
    const background = runBackgroundCompaction({
      storage,
      db: DB,
      core,
      intervalMs: 5,
      config: { threshold: 4, retention: { minAgeMs: 0, keepLast: 2 } },
      onCompacted: (result) => {
        passes.push(result);
        reportCompacted();
      },
      onError: (err) => {
        throw err;
      },
    });
    await compacted;
    await background.stop();
    expect(passes).toHaveLength(1);
    expect(passes[0]!.compacted.map((record) => [record.firstSeq, record.lastSeq])).toEqual([[1, 40]]);
    expect(passes[0]!.deleted).toHaveLength(6);
    expect(await storage.list(`${DB}/0000/`)).toEqual([segmentKey('', DB, 0, 31), segmentKey('', DB, 0, 36)]);
    await expect(background.runNow()).rejects.toMatchObject({ code: 'closed' });
  });
});

/** Fails every put under `failPrefix`. */
class FailingPuts implements SegmentStorage {
  constructor(
    readonly inner: SegmentStorage,
    readonly failPrefix: string,
  ) {}
  get description() {
    return this.inner.description;
  }
  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    if (key.startsWith(this.failPrefix)) throw new GraphstreamError('storage', `injected failure putting ${key}`, { details: { key, retryable: true } });
    return this.inner.put(key, bytes, options);
  }
  get(key: string) {
    return this.inner.get(key);
  }
  list(prefix: string, options?: { startAfter?: string }) {
    return this.inner.list(prefix, options);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
}

describe.each(s3BackendsAndCores)('compaction against a real S3 server: $s3.name ($core.kind core)', ({ s3, core }) => {
  const format = createFormatApi(core);
  let storage: SegmentStorage;
  let prefix: string;
  let leading: TestLeader;
  const dirs: string[] = [];

  beforeAll(async () => {
    storage = await s3.open(await s3.createBucket('compaction'));
    return () => storage.close?.();
  });
  beforeEach(async () => {
    prefix = `t${++testCounter}/`;
    leading = await openLeader({ storage, prefix, db: DB, core, maxSegmentBytes: 1500 });
  });
  afterEach(async () => {
    await leading.close();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-compaction-'));
    dirs.push(dir);
    return dir;
  }

  const originalsPrefix = () => `${prefix}${DB}/0000/`;
  const compactedPrefix = () => `${prefix}${DB}/8000/`;
  const compact = (config: CompactionConfigInit, now?: () => number, on: SegmentStorage = storage) =>
    compactOnce({ storage: on, prefix, db: DB, core, config, ...(now ? { now } : {}) });

  it('followers part-way through the originals, fresh followers and restore all read compacted segments alike', async () => {
    await leading.write(40);
    const midway = new Follower({ storage, prefix, db: DB, dir: await tempDir(), core });
    expect((await midway.catchUp()).sequence).toBe(40);

    await leading.write(160);
    const originalCount = (await storage.list(originalsPrefix())).length;
    const result = await compact({ threshold: 2, maxOutputBytes: 8_000, retention: { minAgeMs: 0, keepLast: 1 } });
    expect(result.compacted.length).toBeGreaterThan(1);
    expect(result.deleted).toHaveLength(originalCount - 1);
    expect(await storage.list(originalsPrefix())).toHaveLength(1);
    // compacted keys name their first sequence and hold whole originals, back to back
    let next = 1;
    for (const record of result.compacted) {
      expect(record.key).toBe(segmentKey(prefix, DB, 0x8000, next));
      next = record.lastSeq + 1;
    }
    expect(next - 1).toBe(200);

    const expected = await journalRecords(leading.dir, core);
    // part-way: continues inside a compacted segment (the part it had is verified and cut off)
    const resumed = await midway.catchUp();
    expect(resumed).toMatchObject({ fromSequence: 40, sequence: 200 });
    expect(resumed.segments[0]).toMatchObject({ firstSeq: 41, compacted: true, cut: true });
    expect(await journalRecords(midway.dir, core)).toEqual(expected);
    // fresh: only compacted segments (and the newest original, which the last compacted one also holds)
    const fresh = new Follower({ storage, prefix, db: DB, dir: await tempDir(), core });
    const all = await fresh.catchUp();
    expect(all.segments.every((segment) => segment.compacted)).toBe(true);
    expect(await journalRecords(fresh.dir, core)).toEqual(expected);
    const restoredDir = await tempDir();
    expect((await restore(storage, { prefix, db: DB, dir: restoredDir, core })).sequence).toBe(200);
    expect(await journalRecords(restoredDir, core)).toEqual(expected);

    // The journal goes on: new originals after the compacted history.
    await leading.write(30);
    expect((await midway.catchUp()).sequence).toBe(230);
    expect((await fresh.catchUp()).sequence).toBe(230);
    expect(await journalRecords(fresh.dir, core)).toEqual(await journalRecords(leading.dir, core));
  });

  it('a tailing follower stays exact while the leader writes and compaction deletes originals under it', async () => {
    await leading.write(30);
    const recording = new ListRecordingStorage(storage);
    const follower = new Follower({ storage: recording, prefix, db: DB, dir: await tempDir(), core });
    const controller = new AbortController();
    const rounds = 8;
    const total = 30 + rounds * 30;
    let roundsDone = 0;
    let thirdRoundDone!: () => void;
    const afterThirdRound = new Promise<void>((resolve) => (thirdRoundDone = resolve));
    const background = (async () => {
      for (let round = 0; round < rounds; round++) {
        await leading.write(30);
        await compact({ threshold: 2, maxOutputBytes: 6_000, retention: { minAgeMs: 0, keepLast: 1 } });
        if (++roundsDone === 3) thirdRoundDone();
      }
    })();
    const seen: { sequence: number; chainHash: string }[] = [];
    for await (const record of untilAborted(follower.tail({ raw: true, pollIntervalMs: 2, maxPollIntervalMs: 10, signal: controller.signal }))) {
      seen.push({ sequence: record.sequence, chainHash: record.chainHash.toString('hex') });
      // Part-way through, wait until the originals after this point have been compacted and deleted.
      if (record.sequence === 25) await afterThirdRound;
      if (record.sequence === total) controller.abort();
    }
    await background;
    const expected = await journalRecords(leading.dir, core);
    expect(seen).toEqual(expected.map(({ sequence, chainHash }) => ({ sequence, chainHash })));
    expect(await journalRecords(follower.dir, core)).toEqual(expected);
    expect(recording.gets.some((key) => key.startsWith(compactedPrefix()))).toBe(true);
  });

  it('retention deletes originals only after minAgeMs since confirmation, keeping the newest keepLast', async () => {
    await leading.write(120);
    const originals = await storage.list(originalsPrefix());
    expect(originals.length).toBeGreaterThan(6);
    const config = { threshold: 3, retention: { minAgeMs: 10_000, keepLast: 3 } };
    const first = await compact(config, () => 1_000);
    expect(first.compacted).toHaveLength(1);
    expect(first.compacted[0]!.originals).toEqual(originals);
    expect(first.deleted).toEqual([]);
    expect(await storage.list(originalsPrefix())).toEqual(originals);

    const early = await compact(config, () => 10_999);
    expect(early).toEqual({ compacted: [], deleted: [], uncompacted: 0 });

    const due = await compact(config, () => 11_000);
    expect(due.deleted).toEqual(originals.slice(0, -3));
    expect(await storage.list(originalsPrefix())).toEqual(originals.slice(-3));
    const manifest = JSON.parse(Buffer.from((await storage.get(compactionManifestKey(prefix, DB, 0)))!).toString('utf8'));
    expect(manifest.segments[0].originals).toEqual(originals.slice(-3));

    // Newer originals arrive: the kept ones are no longer the newest and go too.
    await leading.write(60);
    const later = await compact({ threshold: 100, retention: { minAgeMs: 10_000, keepLast: 3 } }, () => 12_000);
    expect(later.compacted).toEqual([]);
    expect(later.deleted).toEqual(originals.slice(-3));
  });

  it('never deletes an original whose compacted replacement is not confirmed in storage', async () => {
    await leading.write(80);
    const originals = await storage.list(originalsPrefix());
    const failing = new FailingPuts(storage, compactedPrefix());
    await expect(compact({ threshold: 2, retention: { minAgeMs: 0, keepLast: 1 } }, undefined, failing)).rejects.toMatchObject({ code: 'storage' });
    expect(await storage.list(originalsPrefix())).toEqual(originals);
    expect(await storage.list(compactedPrefix())).toEqual([]);
    expect(await storage.get(compactionManifestKey(prefix, DB, 0))).toBeNull();
  });

  it('adopts a compacted segment an interrupted run left behind, and refuses one with other entries', async () => {
    await leading.write(80);
    const config = { threshold: 2, retention: { minAgeMs: 3_600_000, keepLast: 1 } };
    const first = await compact(config);
    const bytes = await storage.get(first.compacted[0]!.key);
    await storage.delete(compactionManifestKey(prefix, DB, 0)); // as if the run died before recording it
    const again = await compact(config);
    expect(again.compacted.map((record) => [record.key, record.firstSeq, record.lastSeq, record.sha256])).toEqual(
      first.compacted.map((record) => [record.key, record.firstSeq, record.lastSeq, record.sha256]),
    );
    expect(Buffer.from((await storage.get(first.compacted[0]!.key))!).equals(Buffer.from(bytes!))).toBe(true);

    // A compacted key holding different entries (here: only the first original) is a conflict.
    await storage.delete(compactionManifestKey(prefix, DB, 0));
    await storage.delete(first.compacted[0]!.key);
    const originals = await storage.list(originalsPrefix());
    await storage.put(first.compacted[0]!.key, (await storage.get(originals[0]!))!);
    await expect(compact(config)).rejects.toMatchObject({ code: 'conflict' });
    expect(await storage.list(originalsPrefix())).toEqual(originals);
  });

  it('stops at a gap or a foreign segment among the originals instead of compacting past it', async () => {
    await leading.write(80);
    const originals = await storage.list(originalsPrefix());
    const saved = (await storage.get(originals[2]!))!;
    await storage.delete(originals[2]!);
    await expect(compact({ threshold: 2 })).rejects.toMatchObject({ code: 'gap', message: expect.stringContaining(originals[3]!) });
    expect(await storage.list(compactedPrefix())).toEqual([]);
    await storage.put(originals[2]!, saved);

    // Same sequences, another chain.
    const decoded = format.decodeSegment((await storage.get(originals[3]!))!);
    const { bytes } = core.encodeEntries(decoded.header.firstSeq, Buffer.alloc(32, 9), decoded.entries.map((entry) => entry.payload));
    await storage.put(originals[3]!, await sealRawEntries(core, decoded.header.firstSeq, 1, [bytes], 3));
    await expect(compact({ threshold: 2 })).rejects.toMatchObject({ code: 'chain_broken' });
    expect(await storage.list(compactedPrefix())).toEqual([]);
    expect(await storage.list(originalsPrefix())).toEqual(originals);
  });
});
