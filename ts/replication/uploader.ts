/**
 * Ships sealed journal segments to object storage: seals the live segment on a timer, finds sealed
 * segments the destination's manifest does not record as uploaded, and uploads them oldest first
 * with bounded concurrency, retries and a circuit breaker. Nothing is deleted before it is
 * confirmed in storage.
 *
 * Nothing corrupt is shipped: each segment is decoded and checked (body checksum, entry CRCs, the
 * chain through it and its trailer, header fields against the entries) and must continue the chain
 * of the segment before it, before its put starts. A segment that fails is reported as `corrupt`
 * and every later one waits behind it, so the destination never holds a chain with a hole.
 * Before its first upload to a destination, the uploader lists what the destination holds beyond
 * its manifest, and refuses a destination that holds sequences the journal does not (`corrupt`:
 * the local journal lost what was shipped) or whose segments start where no local one does
 * (`conflict`: the stored chain is another one).
 */
import { EventEmitter } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { checkSignal, raceAbort, throwIfAborted } from '../abort.js';
import type { Core, RawSegment } from '../core/core.js';
import { resolveCore } from '../core/default.js';
import { readFileInto } from '../journal/durable-fs.js';
import { GraphstreamError, isGraphstreamError, toGraphstreamError } from '../errors.js';
import {
  SegmentCache,
  describeDestination,
  readSegmentEnds,
  type CacheConfig,
  type CleanupStats,
  type Destination,
  type PendingSegment,
  type UploadRecord,
} from './cache.js';
import { FLAG_HAS_CHAIN_HASH, HEADER_SIZE, TRAILER_SIZE, ZERO_HASH } from '../format/constants.js';
import { firstSeqOfFileName } from '../format/format.js';
import type { GraphstreamMetrics } from '../metrics.js';
import { sealedHeaderProblem } from '../journal/recovery.js';
import { GenerationRecords } from './generations.js';
import { MAX_GENERATION, generationPrefix, generationRecordKey, listDbKeys, listSegmentKeys, segmentKey, sequenceOfKey } from './layout.js';
import { Lease, type LeaseOptions } from './lease.js';
import { parseGenerationRecord } from './ownership.js';
import { RetryPolicy, isRetryable, systemClock, type BreakerState, type Clock, type RetryConfigInit } from './retry.js';
import { SegmentBuffers } from './segment-buffers.js';
import type { SharedLimits } from './limits.js';
import { sha256Hex } from '../storage/bytes.js';
import { checkUploadEncryption, claimsMetadata, claimsOf, encryptForUpload, isEncrypted, sameClaims, type SegmentClaims, type UploadEncryption } from './encryption.js';
import { checkDb, checkPrefix, objectName } from '../storage/names.js';
import type { SegmentStorage, StagedFile } from '../storage/types.js';

/** What the uploader needs from a journal (a `Journal` is one): its directory and a way to seal the live segment. */
export interface SealableJournal {
  readonly directory: string;
  /** last sequence written: what a destination may hold at most */
  readonly sequence?: number;
  /** Seals the live segment if it has entries; resolves to the sealed file's path, or null. */
  sealForUpload(): Promise<string | null>;
}

export interface UploaderOptions {
  /** the journal to seal and ship; or, for a sidecar that only ships what another process sealed, `directory` */
  journal?: SealableJournal;
  /** journal directory (sidecar mode: the uploader never seals) */
  directory?: string;
  storage: SegmentStorage;
  /** key prefix, empty or ending in `/` (e.g. `wal/`) */
  prefix?: string;
  db: string;
  /** 0..0xffff; 0 (the default) is the incremental journal. Under a lease, the lease's. */
  generation?: number;
  /**
   * Upload only while holding the db's lease (FORMAT.md, "Ownership and generations"): a Lease
   * (acquired or not), or the holder and TTL of one to make. Before its first upload the uploader
   * acquires it, writes its generation's record (starting
   * one past what the earlier generations hold, which must be the journal's own chain) and uploads
   * into that generation only. Once the lease is lost it stops at once: sync() and uploads reject
   * with `fenced`, 'fenced' and 'error' are emitted, and nothing more is put.
   */
  lease?: Lease | UploaderLeaseOptions;
  /**
   * the first sequence this uploader ships (default 1): the segments of the directory before it
   * belong to earlier generations (a promoted follower's) and are never uploaded into this one
   */
  firstSeq?: number;
  /** how often to seal and upload; default 1000 ms */
  sealIntervalMs?: number;
  /** uploads in flight at once; default 4 */
  concurrency?: number;
  retry?: RetryConfigInit;
  cache?: Partial<CacheConfig>;
  metrics?: GraphstreamMetrics;
  /** time source for retry backoff and the breaker (tests) */
  clock?: Clock;
  /** the core that reads and checks segments before they are put; default the native addon (the pure twin where it does not load) */
  core?: Core;
  /** encrypt each segment to these recipients (./encryption.ts); it is put only once checked; see setEncryption */
  encryption?: UploadEncryption;
  /** limits shared with other uploaders of the process (puts in flight, bytes held for puts); see ./limits.ts */
  limits?: SharedLimits;
}

/** The lease an Uploader makes for itself (UploaderOptions.lease). */
export interface UploaderLeaseOptions extends Pick<LeaseOptions, 'holder' | 'ttlMs'> {
  /**
   * While another writer holds the lease: false (the default) fails at once with `fenced` (this
   * journal is not the db's writer); true waits until it is released or expires (a restart
   * after a crash, whose old lease must expire first)
   */
  wait?: boolean;
}

export interface UploaderStats {
  /** segment uploads started (each one ends as succeeded or failed) */
  attempted: number;
  succeeded: number;
  /** uploads that gave up after their attempts; they stay pending */
  failed: number;
  /** uploads not attempted because the circuit breaker was open (fail-fast); they stay pending */
  rejectedByBreaker: number;
  /** checks that found a segment corrupt (not uploaded; it and every later one stay pending) */
  corrupt: number;
  /** bytes confirmed in storage */
  bytes: number;
  /** extra put attempts made after a retryable failure */
  retries: number;
  inFlight: number;
  breakerState: BreakerState;
  /** times the circuit breaker opened */
  breakerOpened: number;
  /** the last failure, until an upload succeeds after it (its put started after the failure, of that segment or a later one) */
  lastError: GraphstreamError | null;
}

export interface UploaderEvents {
  uploaded: [record: UploadRecord];
  /** the lease was lost: nothing more is uploaded */
  fenced: [err: GraphstreamError];
  /** a failure that waiting will not fix (a `corrupt` segment, a `conflict`, a refused request, a failed seal or cleanup) */
  error: [err: GraphstreamError];
  cleanup: [stats: CleanupStats];
}

const DEFAULT_SEAL_INTERVAL_MS = 1000;
const DEFAULT_CONCURRENCY = 4;
/**
 * How long the manifest write of a finished upload may wait while other uploads are in flight, so
 * that a backlog costs a manifest write per this interval rather than per segment (each write is
 * two fsyncs). The last upload of a batch writes at once. A crash loses at most this much of
 * records, whose segments are then put again: a no-op for identical bytes.
 */
const MANIFEST_HOLD_MS = 50;

/** An upload in flight: its record once in storage, and whether its segment passed its checks (later segments wait for that). */
interface Upload {
  done: Promise<UploadRecord>;
  verified: Promise<void>;
}

/** What a segment's own bytes say of its place in the chain, once they decode and verify. */
interface SegmentFacts {
  lastSeq: number;
  /** the first entry's prev_hash: the chain end it continues */
  startHash: Buffer;
  chainHash: Buffer;
}

/** The end of a segment's chain: the next segment must start at lastSeq + 1 from chainHash. */
interface ChainEnd {
  lastSeq: number;
  chainHash: Buffer;
  /** what it was read from, for messages */
  source: string;
  /** read from the destination's objects (not from the journal directory or the manifest) */
  stored?: boolean;
}

/** A segment's place in the order of checks: it waits for `previous`, then says how its own check went. */
interface CheckTurn {
  previous: Promise<void>;
  passed(): void;
  failed(err: unknown): void;
}

/** A FIFO counting semaphore: slots are granted in the order they were asked for. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(count: number) {
    this.free = count;
  }

  /** Takes a place in the queue now; resolves when the slot is granted. Every acquire needs one release. */
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise<void>((wake) => this.waiting.push(wake));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }
}

export class Uploader extends EventEmitter<UploaderEvents> {
  readonly directory: string;
  readonly prefix: string;
  readonly db: string;
  private generationNow: number;
  private firstSeq: number;
  /** the lease uploads are made under; null without the lease option */
  readonly lease: Lease | null;
  /** whether to wait while another writer holds the lease */
  private readonly leaseWait: boolean;
  readonly sealIntervalMs: number;
  readonly concurrency: number;
  readonly retry: RetryPolicy;

  private readonly journal: SealableJournal | undefined;
  private destinationNow: Destination;
  private readonly storage: SegmentStorage;
  private readonly metrics: GraphstreamMetrics | undefined;
  private readonly coreLoading: Promise<Core>;
  private encryption: UploadEncryption | undefined;
  private readonly cacheConfig: Partial<CacheConfig>;
  private readonly clock: Clock;
  private readonly limits: SharedLimits | undefined;
  /** puts in flight: `concurrency` */
  private readonly slots: Slots;
  /** segments read and held for a put, in flight or next: `concurrency + 1`, so a read overlaps the puts */
  private readonly staging: Slots;
  private readonly stopping = new AbortController();
  private cacheOpening: Promise<SegmentCache> | null = null;
  private readonly inFlight = new Map<string, Upload>();
  /** uploads whose put has not settled yet (those of inFlight that are not just writing the manifest) */
  private transfersInFlight = 0;
  /** segments whose key holds different bytes: not retried on the timer (it cannot succeed) */
  private readonly conflicts = new Map<string, GraphstreamError>();
  /** segments that failed their checks: the timer uploads nothing from them on; sync() checks them again */
  private readonly corruptSegments = new Map<string, GraphstreamError>();
  /** chain ends of segments that passed their checks, by last sequence: where the next segment must start */
  private readonly verifiedEnds = new Map<number, ChainEnd>();
  /** the check of the destination against the journal (once, before the first upload) */
  private destinationChecked: Promise<void> | null = null;
  /** segment decodes at once: one per core at most (each is ~2 ms of CPU per MiB of entries, natively) */
  private readonly checking: Slots;
  /** segment bytes read for the check when the storage stages its own copy, and decoded bodies: one of each per check */
  private readonly checkReads: SegmentBuffers;
  private readonly checkBodies: SegmentBuffers;
  /** failures of segments that only wait behind an earlier one that failed: reported once, as that one's */
  private readonly waitingBehind = new WeakSet<GraphstreamError>();
  private timer: NodeJS.Timeout | null = null;
  private currentCycle: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  private counters = { attempted: 0, succeeded: 0, failed: 0, rejectedByBreaker: 0, corrupt: 0, bytes: 0, retries: 0 };
  private lastError: GraphstreamError | null = null;
  /** counts failures recorded in lastError: an upload clears it only when its put started after the last one */
  private failuresRecorded = 0;
  /** first sequence of the segment lastError is about (0: none in particular); an earlier segment's upload does not clear it */
  private lastErrorFirstSeq = 0;

  constructor(options: UploaderOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new GraphstreamError('invalid_argument', 'Uploader: options must be an object');
    if (typeof options.storage !== 'object' || options.storage === null) throw new GraphstreamError('invalid_argument', 'Uploader: storage must be a SegmentStorage');
    if ((options.journal === undefined) === (options.directory === undefined)) {
      throw new GraphstreamError('invalid_argument', 'Uploader: give exactly one of `journal` and `directory`');
    }
    this.journal = options.journal;
    this.directory = resolve(options.journal?.directory ?? options.directory!);
    this.storage = options.storage;
    this.prefix = options.prefix ?? '';
    this.db = options.db;
    this.generationNow = options.generation ?? 0;
    this.firstSeq = options.firstSeq ?? 1;
    if (!Number.isSafeInteger(this.firstSeq) || this.firstSeq < 1) {
      throw new GraphstreamError('invalid_argument', `Uploader: firstSeq must be a positive integer, got ${String(options.firstSeq)}`);
    }
    this.sealIntervalMs = options.sealIntervalMs ?? DEFAULT_SEAL_INTERVAL_MS;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    checkPrefix(this.prefix, 'Uploader');
    checkDb(this.db, 'Uploader');
    if (!Number.isInteger(this.generation) || this.generation < 0 || this.generation > MAX_GENERATION) {
      throw new GraphstreamError('invalid_argument', `Uploader: generation must be an integer in 0..65535, got ${this.generation}`);
    }
    this.keyFor(0); // validates db
    this.destinationNow = { storage: options.storage.identity ?? options.storage.description, prefix: this.prefix, db: this.db, generation: this.generation };
    const lease = options.lease;
    this.lease = lease === undefined ? null : lease instanceof Lease ? lease : new Lease({ holder: lease.holder, ttlMs: lease.ttlMs, storage: this.storage, prefix: this.prefix, db: this.db });
    this.leaseWait = lease !== undefined && !(lease instanceof Lease) && lease.wait === true;
    if (this.lease !== null && (this.lease.storage !== this.storage || this.lease.prefix !== this.prefix || this.lease.db !== this.db)) {
      throw new GraphstreamError('invalid_argument', 'Uploader: the lease must be on the uploader\'s storage, prefix and db');
    }
    this.lease?.on('fenced', (err) => {
      this.emit('fenced', err);
      this.report(err);
    });
    if (!Number.isInteger(this.sealIntervalMs) || this.sealIntervalMs < 1) {
      throw new GraphstreamError('invalid_argument', `Uploader: sealIntervalMs must be an integer >= 1, got ${this.sealIntervalMs}`);
    }
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new GraphstreamError('invalid_argument', `Uploader: concurrency must be an integer >= 1, got ${this.concurrency}`);
    }
    this.metrics = options.metrics;
    this.cacheConfig = options.cache ?? {};
    this.clock = options.clock ?? systemClock;
    this.limits = options.limits;
    this.retry = new RetryPolicy(options.retry, { clock: this.clock });
    this.slots = new Slots(this.concurrency);
    this.staging = new Slots(this.concurrency + 1);
    const checks = Math.min(this.concurrency + 1, availableParallelism());
    this.checking = new Slots(checks);
    this.checkReads = new SegmentBuffers(checks);
    this.checkBodies = new SegmentBuffers(checks);
    this.setEncryption(options.encryption);
    this.coreLoading = resolveCore(options.core);
    this.coreLoading.catch(() => undefined); // reported by the first check that needs it
  }

  /** 0..0xffff: the generation uploads go into (under a lease, the lease's, once taken). */
  get generation(): number {
    return this.generationNow;
  }

  /** The manifest's destination: storage, prefix, db and generation. */
  get destination(): Destination {
    return this.destinationNow;
  }

  /**
   * Changes whom uploads are encrypted to (undefined: upload plaintext). Segments staged from now
   * on are encrypted to the new recipients; those already staged keep the old ones.
   */
  setEncryption(encryption: UploadEncryption | undefined): void {
    checkUploadEncryption(encryption, 'Uploader');
    this.encryption = encryption === undefined ? undefined : { recipients: encryption.recipients && [...encryption.recipients], passphrase: encryption.passphrase };
  }

  /** The cache's pending segments from firstSeq on. */
  private async pending(cache: SegmentCache): Promise<PendingSegment[]> {
    return (await cache.pending()).filter((segment) => segment.firstSeq >= this.firstSeq);
  }

  /** The object key of the segment whose first entry is `firstSeq`. */
  keyFor(firstSeq: number): string {
    return segmentKey(this.prefix, this.db, this.generation, firstSeq);
  }

  /** Opens the cache (resuming pending uploads found in its manifest) and starts the seal/upload timer. */
  async start(): Promise<void> {
    this.assertRunning();
    if (this.started) return;
    this.started = true;
    await this.cache();
    this.schedule(0);
  }

  /**
   * Seals the live segment (unless sidecar) and uploads every sealed segment not yet in storage.
   * Resolves once all of them are; rejects with the first failure (after its retries) otherwise,
   * leaving the failed segments pending for the next cycle. Aborting `signal` rejects it with
   * an AbortError at once; uploads already under way finish in the background as a timer
   * cycle's would, and nothing more is started for this call.
   */
  async sync(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.assertRunning();
    const signal = checkSignal(options?.signal, 'Uploader.sync');
    throwIfAborted(signal, 'Uploader.sync');
    return raceAbort(this.syncNow(signal), signal, 'Uploader.sync');
  }

  private async syncNow(signal: AbortSignal | undefined): Promise<void> {
    if (this.lease?.fenced) throw this.lease.fenced;
    await this.sealLive();
    // an upload under way may have its put done and its manifest write not: pending() no longer
    // lists its segment, yet sync() resolves only once every sealed segment is recorded
    const underWay = [...this.inFlight.values()].map((upload) => upload.done);
    const cache = await this.cache();
    const pending = await this.pending(cache);
    if (signal?.aborted) return;
    await this.uploadAll(pending, { includeConflicts: true });
    await Promise.all(underWay);
  }

  /**
   * Uploads the sealed segment at `path` and every older pending one; resolves with its manifest
   * record once all of them are in storage.
   */
  async uploadWithAck(path: string): Promise<UploadRecord> {
    this.assertRunning();
    const name = basename(path);
    if (resolve(dirname(path)) !== this.directory) {
      throw new GraphstreamError('invalid_argument', `uploadWithAck: ${path} is not in the journal directory ${this.directory}`);
    }
    const cache = await this.cache();
    const uploaded = cache.record(name);
    if (uploaded) return uploaded;
    const pending = await this.pending(cache);
    const index = pending.findIndex((segment) => segment.name === name);
    if (index < 0) {
      throw new GraphstreamError('invalid_argument', `uploadWithAck: ${path} is not a sealed segment file`);
    }
    const records = await this.uploadAll(pending.slice(0, index + 1), { includeConflicts: true });
    return records[index]!;
  }

  /**
   * Stops the timer, abandons retry waits and waits for the uploads in flight. Idempotent. A
   * lease stops being renewed (it expires after its TTL); release() gives it up instead.
   */
  async stop(): Promise<void> {
    await this.halt();
    this.lease?.stop();
  }

  /**
   * Graceful handover: uploads every sealed segment (as sync() does), stops, and gives the lease
   * up, so that another writer can take it at once, continuing from what this one uploaded.
   */
  async release(): Promise<void> {
    this.assertRunning();
    if (this.lease === null) throw new GraphstreamError('invalid_argument', `uploader for ${this.directory} holds no lease (the lease option) to release`);
    try {
      await this.syncNow(undefined);
    } finally {
      await this.halt();
      await this.lease.release();
    }
  }

  private async halt(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.stopping.abort(new GraphstreamError('closed', `uploader for ${this.directory} stopped`));
    }
    await this.currentCycle;
    await Promise.allSettled([...this.inFlight.values()].map((upload) => upload.done));
  }

  /** `await using uploader = new Uploader(...)` stops it when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  stats(): UploaderStats {
    return {
      ...this.counters,
      inFlight: this.inFlight.size,
      breakerState: this.retry.breaker.state,
      breakerOpened: this.retry.breaker.timesOpened,
      lastError: this.lastError,
    };
  }

  /**
   * Sealed segments not in storage yet: how many, their bytes, and when the oldest of them was last
   * written (ms since the epoch; null when there is none). Under a lease, waits until it is held.
   */
  async backlog(): Promise<{ segments: number; bytes: number; oldestWrittenMs: number | null }> {
    const pending = await this.pending(await this.cache());
    const oldest = pending[0];
    const oldestWrittenMs = oldest === undefined ? null : await stat(oldest.path).then((info) => info.mtimeMs, () => null);
    return { segments: pending.length, bytes: pending.reduce((sum, segment) => sum + segment.size, 0), oldestWrittenMs };
  }

  /** One timer tick: seal, upload what is pending, clean up. Failures are reported, never thrown. */
  async runCycle(): Promise<void> {
    if (this.currentCycle) return this.currentCycle;
    this.currentCycle = this.cycle().finally(() => {
      this.currentCycle = null;
    });
    return this.currentCycle;
  }

  private async cycle(): Promise<void> {
    try {
      await this.sealLive();
      if (this.lease?.fenced) return;
      const cache = await this.cache();
      this.recordLeaseMetrics();
      // Per-segment failures are counted and reported inside upload(); they stay pending.
      await this.uploadAll(await this.pending(cache), { includeConflicts: false }).catch(() => undefined);
      if (this.stopped) return;
      const cleanup = await cache.cleanup();
      if (cleanup.deletedSegments > 0) this.emit('cleanup', cleanup);
    } catch (err) {
      this.report(toGraphstreamError(err, `uploader for ${this.directory}`));
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runCycle().then(() => this.schedule(this.sealIntervalMs));
    }, delayMs);
  }

  private async sealLive(): Promise<void> {
    if (!this.journal) return;
    try {
      await this.journal.sealForUpload();
    } catch (err) {
      throw toGraphstreamError(err, `sealing the live segment of ${this.directory}`);
    }
  }

  private cache(): Promise<SegmentCache> {
    this.cacheOpening ??= this.acquireLease()
      .then(() => this.openCache())
      .then(async (cache) => {
        if (this.lease !== null) await this.beginGeneration(cache);
        return cache;
      })
      .catch((err: unknown) => {
      this.cacheOpening = null;
      throw err;
    });
    return this.cacheOpening;
  }

  /** Under a lease: takes it (waiting while another writer holds it) and uploads into its generation from then on. */
  private async acquireLease(): Promise<void> {
    const lease = this.lease;
    if (lease === null) return;
    if (lease.state === 'idle') {
      lease.on('renewed', () => this.recordLeaseMetrics());
      lease.on('fenced', () => this.recordLeaseMetrics());
      lease.on('released', () => this.recordLeaseMetrics());
      await lease.acquire({ signal: this.stopping.signal, wait: this.leaseWait }).catch((err: unknown) => {
        if (!isGraphstreamError(err, 'locked')) throw err;
        throw new GraphstreamError('fenced', `uploader for ${this.directory} cannot upload: ${err.message}; this journal is not the db's writer`, { cause: err, details: { key: lease.key, retryable: false } });
      });
    }
    lease.check();
    this.generationNow = lease.generation;
    this.destinationNow = { ...this.destinationNow, generation: lease.generation };
    this.recordLeaseMetrics();
  }

  private recordLeaseMetrics(): void {
    const lease = this.lease;
    if (lease === null || this.metrics === undefined) return;
    this.metrics.recordLease({ holder: lease.holder, epoch: lease.epoch, generation: lease.generation, msToExpiry: lease.msToExpiry(), renewals: lease.renewals, fenced: lease.fenced !== null });
  }

  /**
   * Under a lease, before the first upload: the generation's record says where it starts. The
   * lease writes it (Lease.writeGenerationRecord, the one writer of records): a record of this
   * epoch is taken as it is (a promoted follower wrote it, or this uploader did before a
   * failure); else it is written one past what the earlier generations hold (see storedTip).
   * Nothing before its start_seq is uploaded into this generation, and its first segment must
   * continue the record's prev_hash.
   */
  private async beginGeneration(cache: SegmentCache): Promise<void> {
    const lease = this.lease!;
    const where = objectName(this.storage.description, generationRecordKey(this.prefix, this.db, this.generation));
    const start = await this.retry.run(() => lease.writeGenerationRecord(() => this.storedTip(cache)), {
      signal: this.stopping.signal,
      description: `writing ${where}`,
    });
    lease.check();
    this.firstSeq = Math.max(this.firstSeq, start.startSeq);
    if (start.startSeq > 1) {
      const end = { lastSeq: start.startSeq - 1, chainHash: Buffer.from(start.prevHash), source: `the generation record ${where}`, stored: true };
      this.verifiedEnds.set(end.lastSeq, end);
    }
  }

  /**
   * Where this holder's generation starts, for a leader continuing its own journal: one past the
   * last sequence the newest earlier generation holds (its newest segment, or where its record
   * says it starts when it holds none), with the chain hash there. Storage holding sequences the
   * journal does not have is `corrupt` (restore first); a segment ending elsewhere than the
   * journal's segment starting at the same sequence is `conflict` (another chain). A local
   * segment the earlier generation lacks is a hole its writer left: the generation ends before it.
   * The start must be where this journal can ship from with its real prev_hash: a journal that
   * begins past it (restored from a snapshot into an empty db, say) is refused with `gap`, one
   * that ends before it with `corrupt`; no record is written then.
   */
  private async storedTip(cache: SegmentCache): Promise<{ startSeq: number; prevHash: Buffer }> {
    const start = await this.storedTipOf(cache);
    // The record must name the first sequence this journal will ship, with its real prev_hash.
    const names = await cache.segmentFileNames();
    const localSequence = await this.localSequence(names);
    const localFirst = names.length > 0 ? firstSeqOfFileName(names[0]!) : localSequence + 1;
    const where = `${objectName(this.storage.description, generationPrefix(this.prefix, this.db, this.generation))}`;
    if (start.startSeq < localFirst) {
      throw new GraphstreamError(
        'gap',
        `uploader for ${this.directory} cannot begin generation ${this.generation} (${where}): the db holds sequences up to ` +
          `${start.startSeq - 1}, so the generation must start at sequence ${start.startSeq}, but the journal begins at sequence ` +
          `${localFirst} (restored from a snapshot or a compacted copy?); a follower starting empty could not verify its chain. ` +
          `Ship it into the db that holds sequences 1..${localFirst - 1} (the one it was restored from), or start from a journal that holds sequence ${start.startSeq}`,
        { details: { sequence: start.startSeq } },
      );
    }
    if (start.startSeq > localSequence + 1) {
      throw new GraphstreamError(
        'corrupt',
        `uploader for ${this.directory} cannot begin generation ${this.generation} (${where}): the db's generations continue at sequence ` +
          `${start.startSeq}, but the journal ends at ${localSequence}: restore it from storage first (graphstream restore), so that it continues the stored chain`,
      );
    }
    return start;
  }

  private async storedTipOf(cache: SegmentCache): Promise<{ startSeq: number; prevHash: Buffer }> {
    const generations = (await new GenerationRecords(this.storage, this.prefix, this.db).refresh()).filter((g) => g.generation < this.generation);
    const newest = generations.at(-1);
    const names = await cache.segmentFileNames();
    if (newest === undefined) return { startSeq: 1, prevHash: ZERO_HASH };
    const stored = (await listDbKeys(this.storage, this.prefix, this.db)).segments.filter((s) => s.generation === newest.generation && s.firstSeq >= newest.startSeq);
    if (stored.length === 0) return { startSeq: newest.startSeq, prevHash: newest.prevHash };
    const storedStarts = new Set(stored.map((s) => s.firstSeq));
    const localStarts = names.map(firstSeqOfFileName);
    const hole = localStarts.find((first) => first > stored[0]!.firstSeq && first <= stored.at(-1)!.firstSeq && !storedStarts.has(first));
    const last = hole === undefined ? stored.at(-1)! : stored.filter((s) => s.firstSeq < hole).at(-1)!;
    const where = objectName(this.storage.description, last.key);
    const bytes = await this.retry.run(() => this.storage.get(last.key), { signal: this.stopping.signal, description: `reading ${where}` });
    if (bytes === null) throw new GraphstreamError('not_found', `${where} was listed but is gone`, { details: { key: last.key, retryable: true } });
    const tip = isEncrypted(bytes) ? await this.encryptedTip(last, bytes, where) : await this.decodedTip(bytes, `${where}, the newest segment of generation ${newest.generation}`);
    const localSequence = await this.localSequence(names);
    if (tip.lastSeq > localSequence) {
      throw new GraphstreamError(
        'corrupt',
        `${where} holds sequences up to ${tip.lastSeq}, but the journal in ${this.directory} ends at ${localSequence}: ` +
          `it lost sequences that were shipped; restore it from storage first (graphstream restore), so that it continues the stored chain`,
      );
    }
    const localName = names.find((name) => firstSeqOfFileName(name) === last.firstSeq);
    const local = localName === undefined ? null : await readSegmentEnds(join(this.directory, localName), await this.coreLoading);
    if (local !== null && (local.header.lastSeq !== tip.lastSeq || !Buffer.from(local.trailer).equals(tip.chainHash))) {
      throw new GraphstreamError(
        'conflict',
        `${where} ends at sequence ${tip.lastSeq} with chain hash ${tip.chainHash.toString('hex')}, but the journal's ${localName} ends at ` +
          `${local.header.lastSeq} with ${Buffer.from(local.trailer).toString('hex')}: the stored chain is another one; not continuing it`,
      );
    }
    return { startSeq: tip.lastSeq + 1, prevHash: tip.chainHash };
  }

  private async decodedTip(bytes: Uint8Array, where: string): Promise<{ lastSeq: number; chainHash: Buffer }> {
    const decoded = await (await this.coreLoading).decodeSegmentAsync(bytes).catch((err: unknown) => {
      throw toGraphstreamError(err, where);
    });
    return { lastSeq: decoded.header.lastSeq, chainHash: Buffer.from(decoded.chainHash) };
  }

  /**
   * Where an encrypted object of an earlier generation ends, without a key: what that
   * generation's manifest in this directory records at its key (same SHA-256), else what the
   * object's metadata claims (encryption.ts, SegmentClaims: the uploader that put it said so;
   * storedTipOf then compares it with the journal's own segment there, and readers verify the
   * chain whatever it said). An object claiming nothing cannot be told apart from another chain:
   * `conflict`.
   */
  private async encryptedTip(
    last: { key: string; firstSeq: number; generation: number },
    bytes: Uint8Array,
    where: string,
  ): Promise<{ lastSeq: number; chainHash: Buffer }> {
    const core = await this.coreLoading;
    const sha256 = await sha256Hex(bytes);
    const earlier = await SegmentCache.open(this.directory, { ...this.destination, generation: last.generation }, {}, { core });
    const record = [...earlier.uploaded(), earlier.tip()].find((r) => r !== null && r.key === last.key && r.sha256 === sha256);
    if (record) return { lastSeq: record.lastSeq, chainHash: Buffer.from(record.chainHash, 'hex') };
    const claimed = await this.claimedEnd(last.key, where);
    if (claimed !== null) return claimed;
    throw new GraphstreamError(
      'conflict',
      `${where} is encrypted, and neither this journal's manifest records it nor does its metadata say which segment it holds: ` +
        `without a key, the uploader cannot tell whether the stored chain is the journal's; not continuing it ` +
        `(restore the journal from storage, graphstream restore, to continue that chain)`,
    );
  }

  /** Where the object at `key` ends as its metadata claims (an encrypted object's), or null when it claims nothing. */
  private async claimedEnd(key: string, where: string): Promise<{ lastSeq: number; chainHash: Buffer } | null> {
    const storage = this.storage;
    if (storage.head === undefined) return null;
    const head = await this.retry.run(() => storage.head!(key), { signal: this.stopping.signal, description: `reading the metadata of ${where}` });
    const claimed = claimsOf(head?.metadata);
    return claimed === null ? null : { lastSeq: claimed.lastSeq, chainHash: Buffer.from(claimed.chainHash, 'hex') };
  }

  /**
   * Opens this destination's manifest, writing it (empty) when there is none, so that cleanup
   * keeps what this destination still needs from now on. When it has none and an earlier
   * version's manifest.json records keys of this destination, its records become this
   * destination's if the storage holds the newest of them (else they went to another storage
   * with the same keys).
   */
  private async openCache(): Promise<SegmentCache> {
    const cache = await SegmentCache.open(this.directory, this.destination, this.cacheConfig, { core: await this.coreLoading });
    const legacy = await cache.legacyRecords();
    const newest = legacy.at(-1);
    if (newest !== undefined) {
      const listed = await this.retry.run(() => this.storage.list(newest.key), {
        signal: this.stopping.signal,
        description: `looking for ${objectName(this.storage.description, newest.key)}`,
      });
      if (listed.includes(newest.key)) await cache.adoptLegacy(legacy);
    }
    await cache.register();
    return cache;
  }

  /**
   * Uploads `segments` (oldest first); resolves with their records once all are in storage. Each
   * segment's put waits until the one before it has passed its checks. On the timer
   * (`includeConflicts` false) nothing from a segment already found corrupt on is uploaded.
   */
  private async uploadAll(segments: PendingSegment[], options: { includeConflicts: boolean }): Promise<UploadRecord[]> {
    if (segments.length === 0) return [];
    if (!options.includeConflicts) {
      const corrupt = segments.findIndex((segment) => this.corruptSegments.has(segment.name));
      if (corrupt >= 0) segments = segments.slice(0, corrupt);
    }
    await this.checkDestination();
    let previous: Promise<void> = Promise.resolve();
    const uploads = segments.map((segment) => {
      const conflict = this.conflicts.get(segment.name);
      if (conflict) return options.includeConflicts ? Promise.reject(conflict) : Promise.resolve(null);
      const upload = this.upload(segment, previous);
      previous = upload.verified;
      return upload.done;
    });
    const results = await Promise.allSettled(uploads);
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    return results.map((result) => (result as PromiseFulfilledResult<UploadRecord>).value);
  }

  /** One segment, once: concurrent requests for the same segment share one upload. Its checks wait for `previous`'s. */
  private upload(segment: PendingSegment, previous: Promise<void>): Upload {
    const running = this.inFlight.get(segment.name);
    if (running) return running;
    let passed!: () => void;
    let failed!: (err: unknown) => void;
    const verified = new Promise<void>((resolve, reject) => {
      passed = resolve;
      failed = reject;
    });
    verified.catch(() => undefined); // the failure is the upload's; a later segment only waits on it
    const done = this.uploadNow(segment, { previous, passed, failed }).finally(() => {
      passed(); // an upload that ended before its checks (already recorded, stopped) holds nothing up
      this.inFlight.delete(segment.name);
    });
    const upload = { done, verified };
    this.inFlight.set(segment.name, upload);
    return upload;
  }

  /**
   * Once per uploader, before its first upload: what the destination holds beyond this
   * destination's manifest must be segments the local journal has. A key beyond the journal's
   * sequence means the journal lost sequences that were shipped (`corrupt`: restore from storage
   * first); a key where no local segment starts, within the local segments, is another chain
   * (`conflict`). A failure to list is retried on the next call.
   */
  private checkDestination(): Promise<void> {
    this.destinationChecked ??= this.checkDestinationNow().catch((err: unknown) => {
      const error = toGraphstreamError(err, `checking ${describeDestination(this.destination)} against ${this.directory}`);
      if (error.code === 'corrupt' || error.code === 'conflict') {
        this.report(error);
      } else {
        this.destinationChecked = null;
        this.recordFailure(error);
      }
      throw error;
    });
    return this.destinationChecked;
  }

  private async checkDestinationNow(): Promise<void> {
    const cache = await this.cache();
    const folder = generationPrefix(this.prefix, this.db, this.generation);
    const tip = cache.tip();
    const tipFirstSeq = tip === null ? 0 : (sequenceOfKey(folder, tip.key) ?? 0);
    const stored = await this.retry.run(() => listSegmentKeys(this.storage, folder, tipFirstSeq), {
      signal: this.stopping.signal,
      description: `listing ${objectName(this.storage.description, folder)}`,
    });
    if (stored.length === 0) return;
    const local = await cache.segmentFileNames();
    const localFirstSeqs = new Set(local.map(firstSeqOfFileName));
    const oldestLocal = local.length > 0 ? firstSeqOfFileName(local[0]!) : Infinity;
    const localSequence = await this.localSequence(local);
    for (const { key, firstSeq } of stored) {
      if (localFirstSeqs.has(firstSeq)) continue; // the put finds out whether it holds the same bytes
      const where = objectName(this.storage.description, key);
      if (firstSeq > localSequence) {
        throw new GraphstreamError(
          'corrupt',
          `${where} holds sequences from ${firstSeq}, but the journal in ${this.directory} ends at ${localSequence}: ` +
            `it lost sequences that were shipped; restore it from storage first (graphstream restore), so that it continues the stored chain`,
        );
      }
      if (firstSeq > oldestLocal) {
        throw new GraphstreamError(
          'conflict',
          `${where} starts at sequence ${firstSeq}, where no segment of the journal in ${this.directory} starts: ` +
            `the destination holds another chain than the journal; not uploading into it`,
        );
      }
    }
  }

  /** The journal's last sequence: the journal's own, or (sidecar) what its newest segment file says. */
  private async localSequence(names: readonly string[]): Promise<number> {
    if (this.journal?.sequence !== undefined) return this.journal.sequence;
    const newest = names.at(-1);
    if (newest === undefined) return 0;
    const ends = await readSegmentEnds(join(this.directory, newest), await this.coreLoading);
    return ends?.header.lastSeq ?? firstSeqOfFileName(newest) - 1;
  }

  /**
   * A segment is staged (read and hashed) as soon as a staging slot is free, so the next one is
   * ready when a put slot frees; its place in the put queue is taken before staging, so puts start
   * oldest first whatever order the reads finish in. It is checked once the segment before it has
   * been; a put starts only after that. The put slot covers the put and its retries. The manifest
   * write happens after both slots are released, so the next put overlaps it; while other uploads
   * are in flight it waits up to MANIFEST_HOLD_MS for them, so they share it. The record resolves
   * (and 'uploaded' is emitted) only once the manifest on disk has it.
   */
  private async uploadNow(segment: PendingSegment, check: CheckTurn): Promise<UploadRecord> {
    const cache = await this.cache();
    const attempt = { made: false };
    try {
      const transfer = await this.transfer(segment, cache, check, attempt);
      if ('uploaded' in transfer) return transfer.uploaded;
      const othersStillSending = this.transfersInFlight > 0;
      const record = await cache.markUploaded(transfer.put, othersStillSending ? { holdMs: MANIFEST_HOLD_MS } : {});
      this.counters.succeeded++;
      this.counters.bytes += record.size;
      if (transfer.failuresBefore === this.failuresRecorded && segment.firstSeq >= this.lastErrorFirstSeq) this.lastError = null;
      this.metrics?.recordUpload(record.size, transfer.putMs);
      this.emit('uploaded', record);
      return record;
    } catch (err) {
      const error = toGraphstreamError(err, `uploading ${segment.path}`);
      check.failed(error);
      if (attempt.made) {
        this.counters.failed++;
        this.metrics?.recordUploadError();
      } else if (error.code === 'circuit_open') {
        this.counters.rejectedByBreaker++;
      }
      if (error.code === 'conflict') this.conflicts.set(segment.name, error);
      const reported = !isRetryable(error) && error.code !== 'circuit_open' && error.code !== 'closed' && !this.waitingBehind.has(error);
      if (reported) this.report(error, segment.firstSeq);
      else this.recordFailure(error, segment.firstSeq);
      throw error;
    }
  }

  /** Stages, checks and puts the segment unless the manifest has it already; counted in transfersInFlight meanwhile. */
  private async transfer(
    segment: PendingSegment,
    cache: SegmentCache,
    check: CheckTurn,
    attempt: { made: boolean },
  ): Promise<{ uploaded: UploadRecord } | { put: Omit<UploadRecord, 'uploadedAt'>; putMs: number; failuresBefore: number }> {
    this.transfersInFlight++;
    try {
      return await this.staging.run(async () => {
        const already = cache.record(segment.name);
        if (already) return { uploaded: already };
        this.assertUploading(segment);
        const turn = this.slots.acquire();
        let staged: StagedFile | null = null;
        let freeBytes: (() => void) | undefined;
        try {
          // the shared byte budget: wait for room before reading the segment (taken in queue order, like the turn)
          // (twice for a ciphertext beside the plaintext)
          freeBytes = await this.limits?.reserveBytes(segment.size * (this.encryption !== undefined ? 2 : 1));
          const checked = await this.stageChecked(segment, cache, check);
          staged = checked.staged;
          await turn;
          this.assertUploading(segment);
          const started = this.clock.now();
          const failuresBefore = this.failuresRecorded;
          const key = this.keyFor(segment.firstSeq);
          const lease = this.lease;
          const { lastSeq, chainHash } = checked.end;
          const claims: SegmentClaims = { plaintextSha256: checked.plaintextSha256, lastSeq, chainHash: chainHash.toString('hex') };
          // an encrypted object says which segment it holds: a restarted uploader recognises it by that
          const options = { ifNoneMatch: '*' as const, ...(checked.encrypted ? { metadata: claimsMetadata(claims) } : {}) };
          const description = `uploading ${segment.path} to ${objectName(this.storage.description, key)}`;
          let stored: { size: number; sha256: string } = staged;
          try {
            await this.retry.run(
              () => {
                lease?.check();
                if (!attempt.made) this.counters.attempted++;
                attempt.made = true;
                const put = () => staged!.put(key, lease === null ? options : { ...options, signal: lease.signal });
                return this.limits === undefined ? put() : this.limits.put(put);
              },
              {
                signal: this.stopping.signal,
                description,
                onRetry: () => {
                  this.counters.retries++;
                },
              },
            );
          } catch (err) {
            if (!isGraphstreamError(err, 'conflict')) throw lease?.fenced ?? err;
            const own = await this.ownEarlierPut(key, claims, description);
            if (own === null) {
              lease?.fence(`another writer holds ${objectName(this.storage.description, key)}`, err);
              throw lease?.fenced ?? err;
            }
            stored = own;
          }
          // acknowledged only when the put completed while the lease was still ours
          lease?.check();
          return {
            put: { name: segment.name, key, size: stored.size, sha256: stored.sha256, lastSeq, chainHash: chainHash.toString('hex') },
            putMs: this.clock.now() - started,
            failuresBefore,
          };
        } finally {
          staged?.release();
          freeBytes?.();
          // a failed read still waits for its turn, so that the slot is handed on in order
          await turn;
          this.slots.release();
        }
      });
    } finally {
      this.transfersInFlight--;
    }
  }

  /**
   * After a create-only put met another object at `key`: whether it is this very segment, put
   * earlier (before a crash, or before the recipients changed), so that it counts as uploaded.
   * It is when its metadata claims this plaintext, last sequence and chain hash (an encrypted
   * put: age output differs each time, so bytes cannot be compared), or when it is this plaintext
   * segment itself. Its size and SHA-256 then, for the record; null for anything else (no
   * metadata, other metadata, other bytes): a `conflict`, nothing overwritten.
   */
  private async ownEarlierPut(key: string, claims: SegmentClaims, description: string): Promise<{ size: number; sha256: string } | null> {
    const storage = this.storage;
    const head = storage.head === undefined ? null : await this.retry.run(() => storage.head!(key), { signal: this.stopping.signal, description });
    const claimed = claimsOf(head?.metadata);
    const bytes = await this.retry.run(() => storage.get(key), { signal: this.stopping.signal, description });
    if (bytes === null) {
      throw new GraphstreamError('storage', `${description}: the object that was there is gone (retryable)`, { details: { key, retryable: true } });
    }
    const sha256 = await sha256Hex(bytes);
    const own = claimed !== null ? sameClaims(claimed, claims) && isEncrypted(bytes) : sha256 === claims.plaintextSha256;
    return own ? { size: bytes.byteLength, sha256 } : null;
  }

  /**
   * The segment staged for its put and checked: the bytes the put sends decode and verify in full
   * (several segments at once, one per core at most), and then, once the segment before it has
   * passed, it must continue that one's chain. A failure of the segment before fails this one
   * too: it waits behind it.
   */
  private async stageChecked(
    segment: PendingSegment,
    cache: SegmentCache,
    check: CheckTurn,
  ): Promise<{ staged: StagedFile; end: ChainEnd; plaintextSha256: string; encrypted: boolean }> {
    if (segment.damaged !== undefined) {
      throw this.foundCorrupt(segment, new GraphstreamError('corrupt', `${segment.path} is corrupt, not uploaded: ${segment.damaged}`));
    }
    const encryption = this.encryption;
    const staging = await this.stage(segment, encryption);
    let { staged } = staging;
    const { plaintextSha256, ownBytes } = staging;
    try {
      const facts = await this.checking.run(() => this.checkSegment(segment, plaintextSha256, ownBytes)).catch((err: unknown) => {
        throw isGraphstreamError(err, 'corrupt') ? this.foundCorrupt(segment, err) : err;
      });
      try {
        await check.previous;
      } catch (err) {
        const error = toGraphstreamError(err);
        const waiting = new GraphstreamError(error.code, `${segment.path} is not uploaded: it waits behind an earlier segment (${error.message})`, {
          cause: err,
        });
        this.waitingBehind.add(waiting);
        throw waiting;
      }
      const end = await this.checkContinuity(segment, cache, facts).catch((err: unknown) => {
        throw isGraphstreamError(err, 'corrupt') ? this.foundCorrupt(segment, err) : err;
      });
      this.corruptSegments.delete(segment.name);
      check.passed();
      if (encryption !== undefined && ownBytes !== null) staged = await this.encrypted(ownBytes, segment, encryption);
      return { staged, end, plaintextSha256, encrypted: encryption !== undefined };
    } catch (err) {
      staged.release();
      throw err;
    }
  }

  /**
   * The segment read for its put, and the SHA-256 of its plaintext, which its check compares with
   * the file it reads again. An encrypted upload is staged as its ciphertext, read, hashed and
   * encrypted in one native task off the JS thread (by the storage, which keeps the ciphertext
   * where it sends it from, or by the core); those bytes are then the plaintext that was
   * encrypted. Otherwise, without native staging, the segment is read here (`ownBytes`): the check
   * decodes those very bytes, and an encrypted upload encrypts them once they have passed.
   */
  private async stage(
    segment: PendingSegment,
    encryption: UploadEncryption | undefined,
  ): Promise<{ staged: StagedFile; plaintextSha256: string; ownBytes: Uint8Array | null }> {
    const storage = this.storage;
    if (encryption !== undefined) {
      if (storage.stageEncryptedFile) {
        const staged = await storage.stageEncryptedFile(segment.path, encryption);
        return { staged, plaintextSha256: staged.plaintextSha256, ownBytes: null };
      }
      const core = await this.coreLoading;
      if (core.encryptFileForUpload) {
        const file = await core.encryptFileForUpload(segment.path, encryption).catch((err: unknown) => {
          throw toGraphstreamError(err);
        });
        return { staged: this.held(file.bytes, file.sha256), plaintextSha256: file.plaintextSha256, ownBytes: null };
      }
    } else if (storage.stageFile) {
      const staged = await storage.stageFile(segment.path);
      return { staged, plaintextSha256: staged.sha256, ownBytes: null };
    }
    const bytes = await readFile(segment.path).catch((err: unknown) => {
      throw toGraphstreamError(err, `reading ${segment.path} for upload`);
    });
    const sha256 = await sha256Hex(bytes);
    return { staged: this.held(bytes, sha256), plaintextSha256: sha256, ownBytes: bytes };
  }

  /** Bytes held in JavaScript for their put: every attempt sends them, with their SHA-256. */
  private held(bytes: Uint8Array, sha256: string): StagedFile {
    return { size: bytes.byteLength, sha256, put: (key, options) => this.storage.put(key, bytes, { ...options, sha256 }), release: () => undefined };
  }

  /**
   * The checked segment staged as its ciphertext: every attempt of this upload puts the same
   * bytes (a retry after a put that landed is then a no-op). The put, its size and its SHA-256
   * are of what is stored.
   */
  private async encrypted(sealed: Uint8Array, segment: PendingSegment, encryption: UploadEncryption): Promise<StagedFile> {
    const stored = await encryptForUpload(await this.coreLoading, sealed, encryption, segment.path);
    return this.held(stored, await sha256Hex(stored));
  }

  private foundCorrupt(segment: PendingSegment, error: GraphstreamError): GraphstreamError {
    this.counters.corrupt++;
    this.corruptSegments.set(segment.name, error);
    return error;
  }

  /** Decodes and verifies the segment on its own; see decodeChecked. */
  private async checkSegment(segment: PendingSegment, stagedSha256: string, ownBytes: Uint8Array | null): Promise<SegmentFacts> {
    if (ownBytes !== null) return this.decodeChecked(segment, ownBytes);
    // the storage holds its own copy of the bytes: read them again here, and make sure they are the same
    const into = this.checkReads.take();
    const bytes = await readFileInto(segment.path, into).catch((err: unknown) => {
      throw toGraphstreamError(err, `reading ${segment.path} to check it`);
    });
    try {
      const sha256 = await sha256Hex(bytes);
      if (sha256 !== stagedSha256) {
        throw new GraphstreamError('corrupt', `${segment.path} changed while it was read for upload (SHA-256 ${stagedSha256}, then ${sha256})`);
      }
      return await this.decodeChecked(segment, bytes);
    } finally {
      const holder = this.checkReads.landed(bytes, into);
      if (holder !== null) this.checkReads.give(holder);
    }
  }

  /**
   * What a follower will check, before the put: the whole segment decodes (header, body checksum,
   * entry CRCs, the chain through it, the trailer), and its header agrees with its entries and its
   * file (name, size, flags, reserved bytes zero, prev_segment_checksum). Any failure is `corrupt`.
   */
  private async decodeChecked(segment: PendingSegment, bytes: Uint8Array): Promise<SegmentFacts> {
    const core = await this.coreLoading;
    const into = this.checkBodies.take();
    let decoded: RawSegment;
    try {
      decoded = await core.decodeSegmentAsync(bytes, into === undefined ? {} : { into });
    } catch (err) {
      if (into !== undefined) this.checkBodies.give(into);
      const error = toGraphstreamError(err);
      throw new GraphstreamError('corrupt', `${segment.path} is corrupt, not uploaded: ${error.message} (${error.code})`, { cause: err });
    }
    const { header } = decoded;
    const facts = { lastSeq: header.lastSeq, startHash: Buffer.from(decoded.startHash), chainHash: Buffer.from(decoded.chainHash) };
    const holder = this.checkBodies.landed(decoded.body, into);
    if (holder !== null) this.checkBodies.give(holder);
    const corrupt = (what: string) => new GraphstreamError('corrupt', `${segment.path} is corrupt, not uploaded: ${what}`);
    const problem = sealedHeaderProblem(header, bytes);
    if (problem !== null) throw corrupt(problem.message);
    if ((header.flags & FLAG_HAS_CHAIN_HASH) === 0) throw corrupt(`flags 0x${header.flags.toString(16)} are not those of a sealed segment with a trailer`);
    if (bytes.byteLength !== HEADER_SIZE + header.bodyLen + TRAILER_SIZE) throw corrupt(`${bytes.byteLength} bytes, not header + body_len ${header.bodyLen} + trailer`);
    if (header.firstSeq !== segment.firstSeq) throw corrupt(`first_seq ${header.firstSeq} is not its file name's ${segment.firstSeq}`);
    if (header.prevSegmentChecksum !== facts.startHash.readBigUInt64BE(0)) {
      throw corrupt(`prev_segment_checksum ${header.prevSegmentChecksum} is not the start of its first entry's prev_hash`);
    }
    return facts;
  }

  /** The segment's first entry must continue the chain end before it (`corrupt` if not, `gap` when nothing has that end). */
  private async checkContinuity(segment: PendingSegment, cache: SegmentCache, facts: SegmentFacts): Promise<ChainEnd> {
    const before = await this.chainEndBefore(segment, cache);
    if (before === null || (before.stored && before.lastSeq < segment.firstSeq - 1)) {
      const holds = before === null ? 'nothing before it' : `sequences up to ${before.lastSeq} only`;
      throw new GraphstreamError(
        'gap',
        `${segment.path} starts at sequence ${segment.firstSeq}, but ${describeDestination(this.destination)} holds ${holds}, ` +
          `and the segments before it are no longer in ${this.directory}: copy them into the destination from one that has them`,
      );
    }
    if (before.lastSeq !== segment.firstSeq - 1 || !before.chainHash.equals(facts.startHash)) {
      throw new GraphstreamError(
        'corrupt',
        `${segment.path} is corrupt, not uploaded: it starts at sequence ${segment.firstSeq} from chain hash ${facts.startHash.toString('hex')}, ` +
          `but ${before.source} ends at ${before.lastSeq} with ${before.chainHash.toString('hex')}`,
      );
    }
    const end = { lastSeq: facts.lastSeq, chainHash: facts.chainHash, source: segment.path };
    this.verifiedEnds.set(end.lastSeq, end);
    this.verifiedEnds.delete(before.lastSeq);
    return end;
  }

  /**
   * Where the chain stood before `segment`: nothing for the first segment; else the segment before
   * it as checked here, as this destination's manifest recorded it, as its local file ends (when the
   * manifest lacks it), or as the destination holds it (its object just before this segment's key).
   * Null when none of them has it.
   */
  private async chainEndBefore(segment: PendingSegment, cache: SegmentCache): Promise<ChainEnd | null> {
    const lastSeq = segment.firstSeq - 1;
    if (lastSeq === 0) return { lastSeq, chainHash: ZERO_HASH, source: 'the start of the journal' };
    const checked = this.verifiedEnds.get(lastSeq);
    if (checked) return checked;
    const record = cache.recordEndingAt(lastSeq);
    if (record) return { lastSeq, chainHash: Buffer.from(record.chainHash, 'hex'), source: `${record.name} as uploaded to ${record.key}` };
    const names = await cache.segmentFileNames();
    const previous = names.filter((name) => name < segment.name).at(-1);
    if (previous !== undefined) {
      const ends = await readSegmentEnds(join(this.directory, previous), await this.coreLoading);
      if (ends) return { lastSeq: ends.header.lastSeq, chainHash: ends.trailer, source: join(this.directory, previous) };
    }
    return this.storedChainEndBefore(segment);
  }

  /** The end of the destination's object just before `segment`'s key, or null when it holds none. */
  private async storedChainEndBefore(segment: PendingSegment): Promise<ChainEnd | null> {
    const folder = generationPrefix(this.prefix, this.db, this.generation);
    const description = `reading ${objectName(this.storage.description, folder)} for the segment before ${segment.name}`;
    const listed = await this.retry.run(() => listSegmentKeys(this.storage, folder, 0), { signal: this.stopping.signal, description });
    const before = listed.filter((stored) => stored.firstSeq < segment.firstSeq).at(-1)?.key;
    if (before === undefined) return null;
    const bytes = await this.retry.run(() => this.storage.get(before), { signal: this.stopping.signal, description });
    if (bytes === null) return null;
    const where = objectName(this.storage.description, before);
    if (isEncrypted(bytes)) {
      // without a key: where its metadata says it ends (the segment must start there, and readers verify it does)
      const claimed = await this.claimedEnd(before, where);
      if (claimed === null) {
        throw new GraphstreamError(
          'conflict',
          `${where}, the object before ${segment.name}, is encrypted and its metadata does not say where it ends: ` +
            `without a key, the uploader cannot tell whether ${segment.name} continues it; not uploading it`,
        );
      }
      return { ...claimed, source: `${where} (as its metadata says)`, stored: true };
    }
    const core = await this.coreLoading;
    const decoded = await core.decodeSegmentAsync(bytes).catch((err: unknown) => {
      throw toGraphstreamError(err, `${objectName(this.storage.description, before)}, the object before ${segment.name}`);
    });
    return { lastSeq: decoded.header.lastSeq, chainHash: Buffer.from(decoded.chainHash), source: objectName(this.storage.description, before), stored: true };
  }

  private assertUploading(segment: PendingSegment): void {
    if (this.stopped) throw new GraphstreamError('closed', `uploader for ${this.directory} stopped before uploading ${segment.name}`);
  }

  private recordFailure(err: GraphstreamError, firstSeq = 0): void {
    this.lastError = err;
    this.lastErrorFirstSeq = firstSeq;
    this.failuresRecorded++;
  }

  private report(err: GraphstreamError, firstSeq = 0): void {
    this.recordFailure(err, firstSeq);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private assertRunning(): void {
    if (this.stopped) throw new GraphstreamError('closed', `uploader for ${this.directory} is stopped`);
  }
}
