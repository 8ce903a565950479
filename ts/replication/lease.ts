/**
 * One writer per db: the lease object `{prefix}{db}/lease.json` (FORMAT.md, "Ownership and
 * generations"), taken and renewed with conditional writes only. A Lease acquires it (creating it,
 * or taking it over once released or expired), renews it every ttl/3, and counts itself valid only
 * until ttl − margin after it sent its last successful write, on its own monotonic clock; a
 * contender takes over only after seeing the same version for ttl + margin on its own. So the
 * holder stops before anyone else can start, as long as the two clocks run at nearly the same rate.
 *
 * A holder whose renewal fails, whose deadline passes, or that meets a newer epoch or a conflict on
 * any of its keys is fenced: `signal` aborts, 'fenced' is emitted, and `check()` throws `fenced`
 * from then on. It never writes under that epoch again.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { abortError, checkSignal, throwIfAborted } from '../abort.js';
import { GraphstreamError, isGraphstreamError, toGraphstreamError } from '../errors.js';
import { objectName } from '../storage/names.js';
import type { PutOptions, SegmentStorage, VersionedObject } from '../storage/types.js';
import { COMPACTED_GENERATION_BIT, generationRecordKey, leaseKey, listDbKeys, listGenerationRecordKeys } from './layout.js';
import { ZERO_HASH } from '../format/constants.js';
import { MIN_LEASE_TTL_MS, parseGenerationRecord, parseLeaseRecord, serializeGenerationRecord, serializeLeaseRecord, type GenerationRecord, type LeaseRecord } from './ownership.js';
import { isRetryable } from './retry.js';

export const DEFAULT_LEASE_TTL_MS = 10_000;

export interface LeaseOptions {
  storage: SegmentStorage;
  /** key prefix, empty or ending in `/` (e.g. `wal/`) */
  prefix?: string;
  db: string;
  /** who holds it, 1..256 characters: `{host}/{pid}/{random}` by default, unique per Lease */
  holder?: string;
  /** how long the lease lasts without a renewal; at least 3000 ms, default 10 000 */
  ttlMs?: number;
}

export type LeaseState = 'idle' | 'acquiring' | 'held' | 'released' | 'stopped' | 'fenced';

export interface LeaseEvents {
  acquired: [lease: LeaseRecord];
  renewed: [lease: LeaseRecord];
  /** the lease was lost: nothing may be written under it any more */
  fenced: [err: GraphstreamError];
  released: [];
}

export interface AcquireOptions {
  signal?: AbortSignal;
  /**
   * true (the default): wait while another holder has it, until it is released or expires;
   * false: fail at once with `locked`
   */
  wait?: boolean;
}

/** Where a new generation starts: its first sequence and the chain hash after the one before it. */
export interface GenerationStart {
  startSeq: number;
  prevHash: Buffer;
}

function checkGenerationStart(startSeq: number, prevHash: Buffer, where: string): void {
  if (!Number.isSafeInteger(startSeq) || startSeq < 1) {
    throw new GraphstreamError('invalid_argument', `${where}: a generation's start_seq must be a positive integer, got ${String(startSeq)}`);
  }
  if (!Buffer.isBuffer(prevHash) || prevHash.length !== 32) {
    throw new GraphstreamError('invalid_argument', `${where}: a generation's prev_hash must be a 32-byte Buffer`);
  }
  if (startSeq === 1 && !prevHash.equals(ZERO_HASH)) {
    throw new GraphstreamError('invalid_argument', `${where}: a generation starting at sequence 1 continues the zero chain hash, not ${prevHash.toString('hex')}`);
  }
}

/** The safety margin of a TTL: max(ttl / 5, 1000 ms). */
export function leaseMarginMs(ttlMs: number): number {
  return Math.max(Math.floor(ttlMs / 5), 1000);
}

function defaultHolder(): string {
  return `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`.slice(-256);
}

export class Lease extends EventEmitter<LeaseEvents> {
  readonly storage: SegmentStorage;
  readonly prefix: string;
  readonly db: string;
  readonly holder: string;
  readonly ttlMs: number;
  readonly marginMs: number;
  /** the lease object's key */
  readonly key: string;

  private stateNow: LeaseState = 'idle';
  private record: LeaseRecord | null = null;
  private etag: string | null = null;
  /** performance.now() until which the lease counts as ours */
  private deadline = 0;
  private renewTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  /** the write in flight (acquire, renew, release): writes of the lease object never overlap */
  private writing: Promise<unknown> = Promise.resolve();
  private fencedError: GraphstreamError | null = null;
  private readonly ended = new AbortController();

  constructor(options: LeaseOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new GraphstreamError('invalid_argument', 'Lease: options must be an object');
    if (typeof options.storage !== 'object' || options.storage === null) throw new GraphstreamError('invalid_argument', 'Lease: storage must be a SegmentStorage');
    this.storage = options.storage;
    this.prefix = options.prefix ?? '';
    this.db = options.db;
    this.key = leaseKey(this.prefix, this.db);
    this.holder = options.holder ?? defaultHolder();
    if (typeof this.holder !== 'string' || this.holder.length < 1 || this.holder.length > 256) {
      throw new GraphstreamError('invalid_argument', `Lease: holder must be a string of 1..256 characters, got ${JSON.stringify(this.holder)}`);
    }
    this.ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs < MIN_LEASE_TTL_MS) {
      throw new GraphstreamError('invalid_argument', `Lease: ttlMs must be an integer >= ${MIN_LEASE_TTL_MS}, got ${String(this.ttlMs)}`);
    }
    this.marginMs = leaseMarginMs(this.ttlMs);
  }

  get state(): LeaseState {
    return this.stateNow;
  }

  /** the epoch held (0 before the lease was acquired) */
  get epoch(): number {
    return this.record?.epoch ?? 0;
  }

  /** the generation this holder writes into (valid once acquired) */
  get generation(): number {
    return this.record?.generation ?? 0;
  }

  get renewals(): number {
    return this.record?.renewals ?? 0;
  }

  /** aborted (with the `fenced` error, or `closed`) once nothing may be written under this lease */
  get signal(): AbortSignal {
    return this.ended.signal;
  }

  /** why it was fenced, once it was */
  get fenced(): GraphstreamError | null {
    return this.fencedError;
  }

  /** Milliseconds left until the local deadline; 0 when not held. */
  msToExpiry(): number {
    return this.stateNow === 'held' ? Math.max(0, this.deadline - performance.now()) : 0;
  }

  /** Throws unless the lease is held and before its local deadline: `fenced` once lost, `closed` once released or stopped. */
  check(): void {
    if (this.stateNow === 'held' && performance.now() >= this.deadline) this.fence('its local deadline passed before a renewal succeeded');
    if (this.fencedError) throw this.fencedError;
    if (this.stateNow !== 'held') {
      throw new GraphstreamError(this.stateNow === 'released' || this.stateNow === 'stopped' ? 'closed' : 'invalid_argument', `the lease on ${this.where()} is ${this.stateNow}, not held`);
    }
  }

  private where(): string {
    return objectName(this.storage.description, this.key);
  }

  /**
   * Takes the lease: creates it when there is none; takes it over once it is released, or once
   * its version stayed the same for ttl + margin (expired); otherwise waits (or, with `wait`
   * false, fails with `locked`). Before it takes a lease it checks that the storage honors
   * If-Match and If-None-Match, and refuses (`invalid_argument`) one that does not: a lease there
   * could not fence anyone.
   */
  async acquire(options: AcquireOptions = {}): Promise<LeaseRecord> {
    const signal = checkSignal(options.signal, 'Lease.acquire');
    if (this.stateNow !== 'idle') throw new GraphstreamError('invalid_argument', `Lease.acquire: this lease on ${this.where()} is ${this.stateNow}; a Lease is acquired once`);
    const getWithETag = this.storage.getWithETag?.bind(this.storage);
    if (getWithETag === undefined) throw this.unfenceable('it cannot read an object with its ETag (getWithETag)');
    this.stateNow = 'acquiring';
    try {
      const acquired = await this.acquireNow(getWithETag, signal, options.wait ?? true);
      this.emit('acquired', acquired);
      return acquired;
    } catch (err) {
      if (this.stateNow === 'acquiring') this.stateNow = 'idle';
      throw err;
    }
  }

  private async acquireNow(getWithETag: (key: string) => Promise<VersionedObject | null>, signal: AbortSignal | undefined, wait: boolean): Promise<LeaseRecord> {
    const pollMs = Math.max(100, Math.min(1000, Math.floor(this.ttlMs / 10)));
    let watched = null as { etag: string; since: number } | null;
    let probed = false;
    for (;;) {
      throwIfAborted(signal, 'Lease.acquire');
      const current = await getWithETag(this.key);
      const readAt = performance.now();
      let next: LeaseRecord;
      let condition: PutOptions;
      if (current === null) {
        next = this.newRecord(1, await this.nextGeneration());
        condition = { ifNoneMatch: '*' };
      } else {
        if (!probed) {
          await this.probe(current);
          probed = true;
        }
        const held = parseLeaseRecord(current.bytes, this.where());
        if (watched?.etag !== current.etag) watched = { etag: current.etag, since: readAt };
        const expired = readAt - watched.since >= held.ttlMs + leaseMarginMs(held.ttlMs);
        if (!held.released && !expired) {
          if (!wait) {
            throw new GraphstreamError('locked', `${this.where()} is held by ${held.holder} (epoch ${held.epoch}), neither released nor expired`);
          }
          await sleep(pollMs, undefined, { signal }).catch(() => {
            throw abortError(signal!, 'Lease.acquire');
          });
          continue;
        }
        if (held.generation + 1 >= COMPACTED_GENERATION_BIT) {
          throw new GraphstreamError('invalid_argument', `${this.where()}: generation ${held.generation} is the last one (0x7fff); no new lease can be taken`);
        }
        next = this.newRecord(held.epoch + 1, held.generation + 1);
        condition = { ifMatch: current.etag };
      }
      const bytes = serializeLeaseRecord(next);
      const sentAt = performance.now();
      let etag: string | undefined;
      try {
        ({ etag } = await this.storage.put(this.key, bytes, condition));
      } catch (err) {
        if (isGraphstreamError(err, 'conflict')) continue; // another contender was first: look again
        throw err;
      }
      if (etag === undefined) throw this.unfenceable('its put gave no ETag');
      if (!probed) await this.probe({ bytes, etag });
      this.held(next, etag, sentAt);
      return next;
    }
  }

  private newRecord(epoch: number, generation: number): LeaseRecord {
    return { holder: this.holder, epoch, generation, ttlMs: this.ttlMs, renewals: 0, released: false, writtenMs: Date.now() };
  }

  /** 0 for a db without any segment, else one more than the highest generation with a record or a segment. */
  private async nextGeneration(): Promise<number> {
    const [listing, records] = await Promise.all([listDbKeys(this.storage, this.prefix, this.db), listGenerationRecordKeys(this.storage, this.prefix, this.db)]);
    const generations = [...listing.segments.map((segment) => segment.generation), ...records.map((record) => record.generation)].filter((g) => g < COMPACTED_GENERATION_BIT);
    return generations.length === 0 ? 0 : Math.max(...generations) + 1;
  }

  /**
   * Whether the storage honors the conditions, tried on the lease object itself with the bytes it
   * holds (a storage that ignores them rewrites the same bytes, which changes nothing): a put with
   * an If-Match no object has must be refused, and a create-only put must find the object.
   */
  private async probe(current: VersionedObject): Promise<void> {
    let ignored: string | null = null;
    try {
      await this.storage.put(this.key, current.bytes, { ifMatch: `"graphstream-probe-${randomBytes(8).toString('hex')}"` });
      ignored = 'If-Match';
    } catch (err) {
      if (!isGraphstreamError(err, 'conflict')) throw isGraphstreamError(err, 'invalid_argument') ? this.unfenceable(err.message) : err;
    }
    if (ignored === null) {
      const { created } = await this.storage.put(this.key, current.bytes, { ifNoneMatch: '*' });
      if (created) ignored = 'If-None-Match: *';
    }
    if (ignored !== null) throw this.unfenceable(`it does not honor ${ignored} (a conditional put of ${this.where()} was carried out)`);
  }

  private unfenceable(why: string): GraphstreamError {
    return new GraphstreamError(
      'invalid_argument',
      `${this.storage.description} cannot hold a lease: ${why}. Without conditional writes two writers could both upload, so graphstream refuses to run under a lease there`,
    );
  }

  private held(record: LeaseRecord, etag: string, sentAt: number): void {
    this.record = record;
    this.etag = etag;
    this.deadline = sentAt + this.ttlMs - this.marginMs;
    this.stateNow = 'held';
    this.armTimers(Math.floor(this.ttlMs / 3));
  }

  private armTimers(renewInMs: number): void {
    this.clearTimers();
    this.renewTimer = setTimeout(() => void this.renew(), renewInMs);
    this.renewTimer.unref();
    this.deadlineTimer = setTimeout(() => this.fence('its local deadline passed before a renewal succeeded'), Math.max(0, this.deadline - performance.now()));
    this.deadlineTimer.unref();
  }

  private clearTimers(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.renewTimer = this.deadlineTimer = null;
  }

  /** One renewal; a retryable failure is tried again soon while the deadline has not passed. */
  private renew(): Promise<void> {
    const renewal = this.writing.then(async () => {
      if (this.stateNow !== 'held') return;
      const next: LeaseRecord = { ...this.record!, renewals: this.record!.renewals + 1, writtenMs: Date.now() };
      const sentAt = performance.now();
      try {
        const { etag } = await this.storage.put(this.key, serializeLeaseRecord(next), { ifMatch: this.etag!, signal: this.ended.signal });
        if (this.stateNow !== 'held') return;
        if (etag === undefined) throw this.unfenceable('its put gave no ETag');
        this.record = next;
        this.etag = etag;
        this.deadline = sentAt + this.ttlMs - this.marginMs;
        this.armTimers(Math.floor(this.ttlMs / 3));
        this.emit('renewed', next);
      } catch (err) {
        if (this.stateNow !== 'held') return;
        const error = toGraphstreamError(err, `renewing the lease ${this.where()}`);
        if (error.code === 'conflict') this.fence('another writer changed the lease object (a newer epoch took it over)', error);
        else if (isRetryable(error)) this.armTimers(Math.max(100, Math.floor(this.ttlMs / 15)));
        else this.fence(`its renewal failed: ${error.message}`, error);
      }
    });
    this.writing = renewal;
    return renewal;
  }

  /**
   * Loses the lease now: `why` goes into the `fenced` error that `check()` throws from now on,
   * `signal` aborts with it and 'fenced' is emitted. Holders call it on a `conflict` on any of
   * their keys. Once released, stopped or fenced, nothing happens.
   */
  fence(why: string, cause?: unknown): void {
    if (this.stateNow !== 'held' && this.stateNow !== 'acquiring') return;
    this.stateNow = 'fenced';
    this.clearTimers();
    this.fencedError = new GraphstreamError('fenced', `the lease on ${this.where()} (holder ${this.holder}, epoch ${this.epoch}) is lost: ${why}; nothing more is written under it`, {
      ...(cause === undefined ? {} : { cause }),
      details: { key: this.key, retryable: false },
    });
    this.ended.abort(this.fencedError);
    this.emit('fenced', this.fencedError);
  }

  /**
   * The generation record of this holder's generation, written once: the only writer of
   * generation records (the Uploader's first upload under a lease and a promoted follower's
   * takeOver both come here). A record this holder (same epoch and holder) already wrote is
   * taken as it is, so a retry after a put whose answer was lost, or an Uploader started under a
   * promoted follower's lease, finds it; `start` is only asked for when there is none. The start
   * is checked (start_seq a positive integer, prev_hash 32 bytes, zeros when start_seq is 1) and
   * written create-only, before the generation's first segment. A record that another writer
   * wrote fences this holder.
   */
  async writeGenerationRecord(start: GenerationStart | (() => Promise<GenerationStart>)): Promise<GenerationRecord> {
    this.check();
    const key = generationRecordKey(this.prefix, this.db, this.generation);
    const where = objectName(this.storage.description, key);
    const existing = await this.ownGenerationRecord(key);
    if (existing !== null) return existing;
    const { startSeq, prevHash } = typeof start === 'function' ? await start() : start;
    this.check();
    checkGenerationStart(startSeq, prevHash, where);
    const record: GenerationRecord = { generation: this.generation, epoch: this.epoch, holder: this.holder, startSeq, prevHash: Buffer.from(prevHash), writtenMs: Date.now() };
    try {
      await this.storage.put(key, serializeGenerationRecord(record), { ifNoneMatch: '*', signal: this.ended.signal });
    } catch (err) {
      if (this.fencedError) throw this.fencedError;
      if (!isGraphstreamError(err, 'conflict')) throw err;
      // a put of ours that landed although its answer was lost, or another writer's record
      const landed = await this.ownGenerationRecord(key);
      if (landed === null || landed.startSeq !== startSeq || !landed.prevHash.equals(prevHash)) {
        this.fence(`${where} was written by another writer`, err);
        throw this.fencedError!;
      }
      return landed;
    }
    this.check();
    return record;
  }

  /** The record at `key` when this holder wrote it; null when there is none; fences (and throws) when another writer did. */
  private async ownGenerationRecord(key: string): Promise<GenerationRecord | null> {
    const where = objectName(this.storage.description, key);
    let bytes: Uint8Array | null;
    try {
      bytes = await this.storage.get(key);
    } catch (err) {
      throw toGraphstreamError(err, `reading ${where}`);
    }
    if (bytes === null) return null;
    const record = parseGenerationRecord(bytes, where);
    if (record.epoch !== this.epoch || record.holder !== this.holder || record.generation !== this.generation) {
      this.fence(`${where} was written by ${record.holder} under epoch ${record.epoch}`);
      throw this.fencedError!;
    }
    this.check();
    return record;
  }

  /** Gives the lease up (`released: true`), so that another writer may take it at once. Nothing is written under it afterwards. */
  async release(): Promise<void> {
    if (this.stateNow !== 'held') {
      this.stop();
      return;
    }
    this.stateNow = 'released';
    this.clearTimers();
    this.ended.abort(new GraphstreamError('closed', `the lease on ${this.where()} was released`));
    const release = this.writing.then(async () => {
      const next: LeaseRecord = { ...this.record!, renewals: this.record!.renewals + 1, released: true, writtenMs: Date.now() };
      try {
        await this.storage.put(this.key, serializeLeaseRecord(next), { ifMatch: this.etag! });
        this.record = next;
      } catch (err) {
        // taken over already: there is nothing left to give up
        if (!isGraphstreamError(err, 'conflict')) throw toGraphstreamError(err, `releasing the lease ${this.where()}`);
      }
    });
    this.writing = release.catch(() => undefined);
    await release;
    this.emit('released');
  }

  /** Stops renewing without giving the lease up: it expires after its TTL, as after a crash. */
  stop(): void {
    if (this.stateNow === 'fenced' || this.stateNow === 'released' || this.stateNow === 'stopped') return;
    this.stateNow = 'stopped';
    this.clearTimers();
    this.ended.abort(new GraphstreamError('closed', `the lease on ${this.where()} was stopped`));
  }
}
