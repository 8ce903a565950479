/**
 * The remote journal reader: walks a journal in object storage in sequence order, verifying
 * every segment before anyone uses it. Followers (./follower.ts) and restore (./restore.ts) read
 * through it; the keys it lists are ./layout.ts's.
 *
 * A remote segment is kept only when its key's sequence equals its header's first_seq, it is
 * sealed, it decodes cleanly (checksums, CRCs, internal chain, trailer: off the JS thread on the
 * native core) and its chain continues the reader's chain hash. An encrypted object is decrypted
 * right after its download, before any of that (./encryption.ts): what is checked and kept is the
 * plaintext segment. A segment that starts past the reader's next sequence is a `gap`, one that
 * starts inside what it already has an `overlap`, a chain that does not continue (a segment of
 * another journal) `chain_broken`: errors, never skipped. `storeSegment` writes a kept segment
 * atomically (temp file, fsync, rename, directory fsync) into a local directory as
 * `journal-{first_seq:016}.hadbj`, which is then a journal directory like the leader's
 * (`readJournal`, `Journal.open`).
 *
 * Polling lists only the keys after the last sequence the reader has (`startAfter`). While one
 * segment is written and applied, the next ones of the listing (up to `prefetch`) are already
 * being fetched, and the first of them decoded; they are still checked and applied strictly in
 * order, and a failed fetch is reported when its segment's turn comes. Compacted segments
 * (./compaction.ts) are read where no original starts at the next sequence; the part of one the
 * reader already has is verified and cut off, so the local files never overlap.
 *
 * The reader follows the generations of the db in order (./generations.ts): it reads generation
 * g's segments (and g's compacted ones) up to the sequence before the next generation's start_seq
 * and then moves on to the next generation, whose record must continue the chain hash it has
 * there. A segment of g that starts past g's end is stale (a writer that had lost the lease left
 * it) and never read; one that runs past it is cut there. The records are listed again after every
 * listing of segments, so a generation that ends is seen as soon as the reader reaches its end.
 * Newly listed segments of the newest generation are taken only when lease.json, read after the
 * listing, names that generation or an earlier one; when it names a later one whose record is not
 * written yet, next() resolves with null (`undecided` says why) and the next poll looks again.
 */
import { throwIfAborted } from '../abort.js';
import { join } from 'node:path';
import type { RawSegment, SegmentCore } from '../core/core.js';
import { replaceFileAtomically } from '../journal/durable-fs.js';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { FLAG_SEALED } from '../format/constants.js';
import { segmentFileName } from '../format/format.js';
import { chainHashAfter, chainHashBefore } from '../format/raw-entries.js';
import type { GraphstreamMetrics } from '../metrics.js';
import type { ChainPosition } from '../journal/recovery.js';
import { checkDb, checkPrefix, objectName } from '../storage/names.js';
import type { SegmentStorage } from '../storage/types.js';
import { sliceSegment } from './compaction.js';
import { checkGenerationStart, generationHolding, GenerationRecords, type Generation, type UndecidedGeneration } from './generations.js';
import { decryptDownloaded, type ReadEncryption } from './encryption.js';
import { compactedGeneration, generationPrefix, listSegmentKeys, type ListedSegment } from './layout.js';
import { SegmentBuffers } from './segment-buffers.js';

/** storeSegment writes a segment's file under its name with this suffix, then renames it */
export const DOWNLOAD_TEMP_SUFFIX = '.download.tmp';
const DEFAULT_PREFETCH = 3;
/** buffers of each kind kept for reuse: the one given back at next() and the one fetched or decoded ahead next */
const FREE_BUFFERS = 2;

/** Where a journal lives in storage. */
export interface RemoteLocation {
  storage: SegmentStorage;
  /** key prefix, empty or ending in `/` (e.g. `wal/`) */
  prefix?: string;
  db: string;
  /** how to open encrypted objects, and whether plaintext ones are accepted (./encryption.ts) */
  encryption?: ReadEncryption;
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
  /** the last sequence the reader takes from it: its last, or the end of its generation when it runs past that */
  toSeq: number;
  /** its place in the current listing of the incremental generation (null for compacted ones) */
  listingIndex: number | null;
}

/** A segment written into a local journal directory (a follower's, or one being restored). */
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
  /** the remote segment started before firstSeq: the entries the reader already had were cut off */
  cut: boolean;
}

/** Segments fetched ahead (default 3), checked. */
export function checkPrefetch(prefetch: number = DEFAULT_PREFETCH): number {
  if (!Number.isSafeInteger(prefetch) || prefetch < 0) {
    throw new GraphstreamError('invalid_argument', `prefetch must be a non-negative integer, got ${String(prefetch)}`);
  }
  return prefetch;
}

type FetchedSegment = Omit<RemoteSegment, 'fromSeq' | 'toSeq' | 'listingIndex'>;

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
  private readonly prefix: string;
  private readonly db: string;
  private readonly encryption: ReadEncryption | undefined;
  private readonly records: GenerationRecords;
  /** index in records.generations of the generation being read; -1 before the first listing */
  private generationIndex = -1;
  private incrementalPrefix = '';
  private compactedPrefix = '';
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
  private undecidedNow: UndecidedGeneration | null = null;
  private holding: number | null = null;
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
    this.prefetch = checkPrefetch(ahead.prefetch);
    this.lastWanted = ahead.lastWanted ?? Number.MAX_SAFE_INTEGER;
    this.prefix = location.prefix ?? '';
    checkPrefix(this.prefix, 'remote journal');
    checkDb(location.db, 'remote journal');
    this.db = location.db;
    this.storage = location.storage;
    this.encryption = location.encryption;
    this.records = new GenerationRecords(this.storage, this.prefix, this.db);
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

  /** The generation being read (null before the first call of next()). */
  get generation(): Generation | null {
    return this.records.generations[this.generationIndex] ?? null;
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

  /**
   * Moves to the generation that holds `needed` when that is not the one being read (the reader
   * reached the end of its generation, or starts); says whether it moved.
   */
  private enterGenerationHolding(needed: number): boolean {
    const index = generationHolding(this.records.generations, needed);
    if (index === this.generationIndex) return false;
    const generation = this.records.generations[index]!;
    if (generation.startSeq === needed) checkGenerationStart(generation, this.position, this.storage);
    this.generationIndex = index;
    this.incrementalPrefix = generationPrefix(this.prefix, this.db, generation.generation);
    this.compactedPrefix = generationPrefix(this.prefix, this.db, compactedGeneration(generation.generation));
    this.dropListing();
    this.lastTaken = null;
    return true;
  }

  /** The last sequence of the generation being read. */
  private get generationEnd(): number {
    return this.generation?.lastSeq ?? Number.MAX_SAFE_INTEGER;
  }

  private async nextSegment(): Promise<RemoteSegment | null> {
    const needed = this.position.sequence + 1;
    if (this.generationIndex < 0) {
      await this.records.refresh();
      this.enterGenerationHolding(needed);
    } else if (this.position.sequence >= this.generationEnd) {
      this.enterGenerationHolding(needed);
    }
    if (this.listing === null) {
      const listing = await listSegmentKeys(this.storage, this.incrementalPrefix, this.position.sequence);
      // Read after the segments: a record that ends this generation before a segment listed is
      // seen now, and so is a lease naming a later generation whose record is not written yet.
      const undecided = listing.length > 0 || !this.aligned ? await this.records.refreshAfterListing(this.holding) : (await this.records.refresh(), null);
      if (this.enterGenerationHolding(needed)) return this.nextSegment();
      const end = this.generationEnd;
      this.undecidedNow = end === Number.MAX_SAFE_INTEGER ? undecided : null;
      if (this.undecidedNow !== null) return null; // where this generation ends is not known yet: nothing listed is taken
      this.listing = listing.filter((listed) => listed.firstSeq <= end);
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
    // A generation that has a successor must reach its end; the newest one may simply have nothing new.
    const ended = this.generationEnd < Number.MAX_SAFE_INTEGER;
    if (listed === undefined) this.dropListing(); // this round is done: the next call lists again
    if (listed === undefined && this.aligned && !ended) return null;
    const covering = await this.covering(needed);
    if (covering !== null) return covering;
    if (listed === undefined && !ended) return null;
    this.dropListing(); // a segment still being uploaded may close the gap: list again next time
    const generation = this.generation!.generation;
    if (listed === undefined) {
      throw new GraphstreamError(
        'gap',
        `no segment holds sequence ${needed}: generation ${generation} ends at sequence ${this.generationEnd} ` +
          `(the next generation starts after it), but ${this.where(this.incrementalPrefix)} and ${this.where(this.compactedPrefix)} ` +
          `hold nothing from sequence ${needed}: sequences ${needed}..${this.generationEnd} of generation ${generation} are missing`,
        { details: { generation, sequence: needed } },
      );
    }
    throw new GraphstreamError(
      'gap',
      missing !== null
        ? `${this.where(missing.key)} (sequence ${needed}) was listed but is missing, and no compacted segment in ` +
            `${this.where(this.compactedPrefix)} holds sequence ${needed} (generation ${generation})`
        : `no segment holds sequence ${needed}: after sequence ${needed - 1}, ${this.where(this.incrementalPrefix)} continues with ` +
            `${listed.key} (sequence ${listed.firstSeq}), and no compacted segment in ${this.where(this.compactedPrefix)} covers sequence ${needed}: ` +
            `sequences ${needed}..${listed.firstSeq - 1} of generation ${generation} are missing`,
      { details: { key: listed.key, generation, sequence: needed } },
    );
  }

  /**
   * Set when the last next() resolved with null because the lease names a generation whose record
   * is not written yet (FORMAT.md, "Ownership and generations"): segments listed past the tip may
   * be a stale writer's, so none is taken until the record says where the generation ends.
   */
  get undecided(): UndecidedGeneration | null {
    return this.undecidedNow;
  }

  /**
   * This reader holds the lease naming `generation` (a follower taking over): it reads everything
   * the generations before hold, whatever the lease says, since its tip decides where they end.
   */
  holdLease(generation: number): void {
    this.holding = generation;
  }

  /** Moves past a segment `next()` returned, once the reader has stored it. */
  accept(segment: RemoteSegment): void {
    const { decoded, toSeq } = segment;
    this.position = { sequence: toSeq, chainHash: Buffer.from(chainHashAfter(decoded, toSeq - decoded.header.firstSeq)) };
    this.aligned = true;
    if (segment.listingIndex === null) {
      this.dropListing(); // list again after the compacted segment's end
    } else {
      this.listingIndex = segment.listingIndex + 1;
      this.lastTaken = { key: segment.key, firstSeq: decoded.header.firstSeq, lastSeq: toSeq };
    }
  }

  /**
   * Stores every segment after the tip into `dir`, oldest first, moving past each; resolves with
   * them. An aborted `signal` stops it between segments with an AbortError (`what` names the
   * operation); what was stored stays stored and the tip past it.
   */
  async storeAll(dir: string, signal?: AbortSignal, what = 'download'): Promise<DownloadedSegment[]> {
    const stored: DownloadedSegment[] = [];
    // a listing left by an earlier tail would end this at its end without listing again
    this.dropListing();
    try {
      throwIfAborted(signal, what);
      for (let segment = await this.next(); segment !== null; segment = await this.next()) {
        throwIfAborted(signal, what);
        stored.push(await storeSegment(this.core, dir, segment));
        this.accept(segment);
      }
      throwIfAborted(signal, what);
    } finally {
      this.abandonPrefetched();
    }
    return stored;
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
      const end = this.generationEnd;
      this.fullListing ??= (await listSegmentKeys(this.storage, this.incrementalPrefix, 0)).filter((listed) => listed.firstSeq <= end);
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
    let segment: Buffer;
    try {
      segment = await decryptDownloaded(this.core, bytes, this.encryption, `${this.where(listed.key)} (sequence ${listed.firstSeq})`);
    } catch (err) {
      if (pooled !== null) this.storedObjects.give(pooled);
      throw err;
    }
    // a decrypted segment has a buffer of its own: the stored object's goes back at once
    if (pooled !== null) {
      if (segment === bytes) this.pooledObjects.set(bytes, pooled);
      else this.storedObjects.give(pooled);
    }
    return segment;
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
    const toSeq = Math.min(segment.decoded.header.lastSeq, this.generationEnd);
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
    return { ...segment, fromSeq: needed, toSeq };
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

/** Writes the part of a remote segment the reader needs (from `fromSeq` up to `toSeq`) into `dir`, atomically. */
export async function storeSegment(
  core: SegmentCore,
  dir: string,
  segment: RemoteSegment,
  toSeq: number = segment.toSeq,
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
