/**
 * Followers: rebuild the leader's journal from object storage, verifying everything, and follow
 * it as new segments appear. The remote journal reader (./remote-journal.ts) finds, fetches and
 * verifies each segment and writes it into the follower's directory, which is then a journal
 * directory like the leader's (`readJournal`, `Journal.open`); a gap, an overlap or a chain that
 * does not continue is an error, never skipped.
 *
 * `Follower` adds the applied position (what the consumer of `tail()` has taken), persisted
 * atomically in `follower.json`: at the end of each segment, when idle and when the iteration
 * ends. After a crash, entries taken since the last persisted position are delivered again
 * (at-least-once); one Follower at a time per directory.
 */
import { AbortError, anySignal, checkSignal, throwIfAborted } from '../abort.js';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  DOWNLOAD_TEMP_SUFFIX,
  RemoteJournal,
  checkPrefetch,
  storeSegment,
  type DownloadedSegment,
  type RemoteLocation,
  type RemoteSegment,
} from './remote-journal.js';
import type { Core, SegmentCore } from '../core/core.js';
import type { ReadEncryption } from './encryption.js';
import { replaceFileAtomically } from '../journal/durable-fs.js';
import { GraphstreamError, isGraphstreamError, toGraphstreamError } from '../errors.js';
import { HASH_SIZE, ZERO_HASH } from '../format/constants.js';
import { chainHashAfter, copyChainHashAfter, payloadOf } from '../format/raw-entries.js';
import { resolveCore } from '../core/default.js';
import type { GraphstreamMetrics } from '../metrics.js';
import {
  decodedSegments,
  readJournalSegments,
  recordsBySegment,
  type JournalRecord,
  type RawJournalRecord,
} from '../journal/reader.js';
import { listSegments, positionAfterSegment, readRecoveryState, writeRecoveryState, type ChainPosition } from '../journal/recovery.js';
import { Lease } from './lease.js';
import { openContinuing, type PromoteOptions, type Promotion, type TakeOver, type TakeOverOptions } from './promote.js';
import { isRetryable } from './retry.js';
import { Uploader } from './uploader.js';
import { checkDb, checkPrefix } from '../storage/names.js';
import type { SegmentStorage } from '../storage/types.js';

export type { ChainPosition } from '../journal/recovery.js';

export const FOLLOWER_STATE_FILE = 'follower.json';
const DEFAULT_POLL_INTERVAL_MS = 1000;
const DEFAULT_MAX_POLL_INTERVAL_MS = 30_000;
const DEFAULT_GAP_TIMEOUT_MS = 60_000;

/** Where a local journal directory ends, and whether it holds any segment. */
async function localTip(dir: string, core: SegmentCore): Promise<{ position: ChainPosition; hasSegments: boolean }> {
  const segments = await listSegments(dir);
  const last = segments[segments.length - 1];
  if (last === undefined) {
    return { position: (await readRecoveryState(dir)) ?? { sequence: 0, chainHash: ZERO_HASH }, hasSegments: false };
  }
  return { position: await positionAfterSegment(last, core), hasSegments: true };
}

async function prepareDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(dir)) {
      if (name.endsWith(DOWNLOAD_TEMP_SUFFIX)) await unlink(join(dir, name)).catch(() => undefined);
    }
  } catch (err) {
    throw toGraphstreamError(err, `preparing follower directory ${dir}`);
  }
}

export interface DownloadOptions {
  /** the core doing the decoding; default the native one, else the pure one */
  core?: Core;
  /**
   * chain hash after `sinceSeq`, needed when `dir` holds no segment (a follower starting from a
   * snapshot); checked against the directory otherwise
   */
  sinceHash?: Uint8Array;
  metrics?: GraphstreamMetrics;
  /** segments fetched ahead while one is written (the first of them decoded ahead); default 3; 0 fetches nothing ahead */
  prefetch?: number;
  /** stops the download between segments with an AbortError; the segments stored so far stay */
  signal?: AbortSignal;
  /** how to open encrypted objects (./encryption.ts) */
  encryption?: ReadEncryption;
}

/**
 * Downloads, verifies and stores in `dir` every segment after `sinceSeq`, the last sequence the
 * directory holds (0 for an empty one). Resolves with the segments written, oldest first.
 */
export async function downloadNewSegments(
  storage: SegmentStorage,
  prefix: string,
  db: string,
  dir: string,
  sinceSeq: number,
  options: DownloadOptions = {},
): Promise<DownloadedSegment[]> {
  if (!Number.isSafeInteger(sinceSeq) || sinceSeq < 0) {
    throw new GraphstreamError('invalid_argument', `sinceSeq must be a non-negative integer, got ${String(sinceSeq)}`);
  }
  const sinceHash = options.sinceHash === undefined ? undefined : hashArgument(options.sinceHash, 'sinceHash');
  const prefetch = checkPrefetch(options.prefetch);
  const signal = checkSignal(options.signal, 'downloadNewSegments');
  throwIfAborted(signal, 'downloadNewSegments');
  const core = await resolveCore(options.core);
  const directory = resolve(dir);
  await prepareDirectory(directory);
  const local = await localTip(directory, core);
  let start = local.position;
  if (local.position.sequence !== sinceSeq) {
    if (local.hasSegments || sinceHash === undefined) {
      throw new GraphstreamError(
        'invalid_argument',
        `${directory} holds sequences up to ${local.position.sequence}, not ${sinceSeq}` +
          (local.hasSegments ? '' : ': give sinceHash (the chain hash after sinceSeq) to start an empty directory there'),
      );
    }
    await writeRecoveryState(directory, sinceSeq, sinceHash);
    start = { sequence: sinceSeq, chainHash: sinceHash };
  } else if (sinceHash !== undefined && !sinceHash.equals(local.position.chainHash)) {
    throw new GraphstreamError('chain_broken', `${directory}: the chain hash after sequence ${sinceSeq} is not the given sinceHash`);
  }
  const remote = new RemoteJournal(
    { storage, prefix, db, encryption: options.encryption },
    core,
    { position: start, aligned: local.hasSegments || start.sequence === 0 },
    options.metrics,
    { prefetch },
  );
  return remote.storeAll(directory, signal, 'downloadNewSegments');
}

function hashArgument(hash: unknown, name: string): Buffer {
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_SIZE) {
    throw new GraphstreamError('invalid_argument', `${name} must be ${HASH_SIZE} bytes`);
  }
  return Buffer.from(hash);
}

export interface FollowerOptions extends RemoteLocation {
  /** the follower's journal directory (created if needed) */
  dir: string;
  core?: Core;
  metrics?: GraphstreamMetrics;
  /**
   * segments fetched ahead while one is written and applied, so network, verification and
   * write/apply overlap; the first of them is decoded ahead, the others are held as stored
   * (compressed) objects; default 3; 0 fetches nothing ahead
   */
  prefetch?: number;
}

export interface FollowerPosition {
  /** last sequence applied (taken by the consumer) */
  sequence: number;
  /** chain hash after it; null only after tail({ fromSeq }) without initialHash, until an entry is taken */
  chainHash: Buffer | null;
}

export interface ReplicationLag {
  /** sequences in storage not applied yet (storage's newest from the last listing) */
  sequences: number;
  /** age of the segment holding the next entry to apply (header created_ms); 0 when caught up */
  seconds: number;
}

export interface TailOptions {
  /** first sequence to yield; default the one after the persisted position */
  fromSeq?: number;
  /** chain hash after `fromSeq - 1`, checked against the journal */
  initialHash?: Uint8Array;
  /** wait after a poll that found nothing; doubles while idle, up to maxPollIntervalMs; default 1000 */
  pollIntervalMs?: number;
  /** default 30 000 */
  maxPollIntervalMs?: number;
  /**
   * how long a gap may last before it is an error: the uploader ships segments concurrently, so
   * a newer segment can land before an older one; default 60 000
   */
  gapTimeoutMs?: number;
  /**
   * ends the iteration with an AbortError, after persisting the position (as Node's own async
   * iterators do; `break` out of the loop to end it without one). A storage request in flight
   * finishes first.
   */
  signal?: AbortSignal;
  /** yield payloads (copies, the consumer's to keep) instead of decoded graphd entries */
  raw?: boolean;
}

export interface CatchUpResult {
  segments: DownloadedSegment[];
  /** applied sequence before */
  fromSequence: number;
  /** applied sequence now: everything storage held */
  sequence: number;
  chainHash: Buffer;
  /** entries applied by this call */
  entries: number;
  /** bytes written */
  bytes: number;
}

interface FollowerState {
  sequence: number;
  chainHash: Buffer | null;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolveSleep) => {
    if (signal?.aborted) return resolveSleep();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolveSleep();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new GraphstreamError('invalid_argument', `${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

export class Follower {
  readonly dir: string;
  private readonly location: RemoteLocation;
  private readonly metrics: GraphstreamMetrics | undefined;
  private readonly coreOption: Core | undefined;
  private readonly prefetch: number;
  private opening: Promise<{ core: Core; remote: RemoteJournal }> | null = null;
  private applied: FollowerState = { sequence: 0, chainHash: ZERO_HASH };
  private persisted: FollowerState | null = null;
  private busy = false;
  /** aborted by close(): ends a tail or catchUp at its next step */
  private readonly closing = new AbortController();
  /** the catchUp running, for close() to wait on */
  private catchingUp: Promise<unknown> | null = null;
  /** created_ms of the segment holding the next entry to apply, when known */
  private applyingCreatedMs: number | null = null;
  private remoteNewest = 0;

  constructor(options: FollowerOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '') throw new GraphstreamError('invalid_argument', 'Follower: dir must be a non-empty path');
    checkPrefix(options.prefix ?? '', 'Follower');
    checkDb(options.db, 'Follower');
    this.dir = resolve(options.dir);
    this.location = { storage: options.storage, prefix: options.prefix ?? '', db: options.db, encryption: options.encryption };
    this.metrics = options.metrics;
    this.coreOption = options.core;
    this.prefetch = checkPrefetch(options.prefetch);
  }

  /** Last sequence applied and the chain hash after it. */
  get position(): FollowerPosition {
    return { sequence: this.applied.sequence, chainHash: this.applied.chainHash && Buffer.from(this.applied.chainHash) };
  }

  /** How far behind storage the applied position is, as of the last poll. */
  get lag(): ReplicationLag {
    const sequences = Math.max(0, this.remoteNewest - this.applied.sequence);
    const seconds = sequences === 0 || this.applyingCreatedMs === null ? 0 : Math.max(0, Date.now() - this.applyingCreatedMs) / 1000;
    return { sequences, seconds };
  }

  /**
   * Downloads every new segment, marks everything applied, and says what that was. Aborting
   * `signal` stops it between segments with an AbortError: the segments stored so far stay in
   * the directory (the next catchUp or tail goes on from them), and nothing new is marked applied.
   */
  catchUp(options: { signal?: AbortSignal } = {}): Promise<CatchUpResult> {
    const signal = checkSignal(options?.signal, 'Follower.catchUp');
    const running = this.catchUpNow(signal);
    this.catchingUp = running.catch(() => undefined);
    return running;
  }

  private async catchUpNow(signal: AbortSignal | undefined): Promise<CatchUpResult> {
    this.claim();
    try {
      throwIfAborted(signal, 'Follower.catchUp');
      const { remote } = await this.open();
      const fromSequence = this.applied.sequence;
      const segments = await remote.storeAll(this.dir, anySignal(signal, this.closing.signal), 'Follower.catchUp').catch((err: unknown) => {
        throw err instanceof AbortError && !signal?.aborted ? this.closing.signal.reason : err;
      });
      if (remote.tip.sequence >= this.applied.sequence) this.applied = { ...remote.tip };
      this.updateLag(remote);
      await this.persist();
      return {
        segments,
        fromSequence,
        sequence: this.applied.sequence,
        chainHash: Buffer.from(this.applied.chainHash ?? remote.tip.chainHash),
        entries: this.applied.sequence - fromSequence,
        bytes: segments.reduce((sum, segment) => sum + segment.bytes, 0),
      };
    } finally {
      this.busy = false;
    }
  }

  /**
   * Verified entries in sequence order from the applied position (or `fromSeq`), first those
   * already in the directory, then each new segment as it appears in storage, until `signal`
   * aborts. Besides the segment being yielded, the next one (decoded) and up to `prefetch - 1`
   * more (as stored objects) are held in memory, fetched ahead; they are dropped when the
   * iteration ends. Transient storage failures are retried after the poll interval; anything
   * that cannot be verified ends the iteration with its error.
   */
  tail(options: TailOptions & { raw: true }): AsyncIterable<RawJournalRecord>;
  tail(options?: TailOptions & { raw?: false }): AsyncIterable<JournalRecord>;
  tail(options: TailOptions = {}): AsyncIterable<JournalRecord | RawJournalRecord> {
    const segments = this.tailSegments(options);
    return options.raw === true ? recordsBySegment(segments) : recordsBySegment(decodedSegments(segments, this.dir));
  }

  /**
   * Ends a tail or catchUp at its next step: a catchUp running is waited for (it rejects with
   * `closed`), and a tail ends normally, with its position persisted, when its consumer next asks
   * for a record. Later calls fail with `closed`. Idempotent; `await using` calls it.
   */
  async close(): Promise<void> {
    this.closing.abort(new GraphstreamError('closed', `follower of ${this.dir} closed`));
    await this.catchingUp;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Takes over the db (./promote.ts): waits until the lease is released or expires, takes it with
   * the next epoch, catches up with everything the earlier generations hold, and writes the new
   * generation's record, continuing the chain at this follower's tip. The follower is closed then:
   * its directory is the new writer's (promote() opens it as a Journal; `graphstream promote`
   * ships it as a sidecar). Aborting `signal` stops the wait with an AbortError; a failure after
   * the lease was taken releases it again.
   */
  async takeOver(options: TakeOverOptions = {}): Promise<TakeOver> {
    const signal = checkSignal(options?.signal, 'Follower.takeOver');
    throwIfAborted(signal, 'Follower.takeOver');
    await this.open();
    const { storage, prefix, db } = this.location;
    const lease = new Lease({ storage, prefix, db, ...options.lease });
    await lease.acquire(signal === undefined ? {} : { signal });
    try {
      (await this.open()).remote.holdLease(lease.generation); // its catch-up decides where the generation before ends
      const tip = await this.catchUp(signal === undefined ? {} : { signal });
      const record = await lease.writeGenerationRecord({ startSeq: tip.sequence + 1, prevHash: tip.chainHash });
      this.closing.abort(new GraphstreamError('closed', `follower of ${this.dir} was promoted: the directory is the new writer's now`));
      return { lease, record, tip: { sequence: tip.sequence, chainHash: tip.chainHash } };
    } catch (err) {
      await lease.release().catch(() => undefined);
      throw err;
    }
  }

  /**
   * takeOver(), then the Journal on this follower's directory that continues the chain and a
   * started Uploader under the lease shipping it into the new generation from its start_seq.
   */
  async promote(options: PromoteOptions = {}): Promise<Promotion> {
    const { core } = await this.open();
    const { lease, record, tip } = await this.takeOver(options);
    try {
      const journal = await openContinuing(this.dir, tip, { ...options.journal, core });
      const { storage, prefix, db } = this.location;
      const uploader = new Uploader({ ...options.uploader, journal, storage, prefix, db, core, lease, ...(this.metrics ? { metrics: this.metrics } : {}) });
      await uploader.start();
      return { journal, uploader, lease, record };
    } catch (err) {
      await lease.release().catch(() => undefined);
      throw err;
    }
  }

  /** tail()'s records a segment at a time; each record is marked applied when the one after it is asked for. */
  private async *tailSegments(options: TailOptions): AsyncGenerator<IterableIterator<RawJournalRecord>, void, undefined> {
    const userSignal = checkSignal(options.signal, 'Follower.tail');
    throwIfAborted(userSignal, 'Follower.tail');
    yield* this.tailUntil(options, anySignal(userSignal, this.closing.signal));
    throwIfAborted(userSignal, 'Follower.tail');
  }

  private async *tailUntil(options: TailOptions, signal: AbortSignal): AsyncGenerator<IterableIterator<RawJournalRecord>, void, undefined> {
    const pollIntervalMs = positiveInteger(options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, 'pollIntervalMs');
    const maxPollIntervalMs = Math.max(pollIntervalMs, positiveInteger(options.maxPollIntervalMs ?? DEFAULT_MAX_POLL_INTERVAL_MS, 'maxPollIntervalMs'));
    const gapTimeoutMs = options.gapTimeoutMs ?? DEFAULT_GAP_TIMEOUT_MS;
    if (!Number.isSafeInteger(gapTimeoutMs) || gapTimeoutMs < 0) {
      throw new GraphstreamError('invalid_argument', `gapTimeoutMs must be a non-negative integer, got ${String(gapTimeoutMs)}`);
    }
    const { fromSeq } = options;
    if (fromSeq !== undefined) positiveInteger(fromSeq, 'fromSeq');
    const initialHash = options.initialHash === undefined ? undefined : hashArgument(options.initialHash, 'initialHash');
    let remote: RemoteJournal | null = null;
    this.claim();
    try {
      const { core } = await this.open();
      if (fromSeq !== undefined) {
        const sequence = fromSeq - 1;
        this.applied = { sequence, chainHash: initialHash ?? (sequence === 0 ? ZERO_HASH : null) };
        await this.seedEmptyDirectory();
      }
      remote = (await this.open()).remote;

      // Entries already downloaded: read back (and verified) from the directory.
      const localEnd = remote.tip.sequence;
      if (localEnd > this.applied.sequence) {
        const start = this.applied;
        for await (const records of readJournalSegments(this.dir, {
          core,
          fromSeq: start.sequence + 1,
          ...(start.chainHash !== null ? { initialHash: start.chainHash } : {}),
        })) {
          yield this.localRecords(records, localEnd, signal);
          if (signal?.aborted) return;
          if (this.applied.sequence >= localEnd) break;
        }
        await this.persist();
      }

      let idlePolls = 0;
      let gapSince = null as { sequence: number; at: number } | null;
      while (!signal?.aborted) {
        let segment: RemoteSegment | null;
        try {
          segment = await remote.next();
        } catch (err) {
          if (isGraphstreamError(err, 'gap')) {
            const sequence = remote.tip.sequence + 1;
            if (gapSince?.sequence !== sequence) gapSince = { sequence, at: Date.now() };
            if (Date.now() - gapSince.at >= gapTimeoutMs) throw err;
          } else if (!isRetryable(err)) {
            throw err;
          }
          await sleep(Math.min(maxPollIntervalMs, pollIntervalMs * 2 ** Math.min(idlePolls++, 20)), signal);
          continue;
        }
        gapSince = null;
        this.updateLag(remote);
        if (segment === null) {
          await this.persist();
          await sleep(Math.min(maxPollIntervalMs, pollIntervalMs * 2 ** Math.min(idlePolls++, 20)), signal);
          continue;
        }
        idlePolls = 0;
        await storeSegment(core, this.dir, segment);
        remote.accept(segment);
        const { createdMs } = segment.decoded.header;
        this.applyingCreatedMs = typeof createdMs === 'number' ? createdMs : null;
        this.updateLag(remote);
        yield this.newRecords(segment, remote, signal);
        if (signal?.aborted) return;
        await this.persist();
      }
    } finally {
      remote?.abandonPrefetched();
      this.busy = false;
      await this.persist();
    }
  }

  /** Records of the local directory up to `localEnd`, each marked applied when the next one is asked for. */
  private *localRecords(records: IterableIterator<RawJournalRecord>, localEnd: number, signal: AbortSignal | undefined): Generator<RawJournalRecord, void, undefined> {
    for (const record of records) {
      if (record.sequence > localEnd) return;
      yield record;
      this.applied = { sequence: record.sequence, chainHash: record.chainHash };
      if (signal?.aborted) return;
    }
  }

  /**
   * The entries of a stored segment after the applied position (the one at it must match its
   * chain hash), each marked applied when the next one is asked for.
   */
  private *newRecords(segment: RemoteSegment, remote: RemoteJournal, signal: AbortSignal | undefined): Generator<RawJournalRecord, void, undefined> {
    const { decoded } = segment;
    const first = decoded.header.firstSeq;
    for (let index = segment.fromSeq - first; index <= segment.toSeq - first; index++) {
      const sequence = first + index;
      if (sequence < this.applied.sequence) continue;
      if (sequence === this.applied.sequence) {
        const chainHash = chainHashAfter(decoded, index);
        if (this.applied.chainHash === null) {
          this.applied = { sequence, chainHash: Buffer.from(chainHash) };
        } else if (!chainHash.equals(this.applied.chainHash)) {
          throw new GraphstreamError(
            'chain_broken',
            `${segment.key} (sequence ${sequence}): the chain hash after sequence ${sequence} is not the follower's initialHash`,
          );
        }
        continue;
      }
      // a copy: the body is reused once the segment is done, and the record is the consumer's to keep
      const record: RawJournalRecord = { sequence, chainHash: copyChainHashAfter(decoded, index), payload: Buffer.from(payloadOf(decoded, index)) };
      yield record;
      this.applied = { sequence, chainHash: record.chainHash };
      this.updateLag(remote);
      if (signal?.aborted) return;
    }
  }

  private claim(): void {
    if (this.closing.signal.aborted) throw new GraphstreamError('closed', `follower of ${this.dir} is closed`);
    if (this.busy) throw new GraphstreamError('conflict', `follower of ${this.dir} is already running a tail or catchUp`);
    this.busy = true;
  }

  private updateLag(remote: RemoteJournal): void {
    this.remoteNewest = Math.max(this.remoteNewest, remote.newestKnownSequence);
    if (this.applied.sequence >= this.remoteNewest) this.applyingCreatedMs = null;
    const lag = this.lag;
    this.metrics?.setReplicationLag(lag.sequences, lag.seconds);
  }

  /** A start given to tail() in an empty directory becomes its recovery.json, so downloads continue from there. */
  private async seedEmptyDirectory(): Promise<void> {
    const { core, remote } = await this.open();
    const { sequence, chainHash } = this.applied;
    if (chainHash === null || sequence <= remote.tip.sequence) return;
    if ((await listSegments(this.dir)).length > 0) return;
    await writeRecoveryState(this.dir, sequence, chainHash);
    this.opening = Promise.resolve({
      core,
      remote: new RemoteJournal(this.location, core, { position: { sequence, chainHash }, aligned: false }, this.metrics, { prefetch: this.prefetch }),
    });
  }

  private open(): Promise<{ core: Core; remote: RemoteJournal }> {
    this.opening ??= (async () => {
      const core = await resolveCore(this.coreOption);
      await prepareDirectory(this.dir);
      const state = await this.readState();
      if (state !== null) this.applied = state;
      this.persisted = state;
      const local = await localTip(this.dir, core);
      const aligned = local.hasSegments || local.position.sequence === 0;
      return { core, remote: new RemoteJournal(this.location, core, { position: local.position, aligned }, this.metrics, { prefetch: this.prefetch }) };
    })();
    this.opening.catch(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private get statePath(): string {
    return join(this.dir, FOLLOWER_STATE_FILE);
  }

  private async readState(): Promise<FollowerState | null> {
    let text: string;
    try {
      text = await readFile(this.statePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw toGraphstreamError(err, `reading ${this.statePath}`);
    }
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      // reported below
    }
    const { sequence, chain_hash: hash } = (parsed ?? {}) as { sequence?: unknown; chain_hash?: unknown };
    if (typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence < 0 || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) {
      throw new GraphstreamError('invalid_segment', `${this.statePath}: expected {"sequence": N, "chain_hash": "<64 hex>"}`);
    }
    return { sequence, chainHash: Buffer.from(hash, 'hex') };
  }

  /** Writes follower.json atomically when the applied position moved. */
  private async persist(): Promise<void> {
    const { sequence, chainHash } = this.applied;
    if (chainHash === null) return;
    if (this.persisted !== null && this.persisted.sequence === sequence && this.persisted.chainHash?.equals(chainHash)) return;
    const text = JSON.stringify({ sequence, chain_hash: chainHash.toString('hex') }) + '\n';
    try {
      await replaceFileAtomically(this.statePath, `${this.statePath}.tmp`, Buffer.from(text, 'utf8'));
    } catch (err) {
      throw toGraphstreamError(err, `writing ${this.statePath}`);
    }
    this.persisted = { sequence, chainHash: Buffer.from(chainHash) };
  }
}
