/**
 * The local side of shipping: which sealed segments in a journal directory are already in object
 * storage (recorded in `manifest.json`), which are still pending, and cleanup of uploaded ones.
 */
import { open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { HeaderFields } from './core.js';
import { replaceFileAtomically } from './durable-fs.js';
import { GraphstreamError, toGraphstreamError } from './errors.js';
import { FLAG_SEALED, HEADER_SIZE, decodeHeader } from './pure/format.js';

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
}

/** A sealed segment in the journal directory that the manifest does not record as uploaded. */
export interface PendingSegment {
  name: string;
  path: string;
  firstSeq: number;
  size: number;
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

export const MANIFEST_FILE = 'manifest.json';
const MANIFEST_VERSION = 1;
const SEGMENT_FILE = /^journal-(\d{16})\.hadbj$/;

interface ManifestFile {
  version: number;
  segments: UploadRecord[];
}

interface SegmentFile {
  name: string;
  path: string;
  firstSeq: number;
  size: number;
}

/**
 * One per journal directory. Open it with `SegmentCache.open(dir)`; the manifest is read once and
 * kept in memory, and every change is written back atomically (temp file, fsync, rename, directory
 * fsync) before the call that made it resolves. Concurrent changes share one write, and a change
 * may be held back briefly (markUploaded's `holdMs`) so that more share it.
 */
export class SegmentCache {
  readonly config: CacheConfig;
  readonly manifestPath: string;
  private readonly records = new Map<string, UploadRecord>();
  /** counts changes to `records`; the manifest on disk has the first `durableChanges` of them */
  private changes = 0;
  private durableChanges = 0;
  private writing: Promise<void> | null = null;
  /** held changes wait for this: opened when the first hold ends or an unheld write is asked for */
  private gate: { opened: Promise<void>; open(): void } | null = null;

  private constructor(
    readonly dir: string,
    config: Partial<CacheConfig>,
    private readonly now: () => number,
  ) {
    this.config = { ...DEFAULT_CACHE_CONFIG, ...config };
    for (const [name, value] of Object.entries(this.config)) {
      if (!(typeof value === 'number' && value >= 0)) {
        throw new GraphstreamError('invalid_argument', `cache config: ${name} must be a number >= 0, got ${String(value)}`);
      }
    }
    this.manifestPath = join(dir, MANIFEST_FILE);
  }

  /**
   * Opens the cache of `dir`, reading its manifest if there is one. A manifest that cannot be parsed
   * is treated as empty: its segments are uploaded again, which conditional puts make a no-op for
   * identical bytes.
   */
  static async open(dir: string, config: Partial<CacheConfig> = {}, options: { now?: () => number } = {}): Promise<SegmentCache> {
    const cache = new SegmentCache(dir, config, options.now ?? Date.now);
    await cache.load();
    return cache;
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.manifestPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw toGraphstreamError(err, `reading ${this.manifestPath}`);
    }
    for (const record of parseManifest(text)) this.records.set(record.name, record);
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

  /**
   * Records a segment as uploaded (at now, by default); resolves once the manifest on disk says so.
   * With `holdMs`, the write waits up to that long for more records to share it, and starts at
   * once when a change without a hold comes first. The record is visible (record(), isUploaded())
   * right away.
   */
  async markUploaded(upload: Omit<UploadRecord, 'uploadedAt'> & { uploadedAt?: number }, options: { holdMs?: number } = {}): Promise<UploadRecord> {
    if (!SEGMENT_FILE.test(upload.name)) {
      throw new GraphstreamError('invalid_argument', `cache: ${upload.name} is not a segment file name`);
    }
    const record: UploadRecord = { ...upload, uploadedAt: upload.uploadedAt ?? this.now() };
    this.records.set(record.name, record);
    const change = ++this.changes;
    if (options.holdMs !== undefined && options.holdMs > 0) await this.hold(options.holdMs);
    else this.openGate();
    await this.writeUntil(change);
    return record;
  }

  /** Sealed segments not recorded as uploaded, oldest first. Never the live (unsealed) segment. */
  async pending(): Promise<PendingSegment[]> {
    const candidates = (await this.segmentFiles()).filter((file) => !this.records.has(file.name));
    const sealed = await mapInParallel(candidates, (file) => this.isSealed(file));
    return candidates.filter((_, i) => sealed[i]);
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
    const sealed = await mapInParallel(files, (file) => (this.records.has(file.name) ? Promise.resolve(true) : this.isSealed(file)));
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
   * Deletes uploaded segments past retentionMs, then the oldest uploaded ones while all segment
   * files together exceed maxBytes. Pending and live segments are never deleted, and neither is the
   * newest uploaded segment: recovery reads the chain tip (last sequence and chain hash) from it.
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

    const deletable = files.filter((file) => this.records.has(file.name));
    deletable.pop(); // the newest uploaded segment stays
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
      const record = this.records.get(file.name)!;
      const expired = now - record.uploadedAt > this.config.retentionMs;
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

  /** Segment files in the directory, oldest first. */
  private async segmentFiles(): Promise<SegmentFile[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      throw toGraphstreamError(err, `cache: listing ${this.dir}`);
    }
    const segmentNames = names.filter((name) => SEGMENT_FILE.test(name)).sort();
    const files = await mapInParallel(segmentNames, async (name): Promise<SegmentFile | null> => {
      const path = join(this.dir, name);
      try {
        return { name, path, firstSeq: Number(SEGMENT_FILE.exec(name)![1]), size: (await stat(path)).size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw toGraphstreamError(err, `cache: stat ${path}`);
      }
    });
    return files.filter((file): file is SegmentFile => file !== null);
  }

  /**
   * Reads only the 128-byte header. A file whose header does not decode (too short, no magic: a
   * live segment being created) is not sealed. A sealed header whose first_seq disagrees with the
   * file name is an `invalid_segment`: uploading it would put it under the wrong key.
   */
  private async isSealed(file: SegmentFile): Promise<boolean> {
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
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw toGraphstreamError(err, `cache: reading the header of ${file.path}`);
    }
    let header: HeaderFields;
    try {
      header = decodeHeader(bytes.subarray(0, bytesRead));
    } catch {
      return false;
    }
    if ((header.flags & FLAG_SEALED) === 0) return false;
    if (header.firstSeq !== file.firstSeq) {
      throw new GraphstreamError(
        'invalid_segment',
        `${file.path}: header first_seq ${header.firstSeq} does not match the file name's sequence ${file.firstSeq}`,
      );
    }
    return true;
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
    const manifest: ManifestFile = { version: MANIFEST_VERSION, segments: this.uploaded() };
    const text = JSON.stringify(manifest, null, 1) + '\n';
    try {
      await replaceFileAtomically(this.manifestPath, `${this.manifestPath}.tmp`, Buffer.from(text, 'utf8'));
    } catch (err) {
      throw toGraphstreamError(err, `writing ${this.manifestPath}`);
    }
    this.durableChanges = Math.max(this.durableChanges, changes);
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

function parseManifest(text: string): UploadRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  const segments = (parsed as Partial<ManifestFile> | null)?.segments;
  if (!Array.isArray(segments)) return [];
  return segments.filter(
    (record): record is UploadRecord =>
      typeof record === 'object' &&
      record !== null &&
      typeof record.name === 'string' &&
      SEGMENT_FILE.test(record.name) &&
      typeof record.key === 'string' &&
      typeof record.size === 'number' &&
      typeof record.sha256 === 'string' &&
      typeof record.uploadedAt === 'number',
  );
}
