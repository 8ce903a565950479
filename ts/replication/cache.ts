/**
 * The local side of shipping: which sealed segments in a journal directory are already in a
 * destination (recorded in that destination's manifest), which are still pending, and cleanup of
 * the segments every known destination has.
 *
 * A destination is a storage (SegmentStorage.identity), a key prefix, a db and a generation; its
 * manifest is `uploads/{hash of the destination}.json` in the journal directory, and names the
 * destination in full. A destination with no manifest has nothing: it receives every segment.
 * Every manifest in `uploads/` is a known destination: cleanup keeps each segment until all of them
 * have it, and Journal.open refuses a journal behind what any of them recorded (uploadedHighWater).
 * A retired destination is forgotten by SegmentCache.forgetDestination (or by deleting its file).
 *
 * The single `manifest.json` of earlier versions had no destination: its records name their keys,
 * which hold the prefix, db and generation but not the storage. It stays a known destination (for
 * cleanup and the high-water mark) until the Uploader of a destination with those keys, whose
 * storage holds the newest recorded key, adopts its records (legacyRecords, adoptLegacy).
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Core, HeaderFields } from '../core/core.js';
import { resolveCore } from '../core/default.js';
import { replaceFileAtomically, syncDirectory } from '../journal/durable-fs.js';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { FLAG_HAS_CHAIN_HASH, FLAG_SEALED, HEADER_SIZE, SEGMENT_FILE_NAME, TRAILER_SIZE } from '../format/constants.js';
import { firstSeqOfFileName } from '../format/format.js';
import { segmentKey } from './layout.js';

export interface CacheConfig {
  /** uploaded segments older than this (since their upload) are deleted by cleanup */
  retentionMs: number;
  /** when all segment files together exceed this, cleanup deletes the oldest uploaded ones */
  maxBytes: number;
}

export const DEFAULT_CACHE_CONFIG: Readonly<CacheConfig> = Object.freeze({
  retentionMs: 24 * 60 * 60 * 1000,
  maxBytes: 1024 * 1024 * 1024,
});

/** Where segments are uploaded to: each has a manifest of its own. */
export interface Destination {
  /** SegmentStorage.identity (its description when it has none) */
  storage: string;
  /** key prefix, empty or ending in `/` */
  prefix: string;
  db: string;
  generation: number;
}

/** What the manifest records about one uploaded segment. */
export interface UploadRecord {
  /** file name in the journal directory, `journal-{first_seq:016}.hadbj` */
  name: string;
  /** object key it was stored under */
  key: string;
  size: number;
  /** SHA-256 of the file's bytes, hex */
  sha256: string;
  /** milliseconds since the Unix epoch */
  uploadedAt: number;
  /** last sequence in the segment */
  lastSeq: number;
  /** chain hash after lastSeq (the segment's trailer), hex: the next segment continues from it */
  chainHash: string;
}

/** The highest sequence a manifest records as uploaded, and where. */
export interface UploadedHighWater {
  lastSeq: number;
  /** chain hash after lastSeq, hex (null when only an earlier version's manifest.json records it) */
  chainHash: string | null;
  /** the destination, as `storage` + prefix + db + generation, for messages */
  destination: string;
  /** the manifest file that records it */
  manifest: string;
}

/** A sealed segment in the journal directory that the manifest does not record as uploaded. */
export interface PendingSegment {
  name: string;
  path: string;
  firstSeq: number;
  size: number;
  /** set when the file is plainly damaged: why it must not be uploaded */
  damaged?: string;
}

export interface CacheStats {
  /** segment files in the directory, any state */
  segments: number;
  bytes: number;
  uploadedSegments: number;
  uploadedBytes: number;
  pendingSegments: number;
  pendingBytes: number;
  /** unsealed segments (the live one, normally at most one) */
  liveSegments: number;
  liveBytes: number;
}

export interface CleanupStats {
  deletedSegments: number;
  deletedBytes: number;
  /** of the deleted ones, those past retentionMs */
  deletedByAge: number;
  /** of the deleted ones, those deleted to get under maxBytes */
  deletedBySize: number;
  /** segment files left in the directory */
  remainingSegments: number;
  remainingBytes: number;
}

/** The folder of the journal directory that holds one manifest per destination. */
export const MANIFEST_DIR = 'uploads';
/** The one manifest of earlier versions, for no destination in particular. */
export const LEGACY_MANIFEST_FILE = 'manifest.json';
const MANIFEST_VERSION = 2;
const HEX_HASH = /^[0-9a-f]{64}$/;

interface ManifestFile {
  version: number;
  destination: Destination;
  /** the uploaded segment with the highest lastSeq: kept when cleanup drops the records of deleted segments */
  tip: UploadRecord | null;
  segments: UploadRecord[];
}

/** The manifest file of `destination` in the journal directory `dir`. */
export function manifestPath(dir: string, destination: Destination): string {
  const canonical = JSON.stringify([destination.storage, destination.prefix, destination.db, destination.generation]);
  return join(dir, MANIFEST_DIR, `${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}.json`);
}

/** `storage` + prefix + db + generation, as messages name a destination. */
export function describeDestination(destination: Destination): string {
  return `${destination.storage} (prefix '${destination.prefix}', db '${destination.db}', generation ${destination.generation})`;
}

interface SegmentFile {
  name: string;
  path: string;
  firstSeq: number;
  size: number;
}

/**
 * One per journal directory and destination. Open it with `SegmentCache.open(dir, destination)`;
 * the manifest is read once and kept in memory, and every change is written back atomically (temp
 * file, fsync, rename, directory fsync) before the call that made it resolves. Concurrent changes
 * share one write, and a change may be held back briefly (markUploaded's `holdMs`) so that more
 * share it.
 */
export class SegmentCache {
  readonly config: CacheConfig;
  readonly manifestPath: string;
  private readonly records = new Map<string, UploadRecord>();
  private tipRecord: UploadRecord | null = null;
  /** counts changes to `records`; the manifest on disk has the first `durableChanges` of them */
  private changes = 0;
  private durableChanges = 0;
  private writing: Promise<void> | null = null;
  private manifestDirReady = false;
  private manifestOnDisk = false;
  /** held changes wait for this: opened when the first hold ends or an unheld write is asked for */
  private gate: { opened: Promise<void>; open(): void } | null = null;

  protected constructor(
    readonly dir: string,
    readonly destination: Destination,
    config: Partial<CacheConfig>,
    private readonly now: () => number,
    private readonly core: Core,
  ) {
    this.config = { ...DEFAULT_CACHE_CONFIG, ...config };
    for (const [name, value] of Object.entries(this.config)) {
      if (!(typeof value === 'number' && value >= 0)) {
        throw new GraphstreamError('invalid_argument', `cache config: ${name} must be a number >= 0, got ${String(value)}`);
      }
    }
    this.manifestPath = manifestPath(dir, destination);
  }

  /**
   * Opens the cache of `dir` for `destination`, reading its manifest if there is one. A manifest
   * that cannot be parsed is treated as empty: its segments are uploaded again, which conditional
   * puts make a no-op for identical bytes. Segment headers are read with `options.core`; default the
   * native addon (the pure twin where it does not load).
   */
  static async open(
    dir: string,
    destination: Destination,
    config: Partial<CacheConfig> = {},
    options: { now?: () => number; core?: Core } = {},
  ): Promise<SegmentCache> {
    const cache = new SegmentCache(dir, checkDestination(destination), config, options.now ?? Date.now, await resolveCore(options.core));
    const manifest = await readManifest(cache.manifestPath);
    if (manifest !== null) {
      if (!sameDestination(manifest.destination, destination)) {
        throw new GraphstreamError(
          'internal',
          `${cache.manifestPath} is the manifest of ${describeDestination(manifest.destination)}, not of ${describeDestination(destination)}`,
        );
      }
      for (const record of manifest.segments) cache.records.set(record.name, record);
      cache.tipRecord = manifest.tip;
      cache.manifestOnDisk = true;
    }
    return cache;
  }

  /**
   * Writes this destination's manifest if it has none yet, empty: from then on it is a known
   * destination, and cleanup keeps every segment for it until it has uploaded them.
   */
  async register(): Promise<void> {
    if (this.manifestOnDisk) return;
    this.changes++;
    this.openGate();
    await this.writeUntil(this.changes);
  }

  /**
   * Forgets a retired destination: deletes its manifest, so cleanup no longer keeps segments for it
   * and Journal.open no longer checks the journal against what it recorded. Run it while no
   * Uploader ships to that destination. Resolves to false when there was no manifest.
   */
  static async forgetDestination(dir: string, destination: Destination): Promise<boolean> {
    const path = manifestPath(dir, checkDestination(destination));
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw toGraphstreamError(err, `forgetting destination ${describeDestination(destination)}: deleting ${path}`);
    }
    await syncDirectory(join(dir, MANIFEST_DIR)).catch((err: unknown) => {
      throw toGraphstreamError(err, `forgetting destination ${describeDestination(destination)}`);
    });
    return true;
  }

  /** The highest sequence any manifest in `dir` records as uploaded, or null when none does. */
  static async uploadedHighWater(dir: string): Promise<UploadedHighWater | null> {
    let highest: UploadedHighWater | null = null;
    for (const { path, manifest } of await readAllManifests(dir)) {
      const tip = manifest.tip;
      if (tip !== null && (highest === null || tip.lastSeq > highest.lastSeq)) {
        highest = { lastSeq: tip.lastSeq, chainHash: tip.chainHash, destination: describeDestination(manifest.destination), manifest: path };
      }
    }
    const legacyPath = join(dir, LEGACY_MANIFEST_FILE);
    const legacy = await readLegacyManifest(legacyPath);
    const newest = legacy.at(-1);
    if (newest !== undefined) {
      // its records hold no last sequence: the newest one's first sequence is a lower bound
      const firstSeq = firstSeqOfFileName(newest.name);
      if (highest === null || firstSeq > highest.lastSeq) {
        highest = { lastSeq: firstSeq, chainHash: null, destination: `the storage holding ${newest.key}`, manifest: legacyPath };
      }
    }
    return highest;
  }

  isUploaded(name: string): boolean {
    return this.records.has(name);
  }

  /** The manifest's records, oldest segment first. */
  uploaded(): UploadRecord[] {
    return [...this.records.values()].sort(byName);
  }

  /** The manifest's record of segment file `name`, if it is recorded as uploaded. */
  record(name: string): UploadRecord | undefined {
    return this.records.get(name);
  }

  /** The uploaded segment with the highest last sequence, even when its file has been cleaned up. */
  tip(): UploadRecord | null {
    return this.tipRecord;
  }

  /** The record of the uploaded segment whose last sequence is `lastSeq`, if the manifest still has it. */
  recordEndingAt(lastSeq: number): UploadRecord | undefined {
    if (this.tipRecord?.lastSeq === lastSeq) return this.tipRecord;
    for (const record of this.records.values()) if (record.lastSeq === lastSeq) return record;
    return undefined;
  }

  /**
   * The records of an earlier version's manifest.json, when this destination has no manifest yet and
   * every record's key is the one this destination gives its segment (completed with the last
   * sequence and chain hash of its file; records whose file is gone are left out). Empty otherwise.
   */
  async legacyRecords(): Promise<UploadRecord[]> {
    if (this.records.size > 0 || this.tipRecord !== null) return [];
    const legacy = await readLegacyManifest(join(this.dir, LEGACY_MANIFEST_FILE));
    const { prefix, db, generation } = this.destination;
    if (legacy.length === 0 || !legacy.every((record) => record.key === segmentKey(prefix, db, generation, firstSeqOfFileName(record.name)))) return [];
    const completed = await mapInParallel(legacy, async (record): Promise<UploadRecord | null> => {
      const ends = await readSegmentEnds(join(this.dir, record.name), this.core);
      if (ends === null) return null;
      return { ...record, lastSeq: ends.header.lastSeq, chainHash: ends.trailer.toString('hex') };
    });
    return completed.filter((record): record is UploadRecord => record !== null);
  }

  /** Makes `records` (from legacyRecords) this destination's, then deletes manifest.json. */
  async adoptLegacy(records: readonly UploadRecord[]): Promise<void> {
    for (const record of records) this.remember(record);
    this.changes++;
    this.openGate();
    await this.writeUntil(this.changes);
    const legacyPath = join(this.dir, LEGACY_MANIFEST_FILE);
    try {
      await unlink(legacyPath);
      await syncDirectory(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toGraphstreamError(err, `removing ${legacyPath} after adopting its records`);
    }
  }

  /**
   * Records a segment as uploaded (at now, by default); resolves once the manifest on disk says so.
   * With `holdMs`, the write waits up to that long for more records to share it, and starts at
   * once when a change without a hold comes first. The record is visible (record(), isUploaded())
   * right away.
   */
  async markUploaded(upload: Omit<UploadRecord, 'uploadedAt'> & { uploadedAt?: number }, options: { holdMs?: number } = {}): Promise<UploadRecord> {
    if (!SEGMENT_FILE_NAME.test(upload.name)) {
      throw new GraphstreamError('invalid_argument', `cache: ${upload.name} is not a segment file name`);
    }
    if (!Number.isSafeInteger(upload.lastSeq) || upload.lastSeq < firstSeqOfFileName(upload.name) || !HEX_HASH.test(upload.chainHash)) {
      throw new GraphstreamError('invalid_argument', `cache: the record of ${upload.name} needs its lastSeq and its chainHash (64 hex digits)`);
    }
    const record: UploadRecord = { ...upload, uploadedAt: upload.uploadedAt ?? this.now() };
    this.remember(record);
    const change = ++this.changes;
    if (options.holdMs !== undefined && options.holdMs > 0) await this.hold(options.holdMs);
    else this.openGate();
    await this.writeUntil(change);
    return record;
  }

  private remember(record: UploadRecord): void {
    this.records.set(record.name, record);
    if (this.tipRecord === null || record.lastSeq >= this.tipRecord.lastSeq) this.tipRecord = record;
  }

  /** Sealed segments not recorded as uploaded, oldest first. Never the live (unsealed) segment. */
  /**
   * Sealed segments not recorded as uploaded, oldest first. Never the live (unsealed) segment. The
   * writer seals segments in order, so an unsealed segment before a sealed one, or a sealed one
   * whose header disagrees with its file name, is damaged: it is listed with `damaged` saying how,
   * and the uploader reports it as `corrupt` and uploads nothing after it.
   */
  async pending(): Promise<PendingSegment[]> {
    const candidates = (await this.segmentFiles()).filter((file) => !this.records.has(file.name));
    const headers = await mapInParallel(candidates, (file) => this.sealedHeader(file));
    const lastSealed = headers.findLastIndex((header) => header !== null);
    return candidates.slice(0, lastSealed + 1).map((file, i): PendingSegment => {
      const header = headers[i]!;
      const damaged =
        header === null
          ? 'its header does not say sealed (or does not decode), but a later segment is sealed'
          : header.firstSeq !== file.firstSeq
            ? `its header's first_seq ${header.firstSeq} is not its file name's ${file.firstSeq}`
            : undefined;
      return damaged === undefined ? file : { ...file, damaged };
    });
  }

  async stats(): Promise<CacheStats> {
    const stats: CacheStats = {
      segments: 0,
      bytes: 0,
      uploadedSegments: 0,
      uploadedBytes: 0,
      pendingSegments: 0,
      pendingBytes: 0,
      liveSegments: 0,
      liveBytes: 0,
    };
    const files = await this.segmentFiles();
    const sealed = await mapInParallel(files, async (file) => this.records.has(file.name) || (await this.sealedHeader(file)) !== null);
    for (const [i, file] of files.entries()) {
      stats.segments++;
      stats.bytes += file.size;
      if (this.records.has(file.name)) {
        stats.uploadedSegments++;
        stats.uploadedBytes += file.size;
      } else if (sealed[i]) {
        stats.pendingSegments++;
        stats.pendingBytes += file.size;
      } else {
        stats.liveSegments++;
        stats.liveBytes += file.size;
      }
    }
    return stats;
  }

  /**
   * Deletes segments every known destination has uploaded (this one and every other manifest in the
   * directory): those past retentionMs since this destination's upload, then the oldest while all
   * segment files together exceed maxBytes. Segments some destination has not uploaded and live
   * segments are never deleted, and neither is the newest deletable one: recovery reads the chain
   * tip (last sequence and chain hash) from it.
   */
  async cleanup(): Promise<CleanupStats> {
    const files = await this.segmentFiles();
    const present = new Set(files.map((file) => file.name));
    let manifestChanged = false;
    for (const name of this.records.keys()) {
      if (!present.has(name)) {
        this.records.delete(name);
        this.changes++;
        manifestChanged = true;
      }
    }

    const { sameDb, others } = await this.uploadedElsewhere();
    const uploadedAt = (name: string) => this.records.get(name)?.uploadedAt ?? sameDb.get(name)?.uploadedAt;
    const deletable = files.filter((file) => uploadedAt(file.name) !== undefined && others.every((uploaded) => uploaded.has(file.name)));
    deletable.pop(); // the newest of them stays
    const stats: CleanupStats = {
      deletedSegments: 0,
      deletedBytes: 0,
      deletedByAge: 0,
      deletedBySize: 0,
      remainingSegments: files.length,
      remainingBytes: files.reduce((sum, file) => sum + file.size, 0),
    };
    const now = this.now();
    for (const file of deletable) {
      const expired = now - uploadedAt(file.name)! > this.config.retentionMs;
      const overSize = stats.remainingBytes > this.config.maxBytes;
      if (!expired && !overSize) continue;
      await this.deleteSegment(file);
      manifestChanged = true;
      stats.deletedSegments++;
      stats.deletedBytes += file.size;
      stats.remainingSegments--;
      stats.remainingBytes -= file.size;
      if (expired) stats.deletedByAge++;
      else stats.deletedBySize++;
    }
    if (manifestChanged) {
      this.openGate();
      await this.writeUntil(this.changes);
    }
    return stats;
  }

  private async deleteSegment(file: SegmentFile): Promise<void> {
    try {
      await unlink(file.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toGraphstreamError(err, `cache cleanup: deleting ${file.path}`);
    }
    this.records.delete(file.name);
    this.changes++;
  }

  /**
   * What the other manifests of the directory record: `sameDb`, the uploads to other generations
   * of this destination's db (successive writers of one db under a lease: a segment one of them
   * uploaded is in the db, whichever generation holds it); `others`, for each other destination
   * (another storage, prefix or db; an earlier version's manifest.json), the segments it has.
   */
  private async uploadedElsewhere(): Promise<{ sameDb: Map<string, UploadRecord>; others: Set<string>[] }> {
    const sameDb = new Map<string, UploadRecord>();
    const others: Set<string>[] = [];
    for (const { manifest } of await readAllManifests(this.dir, this.manifestPath)) {
      if (sameDestination(manifest.destination, this.destination)) continue;
      if (sameDestination(manifest.destination, { ...this.destination, generation: manifest.destination.generation })) {
        for (const record of manifest.segments) sameDb.set(record.name, record);
      } else {
        others.push(new Set(manifest.segments.map((record) => record.name)));
      }
    }
    const legacy = await readLegacyManifest(join(this.dir, LEGACY_MANIFEST_FILE));
    if (legacy.length > 0) others.push(new Set(legacy.map((record) => record.name)));
    return { sameDb, others };
  }

  /** Names of the segment files in the directory (any state), oldest first. */
  async segmentFileNames(): Promise<string[]> {
    return (await this.segmentFiles()).map((file) => file.name);
  }

  /** Segment files in the directory, oldest first. */
  private async segmentFiles(): Promise<SegmentFile[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      throw toGraphstreamError(err, `cache: listing ${this.dir}`);
    }
    const segmentNames = names.filter((name) => SEGMENT_FILE_NAME.test(name)).sort();
    const files = await mapInParallel(segmentNames, async (name): Promise<SegmentFile | null> => {
      const path = join(this.dir, name);
      try {
        return { name, path, firstSeq: firstSeqOfFileName(name), size: (await stat(path)).size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw toGraphstreamError(err, `cache: stat ${path}`);
      }
    });
    return files.filter((file): file is SegmentFile => file !== null);
  }

  /**
   * Reads only the 128-byte header: null unless it decodes and says sealed. A file whose header does
   * not decode (too short, no magic: a live segment being created) is not sealed.
   */
  private async sealedHeader(file: SegmentFile): Promise<HeaderFields | null> {
    const bytes = Buffer.alloc(HEADER_SIZE);
    let bytesRead: number;
    try {
      const handle = await open(file.path, 'r');
      try {
        ({ bytesRead } = await handle.read(bytes, 0, HEADER_SIZE, 0));
      } finally {
        await handle.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw toGraphstreamError(err, `cache: reading the header of ${file.path}`);
    }
    let header: HeaderFields;
    try {
      header = this.core.decodeHeader(bytes.subarray(0, bytesRead));
    } catch {
      return null;
    }
    return (header.flags & FLAG_SEALED) === 0 ? null : header;
  }

  /** Resolves after `ms`, or as soon as the gate is opened. */
  private hold(ms: number): Promise<void> {
    if (this.gate === null) {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => (open = resolve));
      const timer = setTimeout(() => this.openGate(), ms);
      this.gate = {
        opened,
        open: () => {
          clearTimeout(timer);
          open();
        },
      };
    }
    return this.gate.opened;
  }

  private openGate(): void {
    const gate = this.gate;
    this.gate = null;
    gate?.open();
  }

  /** Resolves once the manifest on disk has the first `changes` changes; a change made while a write runs gets the next one. */
  private async writeUntil(changes: number): Promise<void> {
    while (this.durableChanges < changes) {
      this.writing ??= this.writeManifest().finally(() => {
        this.writing = null;
      });
      await this.writing;
    }
  }

  private async writeManifest(): Promise<void> {
    const changes = this.changes;
    const manifest: ManifestFile = { version: MANIFEST_VERSION, destination: this.destination, tip: this.tipRecord, segments: this.uploaded() };
    const text = JSON.stringify(manifest, null, 1) + '\n';
    try {
      if (!this.manifestDirReady) {
        await mkdir(join(this.dir, MANIFEST_DIR), { recursive: true });
        await syncDirectory(this.dir);
        this.manifestDirReady = true;
      }
      await replaceFileAtomically(this.manifestPath, `${this.manifestPath}.tmp`, Buffer.from(text, 'utf8'));
    } catch (err) {
      throw toGraphstreamError(err, `writing ${this.manifestPath}`);
    }
    this.durableChanges = Math.max(this.durableChanges, changes);
    this.manifestOnDisk = true;
  }
}

/**
 * Refuses (`corrupt`) a journal whose recovered position is behind what a manifest in `dir` records
 * as uploaded, or at it with another chain hash: handing those sequences out again would put a
 * second, different entry under a sequence that may already have left the machine.
 */
export async function assertNotBehindUploads(dir: string, position: { sequence: number; chainHash: Uint8Array }): Promise<void> {
  const high = await SegmentCache.uploadedHighWater(dir);
  if (high === null) return;
  const restore =
    `restore it from storage first: move its segment files aside and restore (graphstream restore) from that destination into ${dir}, ` +
    `then open it; or, if that destination is retired, forget it (SegmentCache.forgetDestination)`;
  if (position.sequence < high.lastSeq) {
    throw new GraphstreamError(
      'corrupt',
      `journal ${dir} recovered to sequence ${position.sequence}, but sequences up to ${high.lastSeq} were uploaded to ${high.destination} ` +
        `(${high.manifest}): sequences ${position.sequence + 1}..${high.lastSeq} are missing locally and must not be handed out again; ${restore}`,
    );
  }
  const hash = Buffer.from(position.chainHash).toString('hex');
  if (position.sequence === high.lastSeq && high.chainHash !== null && high.chainHash !== hash) {
    throw new GraphstreamError(
      'corrupt',
      `journal ${dir} recovered to sequence ${position.sequence} with chain hash ${hash}, but ${high.destination} received it with ` +
        `${high.chainHash} (${high.manifest}): the local chain is not the one that was shipped; ${restore}`,
    );
  }
}

/** File checks in flight at once: they are small thread-pool requests, cheaper together than one by one. */
const FILE_CHECKS_IN_FLIGHT = 16;

/** `task` over `items`, FILE_CHECKS_IN_FLIGHT at a time; the results in the order of `items`. */
async function mapInParallel<T, R>(items: readonly T[], task: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(FILE_CHECKS_IN_FLIGHT, items.length) }, worker));
  return results;
}

function byName(a: UploadRecord, b: UploadRecord): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function checkDestination(destination: Destination): Destination {
  if (typeof destination !== 'object' || destination === null) throw new GraphstreamError('invalid_argument', 'cache: destination must be an object');
  const { storage, prefix, db, generation } = destination;
  if (typeof storage !== 'string' || storage === '') throw new GraphstreamError('invalid_argument', 'cache: destination.storage must be a non-empty string');
  segmentKey(prefix, db, generation, 1); // validates prefix, db and generation
  return { storage, prefix, db, generation };
}

function sameDestination(a: Destination, b: Destination): boolean {
  return a.storage === b.storage && a.prefix === b.prefix && a.db === b.db && a.generation === b.generation;
}

function isRecord(record: unknown, complete: boolean): record is UploadRecord {
  const r = record as Partial<UploadRecord> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.name === 'string' &&
    SEGMENT_FILE_NAME.test(r.name) &&
    typeof r.key === 'string' &&
    typeof r.size === 'number' &&
    typeof r.sha256 === 'string' &&
    typeof r.uploadedAt === 'number' &&
    (!complete || (Number.isSafeInteger(r.lastSeq) && typeof r.chainHash === 'string' && HEX_HASH.test(r.chainHash)))
  );
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw toGraphstreamError(err, `reading ${path}`);
  }
}

/** A destination's manifest, or null when there is none or it cannot be parsed. */
async function readManifest(path: string): Promise<ManifestFile | null> {
  const text = await readText(path);
  return text === null ? null : parseManifest(text);
}

/** The manifest `text` holds, or null when it is not one. */
function parseManifest(text: string): ManifestFile | null {
  let parsed: Partial<ManifestFile> | null;
  try {
    parsed = JSON.parse(text) as Partial<ManifestFile> | null;
  } catch {
    return null;
  }
  const destination = parsed?.destination;
  if (typeof destination !== 'object' || destination === null || !Array.isArray(parsed?.segments)) return null;
  const segments = parsed.segments.filter((record) => isRecord(record, true));
  const tip = isRecord(parsed.tip, true) ? parsed.tip : (segments.at(-1) ?? null);
  return { version: MANIFEST_VERSION, destination, tip, segments: segments.sort(byName) };
}

/** Every destination's manifest in `dir/uploads/` (but the one at `except`). */
async function readAllManifests(dir: string, except?: string): Promise<{ path: string; manifest: ManifestFile }[]> {
  const folder = join(dir, MANIFEST_DIR);
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw toGraphstreamError(err, `listing ${folder}`);
  }
  const paths = names
    .filter((name) => name.endsWith('.json'))
    .map((name) => join(folder, name))
    .filter((path) => path !== except);
  const manifests = await mapInParallel(paths, async (path) => {
    const text = await readText(path);
    const manifest = text === null ? null : parseManifest(text);
    // It may record sequences that were shipped and segments its destination still needs: not knowing them is not knowing none.
    if (text !== null && manifest === null) {
      throw new GraphstreamError(
        'corrupt',
        `${path} is not an upload manifest: what it recorded as shipped is unknown; ` +
          `restore the journal from that destination, or delete the file if the destination is retired`,
      );
    }
    return { path, manifest };
  });
  return manifests.filter((entry): entry is { path: string; manifest: ManifestFile } => entry.manifest !== null);
}

/** The records of an earlier version's manifest.json, oldest first (none when it is absent or unreadable). */
async function readLegacyManifest(path: string): Promise<UploadRecord[]> {
  const text = await readText(path);
  if (text === null) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  const segments = (parsed as { segments?: unknown } | null)?.segments;
  if (!Array.isArray(segments)) return [];
  return segments.filter((record) => isRecord(record, false)).sort(byName);
}

/** The header and trailer of the sealed segment file at `path`; null when it is missing or not sealed with a trailer. */
export async function readSegmentEnds(path: string, core: Core): Promise<{ header: HeaderFields; trailer: Buffer } | null> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw toGraphstreamError(err, `opening ${path}`);
  }
  try {
    const head = Buffer.alloc(HEADER_SIZE);
    const { size } = await handle.stat();
    if (size < HEADER_SIZE + TRAILER_SIZE) return null;
    await handle.read(head, 0, HEADER_SIZE, 0);
    let header: HeaderFields;
    try {
      header = core.decodeHeader(head);
    } catch {
      return null;
    }
    if ((header.flags & (FLAG_SEALED | FLAG_HAS_CHAIN_HASH)) !== (FLAG_SEALED | FLAG_HAS_CHAIN_HASH)) return null;
    const trailer = Buffer.alloc(TRAILER_SIZE);
    await handle.read(trailer, 0, TRAILER_SIZE, size - TRAILER_SIZE);
    return { header, trailer };
  } catch (err) {
    throw toGraphstreamError(err, `reading ${path}`);
  } finally {
    await handle.close();
  }
}
