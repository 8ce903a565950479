import { readdirSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { compactOnce, sealRawEntries } from '../ts/replication/compaction.js';
import type { Core, DecodeOptions } from '../ts/core/core.js';
import { GraphstreamError } from '../ts/errors.js';
import { createFormatApi } from '../ts/format/format.js';
import { segmentKey } from '../ts/replication/layout.js';
import { Follower, downloadNewSegments } from '../ts/replication/follower.js';
import type { RawJournalRecord } from '../ts/journal/reader.js';
import { GraphstreamMetrics } from '../ts/metrics.js';
import { encodeJournalEntry } from '../ts/payload/payload.js';
import { MemoryStorage } from '../ts/storage/memory.js';
import type { GetOptions, ListOptions, PutOptions, PutResult, SegmentStorage } from '../ts/storage/types.js';
import { cores } from './helpers/cores.js';
import { ListRecordingStorage, entryFor, journalRecords, openLeader, untilAborted, type TestLeader } from './helpers/replication.js';
import { s3BackendsAndCores } from './helpers/s3.js';

const DB = 'graph';
let testCounter = 0;

async function metricValue(metrics: GraphstreamMetrics, name: string): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  return metric.values[0]?.value ?? 0;
}

/**
 * Counts the segment gets in flight at once, notes how many segments the follower had written when
 * each was issued, and fails the first get of the chosen keys.
 */
class GetObservingStorage implements SegmentStorage {
  inFlight = 0;
  maxInFlight = 0;
  readonly gets: { key: string; localSegments: number }[] = [];

  constructor(
    readonly inner: SegmentStorage,
    private readonly localDir: string,
    private readonly failOnce: Set<string> = new Set(),
    private readonly failure: { retryable: boolean } = { retryable: false },
  ) {}

  get description(): string {
    return this.inner.description;
  }

  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    return this.inner.put(key, bytes, options);
  }

  async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    if (!key.endsWith('.hadbj')) return this.inner.get(key, options); // lease.json, generation records
    this.gets.push({ key, localSegments: readdirSync(this.localDir).filter((name) => name.endsWith('.hadbj')).length });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.failOnce.delete(key)) {
        throw new GraphstreamError('storage', `injected failure getting ${key}`, { details: { key, retryable: this.failure.retryable } });
      }
      return await this.inner.get(key, options);
    } finally {
      this.inFlight--;
    }
  }

  list(prefix: string, options?: ListOptions): Promise<string[]> {
    return this.inner.list(prefix, options);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  async settled(): Promise<void> {
    while (this.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe.each(s3BackendsAndCores)('Follower against a real S3 server: $s3.name ($core.kind core)', ({ s3, core }) => {
  const format = createFormatApi(core);
  let storage: SegmentStorage;
  let prefix: string;
  let followerDir: string;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    storage = await s3.open(await s3.createBucket('follower'));
    return () => storage.close?.();
  });
  beforeEach(async () => {
    prefix = `t${++testCounter}/`;
    followerDir = await mkdtemp(join(tmpdir(), 'graphstream-follower-'));
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await rm(followerDir, { recursive: true, force: true });
  });

  async function leader(entries: number, options: { maxSegmentBytes?: number; batch?: number } = {}): Promise<TestLeader> {
    const opened = await openLeader({ storage, prefix, db: DB, core, ...options });
    cleanups.push(() => opened.close());
    if (entries > 0) await opened.write(entries);
    return opened;
  }

  function follower(options: { storage?: SegmentStorage; metrics?: GraphstreamMetrics; prefetch?: number; dir?: string } = {}): Follower {
    return new Follower({
      storage: options.storage ?? storage,
      prefix,
      db: DB,
      dir: options.dir ?? followerDir,
      core,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.prefetch !== undefined ? { prefetch: options.prefetch } : {}),
    });
  }

  async function freshDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-follower-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  const localSegmentNames = async (dir: string) => (await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort();

  const keyOf = (firstSeq: number) => segmentKey(prefix, DB, 0, firstSeq);

  async function remoteSegments(): Promise<{ key: string; firstSeq: number; lastSeq: number }[]> {
    const segments = [];
    for (const key of await storage.list(`${prefix}${DB}/0000/`)) {
      const decoded = format.decodeSegment((await storage.get(key))!);
      segments.push({ key, firstSeq: decoded.header.firstSeq, lastSeq: decoded.header.lastSeq });
    }
    return segments;
  }

  it("catchUp rebuilds the leader's journal entry for entry and hash for hash, and polls only after what it has", async () => {
    const leading = await leader(120);
    const recording = new ListRecordingStorage(storage);
    const metrics = new GraphstreamMetrics();
    const replica = follower({ storage: recording, metrics });

    const first = await replica.catchUp();
    const expected = await journalRecords(leading.dir, core);
    expect(expected).toHaveLength(120);
    expect(await journalRecords(followerDir, core)).toEqual(expected);
    expect(first).toMatchObject({ fromSequence: 0, sequence: 120, entries: 120 });
    expect(first.chainHash.equals(leading.journal.chainHash)).toBe(true);
    expect(first.segments.length).toBe((await remoteSegments()).length);
    expect(first.segments.length).toBeGreaterThan(3);
    expect(replica.position.sequence).toBe(120);
    expect(replica.position.chainHash!.equals(leading.journal.chainHash)).toBe(true);
    expect(replica.lag).toEqual({ sequences: 0, seconds: 0 });
    expect(await metricValue(metrics, 'graphstream_segments_downloaded_total')).toBe(first.segments.length);
    expect(await metricValue(metrics, 'graphstream_replication_lag_sequences')).toBe(0);
    const names = (await readdir(followerDir)).sort();
    expect(names.filter((name) => name.endsWith('.tmp'))).toEqual([]);
    expect(names).toContain('follower.json');

    // More entries: the next poll lists only keys after sequence 120 (and the generation records, for
    // a generation that ends there) and fetches only the new segments.
    await leading.write(40);
    const listsBefore = recording.lists.length;
    const getsBefore = recording.gets.length;
    const second = await replica.catchUp();
    expect(second).toMatchObject({ fromSequence: 120, sequence: 160, entries: 40 });
    const generations = { prefix: `${prefix}${DB}/generations/`, startAfter: undefined };
    const polls = recording.lists.slice(listsBefore);
    expect(polls).toEqual([{ prefix: `${prefix}${DB}/0000/`, startAfter: keyOf(120) }, generations]);
    expect(recording.gets.slice(getsBefore)).toEqual(second.segments.map((segment) => segment.key));
    expect(await journalRecords(followerDir, core)).toEqual(await journalRecords(leading.dir, core));

    // Nothing new: one listing of segments, no download.
    const idle = await replica.catchUp();
    expect(idle.segments).toEqual([]);
    expect(recording.lists.slice(-2)).toEqual([{ prefix: `${prefix}${DB}/0000/`, startAfter: keyOf(160) }, generations]);
  });

  it('downloadNewSegments stores verified segments atomically under their local names', async () => {
    const leading = await leader(60);
    const downloaded = await downloadNewSegments(storage, prefix, DB, followerDir, 0, { core });
    const remote = await remoteSegments();
    expect(downloaded.map((segment) => [segment.key, segment.firstSeq, segment.lastSeq])).toEqual(
      remote.map((segment) => [segment.key, segment.firstSeq, segment.lastSeq]),
    );
    for (const segment of downloaded) {
      expect(segment.path).toBe(join(followerDir, format.segmentFileName(segment.firstSeq)));
      expect((await readFile(segment.path)).equals(Buffer.from((await storage.get(segment.key))!))).toBe(true);
    }
    expect(await journalRecords(followerDir, core)).toEqual(await journalRecords(leading.dir, core));
    expect(await downloadNewSegments(storage, prefix, DB, followerDir, 60, { core })).toEqual([]);
    await expect(downloadNewSegments(storage, prefix, DB, followerDir, 10, { core })).rejects.toMatchObject({ code: 'invalid_argument' });
  });

  it('tail follows the leader while it keeps writing, in order, verified, then stops on abort', async () => {
    const leading = await leader(30);
    const replica = follower();
    const controller = new AbortController();
    const total = 30 + 6 * 25;
    const writing = (async () => {
      for (let round = 0; round < 6; round++) {
        await new Promise((resolve) => setTimeout(resolve, 15));
        await leading.write(25);
      }
    })();
    const seen: { sequence: number; chainHash: string; query: string; id: unknown }[] = [];
    for await (const record of untilAborted(replica.tail({ pollIntervalMs: 5, maxPollIntervalMs: 20, signal: controller.signal }))) {
      seen.push({ sequence: record.sequence, chainHash: record.chainHash.toString('hex'), query: record.entry.query, id: record.entry.params[0]![1] });
      if (record.sequence === total) controller.abort();
    }
    await writing;
    const expected = await journalRecords(leading.dir, core);
    expect(seen.map((record) => record.sequence)).toEqual(expected.map((record) => record.sequence));
    expect(seen.map((record) => record.chainHash)).toEqual(expected.map((record) => record.chainHash));
    expect(seen[41]!.query).toBe(entryFor(42).query);
    expect(await journalRecords(followerDir, core)).toEqual(expected);
    expect(replica.position.sequence).toBe(total);
    expect(JSON.parse(await readFile(join(followerDir, 'follower.json'), 'utf8'))).toEqual({
      sequence: total,
      chain_hash: leading.journal.chainHash.toString('hex'),
    });
  });

  it('catch-up reads stored objects into reused buffers and writes each segment as stored', async () => {
    await leader(300);
    const remote = await remoteSegments();
    expect(remote.length).toBeGreaterThan(10);
    const buffers: ArrayBufferLike[] = [];
    const observing: SegmentStorage = {
      description: storage.description,
      put: (key, bytes, options) => storage.put(key, bytes, options),
      get: (key, options) => {
        if (options?.into !== undefined) buffers.push(options.into.buffer);
        return storage.get(key, options);
      },
      list: (prefix, options) => storage.list(prefix, options),
      delete: (key) => storage.delete(key),
    };
    const result = await follower({ storage: observing }).catchUp();
    expect(result.segments.length).toBe(remote.length);
    // after the first objects, every get is offered a buffer, and a few buffers go round
    expect(buffers.length).toBeGreaterThan(remote.length - 5);
    expect(new Set(buffers).size).toBeLessThan(buffers.length / 2);
    for (const segment of result.segments) {
      expect((await readFile(segment.path)).equals(Buffer.from((await storage.get(segment.key))!)), segment.key).toBe(true);
    }
  });

  it('records a consumer keeps stay intact while later segments are decoded into reused buffers', async () => {
    const leading = await leader(300);
    const expected = await journalRecords(leading.dir, core);
    expect((await remoteSegments()).length).toBeGreaterThan(10);
    const controller = new AbortController();
    const kept: RawJournalRecord[] = [];
    for await (const record of untilAborted(follower().tail({ raw: true, pollIntervalMs: 5, signal: controller.signal }))) {
      kept.push(record);
      if (record.sequence === 300) controller.abort();
    }
    expect(kept.map((record) => ({ sequence: record.sequence, chainHash: record.chainHash.toString('hex'), payload: record.payload.toString('hex') }))).toEqual(
      expected,
    );
  });

  it('a follower restarted mid-stream resumes after the last entry its consumer took', async () => {
    const leading = await leader(100);
    const expected = await journalRecords(leading.dir, core);
    const first: number[] = [];
    for await (const record of follower().tail({ pollIntervalMs: 5 })) {
      first.push(record.sequence);
      if (record.sequence === 37) break; // 37 was yielded but the consumer never came back for more
    }
    expect(JSON.parse(await readFile(join(followerDir, 'follower.json'), 'utf8')).sequence).toBe(36);

    await leading.write(20);
    const restarted = follower();
    const controller = new AbortController();
    const second: { sequence: number; chainHash: string }[] = [];
    for await (const record of untilAborted(restarted.tail({ raw: true, pollIntervalMs: 5, signal: controller.signal }))) {
      second.push({ sequence: record.sequence, chainHash: record.chainHash.toString('hex') });
      if (record.sequence === 120) controller.abort();
    }
    expect(second[0]!.sequence).toBe(37);
    const all = await journalRecords(leading.dir, core);
    expect(all).toHaveLength(120);
    expect(second).toEqual(all.slice(36).map(({ sequence, chainHash }) => ({ sequence, chainHash })));
    expect(expected).toEqual(all.slice(0, 100));
    expect(await journalRecords(followerDir, core)).toEqual(all);
  });

  it('tail from a given sequence checks initialHash against the journal', async () => {
    const leading = await leader(50);
    const records = await journalRecords(leading.dir, core);
    const from = 23;
    const initialHash = Buffer.from(records[from - 2]!.chainHash, 'hex');
    const controller = new AbortController();
    const seen: number[] = [];
    for await (const record of untilAborted(follower().tail({ fromSeq: from, initialHash, pollIntervalMs: 5, signal: controller.signal }))) {
      seen.push(record.sequence);
      if (record.sequence === 50) controller.abort();
    }
    expect(seen).toEqual(Array.from({ length: 50 - from + 1 }, (_, i) => from + i));
    // The empty directory started at the given position: the segment holding it was cut there.
    const local = (await readdir(followerDir)).filter((name) => name.endsWith('.hadbj')).sort();
    expect(local[0]).toBe(format.segmentFileName(from));
    expect(await journalRecords(followerDir, core)).toEqual(records.slice(from - 1));

    const wrong = Buffer.alloc(32, 7);
    const iterate = async (dir: string, fromSeq: number) => {
      const replica = new Follower({ storage, prefix, db: DB, dir, core });
      for await (const record of replica.tail({ fromSeq, initialHash: wrong, pollIntervalMs: 5 })) void record;
    };
    // checked against the local directory ...
    await expect(iterate(followerDir, 30)).rejects.toMatchObject({ code: 'chain_broken' });
    // ... and against storage
    const freshDir = await mkdtemp(join(tmpdir(), 'graphstream-follower-'));
    cleanups.push(() => rm(freshDir, { recursive: true, force: true }));
    await expect(iterate(freshDir, 10)).rejects.toMatchObject({ code: 'chain_broken' });
  });

  it('catch-up fetches the next segments while one is verified and written (prefetch), one get at a time with prefetch: 1', async () => {
    const leading = await leader(120);
    const remote = await remoteSegments();
    expect(remote.length).toBeGreaterThan(4);
    const expected = await journalRecords(leading.dir, core);

    const ahead = new GetObservingStorage(storage, followerDir);
    expect((await follower({ storage: ahead }).catchUp()).sequence).toBe(120);
    expect(ahead.maxInFlight).toBe(3); // the default: three segments fetched ahead
    // the second and third segments were requested before the first one was written
    expect(ahead.gets.slice(0, 3)).toEqual(remote.slice(0, 3).map((segment) => ({ key: segment.key, localSegments: 0 })));
    expect(ahead.gets.map((get) => get.key)).toEqual(remote.map((segment) => segment.key));
    expect(await journalRecords(followerDir, core)).toEqual(expected);

    const oneDir = await freshDir();
    const one = new GetObservingStorage(storage, oneDir);
    expect((await follower({ storage: one, dir: oneDir, prefetch: 1 }).catchUp()).sequence).toBe(120);
    expect(one.maxInFlight).toBe(1);
    expect(one.gets.map((get) => get.key)).toEqual(remote.map((segment) => segment.key));
    expect(await journalRecords(oneDir, core)).toEqual(expected);

    expect(() => follower({ prefetch: -1 })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
  });

  it('of the segments fetched ahead, only the next one is decoded before its turn', async () => {
    await leader(120);
    const remote = await remoteSegments();
    expect(remote.length).toBeGreaterThan(4);
    const decodes: { firstSeq: number; localSegments: number }[] = [];
    const observing: Core = Object.create(core, {
      decodeSegmentAsync: {
        value: (bytes: Uint8Array, options?: DecodeOptions) => {
          const localSegments = readdirSync(followerDir).filter((name) => name.endsWith('.hadbj')).length;
          decodes.push({ firstSeq: format.decodeHeader(bytes).firstSeq, localSegments });
          return core.decodeSegmentAsync(bytes, options);
        },
      },
    });
    const ahead = new GetObservingStorage(storage, followerDir);
    const replica = new Follower({ storage: ahead, prefix, db: DB, dir: followerDir, core: observing });
    expect((await replica.catchUp()).sequence).toBe(120);
    expect(ahead.maxInFlight).toBe(3); // fetched three ahead ...
    expect(decodes.map((decode) => decode.firstSeq)).toEqual(remote.map((segment) => segment.firstSeq));
    // ... but segment k was decoded only once segment k - 2 was written: one decoded segment ahead of the one being written
    decodes.forEach((decode, k) => expect(decode.localSegments).toBeGreaterThanOrEqual(k - 1));
  });

  it('a failed get of a segment fetched ahead is reported at its turn, after the segments before it, and never skipped', async () => {
    const leading = await leader(120);
    const remote = await remoteSegments();
    const expected = await journalRecords(leading.dir, core);
    const victim = remote[2]!;

    const failing = new GetObservingStorage(storage, followerDir, new Set([victim.key]));
    const replica = follower({ storage: failing });
    const failure = await replica.catchUp().catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: 'storage', message: expect.stringContaining(victim.key) });
    expect(failing.gets.find((get) => get.key === victim.key)!.localSegments).toBe(0); // it was fetched ahead
    expect(await localSegmentNames(followerDir)).toEqual(remote.slice(0, 2).map((segment) => format.segmentFileName(segment.firstSeq)));
    await failing.settled();
    // the next catch-up fetches it again and continues from there
    const resumed = await replica.catchUp();
    expect(resumed).toMatchObject({ fromSequence: 0, sequence: 120 });
    expect(resumed.segments.map((segment) => segment.key)).toEqual(remote.slice(2).map((segment) => segment.key));
    expect(await journalRecords(followerDir, core)).toEqual(expected);

    // tail retries a transient failure at the segment's turn, and yields every entry in order
    const tailDir = await freshDir();
    const transient = new GetObservingStorage(storage, tailDir, new Set([remote[1]!.key, remote[3]!.key]), { retryable: true });
    const controller = new AbortController();
    const seen: number[] = [];
    for await (const record of untilAborted(follower({ storage: transient, dir: tailDir }).tail({ raw: true, pollIntervalMs: 5, signal: controller.signal }))) {
      seen.push(record.sequence);
      if (record.sequence === 120) controller.abort();
    }
    expect(seen).toEqual(expected.map((record) => record.sequence));
    expect(transient.gets.filter((get) => get.key === remote[3]!.key)).toHaveLength(2);
    expect(await journalRecords(tailDir, core)).toEqual(expected);
  });

  it('segments fetched ahead are dropped without unhandled rejections when the consumer stops or tail is aborted', async () => {
    await leader(120);
    const remote = await remoteSegments();
    const laterKeys = remote.slice(1).map((segment) => segment.key);

    // every get after the first one fails: had the failures of the segments fetched ahead no
    // handler, vitest would report them as unhandled rejections
    const stopping = new GetObservingStorage(storage, followerDir, new Set(laterKeys));
    for await (const record of follower({ storage: stopping }).tail({ raw: true, pollIntervalMs: 5 })) {
      if (record.sequence === 1) break;
    }
    await stopping.settled();
    expect(stopping.gets.map((get) => get.key)).toEqual(remote.slice(0, 4).map((segment) => segment.key));
    expect(await localSegmentNames(followerDir)).toEqual([format.segmentFileName(1)]);

    const abortDir = await freshDir();
    const aborting = new GetObservingStorage(storage, abortDir, new Set(laterKeys));
    const controller = new AbortController();
    for await (const record of untilAborted(follower({ storage: aborting, dir: abortDir }).tail({ raw: true, pollIntervalMs: 5, signal: controller.signal }))) {
      if (record.sequence === 1) controller.abort();
    }
    await aborting.settled();
    expect(aborting.gets.map((get) => get.key)).toEqual(remote.slice(0, 4).map((segment) => segment.key));
    expect(await localSegmentNames(abortDir)).toEqual([format.segmentFileName(1)]);
  });

  it('a corrupted segment in the bucket is reported, and nothing from it is kept', async () => {
    await leader(90);
    const remote = await remoteSegments();
    const victim = remote[2]!;
    const bytes = Buffer.from((await storage.get(victim.key))!);
    bytes[bytes.length - 40]! ^= 0xff; // inside the body
    await storage.put(victim.key, bytes);

    const metrics = new GraphstreamMetrics();
    const replica = follower({ metrics });
    const failure = await replica.catchUp().catch((err: unknown) => err);
    expect(failure).toMatchObject({ name: 'GraphstreamError', code: 'checksum_mismatch' });
    expect((failure as Error).message).toContain(victim.key);
    const local = (await readdir(followerDir)).filter((name) => name.endsWith('.hadbj'));
    expect(local).toEqual(remote.slice(0, 2).map((segment) => format.segmentFileName(segment.firstSeq)));
    expect(await metricValue(metrics, 'graphstream_download_errors_total')).toBe(1);
    // tail reports it too rather than skipping it
    const iterate = async () => {
      for await (const record of follower().tail({ pollIntervalMs: 5 })) void record;
    };
    await expect(iterate()).rejects.toMatchObject({ code: 'checksum_mismatch' });
  });

  it('tail waits out a gap while a segment is still being uploaded, and reports one that lasts', async () => {
    const leading = await leader(90);
    const remote = await remoteSegments();
    const held = remote[1]!;
    const heldBytes = (await storage.get(held.key))!;
    await storage.delete(held.key);
    const controller = new AbortController();
    const seen: number[] = [];
    for await (const record of untilAborted(follower().tail({ raw: true, pollIntervalMs: 5, maxPollIntervalMs: 10, signal: controller.signal }))) {
      seen.push(record.sequence);
      if (record.sequence === held.firstSeq - 1) setTimeout(() => void storage.put(held.key, heldBytes), 50);
      if (record.sequence === 90) controller.abort();
    }
    expect(seen).toEqual(Array.from({ length: 90 }, (_, i) => i + 1));
    expect(await journalRecords(followerDir, core)).toEqual(await journalRecords(leading.dir, core));

    // A gap that outlasts gapTimeoutMs ends the iteration with the error, after the entries before it.
    await storage.delete(remote[3]!.key);
    const freshDir = await mkdtemp(join(tmpdir(), 'graphstream-follower-'));
    cleanups.push(() => rm(freshDir, { recursive: true, force: true }));
    const beforeGap: number[] = [];
    const iterate = async () => {
      const replica = new Follower({ storage, prefix, db: DB, dir: freshDir, core });
      for await (const record of replica.tail({ raw: true, pollIntervalMs: 5, maxPollIntervalMs: 10, gapTimeoutMs: 100 })) {
        beforeGap.push(record.sequence);
      }
    };
    await expect(iterate()).rejects.toMatchObject({ code: 'gap' });
    expect(beforeGap.at(-1)).toBe(remote[3]!.firstSeq - 1);
  });

  it('a missing segment is a gap naming the keys and sequences', async () => {
    await leader(90);
    const remote = await remoteSegments();
    await storage.delete(remote[1]!.key);
    const failure = await follower().catchUp().catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: 'gap' });
    const message = (failure as Error).message;
    expect(message).toContain(`no segment holds sequence ${remote[1]!.firstSeq}`);
    expect(message).toContain(remote[2]!.key);
    const local = (await readdir(followerDir)).filter((name) => name.endsWith('.hadbj'));
    expect(local).toEqual([format.segmentFileName(1)]);
  });

  it('a segment of another journal (foreign chain) is chain_broken and never replayed', async () => {
    await leader(90);
    const remote = await remoteSegments();
    const victim = remote[2]!;
    // The same sequences, but a different history: another journal's entries.
    const payloads = Array.from({ length: victim.lastSeq - victim.firstSeq + 1 }, (_, i) => encodeJournalEntry({ query: `FOREIGN ${i}` }));
    const { bytes } = core.encodeEntries(victim.firstSeq, Buffer.alloc(32, 1), payloads);
    await storage.put(victim.key, await sealRawEntries(core, victim.firstSeq, Date.now(), [bytes], 3));

    const metrics = new GraphstreamMetrics();
    const failure = await follower({ metrics }).catchUp().catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: 'chain_broken' });
    expect((failure as Error).message).toContain(victim.key);
    expect(await metricValue(metrics, 'graphstream_chain_hash_mismatches_total')).toBe(1);
    const local = (await readdir(followerDir)).filter((name) => name.endsWith('.hadbj'));
    expect(local).toHaveLength(2);
  });

  it('two segments that overlap are an overlap error', async () => {
    await leader(90);
    const remote = await remoteSegments();
    const first = remote[0]!;
    const decoded = format.decodeSegment((await storage.get(first.key))!);
    // A valid segment of the same chain that starts inside the first one.
    const inside = first.firstSeq + 2;
    const tail = decoded.entries.slice(2).map((entry) => format.encodeEntry(entry));
    await storage.put(keyOf(inside), await sealRawEntries(core, inside, Date.now(), tail, 0));
    const failure = await follower().catchUp().catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: 'overlap' });
    expect((failure as Error).message).toContain(keyOf(inside));
    expect((failure as Error).message).toContain(`${first.firstSeq}..${first.lastSeq}`);
  });

  it('a segment under a key that names another sequence, or an unsealed one, is invalid_segment', async () => {
    await leader(60);
    const remote = await remoteSegments();
    const wrongPlace = Buffer.from((await storage.get(remote[0]!.key))!);
    await storage.put(remote[1]!.key, wrongPlace);
    await expect(follower().catchUp()).rejects.toMatchObject({ code: 'invalid_segment', message: expect.stringContaining('header first_seq 1') });

    const unsealedDir = await mkdtemp(join(tmpdir(), 'graphstream-follower-'));
    cleanups.push(() => rm(unsealedDir, { recursive: true, force: true }));
    const memory = new MemoryStorage();
    const { bytes } = core.encodeEntries(1, Buffer.alloc(32), [encodeJournalEntry({ query: 'RETURN 1' })]);
    await memory.put(segmentKey('', DB, 0, 1), Buffer.concat([format.encodeHeader({ firstSeq: 1, createdMs: 1 }), bytes]));
    await expect(downloadNewSegments(memory, '', DB, unsealedDir, 0, { core })).rejects.toMatchObject({
      code: 'invalid_segment',
      message: expect.stringContaining('not sealed'),
    });
  });
});

describe.each(s3BackendsAndCores)('Follower and compaction: $s3.name ($core.kind core)', ({ s3, core }) => {
  it("a follower rebuilds the leader's journal, before and after compaction", async () => {
    const storage = await s3.open(await s3.createBucket('follower-os'));
    const dirs: string[] = [];
    const tempDir = async () => {
      dirs.push(await mkdtemp(join(tmpdir(), 'graphstream-follower-')));
      return dirs.at(-1)!;
    };
    const leading = await openLeader({ storage, prefix: 'wal/', db: DB, core });
    try {
      await leading.write(80);
      const midway = new Follower({ storage, prefix: 'wal/', db: DB, dir: await tempDir(), core });
      expect((await midway.catchUp()).sequence).toBe(80);
      await leading.write(80);
      const compacted = await compactOnce({ storage, prefix: 'wal/', db: DB, core, config: { threshold: 2, retention: { minAgeMs: 0, keepLast: 1 } } });
      expect(compacted.deleted.length).toBeGreaterThan(0);
      const expected = await journalRecords(leading.dir, core);
      expect((await midway.catchUp()).sequence).toBe(160);
      expect(await journalRecords(midway.dir, core)).toEqual(expected);
      const fresh = new Follower({ storage, prefix: 'wal/', db: DB, dir: await tempDir(), core });
      expect((await fresh.catchUp()).sequence).toBe(160);
      expect(await journalRecords(fresh.dir, core)).toEqual(expected);
    } finally {
      await leading.close();
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.each(cores)('Follower lag ($kind core)', (core) => {
  it('reports sequences and seconds behind the newest remote segment, as a getter and as gauges', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-follower-'));
    try {
      const storage = new MemoryStorage();
      const createdMs = Date.now() - 120_000;
      let prevHash: Buffer = Buffer.alloc(32);
      for (const firstSeq of [1, 11, 21]) {
        const payloads = Array.from({ length: 10 }, (_, i) => encodeJournalEntry({ query: `RETURN ${firstSeq + i}` }));
        const batch = core.encodeEntries(firstSeq, prevHash, payloads);
        prevHash = batch.chainHashes.subarray(batch.chainHashes.length - 32);
        await storage.put(segmentKey('wal/', DB, 0, firstSeq), await sealRawEntries(core, firstSeq, createdMs, [batch.bytes], 3));
      }
      const metrics = new GraphstreamMetrics({ db: DB });
      const replica = new Follower({ storage, prefix: 'wal/', db: DB, dir, core, metrics });
      const controller = new AbortController();
      let lagAtFirst = { sequences: -1, seconds: -1 };
      for await (const record of untilAborted(replica.tail({ pollIntervalMs: 5, signal: controller.signal }))) {
        if (record.sequence === 2) {
          lagAtFirst = replica.lag;
          expect(await metricValue(metrics, 'graphstream_replication_lag_sequences')).toBe(20);
          expect(await metricValue(metrics, 'graphstream_replication_lag_seconds')).toBeGreaterThanOrEqual(120);
        }
        if (record.sequence === 30) controller.abort();
      }
      // After taking sequence 1: the newest listed segment starts at 21, so at least 20 behind.
      expect(lagAtFirst.sequences).toBe(20);
      expect(lagAtFirst.seconds).toBeGreaterThanOrEqual(120);
      expect(replica.lag).toEqual({ sequences: 0, seconds: 0 });
      expect(await metricValue(metrics, 'graphstream_replication_lag_sequences')).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
