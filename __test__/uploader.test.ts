import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GraphstreamError } from '../ts/errors.js';
import { createFormatApi } from '../ts/format/format.js';
import { segmentKey } from '../ts/replication/layout.js';
import { GraphstreamMetrics } from '../ts/metrics.js';
import { pureCore } from '../ts/pure/core.js';
import { Journal } from '../ts/journal/journal.js';
import { cores } from './helpers/cores.js';
import { MemoryStorage } from '../ts/storage/memory.js';
import { ObjectStoreStorage } from '../ts/storage/object-store.js';
import { LocalStorage } from '../ts/storage/local.js';
import type { PutOptions, PutResult, SegmentStorage, StagedFile } from '../ts/storage/types.js';
import { SegmentCache, manifestPath, type UploadRecord } from '../ts/replication/cache.js';
import { Uploader, type UploaderOptions } from '../ts/replication/uploader.js';
import { restore } from '../ts/replication/restore.js';
import { FAULT_KINDS, startFaultProxy } from './helpers/fault-proxy.js';
import { s3Backends, s3BackendsAndCores } from './helpers/s3.js';

const SEGMENT_FILE = /^journal-\d{16}\.hadbj$/;
/** how long to wait for background sealing and shipping: vi.waitFor's 1 s default is too short for the pure core on a loaded machine */
const WAIT = { timeout: 20_000, interval: 20 };
const format = createFormatApi(pureCore);

const PAD = 'x'.repeat(100);

/** Appends `count` graphd entries, in batches of 10. */
async function appendEntries(journal: Journal, count: number): Promise<void> {
  for (let done = 0; done < count; done += 10) {
    const batch = Array.from({ length: Math.min(10, count - done) }, (_, i) => ({
      query: 'CREATE (:Node {id: $id, pad: $pad})',
      params: { id: done + i, pad: PAD.slice((done + i) % 50) },
    }));
    await journal.appendBatch(batch);
  }
}

/** Sealed segment files of a journal directory and their bytes, oldest first. */
async function sealedSegments(dir: string): Promise<Map<string, Buffer>> {
  const segments = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).filter((n) => SEGMENT_FILE.test(n)).sort()) {
    const bytes = await readFile(join(dir, name));
    if ((bytes[6]! & 0x04) !== 0) segments.set(name, bytes);
  }
  return segments;
}

function keyOf(name: string, prefix = 'wal/', db = 'db', generation = 0): string {
  return segmentKey(prefix, db, generation, Number(/\d{16}/.exec(name)![0]));
}

/** The sealed segments hold entries 1..count, contiguous and verified: the directory lost nothing. */
function expectWholeJournal(segments: Map<string, Buffer>, count: number): void {
  let next = 1;
  for (const bytes of segments.values()) {
    const decoded = format.decodeSegment(bytes);
    expect(decoded.header.firstSeq).toBe(next);
    next += decoded.entries.length;
  }
  expect(next - 1).toBe(count);
}

/** The manifest `uploader` keeps in its journal directory. */
function manifestOf(uploader: Uploader): { segments: UploadRecord[] } {
  return JSON.parse(readFileSync(manifestPath(uploader.directory, uploader.destination), 'utf8')) as { segments: UploadRecord[] };
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * Wraps a storage (which a test may swap): counts every request, records each put's key and bytes
 * hash, tracks the most puts in flight at once, and lets a test fail or hold puts.
 */
class RecordingStorage implements SegmentStorage {
  readonly description: string;
  readonly identity: string | undefined;
  requests = 0;
  readonly puts: { key: string; sha256: string; ifNoneMatch: string | undefined; created: boolean | null }[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** runs before each put reaches the inner storage; may throw or wait */
  beforePut: ((key: string) => Promise<void>) | null = null;

  constructor(public inner: SegmentStorage) {
    this.description = inner.description;
    this.identity = inner.identity;
  }

  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    return this.recordPut(key, sha(bytes), options, () => this.inner.put(key, bytes, options));
  }

  protected async recordPut<R extends PutResult>(key: string, sha256: string, options: PutOptions | undefined, send: () => Promise<R>): Promise<R> {
    this.requests++;
    const entry = { key, sha256, ifNoneMatch: options?.ifNoneMatch, created: null as boolean | null };
    this.puts.push(entry);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.beforePut?.(key);
      const result = await send();
      entry.created = result.created;
      return result;
    } finally {
      this.inFlight--;
    }
  }
  get(key: string) {
    this.requests++;
    return this.inner.get(key);
  }
  list(prefix: string, options?: { startAfter?: string }) {
    this.requests++;
    return this.inner.list(prefix, options);
  }
  delete(key: string) {
    this.requests++;
    return this.inner.delete(key);
  }
}

/** A RecordingStorage over a storage with stageFile (S3Storage, ObjectStoreStorage), which the Uploader then uses instead of put. */
class RecordingStagingStorage extends RecordingStorage {
  /** files staged and not yet released, now and at most */
  staged = 0;
  maxStaged = 0;

  async stageFile(path: string): Promise<StagedFile> {
    const staged = await this.inner.stageFile!(path);
    const bytesHash = sha(await readFile(path));
    this.maxStaged = Math.max(this.maxStaged, ++this.staged);
    let released = false;
    return {
      size: staged.size,
      sha256: staged.sha256,
      put: (key, options) => this.recordPut(key, bytesHash, options, () => staged.put(key, options)),
      release: () => {
        if (!released) this.staged--;
        released = true;
        staged.release();
      },
    };
  }
}

function recording(storage: SegmentStorage): RecordingStorage {
  return storage.stageFile ? new RecordingStagingStorage(storage) : new RecordingStorage(storage);
}

function http503(): Error {
  return new GraphstreamError('storage', 'injected 503 SlowDown', { details: { retryable: true, status: 503 } });
}

/** No real waiting in retries: backoff delays of 0 ms. */
const FAST_RETRY = { maxAttempts: 3, baseDelayMs: 0, maxDelayMs: 0, breaker: { failureThreshold: 1000, coolDownMs: 0 } };

describe.each(cores)('Uploader ($kind core)', (core) => {
  let dir: string;
  const cleanups: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'graphstream-uploader-'));
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  async function openJournal(): Promise<Journal> {
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 4096, durability: 'none' });
    cleanups.push(() => journal.close());
    return journal;
  }

  async function setup(options: Partial<UploaderOptions> & { journal?: Journal | undefined } = {}) {
    const journal = 'journal' in options ? options.journal : await openJournal();
    const storage = recording(options.storage ?? new MemoryStorage());
    const uploader = new Uploader({
      ...(journal ? { journal } : { directory: dir }),
      core,
      prefix: 'wal/',
      db: 'db',
      sealIntervalMs: 60_000,
      retry: FAST_RETRY,
      cache: { retentionMs: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER },
      ...options,
      storage,
    });
    cleanups.push(() => uploader.stop());
    return { journal: journal!, storage, uploader };
  }

  async function expectStored(storage: SegmentStorage, segments: Map<string, Buffer>): Promise<void> {
    expect((await storage.list('wal/db/0000/')).sort()).toEqual([...segments.keys()].map((name) => keyOf(name)).sort());
    for (const [name, bytes] of segments) {
      const stored = await storage.get(keyOf(name));
      expect(stored && Buffer.from(stored).equals(bytes), `${name} stored byte-identical`).toBe(true);
    }
  }

  it('an idle journal makes no storage requests at all', async () => {
    const { storage, uploader } = await setup();
    await uploader.start();
    for (let i = 0; i < 5; i++) await uploader.runCycle();
    await uploader.sync();
    expect(storage.requests).toBe(0);
    expect(await readdir(dir)).not.toContain(expect.stringMatching(SEGMENT_FILE));
  });

  it('seals, uploads every segment byte-identical under its FORMAT.md key, and then goes quiet', async () => {
    const metrics = new GraphstreamMetrics({ db: 'db' });
    const { journal, storage, uploader } = await setup({ metrics });
    await appendEntries(journal, 200);
    await uploader.sync();

    const segments = await sealedSegments(dir);
    expect(segments.size).toBeGreaterThan(3); // rotation made several, sync sealed the live one
    await expectStored(storage.inner, segments);
    expect(storage.puts.every((put) => put.ifNoneMatch === '*')).toBe(true);
    const bytes = [...segments.values()].reduce((sum, b) => sum + b.length, 0);
    expect(uploader.stats()).toMatchObject({ attempted: segments.size, succeeded: segments.size, failed: 0, bytes, retries: 0, inFlight: 0 });
    expect(await metrics.toPrometheus()).toContain(`graphstream_upload_bytes_total{db="db"} ${bytes}`);

    const requests = storage.requests;
    await uploader.start();
    for (let i = 0; i < 3; i++) await uploader.runCycle();
    await uploader.sync();
    expect(storage.requests).toBe(requests);
  });

  it.each([
    { through: 'put (readFile + hash here)', storage: async (): Promise<SegmentStorage> => new MemoryStorage() },
    { through: "the storage's stageFile", storage: () => ObjectStoreStorage.open('memory://') },
  ])('through $through, the manifest records each segment with its size and SHA-256', async ({ storage: open }) => {
    const { journal, storage, uploader } = await setup({ storage: await open() });
    await appendEntries(journal, 100);
    await uploader.sync();
    const segments = await sealedSegments(dir);
    await expectStored(storage.inner, segments);
    const manifest = manifestOf(uploader);
    expect(manifest.segments.map(({ name, key, size, sha256 }) => ({ name, key, size, sha256 }))).toEqual(
      [...segments].map(([name, bytes]) => ({ name, key: keyOf(name), size: bytes.length, sha256: sha(bytes) })),
    );
  });

  it.each([1, 3])("with concurrency %i, emits 'uploaded' only once the manifest on disk records the segment", async (concurrency) => {
    const { journal, uploader } = await setup({ concurrency });
    await appendEntries(journal, 200);
    const notYetOnDisk: string[] = [];
    uploader.on('uploaded', (record) => {
      const onDisk = manifestOf(uploader);
      if (!onDisk.segments.some((segment) => segment.name === record.name)) notYetOnDisk.push(record.name);
    });
    await uploader.sync();
    expect(uploader.stats().succeeded).toBeGreaterThan(4);
    expect(notYetOnDisk).toEqual([]);
  });

  it('on its timer, seals the live segment and ships it without being asked', async () => {
    const { journal, storage, uploader } = await setup({ sealIntervalMs: 5 });
    await uploader.start();
    await appendEntries(journal, 30);
    await vi.waitFor(async () => {
      const files = (await readdir(dir)).filter((name) => SEGMENT_FILE.test(name));
      const sealed = await sealedSegments(dir);
      expect(sealed.size).toBe(files.length);
      expect(uploader.stats().succeeded).toBe(sealed.size);
    }, WAIT);
    const sealed = await sealedSegments(dir);
    expectWholeJournal(sealed, 30);
    await expectStored(storage.inner, sealed);
  });

  it('uploads oldest first, with at most `concurrency` puts in flight', async () => {
    const serial = await setup({ concurrency: 1 });
    await appendEntries(serial.journal, 200);
    await serial.uploader.sync();
    const keys = serial.storage.puts.map((put) => put.key);
    expect(keys.length).toBeGreaterThan(4);
    expect(keys).toEqual([...keys].sort());

    await rm(dir, { recursive: true });
    dir = await mkdtemp(join(tmpdir(), 'graphstream-uploader-'));
    const parallel = await setup({ concurrency: 2 });
    await appendEntries(parallel.journal, 200);
    parallel.storage.beforePut = () => new Promise((resolve) => setTimeout(resolve, 5));
    await parallel.uploader.sync();
    expect(parallel.storage.puts.length).toBe(keys.length);
    expect(parallel.storage.maxInFlight).toBe(2);
  });

  it('with a storage that stages files, reads at most one segment ahead of the puts and releases every staged file', async () => {
    const { journal, storage, uploader } = await setup({ storage: await ObjectStoreStorage.open('memory://'), concurrency: 2 });
    const staging = storage as RecordingStagingStorage;
    await appendEntries(journal, 200);
    const failing = keyOf(format.segmentFileName(1));
    staging.beforePut = async (key) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (key === failing) throw http503();
    };
    await expect(uploader.sync()).rejects.toMatchObject({ code: 'storage' });
    expect(staging.maxInFlight).toBe(2);
    expect(staging.maxStaged).toBe(3);
    expect(staging.staged).toBe(0);
    staging.beforePut = null;
    await uploader.sync();
    await expectStored(staging.inner, await sealedSegments(dir));
    expect(staging.staged).toBe(0);
  });

  it('keeps failed segments pending and uploads them on the next cycle; stats add up', async () => {
    const { journal, storage, uploader } = await setup();
    await appendEntries(journal, 100);
    const firstKey = keyOf(format.segmentFileName(1));
    let outage = true;
    storage.beforePut = async (key) => {
      if (outage && key === firstKey) throw http503();
    };
    const first = await uploader.sync().catch((err: unknown) => err);
    expect(first).toMatchObject({ code: 'storage', details: { retryable: true } });
    const segments = await sealedSegments(dir);
    expect(segments.size).toBeGreaterThan(1);
    expect(uploader.stats()).toMatchObject({ attempted: segments.size, succeeded: segments.size - 1, failed: 1, retries: 2 });
    expect(await storage.inner.get(firstKey)).toBeNull();

    outage = false;
    await uploader.runCycle();
    await uploader.sync();
    await expectStored(storage.inner, segments);
    const stats = uploader.stats();
    expect(stats.succeeded).toBe(segments.size);
    expect(stats.attempted).toBe(stats.succeeded + stats.failed);
    expect(stats.retries + stats.attempted).toBe(storage.puts.length);
    expect(stats.lastError).toBeNull(); // the uploads recovered after it
    expect(await sealedSegments(dir)).toEqual(segments); // nothing deleted
  });

  it('a conflict is not retried, is surfaced, and the segment is not retried on the timer', async () => {
    const { journal, storage, uploader } = await setup();
    await appendEntries(journal, 5);
    const sealed = (await journal.sealForUpload())!;
    const name = sealed.slice(sealed.lastIndexOf('journal-'));
    await storage.inner.put(keyOf(name), Buffer.from('another leader wrote this'), { ifNoneMatch: '*' });
    const errors: GraphstreamError[] = [];
    uploader.on('error', (err) => errors.push(err));

    await expect(uploader.sync()).rejects.toMatchObject({ code: 'conflict' });
    expect(storage.puts).toHaveLength(1);
    expect(errors.map((err) => err.code)).toEqual(['conflict']);
    await uploader.runCycle();
    expect(storage.puts).toHaveLength(1);
    await expect(uploader.sync()).rejects.toMatchObject({ code: 'conflict' });
    expect(Buffer.from((await storage.inner.get(keyOf(name)))!).toString()).toBe('another leader wrote this');
    expect((await sealedSegments(dir)).has(name)).toBe(true);
  });

  it('uploadWithAck(path) resolves once that segment and every older one is in storage', async () => {
    const { journal, storage, uploader } = await setup();
    await appendEntries(journal, 150);
    await journal.sealForUpload();
    const sealed = [...(await sealedSegments(dir)).keys()];
    expect(sealed.length).toBeGreaterThan(2);
    const record = await uploader.uploadWithAck(join(dir, sealed[1]!));
    expect(record).toMatchObject({ name: sealed[1], key: keyOf(sealed[1]!) });
    expect(storage.puts.map((put) => put.key).sort()).toEqual([keyOf(sealed[0]!), keyOf(sealed[1]!)]);
    await expect(uploader.uploadWithAck(join(dir, sealed[1]!))).resolves.toEqual(record);
    expect(storage.puts).toHaveLength(2);
    await expect(uploader.uploadWithAck(join(tmpdir(), sealed[1]!))).rejects.toMatchObject({ code: 'invalid_argument' });
  });

  it('sidecar mode (a directory, no journal) ships sealed segments and never seals the live one', async () => {
    const journal = await openJournal();
    await appendEntries(journal, 120);
    // the journal seals rotated segments on its sealer thread: wait until all but the live one are
    await vi.waitFor(async () => {
      const files = (await readdir(dir)).filter((n) => SEGMENT_FILE.test(n));
      expect((await sealedSegments(dir)).size).toBe(files.length - 1);
    }, WAIT);
    const { storage, uploader } = await setup({ journal: undefined, storage: new LocalStorage(join(dir, 'bucket')) });
    await uploader.sync();
    const sealed = await sealedSegments(dir);
    const all = (await readdir(dir)).filter((n) => SEGMENT_FILE.test(n));
    expect(all.length).toBe(sealed.size + 1); // the live segment stayed live
    await expectStored(storage.inner, sealed);
  });

  it('stop() waits for the uploads in flight, and they are recorded', async () => {
    const { journal, storage, uploader } = await setup({ concurrency: 1 });
    await appendEntries(journal, 20);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    storage.beforePut = () => held;
    const syncing = uploader.sync().catch((err: unknown) => err);
    while (storage.inFlight === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    let stopped = false;
    const stopping = uploader.stop().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);
    release();
    await stopping;
    await syncing;
    expect(uploader.stats().succeeded).toBeGreaterThanOrEqual(1);
    expect(manifestOf(uploader).segments.map((s) => s.key)).toContain(storage.puts[0]!.key);
    await expect(uploader.sync()).rejects.toMatchObject({ code: 'closed' });
  });

  it('cleanup after uploads deletes only uploaded segments, never pending ones', async () => {
    const { journal, storage, uploader } = await setup({ cache: { retentionMs: Number.MAX_SAFE_INTEGER, maxBytes: 1 } });
    await appendEntries(journal, 100);
    await journal.sealForUpload();
    const segments = await sealedSegments(dir);
    const names = [...segments.keys()];
    // the second half never gets through
    const blocked = new Set(names.slice(names.length / 2).map((name) => keyOf(name)));
    storage.beforePut = async (key) => {
      if (blocked.has(key)) throw http503();
    };
    await uploader.runCycle();
    const left = [...(await sealedSegments(dir)).keys()];
    const uploadedCount = Math.floor(names.length / 2);
    // all uploaded segments but the newest are gone; every pending one is still there
    expect(left).toEqual(names.slice(uploadedCount - 1));

    storage.beforePut = null;
    await uploader.sync();
    await uploader.runCycle();
    expect([...(await sealedSegments(dir)).keys()]).toEqual([names.at(-1)]);
    expect((await storage.inner.list('wal/db/0000/')).length).toBe(names.length);
  });

  it('after a restart, resumes pending uploads from the manifest without re-uploading uploaded ones', async () => {
    const inner = new MemoryStorage();
    const first = await setup({ storage: inner });
    await appendEntries(first.journal, 200);
    await first.journal.sealForUpload();
    const segments = await sealedSegments(dir);
    const names = [...segments.keys()];
    const half = Math.floor(names.length / 2);
    await first.uploader.uploadWithAck(join(dir, names[half - 1]!));
    await first.uploader.stop();

    const second = await setup({ storage: inner, journal: undefined });
    await second.uploader.start();
    await second.uploader.sync();
    expect(second.storage.puts.map((put) => put.key).sort()).toEqual(names.slice(half).map((name) => keyOf(name)));
    await expectStored(inner, segments);
  });

  describe('verify before shipping', () => {
    /** The first three sealed segments of a journal of 60 entries, as file name and bytes. */
    async function threeSegments(): Promise<[string, Buffer][]> {
      const journal = await openJournal();
      await appendEntries(journal, 60);
      await journal.close();
      const segments = [...(await sealedSegments(dir))].slice(0, 3);
      expect(segments).toHaveLength(3);
      return segments;
    }

    async function sidecarOver(files: [string, Buffer][], storage: SegmentStorage = new MemoryStorage()) {
      const journalDir = await mkdtemp(join(tmpdir(), 'graphstream-uploader-verify-'));
      cleanups.push(() => rm(journalDir, { recursive: true, force: true }));
      for (const [name, bytes] of files) await writeFile(join(journalDir, name), bytes);
      const recorded = recording(storage);
      const uploader = new Uploader({ directory: journalDir, storage: recorded, core, prefix: 'wal/', db: 'db', retry: FAST_RETRY });
      cleanups.push(() => uploader.stop());
      const errors: GraphstreamError[] = [];
      uploader.on('error', (err) => errors.push(err));
      return { journalDir, storage: recorded, uploader, errors };
    }

    function flipped(bytes: Buffer, offset: number, bit: number): Buffer {
      const copy = Buffer.from(bytes);
      copy[offset]! ^= bit;
      return copy;
    }

    it('a bit flipped anywhere in a sealed segment keeps it and every later one out of storage; sync() rejects with corrupt', async () => {
      const segments = await threeSegments();
      const [first, second, third] = segments as [[string, Buffer], [string, Buffer], [string, Buffer]];
      const length = second[1].length;
      // every header field (created_ms aside: no checksum covers it), the body and the trailer
      const flips: [string, number, number][] = [
        ['magic', 0, 0x01],
        ['version', 5, 0x01],
        ['flags: compressed', 6, 0x01],
        ['flags: unknown bit', 6, 0x02],
        ['flags: sealed', 6, 0x04],
        ['flags: trailer', 6, 0x08],
        ['compression', 7, 0x01],
        ['reserved', 9, 0x10],
        ['first_seq', 19, 0x01],
        ['last_seq', 27, 0x01],
        ['entry_count', 35, 0x01],
        ['body_len', 43, 0x01],
        ['body_checksum', 60, 0x80],
        ['prev_segment_checksum', 83, 0x01],
        ['reserved tail', 120, 0x01],
        ['body start', 128, 0x01],
        ['body middle', 128 + Math.floor((length - 160) / 2), 0x20],
        ['body end', length - 33, 0x01],
        ['trailer start', length - 32, 0x01],
        ['trailer end', length - 1, 0x80],
      ];
      for (const [field, offset, bit] of flips) {
        const { storage, uploader, errors } = await sidecarOver([first, [second[0], flipped(second[1], offset, bit)], third]);
        const failure = await uploader.sync().then(
          () => null,
          (err: unknown) => err,
        );
        expect(failure, field).toMatchObject({ code: 'corrupt', message: expect.stringContaining(second[0]) });
        expect(await storage.inner.list('wal/'), field).toEqual([keyOf(first[0])]);
        expect(errors.map((err) => err.code), field).toEqual(['corrupt']);
        expect(uploader.stats(), field).toMatchObject({ corrupt: 1, succeeded: 1, attempted: 1, failed: 0 });
        expect(uploader.stats().lastError, field).toMatchObject({ code: 'corrupt' });
        // the timer uploads nothing from the corrupt segment on, and reports nothing new
        await uploader.runCycle();
        expect(storage.puts.map((put) => put.key), field).toEqual([keyOf(first[0])]);
        await uploader.stop();
      }

      // repaired (the intact file back), it and the ones behind it go
      const { journalDir, storage, uploader } = await sidecarOver([first, [second[0], flipped(second[1], 128, 1)], third]);
      await expect(uploader.sync()).rejects.toMatchObject({ code: 'corrupt' });
      await writeFile(join(journalDir, second[0]), second[1]);
      await uploader.sync();
      await expectStored(storage.inner, new Map(segments));
      expect(uploader.stats().lastError).toBeNull();
    });

    it('a valid segment that does not continue the chain of the one before is corrupt, and so is one whose predecessor was cleaned up', async () => {
      const segments = await threeSegments();
      const [first, second] = segments as [[string, Buffer], [string, Buffer]];
      const { header } = format.decodeSegment(second[1]);
      // the same sequences, well formed, but chained from elsewhere
      const payloads = Array.from({ length: header.entryCount }, (_, i) => Buffer.from(`forged ${i}`));
      const forged = format.sealSegment(
        Buffer.concat([format.encodeHeader({ firstSeq: header.firstSeq, createdMs: 1 }), pureCore.encodeEntries(header.firstSeq, Buffer.alloc(32, 7), payloads).bytes]),
      );
      const { journalDir, storage, uploader } = await sidecarOver([first, [second[0], forged]]);
      await expect(uploader.sync()).rejects.toMatchObject({ code: 'corrupt', message: expect.stringMatching(/chain hash/) });
      expect(await storage.inner.list('wal/')).toEqual([keyOf(first[0])]);

      // after a restart, with the first segment gone from the directory: the manifest's record of it decides
      await uploader.stop();
      await rm(join(journalDir, first[0]));
      const restarted = new Uploader({ directory: journalDir, storage: storage.inner, core, prefix: 'wal/', db: 'db', retry: FAST_RETRY });
      cleanups.push(() => restarted.stop());
      await expect(restarted.sync()).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining('as uploaded to') });
      await writeFile(join(journalDir, second[0]), second[1]);
      await restarted.sync();
      expect(await storage.inner.list('wal/')).toEqual([keyOf(first[0]), keyOf(second[0])]);
    });
  });

  describe('a manifest per destination', () => {
    it.each([
      { other: 'another storage', options: () => ({ storage: new MemoryStorage() }), key: (name: string) => keyOf(name), same: false },
      { other: 'another prefix', options: () => ({}), key: (name: string) => keyOf(name, 'other/'), same: true, prefix: 'other/' },
      { other: 'another db', options: () => ({}), key: (name: string) => keyOf(name, 'wal/', 'db2'), same: true, db: 'db2' },
      { other: 'another generation', options: () => ({}), key: (name: string) => keyOf(name, 'wal/', 'db', 1), same: true, generation: 1 },
    ])('after a sync() to one destination, $other starts empty and receives every segment', async ({ options, key, same, ...where }) => {
      const first = await setup();
      await appendEntries(first.journal, 100);
      await first.uploader.sync();
      const segments = await sealedSegments(dir);
      const second = await setup({ journal: first.journal, ...options(), ...(same ? { storage: first.storage.inner } : {}), ...where });
      await second.uploader.sync();
      expect(second.storage.puts.map((put) => put.key)).toEqual([...segments.keys()].map(key));
      expect(second.uploader.stats().succeeded).toBe(segments.size);
      // each destination has its own manifest, and neither one's uploads count for the other
      expect(manifestOf(first.uploader).segments.map((r) => r.key)).toEqual([...segments.keys()].map((name) => keyOf(name)));
      expect(manifestOf(second.uploader).segments.map((r) => r.key)).toEqual([...segments.keys()].map(key));
    });

    it('cleanup keeps a segment until every known destination has it (known from its first cycle on); forgetting a retired one releases them', async () => {
      const tiny = { retentionMs: 0, maxBytes: 1 };
      const a = await setup({ cache: tiny });
      const b = await setup({ journal: a.journal, storage: new MemoryStorage(), cache: tiny });
      b.storage.beforePut = async () => {
        throw http503();
      };
      await appendEntries(a.journal, 100);
      await b.uploader.runCycle(); // nothing reaches b, but b is a known destination now
      await a.uploader.sync();
      const firstHalf = await sealedSegments(dir);
      await a.uploader.runCycle();
      for (const name of firstHalf.keys()) expect((await sealedSegments(dir)).has(name), name).toBe(true);

      b.storage.beforePut = null;
      await b.uploader.sync();
      await appendEntries(a.journal, 100);
      await a.uploader.sync();
      const segments = await sealedSegments(dir);
      await a.uploader.runCycle();
      // b has not uploaded the second half: none of it was deleted; what both have went (but the newest of it)
      const left = await sealedSegments(dir);
      for (const name of segments.keys()) if (!firstHalf.has(name)) expect(left.has(name), name).toBe(true);
      expect([...firstHalf.keys()].filter((name) => left.has(name))).toEqual([[...firstHalf.keys()].at(-1)]);

      await b.uploader.stop();
      expect(await SegmentCache.forgetDestination(dir, b.uploader.destination)).toBe(true);
      await a.uploader.runCycle();
      expect([...(await sealedSegments(dir)).keys()]).toEqual([[...segments.keys()].at(-1)]);
    });

    it('a new destination whose first segments were cleaned up locally before it was known gets nothing: gap, no chain without its start', async () => {
      const a = await setup({ cache: { retentionMs: 0, maxBytes: 1 } });
      await appendEntries(a.journal, 100);
      await a.uploader.sync();
      await a.uploader.runCycle();
      const left = [...(await sealedSegments(dir)).keys()];
      expect(left[0]).not.toBe(format.segmentFileName(1));
      const b = await setup({ journal: a.journal, storage: new MemoryStorage() });
      await expect(b.uploader.sync()).rejects.toMatchObject({ code: 'gap', message: expect.stringContaining('holds nothing before it') });
      expect(b.storage.puts).toEqual([]);
    });

    it("an earlier version's manifest.json goes to the destination whose keys it records and whose storage holds them", async () => {
      const a = await setup();
      await appendEntries(a.journal, 100);
      await a.uploader.sync();
      await a.uploader.stop();
      const segments = await sealedSegments(dir);
      // what the previous version left: manifest.json, records without lastSeq and chainHash
      const records = manifestOf(a.uploader).segments.map(({ name, key, size, sha256, uploadedAt }) => ({ name, key, size, sha256, uploadedAt }));
      await rm(join(dir, 'uploads'), { recursive: true });
      await writeFile(join(dir, 'manifest.json'), JSON.stringify({ version: 1, segments: records }));

      // another storage with the same keys: it does not hold them, so the records are not its
      const b = await setup({ journal: a.journal, storage: new MemoryStorage() });
      await b.uploader.sync();
      expect(b.storage.puts).toHaveLength(segments.size);
      expect(await readdir(dir)).toContain('manifest.json');

      // the storage that holds them adopts them: nothing is uploaded again, manifest.json is gone
      const again = await setup({ journal: a.journal, storage: a.storage.inner });
      await again.uploader.sync();
      expect(again.storage.puts).toEqual([]);
      expect(await readdir(dir)).not.toContain('manifest.json');
      expect(manifestOf(again.uploader).segments.map((r) => r.name)).toEqual([...segments.keys()]);
    });
  });

  describe('honest stats', () => {
    it('fail-fast rejections on an open breaker are counted apart, not as attempts or failures', async () => {
      let now = 0;
      const clock = { now: () => now, sleep: () => Promise.resolve() };
      const { journal, storage, uploader } = await setup({
        concurrency: 1,
        clock,
        retry: { maxAttempts: 3, baseDelayMs: 0, maxDelayMs: 0, breaker: { failureThreshold: 1, coolDownMs: 60_000 } },
      });
      await appendEntries(journal, 100);
      await journal.sealForUpload();
      const segments = await sealedSegments(dir);
      storage.beforePut = async () => {
        throw http503();
      };
      // one put was made (and failed), which opened the breaker: its retry and every other segment failed fast
      await expect(uploader.sync()).rejects.toMatchObject({ code: 'circuit_open' });
      expect(storage.puts).toHaveLength(1);
      expect(uploader.stats()).toMatchObject({ attempted: 1, failed: 1, succeeded: 0, rejectedByBreaker: segments.size - 1, breakerState: 'open' });
      await expect(uploader.sync()).rejects.toMatchObject({ code: 'circuit_open' });
      expect(uploader.stats()).toMatchObject({ attempted: 1, failed: 1, rejectedByBreaker: 2 * segments.size - 1 });
      expect(uploader.stats().lastError).toMatchObject({ code: 'circuit_open' });

      now += 60_000;
      storage.beforePut = null;
      await uploader.sync();
      const stats = uploader.stats();
      expect(stats).toMatchObject({ succeeded: segments.size, failed: 1, breakerState: 'closed', lastError: null });
      expect(stats.attempted).toBe(stats.succeeded + stats.failed);
    });
  });

  describe('sequences are never reused', () => {
    it('refuses a destination that holds sequences beyond the journal (corrupt) or a chain of its own (conflict), uploading nothing', async () => {
      const { journal, storage, uploader } = await setup();
      await appendEntries(journal, 100);
      const beyond = keyOf(format.segmentFileName(journal.sequence + 1));
      await storage.inner.put(beyond, Buffer.from('a later leader'));
      const errors: GraphstreamError[] = [];
      uploader.on('error', (err) => errors.push(err));
      await expect(uploader.sync()).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining(`ends at ${journal.sequence}`) });
      await expect(uploader.sync()).rejects.toMatchObject({ code: 'corrupt' });
      expect(storage.puts.map((put) => put.key)).toEqual([]);
      expect(errors.map((err) => err.code)).toEqual(['corrupt']);

      await storage.inner.delete(beyond);
      const other = await setup({ journal, storage: storage.inner });
      await storage.inner.put(keyOf(format.segmentFileName(2)), Buffer.from('another chain'));
      await expect(other.uploader.sync()).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('sequence 2') });
      expect(other.storage.puts).toEqual([]);
    });
  });

  it('rejects invalid options', () => {
    const storage = new MemoryStorage();
    expect(() => new Uploader({ storage, db: 'db' })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(() => new Uploader({ directory: dir, storage, db: 'a/b' })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(() => new Uploader({ directory: dir, storage, db: 'db', prefix: 'wal' })).toThrow(/prefix/);
    expect(() => new Uploader({ directory: dir, storage, db: 'db', generation: 0x10000 })).toThrow(/generation/);
    expect(() => new Uploader({ directory: dir, storage, db: 'db', concurrency: 0 })).toThrow(/concurrency/);
    for (const options of [undefined, null, { directory: dir, storage: null, db: 'db' }, { directory: dir, storage, db: 'db', retry: null }]) {
      expect(() => new Uploader(options as unknown as UploaderOptions)).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    }
  });
});

describe.each(s3BackendsAndCores)('Uploader against a real S3 server through a fault proxy: $s3.name ($core.kind core)', ({ s3, core }) => {
  let dir: string;
  let bucket: string;
  const cleanups: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'graphstream-uploader-s3-'));
    bucket = await s3.createBucket('uploader');
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  async function storageAt(endpoint: string): Promise<SegmentStorage> {
    // one attempt per request inside the client: the Uploader's RetryPolicy is what is under test
    const storage = await s3.open(bucket, { endpoint, maxAttempts: 1 });
    cleanups.push(async () => storage.close?.());
    return storage;
  }

  /**
   * Storage behind a proxy injecting faults at `faultRate`, and an outage proxy (every request
   * answered 500/503 or its connection dropped before reaching the server) to switch to. With
   * `delayMs`, every request through the faulty proxy first waits that long.
   */
  async function faultyStorage(faultRate: number, seed: number, delayMs?: number) {
    const proxy = await startFaultProxy({ target: s3.endpoint(), faultRate, seed, latencyMs: 20 });
    const outage = await startFaultProxy({ target: s3.endpoint(), faultRate: 1, seed, weights: { latency: 0, dropAfter: 0 } });
    cleanups.push(() => proxy.close(), () => outage.close());
    const onlyLatency = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, kind === 'latency' ? 1 : 0]));
    const slow = delayMs === undefined ? null : await startFaultProxy({ target: proxy.endpoint, faultRate: 1, weights: onlyLatency, latencyMs: delayMs });
    if (slow) cleanups.push(() => slow.close());
    const faulty = await storageAt((slow ?? proxy).endpoint);
    const down = await storageAt(outage.endpoint);
    const storage = recording(faulty);
    return {
      proxy,
      outage,
      storage,
      direct: await storageAt(s3.endpoint()),
      setOutage(on: boolean) {
        storage.inner = on ? down : faulty;
      },
    };
  }

  async function openJournal(): Promise<Journal> {
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 4096, durability: 'none' });
    cleanups.push(() => journal.close());
    return journal;
  }

  function uploaderFor(journal: Journal, storage: SegmentStorage, cache = { retentionMs: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER }) {
    const uploader = new Uploader({
      journal,
      storage,
      core,
      prefix: 'wal/',
      db: 'db',
      sealIntervalMs: 60_000,
      concurrency: 4,
      retry: { maxAttempts: 4, baseDelayMs: 2, maxDelayMs: 20, breaker: { failureThreshold: 4, coolDownMs: 1000 } },
      cache,
    });
    cleanups.push(() => uploader.stop());
    return uploader;
  }

  /** Calls sync() until it resolves (failed segments stay pending and are retried), at most `tries` times. */
  async function syncUntilDone(uploader: Uploader, tries = 200): Promise<number> {
    for (let failures = 0; failures < tries; failures++) {
      try {
        await uploader.sync();
        return failures;
      } catch (err) {
        expect(['storage', 'circuit_open']).toContain((err as GraphstreamError).code);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new Error(`sync() did not succeed in ${tries} tries`);
  }

  /** Every put of a key carried the same bytes: nothing was ever uploaded twice with different bytes. */
  function expectOneVersionPerKey(...storages: RecordingStorage[]): void {
    const versions = new Map<string, Set<string>>();
    for (const put of storages.flatMap((storage) => storage.puts)) {
      versions.set(put.key, (versions.get(put.key) ?? new Set()).add(put.sha256));
    }
    for (const [key, hashes] of versions) expect(hashes.size, key).toBe(1);
  }

  async function expectStoredIdentical(direct: SegmentStorage, segments: Map<string, Buffer>): Promise<void> {
    expect(await direct.list('wal/db/0000/')).toEqual([...segments.keys()].map((name) => keyOf(name)));
    for (const [name, bytes] of segments) {
      const stored = await direct.get(keyOf(name));
      expect(stored !== null && Buffer.from(stored).equals(bytes), `${name} byte-identical in storage`).toBe(true);
    }
  }

  it('a second bucket starts empty and receives every segment (a restore from it has them all); the same bucket through another client is the same destination', async () => {
    const journal = await openJournal();
    await appendEntries(journal, 150);
    const first = uploaderFor(journal, await storageAt(s3.endpoint()));
    await first.sync();
    const segments = await sealedSegments(dir);

    const second = await s3.open(await s3.createBucket('uploader-b'));
    cleanups.push(async () => second.close?.());
    const toSecond = recording(second);
    await uploaderFor(journal, toSecond).sync();
    expect(toSecond.puts.map((put) => put.key)).toEqual([...segments.keys()].map((name) => keyOf(name)));
    await expectStoredIdentical(second, segments);
    const restored = await mkdtemp(join(tmpdir(), 'graphstream-uploader-restore-'));
    cleanups.push(() => rm(restored, { recursive: true, force: true }));
    await expect(restore(second, { dir: restored, prefix: 'wal/', db: 'db', core })).resolves.toMatchObject({ sequence: 150 });

    // the first bucket through the other S3 client (aws-sdk or object_store): the same objects, so nothing to upload
    const otherClient = s3Backends.find((backend) => backend.server === s3.server && backend.name !== s3.name)!;
    const sameBucket = await otherClient.open(bucket);
    cleanups.push(async () => sameBucket.close?.());
    expect(sameBucket.identity).toBe(first.destination.storage);
    const again = recording(sameBucket);
    await uploaderFor(journal, again).sync();
    expect(again.puts).toEqual([]);
  });

  it('a segment damaged on disk is not put, nor any later one: sync() rejects with corrupt and the bucket holds no hole', async () => {
    const journal = await openJournal();
    await appendEntries(journal, 150);
    await journal.sealForUpload();
    const segments = [...(await sealedSegments(dir))];
    const [damagedName, intact] = segments[2]!;
    const damaged = Buffer.from(intact);
    damaged[200]! ^= 0x04;
    await writeFile(join(dir, damagedName), damaged);
    const direct = await storageAt(s3.endpoint());
    const uploader = uploaderFor(journal, direct);
    const errors: GraphstreamError[] = [];
    uploader.on('error', (err) => errors.push(err));
    await expect(uploader.sync()).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining(damagedName) });
    expect(await direct.list('wal/db/0000/')).toEqual(segments.slice(0, 2).map(([name]) => keyOf(name)));
    expect(errors.map((err) => err.code)).toEqual(['corrupt']);
    expect(uploader.stats()).toMatchObject({ corrupt: 1, succeeded: 2 });

    await writeFile(join(dir, damagedName), intact);
    await uploader.sync();
    await expectStoredIdentical(direct, new Map(segments));
  });

  it('under a 30% fault rate every sealed segment reaches storage byte-identical; the breaker opens in an outage and recovers', async () => {
    const { proxy, outage, storage, direct, setOutage } = await faultyStorage(0.3, 7);
    const journal = await openJournal();
    const uploader = uploaderFor(journal, storage);
    let appended = 0;
    for (let round = 0; round < 4; round++) {
      await appendEntries(journal, 100);
      appended += 100;
      await uploader.runCycle();
    }
    await syncUntilDone(uploader);
    expect(uploader.stats().breakerState).toBe('closed');

    // an outage: every request fails, the breaker opens and then fails fast without requests
    setOutage(true);
    await appendEntries(journal, 100);
    appended += 100;
    for (let i = 0; i < 10 && uploader.stats().breakerState !== 'open'; i++) await uploader.runCycle();
    expect(uploader.stats().breakerState).toBe('open');
    expect(outage.stats.forwarded).toBe(0);
    const requestsWhileOpen = outage.stats.requests;
    await expect(uploader.sync()).rejects.toMatchObject({ code: 'circuit_open' });
    expect(outage.stats.requests).toBe(requestsWhileOpen);

    // back to 30%: a half-open probe gets through, the breaker closes, the backlog drains
    setOutage(false);
    await syncUntilDone(uploader);
    const stats = uploader.stats();
    expect(stats.breakerState).toBe('closed');
    expect(stats.breakerOpened).toBeGreaterThanOrEqual(1);

    const segments = await sealedSegments(dir);
    expectWholeJournal(segments, appended);
    await expectStoredIdentical(direct, segments);
    expectOneVersionPerKey(storage);
    const injected = Object.values(proxy.injected).reduce((a, b) => a + b, 0);
    expect(injected).toBeGreaterThan(10);
    expect(stats.retries).toBeGreaterThan(0);
    expect(stats.succeeded).toBe(segments.size);
    expect(stats.attempted).toBe(stats.succeeded + stats.failed);
    expect(stats.bytes).toBe([...segments.values()].reduce((sum, bytes) => sum + bytes.length, 0));
    expect(stats.inFlight).toBe(0);
  });

  it('a restart in the middle of uploading resumes from the manifest; cleanup never deletes pending data', async () => {
    // versitygw answers a small put within a millisecond or two: without the delay every put would
    // finish inside the first manifest write's hold (50 ms), leaving no upload to stop in the middle of
    const { outage, storage: firstStorage, direct, setOutage } = await faultyStorage(0.3, 11, 20);
    const journal = await openJournal();
    await appendEntries(journal, 600);
    await journal.sealForUpload();
    const segments = await sealedSegments(dir);
    expect(segments.size).toBeGreaterThan(12);

    // the first process uploads a few segments and is stopped in the middle
    const first = uploaderFor(journal, firstStorage);
    let uploaded = 0;
    first.on('uploaded', () => {
      if (++uploaded === 4) void first.stop();
    });
    await first.sync().catch(() => undefined);
    await first.stop();
    const manifest = manifestOf(first);
    const done = new Set(manifest.segments.map((record) => record.name));
    expect(done.size).toBeGreaterThanOrEqual(4);
    expect(done.size).toBeLessThan(segments.size);

    // the restarted process, storage down, cache limit tiny: cleanup runs, pending data stays
    setOutage(true);
    const secondStorage = recording(firstStorage);
    const second = uploaderFor(journal, secondStorage, { retentionMs: 0, maxBytes: 1 });
    await second.runCycle();
    const left = await sealedSegments(dir);
    for (const name of segments.keys()) {
      if (!done.has(name)) expect(left.get(name), `pending ${name} kept`).toEqual(segments.get(name));
    }
    expect([...left.keys()].filter((name) => done.has(name))).toEqual([[...done].sort().at(-1)]);

    expect(outage.stats.requests).toBeGreaterThan(0);
    expect(outage.stats.forwarded).toBe(0);
    setOutage(false);
    await syncUntilDone(second);
    await expectStoredIdentical(direct, segments);
    expectOneVersionPerKey(firstStorage, secondStorage);
    // the second process never uploaded what the manifest recorded
    expect(secondStorage.puts.filter((put) => [...done].some((name) => keyOf(name) === put.key))).toEqual([]);
  });
});
