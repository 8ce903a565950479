/**
 * Remote compaction: merges runs of consecutive uploaded segments into one larger segment, so
 * that object storage holds few objects per stretch of history and, once the originals are
 * deleted, stops growing with the number of segments ever shipped.
 *
 * Keys (./layout.ts), and how compacted and original segments live side by side:
 * - Originals stay where the uploader put them, in generation `g` (normally 0):
 *   `{prefix}{db}/{g:04x}/{first_seq:016x}.hadbj`.
 * - A compacted segment lives in the compacted generation `0x8000 | g`, keyed by the first
 *   sequence it holds: `wal/mydb/8000/0000000000000001.hadbj` replaces the originals of
 *   `wal/mydb/0000/` from sequence 1 up to its last_seq. Compacted segments always start and end
 *   on original boundaries and never overlap one another. Nothing is ever overwritten: both kinds
 *   are created with create-only puts.
 * - `{prefix}{db}/compaction-{g:04x}.json` is the compactor's manifest: every compacted segment
 *   (range, SHA-256, chain hashes, when it was confirmed) and the originals it supersedes that
 *   are still to be deleted. Only compaction reads it; one compactor runs per (prefix, db).
 * - Readers (./remote-journal.ts, for followers and restore) take the segment of generation `g`
 *   that starts at the next sequence they need. When there is none (its original was compacted
 *   and deleted, or the reader starts inside a segment), they take the compacted segment that covers that sequence,
 *   verify all of it, check that the chain hash before the needed sequence is theirs, and keep
 *   only the entries from that sequence on. So a follower part-way through originals continues
 *   inside a compacted segment, and a fresh one reads compacted segments from the start; the
 *   entries and hashes are the same either way. Two originals overlapping, or a sequence no
 *   segment holds, stays an `overlap` / `gap` error.
 * - Compaction works within one generation and only up to where the next generation starts
 *   (./generations.ts): an original of `g` past that was left by a writer that had lost the
 *   lease, and is never compacted (nor deleted). A compacted segment made before the record that
 *   ends `g` appeared may still run past that end; readers cut it there.
 * - Retention deletes an original only once its compacted replacement was uploaded, read back
 *   and compared byte for byte, `retention.minAgeMs` have passed since then, and it is not one of
 *   the newest `retention.keepLast` originals (at least 1: a reader polling for new segments
 *   lists generation `g` after its position, and the newest original tells it where the journal
 *   ends).
 *
 * Memory is about one output segment: inputs are fetched and decoded one at a time and their raw
 * entries collected until the output would pass `maxOutputBytes`, then sealed.
 */
import type { Core, RawSegment, SegmentCore } from '../core/core.js';
import { GraphstreamError, normalizeAsyncErrors, toGraphstreamError } from '../errors.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_ZSTD_LEVEL, FLAG_COMPRESSED, FLAG_SEALED } from '../format/constants.js';
import { resolveCore } from '../core/default.js';
import { sameBytes, sha256Hex } from '../storage/bytes.js';
import { checkDb, checkPrefix, objectName } from '../storage/names.js';
import type { SegmentStorage } from '../storage/types.js';
import { claimsMetadata, decryptDownloaded, encryptForUpload, encryptsUploads, type ReadEncryption, type UploadEncryption } from './encryption.js';
import { GenerationRecords, type UndecidedGeneration } from './generations.js';
import { compactedGeneration, compactionManifestKey, generationPrefix, listSegmentKeys, segmentKey, type ListedSegment } from './layout.js';

const MANIFEST_VERSION = 1;

export interface RetentionPolicy {
  /** an original is deleted only this long after its compacted replacement was confirmed */
  minAgeMs: number;
  /** the newest originals kept whatever their age (at least 1) */
  keepLast: number;
}

export interface CompactionConfig {
  /** compact once at least this many uploaded originals are not compacted yet (at least 2) */
  threshold: number;
  /** zstd level of compacted segments, 0 for none */
  level: number;
  /** ceiling on the raw entries of one compacted segment (one original bigger than it is copied alone) */
  maxOutputBytes: number;
  retention: RetentionPolicy;
}

export const DEFAULT_COMPACTION_CONFIG: Readonly<CompactionConfig> = Object.freeze({
  threshold: 16,
  level: DEFAULT_ZSTD_LEVEL,
  maxOutputBytes: DEFAULT_MAX_BODY_BYTES,
  retention: Object.freeze({ minAgeMs: 24 * 60 * 60 * 1000, keepLast: 1 }),
});

export type CompactionConfigInit = Partial<Omit<CompactionConfig, 'retention'>> & { retention?: Partial<RetentionPolicy> };

export interface CompactionOptions {
  storage: SegmentStorage;
  /** key prefix, empty or ending in `/` */
  prefix?: string;
  db: string;
  /** generation of the originals; default 0 */
  generation?: number;
  config?: CompactionConfigInit;
  /** default the native core, else the pure one */
  core?: Core;
  /** clock for retention (tests); default Date.now */
  now?: () => number;
  /** identities to open encrypted originals, and recipients to encrypt the compacted segments to (./encryption.ts) */
  encryption?: ReadEncryption & UploadEncryption;
}

/** A compacted segment, as the compaction manifest records it. */
export interface CompactedSegmentRecord {
  key: string;
  firstSeq: number;
  lastSeq: number;
  entryCount: number;
  size: number;
  sha256: string;
  /** chain hash before firstSeq (hex) */
  startHash: string;
  /** chain hash after lastSeq (hex) */
  chainHash: string;
  /** when it was read back from storage and found identical */
  confirmedAt: number;
  /** keys of the originals it supersedes that are not deleted yet */
  originals: string[];
}

export interface CompactionResult {
  /** compacted segments created (or adopted, when an earlier run had created them) by this run */
  compacted: CompactedSegmentRecord[];
  /** originals deleted by retention in this run */
  deleted: string[];
  /** originals not compacted yet */
  uncompacted: number;
  /**
   * Set when nothing was compacted or deleted because the generation is the newest one and the
   * lease names a later generation whose record is not written yet: where this generation ends
   * is not known, so its originals may include a stale writer's (FORMAT.md, "Ownership and generations")
   */
  undecided?: UndecidedGeneration;
}

interface CompactionManifest {
  version: number;
  segments: CompactedSegmentRecord[];
}

/** zstd level to re-seal a part of `decoded` with: compressed stays compressed. */
export function levelOf(decoded: RawSegment): number {
  return (decoded.header.flags & FLAG_COMPRESSED) !== 0 ? DEFAULT_ZSTD_LEVEL : 0;
}

/**
 * Seals raw, already chained entries (back to back, as in a decoded body) as one segment starting
 * at `firstSeq`: an unsealed segment is built with encodeHeader and sealed by the core, which
 * verifies every entry again.
 */
export async function sealRawEntries(
  core: SegmentCore,
  firstSeq: number,
  createdMs: number | bigint,
  bodies: readonly Uint8Array[],
  level: number,
): Promise<Buffer> {
  const header = core.encodeHeader({ firstSeq, createdMs });
  const unsealed = Buffer.concat([header, ...bodies]);
  return normalizeAsyncErrors(core.sealSegmentAsync(unsealed, { level }));
}

/**
 * The entries `fromSeq..toSeq` of a decoded segment as a sealed segment of their own (the
 * original bytes when that is all of it).
 */
export async function sliceSegment(
  core: SegmentCore,
  bytes: Buffer,
  decoded: RawSegment,
  fromSeq: number,
  toSeq: number,
): Promise<Buffer> {
  const first = decoded.header.firstSeq;
  const count = decoded.entryOffsets.length;
  if (fromSeq === first && toSeq === first + count - 1) return bytes;
  const start = decoded.entryOffsets[fromSeq - first]!;
  const end = toSeq - first + 1 < count ? decoded.entryOffsets[toSeq - first + 1]! : decoded.body.length;
  return sealRawEntries(core, fromSeq, decoded.header.createdMs, [decoded.body.subarray(start, end)], levelOf(decoded));
}

function resolveConfig(init: CompactionConfigInit | undefined): CompactionConfig {
  const config: CompactionConfig = {
    ...DEFAULT_COMPACTION_CONFIG,
    ...init,
    retention: { ...DEFAULT_COMPACTION_CONFIG.retention, ...init?.retention },
  };
  const integer = (value: number, name: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new GraphstreamError('invalid_argument', `compaction ${name} must be an integer in ${min}..${max}, got ${String(value)}`);
    }
  };
  integer(config.threshold, 'threshold', 2);
  integer(config.level, 'level', 0, 22);
  // at most the readers' default body ceiling, so that followers read compacted segments with their defaults
  integer(config.maxOutputBytes, 'maxOutputBytes', 1, DEFAULT_MAX_BODY_BYTES);
  integer(config.retention.minAgeMs, 'retention.minAgeMs', 0);
  integer(config.retention.keepLast, 'retention.keepLast', 1);
  return config;
}

async function readManifest(storage: SegmentStorage, key: string): Promise<CompactionManifest> {
  const bytes = await storage.get(key);
  if (bytes === null) return { version: MANIFEST_VERSION, segments: [] };
  let parsed: Partial<CompactionManifest> | null;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<CompactionManifest> | null;
  } catch (err) {
    throw new GraphstreamError('invalid_segment', `${objectName(storage.description, key)} is not JSON: ${(err as Error).message}`);
  }
  if (parsed?.version !== MANIFEST_VERSION || !Array.isArray(parsed.segments)) {
    throw new GraphstreamError('invalid_segment', `${objectName(storage.description, key)}: not a version ${MANIFEST_VERSION} compaction manifest`);
  }
  let next = 0;
  for (const record of parsed.segments) {
    const valid =
      typeof record === 'object' &&
      record !== null &&
      typeof record.key === 'string' &&
      Number.isSafeInteger(record.firstSeq) &&
      Number.isSafeInteger(record.lastSeq) &&
      record.firstSeq > next &&
      record.lastSeq >= record.firstSeq &&
      /^[0-9a-f]{64}$/.test(record.chainHash) &&
      /^[0-9a-f]{64}$/.test(record.startHash) &&
      Array.isArray(record.originals) &&
      record.originals.every((key) => typeof key === 'string');
    if (!valid) throw new GraphstreamError('invalid_segment', `${objectName(storage.description, key)}: malformed record ${JSON.stringify(record)}`);
    next = record.lastSeq;
  }
  return parsed as CompactionManifest;
}

async function writeManifest(storage: SegmentStorage, key: string, manifest: CompactionManifest): Promise<void> {
  await storage.put(key, Buffer.from(JSON.stringify(manifest, null, 1) + '\n', 'utf8'));
}

/** One original, fetched and verified. */
interface Original {
  key: string;
  decoded: RawSegment;
}

class Compactor {
  private readonly storage: SegmentStorage;
  private readonly prefix: string;
  private readonly db: string;
  private readonly generation: number;
  private readonly config: CompactionConfig;
  private readonly now: () => number;
  private readonly manifestKey: string;
  private readonly encryption: (ReadEncryption & UploadEncryption) | undefined;

  constructor(
    options: CompactionOptions,
    private readonly core: Core,
  ) {
    this.storage = options.storage;
    this.prefix = options.prefix ?? '';
    this.db = options.db;
    this.generation = options.generation ?? 0;
    checkPrefix(this.prefix, 'compaction');
    checkDb(this.db, 'compaction');
    this.manifestKey = compactionManifestKey(this.prefix, this.db, this.generation);
    this.config = resolveConfig(options.config);
    this.now = options.now ?? Date.now;
    this.encryption = options.encryption;
  }

  private where(key: string): string {
    return objectName(this.storage.description, key);
  }

  async run(): Promise<CompactionResult> {
    const manifest = await readManifest(this.storage, this.manifestKey);
    const last = manifest.segments[manifest.segments.length - 1];
    let position: { sequence: number; chainHash: Buffer | null } = last
      ? { sequence: last.lastSeq, chainHash: Buffer.from(last.chainHash, 'hex') }
      : { sequence: 0, chainHash: null };
    const listed = await listSegmentKeys(this.storage, generationPrefix(this.prefix, this.db, this.generation), position.sequence);
    // Read after the originals, so that a record ending this generation before one of them is
    // seen, and so is a lease naming a later generation whose record is not written yet.
    const records = new GenerationRecords(this.storage, this.prefix, this.db);
    const undecided = await records.refreshAfterListing();
    const generations = records.generations;
    const generation = generations.find((known) => known.generation === this.generation);
    if (undecided !== null && (generation === undefined || generation.lastSeq === Number.MAX_SAFE_INTEGER)) {
      return { compacted: [], deleted: [], uncompacted: listed.length, undecided };
    }
    if (last === undefined && generation?.recordKey) position = { sequence: generation.startSeq - 1, chainHash: generation.prevHash };
    // Originals past the generation's end are stale (left by a writer that had lost the lease): never compacted.
    const end = generation?.lastSeq ?? Number.MAX_SAFE_INTEGER;
    const originals = listed.filter((original) => original.firstSeq <= end);

    const compacted: CompactedSegmentRecord[] = [];
    let next = 0;
    let carried: Original | null = null;
    while (originals.length - next >= this.config.threshold) {
      const group: Original[] = [];
      let bytes = 0;
      while (next < originals.length) {
        const original: Original = carried ?? (await this.fetchOriginal(originals[next]!, position, end));
        carried = null;
        if (group.length > 0 && bytes + original.decoded.body.length > this.config.maxOutputBytes) {
          carried = original;
          break;
        }
        group.push(original);
        bytes += original.decoded.body.length;
        position = { sequence: original.decoded.header.lastSeq, chainHash: original.decoded.chainHash };
        next++;
      }
      const record = await this.emit(group);
      manifest.segments.push(record);
      await writeManifest(this.storage, this.manifestKey, manifest);
      compacted.push(record);
    }

    const deleted = await this.applyRetention(manifest, originals.slice(next).map((original) => original.key));
    return { compacted, deleted, uncompacted: originals.length - next };
  }

  /** Fetches and verifies an original that must continue `position`. */
  private async fetchOriginal(listed: ListedSegment, position: { sequence: number; chainHash: Buffer | null }, end: number): Promise<Original> {
    const stored = await this.storage.get(listed.key);
    if (stored === null) {
      throw new GraphstreamError('not_found', `compaction: ${this.where(listed.key)} was listed but is gone`, { details: { key: listed.key } });
    }
    const bytes = await this.decrypted(stored, listed.key);
    let decoded: RawSegment;
    try {
      decoded = await this.core.decodeSegmentAsync(bytes);
    } catch (err) {
      throw toGraphstreamError(err, `compaction: ${this.where(listed.key)} (sequence ${listed.firstSeq})`);
    }
    const { header } = decoded;
    if ((header.flags & FLAG_SEALED) === 0 || header.firstSeq !== listed.firstSeq) {
      throw new GraphstreamError(
        'invalid_segment',
        `compaction: ${this.where(listed.key)} is not the sealed segment its key names (first_seq ${header.firstSeq}, flags ${header.flags})`,
      );
    }
    if (header.lastSeq > end) {
      throw new GraphstreamError(
        'overlap',
        `compaction: ${this.where(listed.key)} holds sequences ${header.firstSeq}..${header.lastSeq}, past sequence ${end} where ` +
          `generation ${this.generation} ends (the next generation starts after it)`,
        { details: { key: listed.key } },
      );
    }
    // With no compacted segment yet, the first original anchors the chain (the journal may start from a snapshot).
    if (position.chainHash !== null) {
      if (header.firstSeq !== position.sequence + 1) {
        const gap = header.firstSeq > position.sequence + 1;
        throw new GraphstreamError(
          gap ? 'gap' : 'overlap',
          `compaction: ${this.where(listed.key)} starts at sequence ${header.firstSeq}, expected ${position.sequence + 1}` +
            (gap ? `: sequences ${position.sequence + 1}..${header.firstSeq - 1} of generation ${this.generation} are missing` : ''),
          { details: { key: listed.key, generation: this.generation, sequence: position.sequence + 1 } },
        );
      }
      if (!decoded.startHash.equals(position.chainHash)) {
        throw new GraphstreamError(
          'chain_broken',
          `compaction: ${this.where(listed.key)} (sequence ${header.firstSeq}) does not continue the chain after sequence ${position.sequence}`,
        );
      }
    }
    return { key: listed.key, decoded };
  }

  /** Seals the group, uploads it create-only, reads it back and compares. */
  private async emit(group: Original[]): Promise<CompactedSegmentRecord> {
    const first = group[0]!.decoded;
    const last = group[group.length - 1]!.decoded;
    const firstSeq = first.header.firstSeq;
    const sealed = await sealRawEntries(
      this.core,
      firstSeq,
      last.header.createdMs,
      group.map((original) => original.decoded.body),
      this.config.level,
    );
    const key = segmentKey(this.prefix, this.db, compactedGeneration(this.generation), firstSeq);
    const expected = {
      firstSeq,
      lastSeq: last.header.lastSeq,
      startHash: first.startHash,
      chainHash: last.chainHash,
    };
    await this.checkEquivalent(sealed, expected, 'the compacted segment just sealed');
    const encrypt = this.encryption !== undefined && encryptsUploads(this.encryption) ? this.encryption : undefined;
    let stored: Uint8Array = await encryptForUpload(this.core, sealed, encrypt, `compaction: ${this.where(key)}`);
    // an encrypted output says which segment it holds, as the Uploader's objects do (encryption.ts, SegmentClaims)
    const metadata =
      encrypt === undefined
        ? undefined
        : claimsMetadata({ plaintextSha256: await sha256Hex(sealed), lastSeq: expected.lastSeq, chainHash: expected.chainHash.toString('hex') });
    try {
      await this.storage.put(key, stored, { ifNoneMatch: '*', ...(metadata ? { metadata } : {}) });
    } catch (err) {
      if (toGraphstreamError(err).code !== 'conflict') throw err;
      // An earlier run created this key but did not record it: adopt it if it holds the same entries.
      const existing = await this.storage.get(key);
      if (existing === null) throw err;
      await this.checkEquivalent(await this.decrypted(existing, key), expected, `${this.where(key)}, created by an earlier run,`);
      stored = existing;
    }
    const readBack = await this.storage.get(key);
    if (readBack === null || !sameBytes(readBack, stored)) {
      throw new GraphstreamError('storage', `compaction: ${this.where(key)} did not read back as written; originals kept`, {
        details: { key, retryable: true },
      });
    }
    return {
      key,
      firstSeq,
      lastSeq: expected.lastSeq,
      entryCount: expected.lastSeq - firstSeq + 1,
      size: stored.byteLength,
      sha256: await sha256Hex(stored),
      startHash: expected.startHash.toString('hex'),
      chainHash: expected.chainHash.toString('hex'),
      confirmedAt: this.now(),
      originals: group.map((original) => original.key),
    };
  }

  /** The sealed segment a stored object holds (decrypted when it is encrypted). */
  private decrypted(stored: Uint8Array, key: string): Promise<Buffer> {
    const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
    return decryptDownloaded(this.core, bytes, this.encryption, `compaction: ${this.where(key)}`);
  }

  private async checkEquivalent(
    bytes: Uint8Array,
    expected: { firstSeq: number; lastSeq: number; startHash: Buffer; chainHash: Buffer },
    what: string,
  ): Promise<void> {
    let decoded: RawSegment;
    try {
      decoded = await this.core.decodeSegmentAsync(bytes);
    } catch (err) {
      throw toGraphstreamError(err, `compaction: ${what}`);
    }
    // The chain hash covers every entry, so equal ends and hashes mean equal entries.
    const same =
      decoded.header.firstSeq === expected.firstSeq &&
      decoded.header.lastSeq === expected.lastSeq &&
      decoded.startHash.equals(expected.startHash) &&
      decoded.chainHash.equals(expected.chainHash);
    if (!same) {
      throw new GraphstreamError(
        'conflict',
        `compaction: ${what} holds sequences ${decoded.header.firstSeq}..${decoded.header.lastSeq}, not the ` +
          `entries ${expected.firstSeq}..${expected.lastSeq} of its originals`,
      );
    }
  }

  /** Deletes superseded originals that retention allows; returns their keys. */
  private async applyRetention(manifest: CompactionManifest, uncompacted: string[]): Promise<string[]> {
    const { minAgeMs, keepLast } = this.config.retention;
    const newestFirst = [...uncompacted].reverse();
    for (let i = manifest.segments.length - 1; i >= 0 && newestFirst.length < keepLast; i--) {
      newestFirst.push(...[...manifest.segments[i]!.originals].reverse());
    }
    const kept = new Set(newestFirst.slice(0, keepLast));
    const now = this.now();
    const deleted: string[] = [];
    for (const record of manifest.segments) {
      if (record.originals.length === 0 || now - record.confirmedAt < minAgeMs) continue;
      const remaining: string[] = [];
      for (const key of record.originals) {
        if (kept.has(key)) {
          remaining.push(key);
          continue;
        }
        await this.storage.delete(key);
        deleted.push(key);
      }
      record.originals = remaining;
    }
    if (deleted.length > 0) await writeManifest(this.storage, this.manifestKey, manifest);
    return deleted;
  }
}

/**
 * One compaction pass: merges runs of at least `threshold` uncompacted originals, then deletes
 * the originals retention allows. See the module comment for keys and guarantees.
 */
function checkOptions(options: CompactionOptions): void {
  if (typeof options !== 'object' || options === null) throw new GraphstreamError('invalid_argument', 'compaction: options must be an object');
  if (typeof options.storage !== 'object' || options.storage === null) throw new GraphstreamError('invalid_argument', 'compaction: storage must be a SegmentStorage');
}

export async function compactOnce(options: CompactionOptions): Promise<CompactionResult> {
  checkOptions(options);
  const core = await resolveCore(options.core);
  return new Compactor(options, core).run();
}

export interface BackgroundCompactionOptions extends CompactionOptions {
  /** pause between passes; default 60 s */
  intervalMs?: number;
  /** a pass that failed (the loop goes on) */
  onError?: (err: GraphstreamError) => void;
  /** a pass that compacted or deleted something */
  onCompacted?: (result: CompactionResult) => void;
}

export interface BackgroundCompaction {
  /** Runs a pass now (or joins the running one). */
  runNow(): Promise<CompactionResult>;
  /** Stops the loop and waits for a running pass. Idempotent. */
  stop(): Promise<void>;
}

/** Runs compactOnce every `intervalMs` until stopped; the first pass starts at once. */
export function runBackgroundCompaction(options: BackgroundCompactionOptions): BackgroundCompaction {
  checkOptions(options);
  const intervalMs = options.intervalMs ?? 60_000;
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) {
    throw new GraphstreamError('invalid_argument', `compaction intervalMs must be a positive integer, got ${String(intervalMs)}`);
  }
  resolveConfig(options.config);
  let running: Promise<CompactionResult> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  const pass = (): Promise<CompactionResult> => {
    running ??= compactOnce(options).finally(() => {
      running = null;
    });
    return running;
  };
  const tick = (): void => {
    timer = null;
    pass()
      .then((result) => {
        if (result.compacted.length > 0 || result.deleted.length > 0) options.onCompacted?.(result);
      })
      .catch((err: unknown) => options.onError?.(toGraphstreamError(err, 'background compaction')))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  timer = setTimeout(tick, 0);

  return {
    runNow: () => {
      if (stopped) return Promise.reject(new GraphstreamError('closed', 'background compaction is stopped'));
      return pass();
    },
    async stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      await running?.catch(() => undefined);
    },
  };
}
