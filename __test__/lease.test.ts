/**
 * The lease (FORMAT.md, "Ownership and generations"): its records byte for byte against the golden
 * fixtures, and the Lease against every backend that can hold one (both S3 backends on moto and
 * versitygw, LocalStorage, MemoryStorage): one holder at a time, handover without waiting, takeover
 * only after expiry, fencing, and refusal of a storage that ignores conditional writes.
 */
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphstreamError } from '../ts/errors.js';
import { Lease } from '../ts/replication/lease.js';
import { Journal } from '../ts/journal/journal.js';
import { GraphstreamMetrics } from '../ts/metrics.js';
import { generationPrefix, generationRecordKey, leaseKey, listGenerationRecordKeys, segmentKey, sequenceOfKey } from '../ts/replication/layout.js';
import { restore } from '../ts/replication/restore.js';
import { Uploader } from '../ts/replication/uploader.js';
import { parseGenerationRecord, parseLeaseRecord, serializeGenerationRecord, serializeLeaseRecord } from '../ts/replication/ownership.js';
import { LocalStorage, MemoryStorage, openStorage } from '../ts/storage/index.js';
import type { PutOptions, PutResult, SegmentStorage } from '../ts/storage/types.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { entryFor, journalRecords, openLeader } from './helpers/replication.js';
import { s3Backends, s3BackendsAndCores } from './helpers/s3.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'ownership');
const TTL_MS = 3000;
const dirs: string[] = [];
const opened: SegmentStorage[] = [];

afterAll(async () => {
  await Promise.all(opened.map((storage) => storage.close?.()));
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'graphstream-lease-'));
  dirs.push(dir);
  return dir;
}

async function rejection(promise: Promise<unknown>): Promise<GraphstreamError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphstreamError);
  return err as GraphstreamError;
}

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

describe('ownership records (golden fixtures)', () => {
  it('lease.json parses and serializes back to the same bytes', async () => {
    const bytes = await readFile(join(fixtures, 'lease.json'));
    const lease = parseLeaseRecord(bytes, 'lease.json');
    expect(lease).toEqual({ holder: 'graphd-a/4242/7f3c9e1d', epoch: 3, generation: 2, ttlMs: 10000, renewals: 17, released: false, writtenMs: 1764672000000 });
    expect(Buffer.from(serializeLeaseRecord(lease))).toEqual(bytes);
  });

  it('generation-0002.json parses and serializes back to the same bytes', async () => {
    const bytes = await readFile(join(fixtures, 'generation-0002.json'));
    const record = parseGenerationRecord(bytes, 'generation-0002.json');
    expect(record).toMatchObject({ generation: 2, epoch: 3, startSeq: 1501, holder: 'graphd-a/4242/7f3c9e1d' });
    expect(Buffer.from(serializeGenerationRecord(record))).toEqual(bytes);
  });

  it('readers accept members in any order and ignore unknown ones', () => {
    const shuffled = '{"released":true,"written_ms":5,"extra":[1],"renewals":0,"ttl_ms":3000,"generation":0,"epoch":1,"holder":"h","version":1}';
    expect(parseLeaseRecord(Buffer.from(shuffled), 'x')).toMatchObject({ released: true, holder: 'h', ttlMs: 3000 });
  });

  it.each([
    ['not JSON', '{"version":1,'],
    ['not an object', '[1]'],
    ['a missing member', '{"version":1,"holder":"h","epoch":1,"generation":0,"ttl_ms":3000,"renewals":0,"written_ms":1}'],
    ['a mistyped member', '{"version":1,"holder":"h","epoch":"1","generation":0,"ttl_ms":3000,"renewals":0,"released":false,"written_ms":1}'],
    ['epoch 0', '{"version":1,"holder":"h","epoch":0,"generation":0,"ttl_ms":3000,"renewals":0,"released":false,"written_ms":1}'],
    ['a compacted generation', '{"version":1,"holder":"h","epoch":1,"generation":32768,"ttl_ms":3000,"renewals":0,"released":false,"written_ms":1}'],
    ['an empty holder', '{"version":1,"holder":"","epoch":1,"generation":0,"ttl_ms":3000,"renewals":0,"released":false,"written_ms":1}'],
    ['a TTL under 3000 ms', '{"version":1,"holder":"h","epoch":1,"generation":0,"ttl_ms":1000,"renewals":0,"released":false,"written_ms":1}'],
  ])('a lease with %s is corrupt', (_, json) => {
    const err = (() => {
      try {
        parseLeaseRecord(Buffer.from(json), 'wal/db/lease.json');
      } catch (e) {
        return e as GraphstreamError;
      }
      throw new Error('parsed');
    })();
    expect(err.code).toBe('corrupt');
    expect(err.message).toContain('wal/db/lease.json');
  });

  it('a generation record starting at 1 must continue the zero hash; another layout version is unsupported_version', () => {
    const record = { generation: 1, epoch: 1, holder: 'h', startSeq: 1, prevHash: Buffer.alloc(32, 0xab), writtenMs: 0 };
    expect(() => parseGenerationRecord(serializeGenerationRecord(record), 'g')).toThrow(expect.objectContaining({ code: 'corrupt' }));
    expect(() => parseGenerationRecord(Buffer.from('{"version":2}'), 'g')).toThrow(expect.objectContaining({ code: 'unsupported_version' }));
  });

  it('keys: lease.json and generations/{g:04x}.json beside the generation folders, listed in generation order', async () => {
    expect(leaseKey('wal/', 'db')).toBe('wal/db/lease.json');
    expect(generationRecordKey('wal/', 'db', 0x1a)).toBe('wal/db/generations/001a.json');
    const storage = new MemoryStorage();
    for (const g of [0x10, 2, 1]) await storage.put(generationRecordKey('wal/', 'db', g), Buffer.from('x'));
    await storage.put('wal/db/generations/notes.txt', Buffer.from('x'));
    expect((await listGenerationRecordKeys(storage, 'wal/', 'db')).map((r) => r.generation)).toEqual([1, 2, 0x10]);
  });
});

interface LeaseBackend {
  name: string;
  /** a fresh, empty location; each call of the result is another client of it */
  fresh(): Promise<() => Promise<SegmentStorage>>;
}

const track = (storage: SegmentStorage) => {
  opened.push(storage);
  return storage;
};

const leaseBackends: LeaseBackend[] = [
  ...s3Backends.map((backend) => ({
    name: backend.name,
    async fresh() {
      const bucket = await backend.createBucket('lease');
      return async () => track(await backend.open(bucket));
    },
  })),
  {
    name: 'LocalStorage',
    async fresh() {
      const dir = await scratchDir();
      return async () => new LocalStorage(dir);
    },
  },
  {
    name: 'MemoryStorage',
    async fresh() {
      const storage = new MemoryStorage();
      return async () => storage;
    },
  },
];

const open = (storage: SegmentStorage, holder: string) => new Lease({ storage, prefix: 'wal/', db: 'db', holder, ttlMs: TTL_MS });

describe.each(leaseBackends)('Lease: $name', (backend) => {
  it('one holder at a time; a release hands over at once to the next epoch and generation', async () => {
    const client = await backend.fresh();
    const a = open(await client(), 'a');
    const b = open(await client(), 'b');
    expect(await a.acquire()).toMatchObject({ holder: 'a', epoch: 1, generation: 0, released: false });
    expect(a.state).toBe('held');
    const locked = await rejection(b.acquire({ wait: false }));
    expect(locked.code).toBe('locked');
    expect(locked.message).toContain('held by a (epoch 1)');
    await a.release();
    expect(a.state).toBe('released');
    expect(parseLeaseRecord((await (await client()).get(a.key))!, 'x')).toMatchObject({ holder: 'a', released: true });
    expect(await b.acquire({ wait: false })).toMatchObject({ holder: 'b', epoch: 2, generation: 1 });
    await b.writeGenerationRecord({ startSeq: 101, prevHash: Buffer.alloc(32, 0xcd) });
    const stored = await (await client()).get(generationRecordKey('wal/', 'db', 1));
    expect(parseGenerationRecord(stored!, 'x')).toMatchObject({ generation: 1, epoch: 2, holder: 'b', startSeq: 101, prevHash: Buffer.alloc(32, 0xcd) });
    expect(a.check.bind(a)).toThrow(expect.objectContaining({ code: 'closed' }));
    b.stop();
  });

  it('of contenders acquiring an empty db at once, exactly one holds the lease', async () => {
    const client = await backend.fresh();
    const leases = await Promise.all(['a', 'b', 'c', 'd'].map(async (holder) => open(await client(), holder)));
    const results = await Promise.allSettled(leases.map((lease) => lease.acquire({ wait: false })));
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const result of results) if (result.status === 'rejected') expect((result.reason as GraphstreamError).code).toBe('locked');
    const holder = leases.find((lease) => lease.state === 'held')!;
    expect(parseLeaseRecord((await (await client()).get(holder.key))!, 'x').holder).toBe(holder.holder);
    holder.stop();
  });

  it('renews while held; a lease object changed behind its back fences it at the next renewal', async () => {
    const client = await backend.fresh();
    const a = open(await client(), 'a');
    await a.acquire();
    const renewed = new Promise((resolve) => a.once('renewed', resolve));
    await renewed;
    expect(a.renewals).toBe(1);
    expect(a.msToExpiry()).toBeGreaterThan(0);
    const fenced = new Promise<GraphstreamError>((resolve) => a.once('fenced', resolve));
    const intruder = { holder: 'intruder', epoch: 7, generation: 3, ttlMs: TTL_MS, renewals: 0, released: false, writtenMs: 0 };
    await (await client()).put(a.key, serializeLeaseRecord(intruder));
    const err = await fenced;
    expect(err.code).toBe('fenced');
    expect(a.state).toBe('fenced');
    expect(a.signal.aborted).toBe(true);
    expect(a.check.bind(a)).toThrow(expect.objectContaining({ code: 'fenced' }));
    // a fenced holder writes nothing more: the intruder's object stays
    await new Promise((resolve) => setTimeout(resolve, TTL_MS / 3 + 100));
    expect(parseLeaseRecord((await (await client()).get(a.key))!, 'x').holder).toBe('intruder');
  });
});

describe.each([leaseBackends[0]!, leaseBackends.at(-2)!])('Lease expiry: $name', (backend) => {
  it('a lease nobody renews is taken over only after ttl + margin, by the next epoch', { timeout: 20_000 }, async () => {
    const client = await backend.fresh();
    const a = open(await client(), 'a');
    await a.acquire();
    const deadlineOfA = performance.now() + a.msToExpiry();
    a.stop(); // as if it crashed: no renewal, no release
    const b = open(await client(), 'b');
    const started = performance.now();
    expect(await b.acquire()).toMatchObject({ holder: 'b', epoch: 2, generation: 1 });
    // safety, not speed: b took over only after a's own deadline, and after watching for ttl + margin
    expect(performance.now()).toBeGreaterThan(deadlineOfA);
    expect(performance.now() - started).toBeGreaterThanOrEqual(TTL_MS + b.marginMs);
    b.stop();
  });
});

describe('Lease: generations and refusals', () => {
  it('the first lease of a db that has segments takes the generation after the highest one', async () => {
    const storage = new MemoryStorage();
    await storage.put(segmentKey('wal/', 'db', 0, 1), Buffer.from('x'));
    await storage.put(segmentKey('wal/', 'db', 2, 50), Buffer.from('x'));
    await storage.put(segmentKey('wal/', 'db', 0x8000, 1), Buffer.from('x')); // compaction's: not a writer's generation
    const lease = open(storage, 'a');
    expect((await lease.acquire()).generation).toBe(3);
    lease.stop();
  });

  it('a generation record another writer wrote first fences the holder', async () => {
    const storage = new MemoryStorage();
    const lease = open(storage, 'a');
    await lease.acquire();
    await storage.put(generationRecordKey('wal/', 'db', 0), serializeGenerationRecord({ generation: 0, epoch: 9, holder: 'z', startSeq: 1, prevHash: Buffer.alloc(32), writtenMs: 0 }));
    expect((await rejection(lease.writeGenerationRecord({ startSeq: 1, prevHash: Buffer.alloc(32) }))).code).toBe('fenced');
    expect(lease.state).toBe('fenced');
  });

  it('the one writer of generation records checks the start, and takes its own record back after a put whose answer was lost', async () => {
    const memory = new MemoryStorage();
    let dropNext = false;
    const dropping: SegmentStorage = {
      description: memory.description,
      identity: memory.identity,
      put: async (key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> => {
        const result = await memory.put(key, bytes, options);
        if (dropNext && key.includes('/generations/')) {
          dropNext = false; // it landed; the answer never arrives
          throw new GraphstreamError('storage', `put ${key}: connection reset`, { details: { retryable: true } });
        }
        return result;
      },
      get: (key, options) => memory.get(key, options),
      getWithETag: (key) => memory.getWithETag(key),
      list: (prefix, options) => memory.list(prefix, options),
      delete: (key) => memory.delete(key),
    };
    const lease = open(dropping, 'a');
    await lease.acquire();
    for (const [start, why] of [
      [{ startSeq: 0, prevHash: Buffer.alloc(32) }, 'positive integer'],
      [{ startSeq: 1, prevHash: Buffer.alloc(32, 1) }, 'zero chain hash'],
      [{ startSeq: 5, prevHash: Buffer.alloc(31) }, '32-byte'],
    ] as const) {
      const err = await rejection(lease.writeGenerationRecord(start));
      expect(err.code).toBe('invalid_argument');
      expect(err.message).toContain(why);
    }
    expect(await memory.list('wal/db/generations/')).toEqual([]);
    dropNext = true;
    const start = { startSeq: 41, prevHash: Buffer.alloc(32, 7) };
    expect((await rejection(lease.writeGenerationRecord(start))).code).toBe('storage');
    // the retry finds the record this holder wrote: it is taken, not a conflict with another writer
    expect(await lease.writeGenerationRecord(start)).toMatchObject({ generation: 0, epoch: 1, holder: 'a', startSeq: 41 });
    expect(await lease.writeGenerationRecord(async () => { throw new Error('not asked: the record exists'); })).toMatchObject({ startSeq: 41 });
    expect(lease.state).toBe('held');
    lease.stop();
  });

  it('a leased uploader over a journal that begins past sequence 1 refuses an empty db with gap, and records nothing', async () => {
    const storage = new MemoryStorage();
    const dir = await scratchDir();
    let journal = await Journal.open(dir, { maxSegmentBytes: 1024, durability: 'none' });
    for (let k = 1; k <= 60; k++) await journal.append(entryFor(k));
    await journal.sealForUpload();
    await journal.close();
    // as a journal restored from a compacted or snapshotted copy: its first segments are not there
    const files = (await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort();
    expect(files.length).toBeGreaterThan(2);
    for (const name of files.slice(0, 2)) await rm(join(dir, name));
    const first = Number.parseInt(files[2]!.slice('journal-'.length, -'.hadbj'.length), 10);
    journal = await Journal.open(dir, { maxSegmentBytes: 1024, durability: 'none' });
    const uploader = new Uploader({ journal, storage, db: 'db', prefix: 'wal/', sealIntervalMs: 3_600_000, lease: { holder: 'a', ttlMs: TTL_MS } });
    try {
      const err = await rejection(uploader.sync());
      expect(err.code).toBe('gap');
      expect(err.message).toContain(`the journal begins at sequence ${first}`);
      expect(err.message).toContain('must start at sequence 1');
      expect(await storage.list('wal/db/generations/')).toEqual([]);
      expect(await storage.list('wal/db/0000/')).toEqual([]);
    } finally {
      await uploader.stop();
      await journal.close();
    }
  });

  it('a storage that ignores If-Match is refused before anything is written under the lease', async () => {
    const storage = new MemoryStorage();
    const ignoring: SegmentStorage = {
      description: 'memory://ignores-if-match',
      put: (key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> => {
        const { ifMatch: _, ...rest } = options ?? {};
        return storage.put(key, bytes, rest);
      },
      get: (key) => storage.get(key),
      getWithETag: (key) => storage.getWithETag(key),
      list: (prefix, options) => storage.list(prefix, options),
      delete: (key) => storage.delete(key),
    };
    const lease = open(ignoring, 'a');
    const err = await rejection(lease.acquire());
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toContain('does not honor If-Match');
    expect(lease.state).toBe('idle');
    expect(lease.check.bind(lease)).toThrow();
  });

  it('object_store local files cannot swap conditionally: a lease there is refused', async () => {
    const storage = await openStorage(pathToFileURL(await scratchDir()).href, { backend: 'object_store' });
    const err = await rejection(open(storage, 'a').acquire());
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toContain('cannot hold a lease');
  });

  it('a storage unreachable for its renewals fences the holder by its deadline', { timeout: 20_000 }, async () => {
    const backend = s3Backends[0]!;
    const bucket = await backend.createBucket('lease');
    const proxy = await startFaultProxy({ target: backend.endpoint(), faultRate: 0, weights: { error503: 1, error500: 0, slowDown: 0, dropBefore: 0, dropAfter: 0, latency: 0 } });
    try {
      const storage = track(await backend.open(bucket, { endpoint: proxy.endpoint, maxAttempts: 1 }));
      const lease = open(storage, 'a');
      await lease.acquire();
      proxy.setFaultRate(1);
      const fenced = new Promise<GraphstreamError>((resolve) => lease.once('fenced', resolve));
      const err = await fenced;
      expect(err.message).toContain('deadline');
      expect(lease.msToExpiry()).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});

describe.each(s3BackendsAndCores.filter(({ s3 }) => s3.server === 'moto'))('Uploaders under a lease: $s3.name ($core.kind core)', ({ s3, core }) => {
  const ROUNDS = 3;
  const ENTRIES = 120;

  /** Two leaders of one db started together: exactly one uploads, the other's sync() is fenced, and storage reads back as the winner's chain. */
  async function race(sealing: 'timed' | 'size'): Promise<void> {
    const bucket = await s3.createBucket('leaders');
    const storages = [track(await s3.open(bucket)), track(await s3.open(bucket))];
    const leaders = await Promise.all(
      storages.map((storage, i) =>
        openLeader({ storage, prefix: 'wal/', db: 'db', core, maxSegmentBytes: sealing === 'size' ? 1024 : 1 << 20, lease: { holder: `leader-${i}`, ttlMs: TTL_MS }, ...(sealing === 'timed' ? { sealIntervalMs: 15 } : {}) }),
      ),
    );
    try {
      const outcomes = await Promise.allSettled(
        leaders.map(async (leader) => {
          if (sealing === 'timed') await leader.uploader.start();
          await leader.write(ENTRIES);
        }),
      );
      const winners = outcomes.flatMap((outcome, i) => (outcome.status === 'fulfilled' ? [i] : []));
      expect(winners).toHaveLength(1);
      const loser = leaders[1 - winners[0]!]!;
      const lost = outcomes[1 - winners[0]!] as PromiseRejectedResult;
      expect((lost.reason as GraphstreamError).code).toBe('fenced');
      expect((await rejection(loser.uploader.sync())).code).toBe('fenced');
      expect(loser.uploader.stats().succeeded).toBe(0);
      const winner = leaders[winners[0]!]!;
      const restored = await scratchDir();
      expect((await restore(storages[0]!, { prefix: 'wal/', db: 'db', dir: restored, core })).sequence).toBe(ENTRIES);
      expect(await journalRecords(restored, core)).toEqual(await journalRecords(winner.dir, core));
    } finally {
      for (const leader of leaders) await leader.close();
    }
  }

  /** A leader holding the lease on a fresh bucket (through `endpoint` when given), its uploads reported nowhere but its promises. */
  async function leasedLeader(label: string, endpoint?: string) {
    const bucket = await s3.createBucket(label);
    const storage = track(await s3.open(bucket, endpoint === undefined ? {} : { endpoint, maxAttempts: 1 }));
    const leader = await openLeader({ storage, prefix: 'wal/', db: 'db', core, lease: { holder: 'a', ttlMs: TTL_MS } });
    leader.uploader.on('error', () => undefined);
    return { storage, leader };
  }

  it('two leaders started together, timed sealing: exactly one uploads, the other is fenced, storage is one chain', { timeout: 60_000 }, async () => {
    for (let round = 0; round < ROUNDS; round++) await race('timed');
  });

  it('two leaders started together, size-based sealing: exactly one uploads, the other is fenced, storage is one chain', { timeout: 60_000 }, async () => {
    for (let round = 0; round < ROUNDS; round++) await race('size');
  });

  it('handover: A releases, B takes the next generation at once, continuing A\'s tip; followers read one chain', { timeout: 30_000 }, async () => {
    const bucket = await s3.createBucket('handover');
    const storage = track(await s3.open(bucket));
    const a = await openLeader({ storage, prefix: 'wal/', db: 'db', core, lease: { holder: 'a', ttlMs: TTL_MS } });
    await a.write(60);
    await a.uploader.release();
    expect(a.uploader.lease!.state).toBe('released');
    // B continues A's journal: a copy of its directory (a standby that replicated it)
    const bDir = await scratchDir();
    await cp(a.dir, bDir, { recursive: true });
    const journal = await Journal.open(bDir, { core, maxSegmentBytes: 2048, durability: 'none' });
    const metrics = new GraphstreamMetrics({ db: 'db' });
    const b = new Uploader({ journal, storage, core, metrics, prefix: 'wal/', db: 'db', sealIntervalMs: 3_600_000, lease: { holder: 'b', ttlMs: TTL_MS } });
    await journal.appendBatch(Array.from({ length: 30 }, (_, k) => entryFor(61 + k)));
    // B does not wait (the default): had A not released the lease, this would be fenced
    await b.sync();
    expect(b.lease).toMatchObject({ epoch: 2, generation: 1, state: 'held' });
    const exposition = await metrics.toPrometheus();
    expect(exposition).toContain('graphstream_lease_holder_info{db="db",holder="b"} 1');
    expect(exposition).toContain('graphstream_lease_epoch{db="db"} 2');
    const record = parseGenerationRecord((await storage.get(generationRecordKey('wal/', 'db', 1)))!, 'record');
    expect(record).toMatchObject({ generation: 1, epoch: 2, holder: 'b', startSeq: 61 });
    expect(record.prevHash).toEqual(Buffer.from((await journalRecords(a.dir, core)).at(-1)!.chainHash, 'hex'));
    // nothing below start_seq went into B's generation
    expect((await storage.list(generationPrefix('wal/', 'db', 1))).map((key) => sequenceOfKey(generationPrefix('wal/', 'db', 1), key)).every((seq) => seq! >= 61)).toBe(true);
    const restored = await scratchDir();
    expect((await restore(storage, { prefix: 'wal/', db: 'db', dir: restored, core })).sequence).toBe(90);
    expect(await journalRecords(restored, core)).toEqual(await journalRecords(bDir, core));
    await b.stop();
    await journal.close();
    await a.close();
  });

  it('a lease object changed behind its back fences the uploader: sync() rejects fenced, nothing is put after', { timeout: 30_000 }, async () => {
    const { storage, leader } = await leasedLeader('fence');
    try {
      await leader.write(30);
      const fenced = new Promise<GraphstreamError>((resolve) => leader.uploader.once('fenced', resolve));
      const intruder = { holder: 'intruder', epoch: 9, generation: 5, ttlMs: TTL_MS, renewals: 0, released: false, writtenMs: 0 };
      await storage.put(leaseKey('wal/', 'db'), serializeLeaseRecord(intruder));
      expect((await fenced).code).toBe('fenced');
      const keys = await storage.list('wal/db/0000/');
      await leader.journal.appendBatch(Array.from({ length: 30 }, (_, k) => entryFor(31 + k)));
      expect((await rejection(leader.uploader.sync())).code).toBe('fenced');
      expect(await storage.list('wal/db/0000/')).toEqual(keys);
    } finally {
      await leader.close();
    }
  });

  it('a conflict on one of its segment keys fences the uploader: every later sync() is fenced too', { timeout: 30_000 }, async () => {
    const { storage, leader } = await leasedLeader('conflict');
    try {
      await leader.write(20);
      await storage.put(segmentKey('wal/', 'db', 0, 21), Buffer.from('another writer'), { ifNoneMatch: '*' });
      await leader.journal.appendBatch(Array.from({ length: 10 }, (_, k) => entryFor(21 + k)));
      const err = await rejection(leader.uploader.sync());
      expect(err.code).toBe('fenced');
      expect(err.message).toContain(segmentKey('wal/', 'db', 0, 21));
      expect(leader.uploader.lease!.state).toBe('fenced');
      expect((await rejection(leader.uploader.sync())).code).toBe('fenced');
    } finally {
      await leader.close();
    }
  });

  it('storage unreachable for the renewals fences the uploader by its deadline; once reachable again it puts nothing', { timeout: 30_000 }, async () => {
    const proxy = await startFaultProxy({ target: s3.endpoint(), faultRate: 0, weights: { error503: 1, error500: 0, slowDown: 0, dropBefore: 0, dropAfter: 0, latency: 0 } });
    const { storage, leader } = await leasedLeader('unreachable', proxy.endpoint);
    try {
      await leader.write(30);
      const fenced = new Promise<GraphstreamError>((resolve) => leader.uploader.once('fenced', resolve));
      proxy.setFaultRate(1);
      expect((await fenced).message).toContain('deadline');
      proxy.setFaultRate(0);
      const keys = await storage.list('wal/db/');
      const forwarded = proxy.stats.forwarded;
      await leader.journal.appendBatch(Array.from({ length: 30 }, (_, k) => entryFor(31 + k)));
      expect((await rejection(leader.uploader.sync())).code).toBe('fenced');
      await new Promise((resolve) => setTimeout(resolve, TTL_MS / 3 + 100)); // a renewal's time: none comes
      expect(proxy.stats.forwarded).toBe(forwarded); // no request at all since
      expect(await storage.list('wal/db/')).toEqual(keys);
    } finally {
      await leader.close();
      await proxy.close();
    }
  });
});

/** Polls `done` until it holds (or fails after 20 s, well before the client's own request timeout). */
async function until(done: () => boolean, what: string): Promise<void> {
  for (const started = performance.now(); !done(); await new Promise((resolve) => setTimeout(resolve, 20))) {
    if (performance.now() - started > 20_000) throw new Error(`still waiting for ${what}`);
  }
}

describe('ObjectStoreStorage: puts in flight are cancelled', () => {
  const backend = s3Backends.find((candidate) => candidate.server === 'moto' && candidate.name.startsWith('ObjectStoreStorage'))!;

  /** A store whose segment puts hang on the server, and one that reaches the server directly. */
  async function hanging(label: string) {
    const bucket = await backend.createBucket(label);
    const proxy = await startFaultProxy({ target: backend.endpoint(), faultRate: 0, hold: (method, url) => method === 'PUT' && url.endsWith('.hadbj') });
    return { proxy, storage: track(await backend.open(bucket, { endpoint: proxy.endpoint, maxAttempts: 1 })), direct: track(await backend.open(bucket)) };
  }

  it('an aborted signal drops the native request once sent: its connection closes and the put rejects with the reason', { timeout: 30_000 }, async () => {
    const { proxy, storage, direct } = await hanging('cancel');
    try {
      const aborting = new AbortController();
      const put = storage.put('wal/db/0000/0000000000000001.hadbj', Buffer.from('bytes'), { ifNoneMatch: '*', signal: aborting.signal });
      put.catch(() => undefined);
      await until(() => proxy.stats.held === 1, 'the put to reach the server');
      const reason = new GraphstreamError('fenced', 'test: the lease was lost');
      aborting.abort(reason);
      await expect(put).rejects.toBe(reason);
      await until(() => proxy.stats.heldClosed === 1, 'the native request to be dropped');
      expect(await direct.list('wal/db/')).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('a fenced uploader aborts its native put in flight: sync() rejects fenced, the request is dropped, and nothing lands', { timeout: 30_000 }, async () => {
    const { proxy, storage, direct } = await hanging('cancel-uploader');
    const journal = await Journal.open(await scratchDir(), { maxSegmentBytes: 2048, durability: 'none' });
    const lease = open(storage, 'a');
    const uploader = new Uploader({ journal, storage, db: 'db', prefix: 'wal/', sealIntervalMs: 3_600_000, lease });
    try {
      await journal.appendBatch(Array.from({ length: 30 }, (_, k) => entryFor(k + 1)));
      const syncing = uploader.sync();
      syncing.catch(() => undefined);
      await until(() => proxy.stats.held >= 1, 'a segment put to reach the server');
      lease.fence('test: a newer epoch took the lease over');
      expect((await rejection(syncing)).code).toBe('fenced');
      await until(() => proxy.stats.heldClosed === proxy.stats.held, 'every segment put in flight to be dropped');
      expect(await direct.list('wal/db/0000/')).toEqual([]);
    } finally {
      await uploader.stop();
      await journal.close();
      await proxy.close();
    }
  });
});
