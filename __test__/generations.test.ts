/**
 * Readers across generations (FORMAT.md, "Ownership and generations"): followers, restore,
 * compaction and verify follow the generation records in order, take generation g's segments only
 * below the next generation's start_seq, and check where each generation starts.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Core, RawSegment } from '../ts/core/core.js';
import { chainHashAfter } from '../ts/format/raw-entries.js';
import { Journal } from '../ts/journal/journal.js';
import { compactOnce, sliceSegment } from '../ts/replication/compaction.js';
import { Follower } from '../ts/replication/follower.js';
import { compactedGeneration, generationRecordKey, segmentKey } from '../ts/replication/layout.js';
import { serializeGenerationRecord, serializeLeaseRecord } from '../ts/replication/ownership.js';
import { leaseKey } from '../ts/replication/layout.js';
import { MemoryStorage } from '../ts/storage/memory.js';
import { verifyStore } from '../ts/replication/verify-store.js';
import { restore } from '../ts/replication/restore.js';
import type { SegmentStorage } from '../ts/storage/types.js';
import { cores } from './helpers/cores.js';
import { entryFor, journalRecords, openLeader, type ComparableRecord } from './helpers/replication.js';
import { s3Backends } from './helpers/s3.js';

const DB = 'graph';
const ENTRIES = 120;
let testCounter = 0;

type Sealed = { bytes: Buffer; decoded: RawSegment };

/**
 * The sealed segment a journal writes next: `count` entries `entryFor(offset + 1) ..`, from
 * sequence 1, or chained after `after` (a segment from sequence 1) when given.
 */
async function sealedSegment(core: Core, count: number, offset: number, after?: Sealed): Promise<Sealed> {
  const dir = await mkdtemp(join(tmpdir(), 'graphstream-generations-'));
  try {
    if (after !== undefined) await writeFile(join(dir, 'journal-0000000000000001.hadbj'), after.bytes);
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1 << 22, durability: 'none' });
    await journal.appendBatch(Array.from({ length: count }, (_, k) => entryFor(offset + k + 1)));
    const path = await journal.sealForUpload();
    await journal.close();
    const bytes = await readFile(path!);
    return { bytes, decoded: core.decodeSegment(bytes) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe.each(cores)('readers across generations ($kind core)', (core) => {
  const s3 = s3Backends[core.kind === 'native' ? 1 : 0]!;
  let storage: SegmentStorage;
  let prefix: string;
  /** the journal the writers of every generation wrote, one after the other */
  let journal: Sealed;
  /** a writer that had lost the lease: the same entries up to 60, then others */
  let stale: Sealed;
  /** another journal altogether */
  let foreign: Sealed;
  let expected: ComparableRecord[];
  const dirs: string[] = [];

  beforeAll(async () => {
    storage = await s3.open(await s3.createBucket('generations'));
    journal = await sealedSegment(core, ENTRIES, 0);
    // the stale writer's own continuation of the shared prefix: its entries 61..80 chained after 60
    stale = await sealedSegment(core, 20, 1000, await sealedSegment(core, 60, 0));
    foreign = await sealedSegment(core, ENTRIES, 5000);
    const dir = await tempDir();
    await writeFile(join(dir, 'journal-0000000000000001.hadbj'), journal.bytes);
    expected = await journalRecords(dir, core);
    return () => storage.close?.();
  });
  beforeEach(() => {
    prefix = `t${++testCounter}/`;
  });
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-generations-'));
    dirs.push(dir);
    return dir;
  }

  /** Uploads entries `from..to` of `source` as a segment of `generation`. */
  async function put(source: Sealed, generation: number, from: number, to: number): Promise<string> {
    const key = segmentKey(prefix, DB, generation, from);
    await storage.put(key, await sliceSegment(core, source.bytes, source.decoded, from, to), { ifNoneMatch: '*' });
    return key;
  }

  async function putRecord(generation: number, startSeq: number, prevHash: Buffer = hashAfter(journal, startSeq - 1)): Promise<void> {
    const record = { generation, epoch: generation + 1, holder: `test/${generation}`, startSeq, prevHash, writtenMs: Date.now() };
    await storage.put(generationRecordKey(prefix, DB, generation), serializeGenerationRecord(record), { ifNoneMatch: '*' });
  }

  /** Generation 0 (no record) up to 60, generation 1 from 61; `staleIn0` plants the stale writer's 61..80 in generation 0. */
  async function twoGenerations(options: { staleIn0?: boolean } = {}): Promise<string | null> {
    await put(journal, 0, 1, 30);
    await put(journal, 0, 31, 60);
    const staleKey = options.staleIn0 ? await put(stale, 0, 61, 80) : null;
    await putRecord(1, 61);
    await put(journal, 1, 61, 90);
    await put(journal, 1, 91, ENTRIES);
    return staleKey;
  }

  function follower(dir: string): Follower {
    return new Follower({ storage, prefix, db: DB, dir, core, prefetch: 2 });
  }

  it('a follower and restore read one chain across generations and never a stale segment of an old generation', async () => {
    await twoGenerations({ staleIn0: true });
    const followerDir = await tempDir();
    const caughtUp = await follower(followerDir).catchUp();
    expect(caughtUp.sequence).toBe(ENTRIES);
    expect(await journalRecords(followerDir, core)).toEqual(expected);

    const restored = await tempDir();
    const result = await restore(storage, { prefix, db: DB, dir: restored, core });
    expect(result.sequence).toBe(ENTRIES);
    expect(await journalRecords(restored, core)).toEqual(expected);

    const partial = await tempDir();
    expect((await restore(storage, { prefix, db: DB, dir: partial, core, toSequence: 75 })).sequence).toBe(75);
    expect(await journalRecords(partial, core)).toEqual(expected.slice(0, 75));
  });

  it('a follower at the end of a generation picks up the next one once its record appears', async () => {
    await put(journal, 0, 1, 60);
    const dir = await tempDir();
    const reader = follower(dir);
    expect((await reader.catchUp()).sequence).toBe(60);
    await put(stale, 0, 61, 80); // the old writer goes on after it lost the lease...
    await putRecord(1, 61); // ...and the new one announces generation 1 before its first segment
    await put(journal, 1, 61, ENTRIES);
    expect((await reader.catchUp()).sequence).toBe(ENTRIES);
    expect(await journalRecords(dir, core)).toEqual(expected);
  });

  it('a segment of the old generation that runs past the next start is cut there', async () => {
    await put(journal, 0, 1, 80);
    await putRecord(1, 61);
    await put(journal, 1, 61, ENTRIES);
    const dir = await tempDir();
    expect((await follower(dir).catchUp()).sequence).toBe(ENTRIES);
    expect(await journalRecords(dir, core)).toEqual(expected);
  });

  it('a generation whose record does not continue the chain, or whose first segment does not, is chain_broken', async () => {
    await put(journal, 0, 1, 60);
    await putRecord(1, 61, hashAfter(foreign, 60));
    await put(journal, 1, 61, ENTRIES);
    await expect(follower(await tempDir()).catchUp()).rejects.toMatchObject({ code: 'chain_broken', message: expect.stringContaining('generations/0001.json') });

    prefix = `t${++testCounter}/`;
    await put(journal, 0, 1, 60);
    await putRecord(1, 61);
    await put(foreign, 1, 61, ENTRIES);
    await expect(follower(await tempDir()).catchUp()).rejects.toMatchObject({ code: 'chain_broken' });
    await expect(restore(storage, { prefix, db: DB, dir: await tempDir(), core })).rejects.toMatchObject({ code: 'chain_broken' });
  });

  it('a generation that does not start at its start_seq, or an old one that ends early, is a gap', async () => {
    await put(journal, 0, 1, 60);
    await putRecord(1, 61);
    await put(journal, 1, 71, ENTRIES);
    await expect(follower(await tempDir()).catchUp()).rejects.toMatchObject({ code: 'gap' });

    prefix = `t${++testCounter}/`;
    await put(journal, 0, 1, 50);
    await putRecord(1, 61);
    await put(journal, 1, 61, ENTRIES);
    await expect(follower(await tempDir()).catchUp()).rejects.toMatchObject({ code: 'gap', message: expect.stringContaining('generation 0 ends at sequence 60') });
  });

  async function putLease(generation: number, holder: string): Promise<void> {
    const lease = { holder, epoch: generation + 1, generation, ttlMs: 10_000, renewals: 0, released: false, writtenMs: Date.now() };
    await storage.put(leaseKey(prefix, DB), serializeLeaseRecord(lease));
  }

  it('while the lease names a generation without a record, no reader takes what lands in the old one; then they continue in the new one', async () => {
    const s3Storage = storage;
    // once on the real S3 server, once on MemoryStorage
    for (const target of [s3Storage, new MemoryStorage()]) {
      storage = target;
      prefix = `t${++testCounter}/`;
      try {
        await put(journal, 0, 1, 30);
        await putRecord(1, 31);
        await putLease(1, 'old');
        await put(journal, 1, 31, 45);
        const dir = await tempDir();
        const reader = follower(dir);
        expect((await reader.catchUp()).sequence).toBe(45);
        await put(journal, 1, 46, 60); // the lease names generation 1: the old writer's segments are its own
        expect((await reader.catchUp()).sequence).toBe(60);

        // The new holder took the lease and caught up to 60; a put of the old writer that was in flight
        // across its pause lands now, before the new holder wrote its generation record.
        await putLease(2, 'new');
        const staleKey = await put(stale, 1, 61, 80);
        expect((await reader.catchUp()).sequence).toBe(60);
        // restore takes what is certain (generation 0, which generation 1's record ends) and says why it stopped
        const restored = await restore(storage, { prefix, db: DB, dir: await tempDir(), core });
        expect(restored).toMatchObject({ sequence: 30, undecided: { generation: 1, leaseGeneration: 2, holder: 'new', epoch: 3 } });
        const compaction = await compactOnce({ storage, prefix, db: DB, core, generation: 1, config: { threshold: 2, retention: { minAgeMs: 0, keepLast: 1 } } });
        expect(compaction).toMatchObject({ compacted: [], deleted: [], undecided: { leaseGeneration: 2 } });
        expect(await storage.get(staleKey)).not.toBeNull();
        expect((await verifyStore(storage, { prefix, db: DB, core })).undecided).toEqual({ generation: 1, leaseGeneration: 2, holder: 'new', epoch: 3 });

        // the record says where generation 1 ends: the follower's tip + 1
        await putRecord(2, 61);
        await put(journal, 2, 61, ENTRIES);
        expect((await reader.catchUp()).sequence).toBe(ENTRIES);
        expect(await journalRecords(dir, core)).toEqual(expected);
        expect((await restore(storage, { prefix, db: DB, dir: await tempDir(), core })).undecided).toBeUndefined();
        const report = await verifyStore(storage, { prefix, db: DB, core });
        expect(report).toMatchObject({ ok: true, lastSeq: ENTRIES, undecided: null });
        expect(report.staleKeys).toEqual([expect.stringContaining(staleKey)]);
      } finally {
        storage = s3Storage;
      }
    }
  });

  it('a hole followed by data below the end of a generation is a gap, with the generation and the sequences, for every reader', async () => {
    await put(journal, 0, 1, 30);
    await put(journal, 0, 41, 60); // 31..40 are missing
    const staleKey = await put(stale, 0, 61, 80);
    await putRecord(1, 61);
    await put(journal, 1, 61, ENTRIES);
    const gap = { code: 'gap', message: expect.stringContaining('sequences 31..40 of generation 0'), details: expect.objectContaining({ generation: 0, sequence: 31 }) };
    await expect(follower(await tempDir()).catchUp()).rejects.toMatchObject(gap);
    await expect(restore(storage, { prefix, db: DB, dir: await tempDir(), core })).rejects.toMatchObject(gap);
    await expect(
      compactOnce({ storage, prefix, db: DB, core, generation: 0, config: { threshold: 2, retention: { minAgeMs: 0, keepLast: 1 } } }),
    ).rejects.toMatchObject(gap);
    const report = await verifyStore(storage, { prefix, db: DB, core });
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([expect.objectContaining({ code: 'gap', sequence: 41, message: expect.stringContaining('sequences 31..40 of generation 0') })]);
    expect(report.staleKeys).toEqual([expect.stringContaining(staleKey)]);
  });

  it('compaction never compacts stale segments, and followers reading compacted segments still cut generations', async () => {
    const staleKey = await twoGenerations({ staleIn0: true });
    const result = await compactOnce({ storage, prefix, db: DB, core, generation: 0, config: { threshold: 2, retention: { minAgeMs: 0, keepLast: 1 } } });
    expect(result.compacted.map((record) => [record.firstSeq, record.lastSeq])).toEqual([[1, 60]]);
    expect(await storage.get(staleKey!)).not.toBeNull();
    expect(await storage.list(`${prefix}${DB}/${compactedGeneration(0).toString(16)}/`)).toHaveLength(1);

    const dir = await tempDir();
    expect((await follower(dir).catchUp()).sequence).toBe(ENTRIES);
    expect(await journalRecords(dir, core)).toEqual(expected);
  });

  it('a compacted segment of an old generation that runs past the next start is cut there', async () => {
    // compacted while the old writer's stale segment was there and before the record that ends generation 0
    await put(journal, 0, 1, 60);
    await put(stale, 0, 61, 80);
    await compactOnce({ storage, prefix, db: DB, core, generation: 0, config: { threshold: 2, retention: { minAgeMs: 0, keepLast: 1 } } });
    await putRecord(1, 61);
    await put(journal, 1, 61, ENTRIES);
    const dir = await tempDir();
    expect((await follower(dir).catchUp()).sequence).toBe(ENTRIES);
    expect(await journalRecords(dir, core)).toEqual(expected);
  });
});

function hashAfter(source: { decoded: RawSegment }, sequence: number): Buffer {
  return Buffer.from(chainHashAfter(source.decoded, sequence - source.decoded.header.firstSeq));
}

describe.each(cores)('a follower that begins a new generation ($kind core)', (core) => {
  const s3 = s3Backends[core.kind === 'native' ? 0 : 1]!;
  let storage: SegmentStorage;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    storage = await s3.open(await s3.createBucket('new-generation'));
    return () => storage.close?.();
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-generations-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  it('a follower whose tail was stopped catches up with everything uploaded since, and promotes from there', async () => {
    const prefix = `tail${++testCounter}/`;
    const old = await openLeader({ storage, prefix, db: DB, core, lease: { holder: 'old', ttlMs: 10_000 } });
    cleanups.push(() => old.close());
    await old.write(100);
    const dir = await tempDir();
    const standby = new Follower({ storage, prefix, db: DB, dir, core });
    for await (const record of standby.tail({ pollIntervalMs: 10 })) if (record.sequence >= 10) break;
    await old.write(50); // acknowledged (synced) after the tail stopped
    await old.uploader.release();
    const { record, journal, uploader, lease } = await standby.promote({ journal: { durability: 'none' }, uploader: { sealIntervalMs: 3_600_000 } });
    cleanups.push(async () => {
      await uploader.stop();
      await journal.close();
      await lease.release();
    });
    // the cut is after everything the old leader acknowledged, not where the stopped tail's listing ended
    expect(record.startSeq).toBe(151);
    expect(journal.sequence).toBe(150);
  });

  it('continues the chain in its journal, ships only from start_seq into its generation, and followers read one chain', async () => {
    const prefix = `new${++testCounter}/`;
    const old = await openLeader({ storage, prefix, db: DB, core }); // from before leases: generation 0 without a record
    cleanups.push(() => old.close());
    await old.write(100);

    const standbyDir = await tempDir();
    const { record, journal, uploader, lease } = await new Follower({ storage, prefix, db: DB, dir: standbyDir, core }).promote({
      journal: { maxSegmentBytes: 2048, durability: 'none' },
      uploader: { sealIntervalMs: 3_600_000 },
    });
    cleanups.push(async () => {
      await uploader.stop();
      await journal.close();
      await lease.release();
    });
    expect(record).toMatchObject({ generation: 1, epoch: 1, startSeq: 101, prevHash: old.journal.chainHash });
    await journal.appendBatch(Array.from({ length: 50 }, (_, k) => entryFor(2001 + k)));
    await uploader.sync();
    // the old writer goes on, not knowing it was replaced: its segments land in generation 0 past the new start
    await old.write(30);

    const newKeys = await storage.list(`${prefix}${DB}/0001/`);
    expect(newKeys.length).toBeGreaterThan(1);
    expect(newKeys.every((key) => Number.parseInt(key.slice(-22, -6), 16) >= 101)).toBe(true);

    const readerDir = await tempDir();
    expect((await new Follower({ storage, prefix, db: DB, dir: readerDir, core }).catchUp()).sequence).toBe(150);
    expect(await journalRecords(readerDir, core)).toEqual(await journalRecords(standbyDir, core));
    const restored = await restore(storage, { prefix, db: DB, dir: await tempDir(), core });
    expect(restored.chainHash.equals(journal.chainHash)).toBe(true);
  });
});
