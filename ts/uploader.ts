/**
 * Ships sealed journal segments to object storage: seals the live segment on a timer, finds sealed
 * segments the manifest does not record as uploaded, and uploads them oldest first with bounded
 * concurrency, retries and a circuit breaker. Nothing is deleted before it is confirmed in storage.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { GraphstreamError, toGraphstreamError } from './errors.js';
import { SegmentCache, type CacheConfig, type CleanupStats, type PendingSegment, type UploadRecord } from './cache.js';
import { segmentKey } from './format.js';
import type { GraphstreamMetrics } from './metrics.js';
import { RetryPolicy, isRetryable, systemClock, type BreakerState, type Clock, type RetryConfigInit } from './retry.js';
import { sha256Hex } from './storage/bytes.js';
import type { SegmentStorage, StagedFile } from './storage/types.js';

/** What the uploader needs from a journal (a `Journal` is one): its directory and a way to seal the live segment. */
export interface SealableJournal {
  readonly directory: string;
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
  /** 0..0xffff; 0 (the default) is the incremental journal */
  generation?: number;
  /** how often to seal and upload; default 1000 ms */
  sealIntervalMs?: number;
  /** uploads in flight at once; default 4 */
  concurrency?: number;
  retry?: RetryConfigInit;
  cache?: Partial<CacheConfig>;
  metrics?: GraphstreamMetrics;
  /** time source for retry backoff and the breaker (tests) */
  clock?: Clock;
}

export interface UploaderStats {
  /** segment uploads started (each one ends as succeeded or failed) */
  attempted: number;
  succeeded: number;
  /** uploads that gave up (after retries, or failing fast on an open breaker); they stay pending */
  failed: number;
  /** bytes confirmed in storage */
  bytes: number;
  /** extra put attempts made after a retryable failure */
  retries: number;
  inFlight: number;
  breakerState: BreakerState;
  /** times the circuit breaker opened */
  breakerOpened: number;
  lastError: GraphstreamError | null;
}

export interface UploaderEvents {
  uploaded: [record: UploadRecord];
  /** a failure that waiting will not fix (a `conflict`, a refused request, a failed seal or cleanup) */
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
  readonly generation: number;
  readonly sealIntervalMs: number;
  readonly concurrency: number;
  readonly retry: RetryPolicy;

  private readonly journal: SealableJournal | undefined;
  private readonly storage: SegmentStorage;
  private readonly metrics: GraphstreamMetrics | undefined;
  private readonly cacheConfig: Partial<CacheConfig>;
  private readonly clock: Clock;
  /** puts in flight: `concurrency` */
  private readonly slots: Slots;
  /** segments read and held for a put, in flight or next: `concurrency + 1`, so a read overlaps the puts */
  private readonly staging: Slots;
  private readonly stopping = new AbortController();
  private cacheOpening: Promise<SegmentCache> | null = null;
  private readonly inFlight = new Map<string, Promise<UploadRecord>>();
  /** uploads whose put has not settled yet (those of inFlight that are not just writing the manifest) */
  private transfersInFlight = 0;
  /** segments whose key holds different bytes: not retried on the timer (it cannot succeed) */
  private readonly conflicts = new Map<string, GraphstreamError>();
  private timer: NodeJS.Timeout | null = null;
  private currentCycle: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  private counters = { attempted: 0, succeeded: 0, failed: 0, bytes: 0, retries: 0 };
  private lastError: GraphstreamError | null = null;

  constructor(options: UploaderOptions) {
    super();
    if ((options.journal === undefined) === (options.directory === undefined)) {
      throw new GraphstreamError('invalid_argument', 'Uploader: give exactly one of `journal` and `directory`');
    }
    this.journal = options.journal;
    this.directory = resolve(options.journal?.directory ?? options.directory!);
    this.storage = options.storage;
    this.prefix = options.prefix ?? '';
    this.db = options.db;
    this.generation = options.generation ?? 0;
    this.sealIntervalMs = options.sealIntervalMs ?? DEFAULT_SEAL_INTERVAL_MS;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    if (this.prefix !== '' && !this.prefix.endsWith('/')) {
      throw new GraphstreamError('invalid_argument', `Uploader: prefix must be empty or end with '/', got '${this.prefix}'`);
    }
    if (!Number.isInteger(this.generation) || this.generation < 0 || this.generation > 0xffff) {
      throw new GraphstreamError('invalid_argument', `Uploader: generation must be an integer in 0..65535, got ${this.generation}`);
    }
    this.keyFor(0); // validates db
    if (!Number.isInteger(this.sealIntervalMs) || this.sealIntervalMs < 1) {
      throw new GraphstreamError('invalid_argument', `Uploader: sealIntervalMs must be an integer >= 1, got ${this.sealIntervalMs}`);
    }
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new GraphstreamError('invalid_argument', `Uploader: concurrency must be an integer >= 1, got ${this.concurrency}`);
    }
    this.metrics = options.metrics;
    this.cacheConfig = options.cache ?? {};
    this.clock = options.clock ?? systemClock;
    this.retry = new RetryPolicy(options.retry, { clock: this.clock });
    this.slots = new Slots(this.concurrency);
    this.staging = new Slots(this.concurrency + 1);
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
   * leaving the failed segments pending for the next cycle.
   */
  async sync(): Promise<void> {
    this.assertRunning();
    await this.sealLive();
    const cache = await this.cache();
    await this.uploadAll(await cache.pending(), { includeConflicts: true });
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
    const pending = await cache.pending();
    const index = pending.findIndex((segment) => segment.name === name);
    if (index < 0) {
      throw new GraphstreamError('invalid_argument', `uploadWithAck: ${path} is not a sealed segment file`);
    }
    const records = await this.uploadAll(pending.slice(0, index + 1), { includeConflicts: true });
    return records[index]!;
  }

  /** Stops the timer, abandons retry waits and waits for the uploads in flight. Idempotent. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.stopping.abort(new GraphstreamError('closed', `uploader for ${this.directory} stopped`));
    }
    await this.currentCycle;
    await Promise.allSettled([...this.inFlight.values()]);
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
      const cache = await this.cache();
      // Per-segment failures are counted and reported inside upload(); they stay pending.
      await this.uploadAll(await cache.pending(), { includeConflicts: false }).catch(() => undefined);
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
    this.cacheOpening ??= SegmentCache.open(this.directory, this.cacheConfig);
    return this.cacheOpening;
  }

  /** Uploads `segments` (oldest first); resolves with their records once all are in storage. */
  private async uploadAll(segments: PendingSegment[], options: { includeConflicts: boolean }): Promise<UploadRecord[]> {
    const uploads = segments.map((segment) => {
      const conflict = this.conflicts.get(segment.name);
      if (conflict) return options.includeConflicts ? Promise.reject(conflict) : Promise.resolve(null);
      return this.upload(segment);
    });
    const results = await Promise.allSettled(uploads);
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    return results.map((result) => (result as PromiseFulfilledResult<UploadRecord>).value);
  }

  /** One segment, once: concurrent requests for the same segment share one upload. */
  private upload(segment: PendingSegment): Promise<UploadRecord> {
    const running = this.inFlight.get(segment.name);
    if (running) return running;
    const upload = this.uploadNow(segment).finally(() => this.inFlight.delete(segment.name));
    this.inFlight.set(segment.name, upload);
    return upload;
  }

  /**
   * A segment is staged (read and hashed) as soon as a staging slot is free, so the next one is
   * ready when a put slot frees; its place in the put queue is taken before staging, so puts start
   * oldest first whatever order the reads finish in. The put slot covers the put and its retries.
   * The manifest write happens after both slots are released, so the next put overlaps it; while
   * other uploads are in flight it waits up to MANIFEST_HOLD_MS for them, so they share it. The
   * record resolves (and 'uploaded' is emitted) only once the manifest on disk has it.
   */
  private async uploadNow(segment: PendingSegment): Promise<UploadRecord> {
    const cache = await this.cache();
    try {
      const transfer = await this.transfer(segment, cache);
      if ('uploaded' in transfer) return transfer.uploaded;
      const othersStillSending = this.transfersInFlight > 0;
      const record = await cache.markUploaded(transfer.put, othersStillSending ? { holdMs: MANIFEST_HOLD_MS } : {});
      this.counters.succeeded++;
      this.counters.bytes += record.size;
      this.metrics?.recordUpload(record.size, transfer.putMs);
      this.emit('uploaded', record);
      return record;
    } catch (err) {
      const error = toGraphstreamError(err, `uploading ${segment.path}`);
      this.counters.failed++;
      this.metrics?.recordUploadError();
      if (error.code === 'conflict') this.conflicts.set(segment.name, error);
      this.lastError = error;
      if (!isRetryable(error) && error.code !== 'circuit_open' && error.code !== 'closed') this.report(error);
      throw error;
    }
  }

  /** Stages and puts the segment unless the manifest has it already; counted in transfersInFlight meanwhile. */
  private async transfer(
    segment: PendingSegment,
    cache: SegmentCache,
  ): Promise<{ uploaded: UploadRecord } | { put: Omit<UploadRecord, 'uploadedAt'>; putMs: number }> {
    this.transfersInFlight++;
    try {
      return await this.staging.run(async () => {
        const already = cache.record(segment.name);
        if (already) return { uploaded: already };
        this.assertUploading(segment);
        this.counters.attempted++;
        const turn = this.slots.acquire();
        let staged: StagedFile | null = null;
        try {
          staged = await this.stage(segment);
          await turn;
          this.assertUploading(segment);
          const started = this.clock.now();
          const key = this.keyFor(segment.firstSeq);
          await this.retry.run(() => staged!.put(key, { ifNoneMatch: '*' }), {
            signal: this.stopping.signal,
            description: `uploading ${segment.path} to ${this.storage.description}${key}`,
            onRetry: () => {
              this.counters.retries++;
            },
          });
          return { put: { name: segment.name, key, size: staged.size, sha256: staged.sha256 }, putMs: this.clock.now() - started };
        } finally {
          staged?.release();
          // a failed read still waits for its turn, so that the slot is handed on in order
          await turn;
          this.slots.release();
        }
      });
    } finally {
      this.transfersInFlight--;
    }
  }

  private assertUploading(segment: PendingSegment): void {
    if (this.stopped) throw new GraphstreamError('closed', `uploader for ${this.directory} stopped before uploading ${segment.name}`);
  }

  /** The segment read and hashed: by the storage when it can stage files, else read here for put(). */
  private async stage(segment: PendingSegment): Promise<StagedFile> {
    const storage = this.storage;
    if (storage.stageFile) return storage.stageFile(segment.path);
    const bytes = await readFile(segment.path).catch((err: unknown) => {
      throw toGraphstreamError(err, `reading ${segment.path} for upload`);
    });
    const sha256 = await sha256Hex(bytes);
    return { size: bytes.byteLength, sha256, put: (key, options) => storage.put(key, bytes, options), release: () => undefined };
  }

  private report(err: GraphstreamError): void {
    this.lastError = err;
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private assertRunning(): void {
    if (this.stopped) throw new GraphstreamError('closed', `uploader for ${this.directory} is stopped`);
  }
}
