/**
 * Followers: rebuild the leader's journal from object storage, verifying everything, and follow
 * it as new segments appear.
 *
 * A remote segment is kept only when its key's sequence equals its header's first_seq, it is
 * sealed, it decodes cleanly (checksums, CRCs, internal chain, trailer: off the JS thread on the
 * native core) and its chain continues the follower's chain hash. A segment that starts past the
 * follower's next sequence is a `gap`, one that starts inside what it already has an `overlap`, a
 * chain that does not continue (a segment of another journal) `chain_broken`: errors, never
 * skipped. Kept segments are written atomically (temp file, fsync, rename, directory fsync) into
 * the follower's directory as `journal-{first_seq:016}.hadbj`, which is then a journal
 * directory like the leader's (`readJournal`, `Journal.open`).
 *
 * Polling lists only the keys after the last sequence the follower has (`startAfter`). While one
 * segment is written and applied, the next ones of the listing (up to `prefetch`) are already
 * being fetched, and the first of them decoded; they are still checked and applied strictly in
 * order, and a failed fetch is reported when its segment's turn comes. Compacted
 * segments (ts/replication/compaction.ts) are read where no original starts at the next sequence; the part
 * of one the follower already has is verified and cut off, so the local files never overlap.
 *
 * `Follower` adds the applied position (what the consumer of `tail()` has taken), persisted
 * atomically in `follower.json`: at the end of each segment, when idle and when the iteration
 * ends. After a crash, entries taken since the last persisted position are delivered again
 * (at-least-once); one Follower at a time per directory.
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { sliceSegment } from './compaction.js';
import { compactedGeneration, generationPrefix, listSegmentKeys, segmentKey, type ListedSegment } from './layout.js';
import { SegmentBuffers } from './segment-buffers.js';
import type { Core, RawSegment, SegmentCore } from '../core/core.js';
import { replaceFileAtomically } from '../journal/durable-fs.js';
import { GraphstreamError, isGraphstreamError, toGraphstreamError } from '../errors.js';
import { FLAG_SEALED, HASH_SIZE, ZERO_HASH } from '../format/constants.js';
import { segmentFileName } from '../format/format.js';
import { chainHashAfter, chainHashBefore, copyChainHashAfter, payloadOf } from '../format/raw-entries.js';
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
import { isRetryable } from './retry.js';
import { checkDb, checkPrefix, objectName } from '../storage/names.js';
import type { SegmentStorage } from '../storage/types.js';

export type { ChainPosition } from '../journal/recovery.js';

const DOWNLOAD_TEMP_SUFFIX = '.download.tmp';
export const FOLLOWER_STATE_FILE = 'follower.json';
const DEFAULT_POLL_INTERVAL_MS = 1000;
const DEFAULT_MAX_POLL_INTERVAL_MS = 30_000;
const DEFAULT_GAP_TIMEOUT_MS = 60_000;
const DEFAULT_PREFETCH = 3;
/** buffers of each kind kept for reuse: the one given back at next() and the one fetched or decoded ahead next */
const FREE_BUFFERS = 2;

/** Where a journal lives in storage. */
export interface RemoteLocation {
  storage: SegmentStorage;
  /** key prefix, empty or ending in `/` (e.g. `wal/`) */
  prefix?: string;
  db: string;
  /** generation of the incremental journal; default 0 */
  generation?: number;
}

/** A remote segment, fetched and verified, not yet stored. */
export interface RemoteSegment {
  key: string;
  /** from the compacted generation */
  compacted: boolean;
  bytes: Buffer;
  decoded: RawSegment;
  /** the first sequence the reader needs from it; entries before it were already there */
  fromSeq: number;
  /** its place in the current listing of the incremental generation (null for compacted ones) */
  listingIndex: number | null;
}

/** A segment written into the follower's directory. */
export interface DownloadedSegment {
  /** the object it came from */
  key: string;
  /** the local file */
  path: string;
  firstSeq: number;
  lastSeq: number;
  entryCount: number;
  /** bytes of the local file */
  bytes: number;
  /** chain hash after lastSeq */
  chainHash: Buffer;
  /** created_ms of the remote segment's header (any i64: a bigint beyond 2^53) */
  createdMs: number | bigint;
  /** came from a compacted segment */
  compacted: boolean;
  /** the remote segment started before firstSeq: the entries the follower already had were cut off */
  cut: boolean;
}

function checkPrefetch(prefetch: number): number {
  if (!Number.isSafeInteger(prefetch) || prefetch < 0) {
    throw new GraphstreamError('invalid_argument', `prefetch must be a non-negative integer, got ${String(prefetch)}`);
  }
  return prefetch;
}

type FetchedSegment = Omit<RemoteSegment, 'fromSeq' | 'listingIndex'>;

/**
 * A listed segment fetched ahead of the reader: its stored bytes (null when gone) and, for the
 * one right after the segment being applied, its decoding. A decoded body is several times the
 * size of its compressed object, so the rest of the window holds the stored bytes only.
 */
interface Prefetched {
  bytes: Promise<Buffer | null>;
  decoded: Promise<FetchedSegment | null> | null;
}

/** Downloads started ahead of the reader; `abandoned` once nobody will take them. */
interface PrefetchWindow {
  byListingIndex: Map<number, Prefetched>;
  abandoned: boolean;
}

/**
 * The remote journal as a reader walks it from `position`: `next()` finds, fetches and verifies
 * the segment holding the next sequence; `accept()` moves past it once the reader stored it.
 * Once a segment of the listing has arrived, the next `prefetch` ones of that listing are fetched
 * in the background and the first of them is decoded, so beyond the segment being applied at most
 * one decoded segment and `prefetch - 1` stored objects are held; `next()` takes them in order
 * and does every position-dependent check at their turn.
 */
export class RemoteJournal {
  readonly storage: SegmentStorage;
  private readonly incrementalPrefix: string;
  private readonly compactedPrefix: string;
  private position: ChainPosition;
  /** the position is known to be a segment boundary in storage (so nothing listed after it means nothing new) */
  private aligned: boolean;
  private listing: ListedSegment[] | null = null;
  private listingIndex = 0;
  private lastTaken: { key: string; firstSeq: number; lastSeq: number } | null = null;
  /** listings for locating a segment that covers a sequence, valid until the next listing */
  private compactedListing: ListedSegment[] | null = null;
  private fullListing: ListedSegment[] | null = null;
  private newestListed = 0;
  private readonly prefetch: number;
  private readonly lastWanted: number;
  private window: PrefetchWindow = { byListingIndex: new Map(), abandoned: false };
  private readonly bodies = new SegmentBuffers(FREE_BUFFERS);
  private readonly storedObjects = new SegmentBuffers(FREE_BUFFERS);
  /** the pool buffer each decoded segment's body lies in */
  private readonly pooledBodies = new WeakMap<RawSegment, Buffer>();
  /** the pool buffer each stored object fetched lies in */
  private readonly pooledObjects = new WeakMap<Buffer, Buffer>();
  /** the pool buffers under the segment next() returned last: the reader is done with them at the following next() */
  private inUse: { body: Buffer | undefined; object: Buffer | undefined } | null = null;

  constructor(
    location: RemoteLocation,
    private readonly core: SegmentCore,
    start: { position: ChainPosition; aligned: boolean },
    private readonly metrics?: GraphstreamMetrics,
    ahead: {
      /** segments fetched ahead; default 3 */
      prefetch?: number;
      /** the reader stops at this sequence: segments starting after it are not fetched ahead */
      lastWanted?: number;
    } = {},
  ) {
    this.prefetch = checkPrefetch(ahead.prefetch ?? DEFAULT_PREFETCH);
    this.lastWanted = ahead.lastWanted ?? Number.MAX_SAFE_INTEGER;
    const prefix = location.prefix ?? '';
    checkPrefix(prefix, 'remote journal');
    checkDb(location.db, 'remote journal');
    const generation = location.generation ?? 0;
    this.storage = location.storage;
    this.incrementalPrefix = generationPrefix(prefix, location.db, generation);
    this.compactedPrefix = generationPrefix(prefix, location.db, compactedGeneration(generation));
    this.position = { sequence: start.position.sequence, chainHash: Buffer.from(start.position.chainHash) };
    this.aligned = start.aligned;
  }

  /** The sequence and chain hash the reader has. */
  get tip(): ChainPosition {
    return this.position;
  }

  /** A lower bound of the newest sequence in storage, from the last listing. */
  get newestKnownSequence(): number {
    return Math.max(this.position.sequence, this.newestListed);
  }

  /** Segments of the current listing not taken yet. */
  get listedAhead(): number {
    return this.listing === null ? 0 : this.listing.length - this.listingIndex;
  }

  private where(key: string): string {
    return objectName(this.storage.description, key);
  }

  /**
   * The verified segment holding the next sequence, or null when storage has nothing newer. The
   * segment is valid until the following call: its bytes and body are then reused for later ones.
   */
  async next(): Promise<RemoteSegment | null> {
    if (this.inUse !== null) {
      if (this.inUse.body !== undefined) this.bodies.give(this.inUse.body);
      if (this.inUse.object !== undefined) this.storedObjects.give(this.inUse.object);
      this.inUse = null;
    }
    const segment = await this.nextSegment();
    if (segment !== null) this.inUse = { body: this.pooledBodies.get(segment.decoded), object: this.pooledObjects.get(segment.bytes) };
    return segment;
  }

  private async nextSegment(): Promise<RemoteSegment | null> {
    const needed = this.position.sequence + 1;
    if (this.listing === null) {
      this.listing = await listSegmentKeys(this.storage, this.incrementalPrefix, this.position.sequence);
      this.listingIndex = 0;
      this.compactedListing = null;
      this.fullListing = null;
      const newest = this.listing[this.listing.length - 1];
      if (newest !== undefined) this.newestListed = Math.max(this.newestListed, newest.firstSeq);
    }
    const listed = this.listing[this.listingIndex];
    if (listed !== undefined && listed.firstSeq < needed) {
      const previous = this.lastTaken;
      throw new GraphstreamError(
        'overlap',
        `${this.where(listed.key)} starts at sequence ${listed.firstSeq}, inside ` +
          (previous ? `${this.where(previous.key)} (sequences ${previous.firstSeq}..${previous.lastSeq})` : `the ${needed - 1} sequences already there`),
        { details: { key: listed.key } },
      );
    }
    let missing: ListedSegment | null = null;
    if (listed !== undefined && listed.firstSeq === needed) {
      const listingIndex = this.listingIndex;
      const ahead = this.window.byListingIndex.get(listingIndex);
      this.window.byListingIndex.delete(listingIndex);
      const segment = await this.fetch(listed, false, ahead);
      this.prefetchAfter(listingIndex);
      if (segment !== null) return { ...this.verified(segment, needed), listingIndex };
      missing = listed; // deleted since the listing (compaction retention?): look for a compacted copy
    }
    if (listed === undefined) this.dropListing(); // this round is done: the next call lists again
    if (listed === undefined && this.aligned) return null;
    const covering = await this.covering(needed);
    if (covering !== null) return covering;
    if (listed === undefined) return null;
    this.dropListing(); // a segment still being uploaded may close the gap: list again next time
    throw new GraphstreamError(
      'gap',
      missing !== null
        ? `${this.where(missing.key)} (sequence ${needed}) was listed but is missing, and no compacted segment in ` +
            `${this.where(this.compactedPrefix)} holds sequence ${needed}`
        : `no segment holds sequence ${needed}: after sequence ${needed - 1}, ${this.where(this.incrementalPrefix)} continues with ` +
            `${listed.key} (sequence ${listed.firstSeq}), and no compacted segment in ${this.where(this.compactedPrefix)} covers sequence ${needed}`,
      { details: { key: listed.key } },
    );
  }

  /** Moves past a segment `next()` returned, once the reader has stored it. */
  accept(segment: RemoteSegment): void {
    const { header } = segment.decoded;
    this.position = { sequence: header.lastSeq, chainHash: Buffer.from(segment.decoded.chainHash) };
    this.aligned = true;
    if (segment.listingIndex === null) {
      this.dropListing(); // list again after the compacted segment's end
    } else {
      this.listingIndex = segment.listingIndex + 1;
      this.lastTaken = { key: segment.key, firstSeq: header.firstSeq, lastSeq: header.lastSeq };
    }
  }

  /** Stops using the segments fetched ahead (still in flight or not): they are never taken, their errors never surface. */
  abandonPrefetched(): void {
    this.window.abandoned = true;
    this.window = { byListingIndex: new Map(), abandoned: false };
  }

  private dropListing(): void {
    this.listing = null;
    this.abandonPrefetched();
  }

  /**
   * Starts getting the listed segments after `listingIndex`, up to `prefetch` of them (none past
   * lastWanted), and decoding the first of them, so it is verified while `listingIndex` is applied.
   */
  private prefetchAfter(listingIndex: number): void {
    const { listing, window } = this;
    if (listing === null) return;
    const end = Math.min(listing.length, listingIndex + 1 + this.prefetch);
    for (let index = listingIndex + 1; index < end; index++) {
      const listed = listing[index]!;
      if (listed.firstSeq > this.lastWanted) break;
      let ahead = window.byListingIndex.get(index);
      if (ahead === undefined) {
        ahead = { bytes: this.get(listed), decoded: null };
        ahead.bytes.catch(() => undefined); // reported by next() when its turn comes; dropped if abandoned
        window.byListingIndex.set(index, ahead);
      }
      if (index === listingIndex + 1 && ahead.decoded === null) {
        ahead.decoded = this.decodeFetched(listed, false, ahead.bytes, window);
        ahead.decoded.catch(() => undefined);
      }
    }
  }

  /**
   * A segment that starts at or before `needed` and holds it: the compacted segment covering it
   * or, when the position is not known to be a boundary, an original that starts before it.
   */
  private async covering(needed: number): Promise<RemoteSegment | null> {
    this.compactedListing ??= await listSegmentKeys(this.storage, this.compactedPrefix, 0);
    const compacted = lastStartingBy(this.compactedListing, needed);
    if (compacted !== null) {
      const segment = await this.fetch(compacted, true);
      if (segment !== null && segment.decoded.header.lastSeq >= needed) return { ...this.verified(segment, needed), listingIndex: null };
    }
    if (!this.aligned) {
      this.fullListing ??= await listSegmentKeys(this.storage, this.incrementalPrefix, 0);
      const original = lastStartingBy(this.fullListing, needed);
      if (original !== null && original.firstSeq < needed) {
        const segment = await this.fetch(original, false);
        if (segment !== null && segment.decoded.header.lastSeq >= needed) return { ...this.verified(segment, needed), listingIndex: null };
      }
    }
    return null;
  }

  /** Gets and decodes a listed segment, or finishes the one started ahead, counting it at its turn; null when it is gone. */
  private async fetch(listed: ListedSegment, compacted: boolean, ahead?: Prefetched): Promise<FetchedSegment | null> {
    try {
      const segment = await (ahead?.decoded ?? this.decodeFetched(listed, compacted, ahead?.bytes ?? this.get(listed), null));
      if (segment !== null) this.metrics?.recordDownload();
      return segment;
    } catch (err) {
      this.metrics?.recordDownloadError();
      throw err;
    }
  }

  /** The stored bytes of a listed segment; null when it is gone. */
  private async get(listed: ListedSegment): Promise<Buffer | null> {
    let stored: Uint8Array | null;
    const into = this.storedObjects.take();
    try {
      stored = await this.storage.get(listed.key, into === undefined ? undefined : { into });
    } catch (err) {
      if (into !== undefined) this.storedObjects.give(into);
      throw toGraphstreamError(err, `downloading ${this.where(listed.key)}`);
    }
    if (stored === null) {
      if (into !== undefined) this.storedObjects.give(into);
      return null;
    }
    const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
    const pooled = this.storedObjects.landed(bytes, into);
    if (pooled !== null) this.pooledObjects.set(bytes, pooled);
    return bytes;
  }

  /** Decodes a listed segment once its bytes arrive; null when it is gone (or the window it was fetched for was abandoned). */
  private async decodeFetched(
    listed: ListedSegment,
    compacted: boolean,
    fetched: Promise<Buffer | null>,
    window: PrefetchWindow | null,
  ): Promise<FetchedSegment | null> {
    const bytes = await fetched;
    if (bytes === null || window?.abandoned) return null;
    let decoded: RawSegment;
    const into = this.bodies.take();
    try {
      decoded = await this.core.decodeSegmentAsync(bytes, into === undefined ? undefined : { into });
    } catch (err) {
      if (into !== undefined) this.bodies.give(into);
      throw toGraphstreamError(err, `${this.where(listed.key)} (sequence ${listed.firstSeq})`);
    }
    const pooled = this.bodies.landed(decoded.body, into);
    if (pooled !== null) this.pooledBodies.set(decoded, pooled);
    const { header } = decoded;
    if ((header.flags & FLAG_SEALED) === 0) {
      throw new GraphstreamError('invalid_segment', `${this.where(listed.key)} (sequence ${listed.firstSeq}) is not sealed`, {
        details: { key: listed.key },
      });
    }
    if (header.firstSeq !== listed.firstSeq) {
      throw new GraphstreamError(
        'invalid_segment',
        `${this.where(listed.key)}: its key names sequence ${listed.firstSeq}, its header first_seq ${header.firstSeq}`,
        { details: { key: listed.key } },
      );
    }
    return { key: listed.key, compacted, bytes, decoded };
  }

  /** Checks that the segment continues the chain at `needed`. */
  private verified(segment: FetchedSegment, needed: number): Omit<RemoteSegment, 'listingIndex'> {
    const index = needed - segment.decoded.header.firstSeq;
    const before = index === 0 ? segment.decoded.startHash : chainHashBefore(segment.decoded, index);
    if (!before.equals(this.position.chainHash)) {
      this.metrics?.recordChainHashMismatch();
      throw new GraphstreamError(
        'chain_broken',
        `${this.where(segment.key)} (sequence ${needed}): the chain hash before sequence ${needed} is not the one the ` +
          `follower has after sequence ${needed - 1} (a segment of another journal?)`,
        { details: { key: segment.key } },
      );
    }
    return { ...segment, fromSeq: needed };
  }
}

function lastStartingBy(listing: ListedSegment[], sequence: number): ListedSegment | null {
  let found: ListedSegment | null = null;
  for (const listed of listing) {
    if (listed.firstSeq > sequence) break;
    found = listed;
  }
  return found;
}

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

/** Writes the part of a remote segment the reader needs (from `fromSeq` up to `toSeq`) into `dir`, atomically. */
export async function storeSegment(
  core: SegmentCore,
  dir: string,
  segment: RemoteSegment,
  toSeq: number = segment.decoded.header.lastSeq,
): Promise<DownloadedSegment> {
  const bytes = await sliceSegment(core, segment.bytes, segment.decoded, segment.fromSeq, toSeq);
  const name = segmentFileName(segment.fromSeq);
  const path = join(dir, name);
  try {
    await replaceFileAtomically(path, join(dir, name + DOWNLOAD_TEMP_SUFFIX), bytes);
  } catch (err) {
    throw toGraphstreamError(err, `writing ${path}`);
  }
  const index = toSeq - segment.decoded.header.firstSeq;
  return {
    key: segment.key,
    path,
    firstSeq: segment.fromSeq,
    lastSeq: toSeq,
    entryCount: toSeq - segment.fromSeq + 1,
    bytes: bytes.byteLength,
    chainHash: Buffer.from(chainHashAfter(segment.decoded, index)),
    createdMs: segment.decoded.header.createdMs,
    compacted: segment.compacted,
    cut: segment.fromSeq !== segment.decoded.header.firstSeq,
  };
}

export interface DownloadOptions {
  /** the core doing the decoding; default the native one, else the pure one */
  core?: Core;
  /** generation of the incremental journal; default 0 */
  generation?: number;
  /**
   * chain hash after `sinceSeq`, needed when `dir` holds no segment (a follower starting from a
   * snapshot); checked against the directory otherwise
   */
  sinceHash?: Uint8Array;
  metrics?: GraphstreamMetrics;
  /** segments fetched ahead while one is written (the first of them decoded ahead); default 3; 0 fetches nothing ahead */
  prefetch?: number;
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
  const prefetch = checkPrefetch(options.prefetch ?? DEFAULT_PREFETCH);
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
    { storage, prefix, db, generation: options.generation ?? 0 },
    core,
    { position: start, aligned: local.hasSegments || start.sequence === 0 },
    options.metrics,
    { prefetch },
  );
  const downloaded: DownloadedSegment[] = [];
  try {
    for (let segment = await remote.next(); segment !== null; segment = await remote.next()) {
      downloaded.push(await storeSegment(core, directory, segment));
      remote.accept(segment);
    }
  } finally {
    remote.abandonPrefetched();
  }
  return downloaded;
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
  /** ends the iteration (normally, after persisting the position) */
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
  /** created_ms of the segment holding the next entry to apply, when known */
  private applyingCreatedMs: number | null = null;
  private remoteNewest = 0;

  constructor(options: FollowerOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '') throw new GraphstreamError('invalid_argument', 'Follower: dir must be a non-empty path');
    checkPrefix(options.prefix ?? '', 'Follower');
    checkDb(options.db, 'Follower');
    segmentKey(options.prefix ?? '', options.db, compactedGeneration(options.generation ?? 0), 0); // validates generation
    this.dir = resolve(options.dir);
    this.location = { storage: options.storage, prefix: options.prefix ?? '', db: options.db, generation: options.generation ?? 0 };
    this.metrics = options.metrics;
    this.coreOption = options.core;
    this.prefetch = checkPrefetch(options.prefetch ?? DEFAULT_PREFETCH);
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

  /** Downloads every new segment, marks everything applied, and says what that was. */
  async catchUp(): Promise<CatchUpResult> {
    this.claim();
    try {
      const { core, remote } = await this.open();
      const fromSequence = this.applied.sequence;
      const segments: DownloadedSegment[] = [];
      try {
        for (let segment = await remote.next(); segment !== null; segment = await remote.next()) {
          segments.push(await storeSegment(core, this.dir, segment));
          remote.accept(segment);
        }
      } finally {
        remote.abandonPrefetched();
      }
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

  /** tail()'s records a segment at a time; each record is marked applied when the one after it is asked for. */
  private async *tailSegments(options: TailOptions): AsyncGenerator<IterableIterator<RawJournalRecord>, void, undefined> {
    const pollIntervalMs = positiveInteger(options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, 'pollIntervalMs');
    const maxPollIntervalMs = Math.max(pollIntervalMs, positiveInteger(options.maxPollIntervalMs ?? DEFAULT_MAX_POLL_INTERVAL_MS, 'maxPollIntervalMs'));
    const gapTimeoutMs = options.gapTimeoutMs ?? DEFAULT_GAP_TIMEOUT_MS;
    if (!Number.isSafeInteger(gapTimeoutMs) || gapTimeoutMs < 0) {
      throw new GraphstreamError('invalid_argument', `gapTimeoutMs must be a non-negative integer, got ${String(gapTimeoutMs)}`);
    }
    const { fromSeq, signal } = options;
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
    for (let index = segment.fromSeq - first; index < decoded.entryOffsets.length; index++) {
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
