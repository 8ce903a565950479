/**
 * Crash recovery of a journal directory: where the writer continues from, and
 * whether what is on disk is what a crash leaves or corruption.
 *
 * Recovery reads the last sealed segment (verified in full) and what follows it
 * (normally one unsealed segment) and checks them against each other, so it costs
 * the same for 10 segments as for 10,000; `verify: 'full'` checks them all.
 *
 * A crash can only leave a torn tail: the end of the last write, that is bytes
 * after the last whole, verified entry of the last segment holding entries that
 * do not form an entry, with no verified entry after them, and after it any
 * number of segments that hold no complete entry (a power loss can leave several
 * new segments empty, issue 21). Everything else is corruption: a bad entry with
 * a verified one after it, a sealed segment that fails its checks, a header that
 * disagrees with its entries or its file name, segments that do not continue each
 * other. Recovery cuts a torn tail; corruption fails with `corrupt` and changes
 * nothing, unless `repair: 'quarantine'` moves the damaged data into
 * `quarantine/<time>/` (never deleting it) and continues from the last entry that
 * verifies.
 *
 * Finding the last sealed segment costs no directory listing when the head hint
 * (ts/journal/head-hint.ts) holds: it names the newest segment and the one before it;
 * recovery checks the same segments as the full path would, following successors
 * by sequence (a few segments a crash left before the hint was rewritten). Whenever
 * something does not check out (no hint, a named file missing, the segment before
 * an unsealed head not sealed, a segment holding no entry, a leftover temporary
 * file, any corruption) the directory is listed and the full path decides,
 * reporting any error itself; it then rewrites the hint.
 *
 * What the hint path cannot see: files it has no reason to look at. Only the
 * writer creates segments, in sequence order, and it seals them in order, so a
 * segment that skips sequences after the head, or a temporary sealed file of a
 * segment older than the last sealed one, is not a state a crash leaves; the
 * full path would report the first and remove the second.
 */
import { mkdir, open, readdir, readFile, rename, stat, truncate, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Core, HeaderFields, RawSegment, WriterStart } from '../core/core.js';
import { resolveCore } from '../core/default.js';
import { syncDirectory, replaceFileAtomically } from './durable-fs.js';
import { GraphstreamError, toGraphstreamError, type ErrorCode } from '../errors.js';
import {
  HEADER_SIZE,
  HEADER_OFFSET,
  HEADER_RESERVED_RANGES,
  TRAILER_SIZE,
  HASH_SIZE,
  ZERO_HASH,
  FLAG_COMPRESSED,
  FLAG_SEALED,
  FLAG_HAS_CHAIN_HASH,
  ENTRY_HEADER_SIZE,
  ENTRY_PAYLOAD_LEN_OFFSET,
  ENTRY_SEQUENCE_OFFSET,
  ENTRY_PREV_HASH_OFFSET,
  SEGMENT_FILE_NAME,
  SEAL_TEMP_SUFFIX,
  SPARE_SEGMENT_FILE,
} from '../format/constants.js';
import { firstSeqOfFileName, lastNonZero, segmentFileName, zeroTailLength } from '../format/format.js';
import { readHeadHint, writeHeadHint, type HeadHint } from './head-hint.js';

export const RECOVERY_FILE = 'recovery.json';
const RECOVERY_TEMP = 'recovery.json.tmp';
/** the folder inside a journal directory that `repair: 'quarantine'` moves damaged data into */
export const QUARANTINE_DIR = 'quarantine';
/** How many of the newest segments recovery orders before it falls back to ordering them all. */
const TAIL_GUESS = 2;

/** The format functions the reader needs from a Core. */
export type SegmentReadCore = Pick<Core, 'decodeHeader' | 'decodeSegmentAsync'>;

/** The format functions recovery needs from a Core. */
export type RecoveryCore = SegmentReadCore & Pick<Core, 'decodeEntry'>;

/** A segment file of a journal directory. */
export interface SegmentFile {
  name: string;
  path: string;
  /** from the file name, which the writer derives from the header's first_seq */
  firstSeq: number;
}

/** Where a journal stands, as recorded by recovery.json or the segments. */
export interface ChainPosition {
  /** last sequence written (0 for a new journal) */
  sequence: number;
  /** chain hash after `sequence` (32 zero bytes for a new journal) */
  chainHash: Buffer;
}

export interface RecoveredJournalState extends WriterStart {
  /** the unsealed segment to continue, as an absolute path, or null when the next append starts a new segment */
  liveSegment: string | null;
  /** path of the last sealed segment, or null */
  lastSealedSegment: string | null;
  /** complete unsealed segments before the live one (a crash came before the background sealer), oldest first: the writer seals them */
  retiredSegments: string[];
  /** bytes cut off a torn tail (a crash mid-append); on a dry run, the bytes it would cut */
  truncatedBytes: number;
  /**
   * of `truncatedBytes`, the zeros that ended the file: under `'fsync'` the native writer
   * writes zeros ahead of its entries (so that an append's fdatasync has no file size to
   * commit), and a crash leaves those it had not reached yet. No entry was in them.
   */
  zeroTailBytes: number;
  /**
   * leftover files removed (on a dry run, that it would remove): temporary sealed files, the
   * native writer's spare segment, and trailing segments that hold no complete entry
   */
  removedFiles: string[];
  /** what `repair: 'quarantine'` moved aside (would move, on a dry run); null when nothing was damaged */
  quarantine: QuarantineReport | null;
}

export interface RecoverOptions {
  /** the core doing the decoding; default the native addon (the pure twin where it does not load) */
  core?: RecoveryCore;
  /**
   * What recovery may change. Only the holder of the journal's lock may repair:
   * Journal.open does it under the lock.
   * - `true` (default): cut a torn tail and remove what a crash left; corruption
   *   fails with `corrupt` and changes nothing.
   * - `'quarantine'`: also move damaged data (the damaged segment and every later
   *   one, or the end of an unsealed segment from the damage on) into
   *   `quarantine/<time>/`, never deleting it, and continue from the last entry
   *   that verifies; `quarantine` in the result says which sequences were dropped.
   * - `false`: change nothing; the result says what `true` would do (a dry run).
   */
  repair?: boolean | 'quarantine';
  /** change nothing; the result says what `repair` would do */
  dryRun?: boolean;
  /**
   * `'tail'` (default): verify the last sealed segment and what follows it, O(1) in
   * the number of segments. `'full'`: verify every segment and the chain across them
   * all (no missing segment, only the oldest may have been removed).
   */
  verify?: 'tail' | 'full';
}

/** The error for a problem in a segment file, naming the file (and sequence when known). */
export function segmentError(err: unknown, path: string, sequence?: number): GraphstreamError {
  return toGraphstreamError(err, sequence === undefined ? path : `${path} (sequence ${sequence})`);
}

/** Lists the segment files of `dir` in sequence order. */
export async function listSegments(dir: string): Promise<SegmentFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw toGraphstreamError(err, `listing journal directory ${dir}`);
  }
  return segmentsAmong(dir, names);
}

function segmentsAmong(dir: string, names: string[]): SegmentFile[] {
  return names.filter(isSegmentName).map((name) => segmentFile(dir, name)).sort(bySequence);
}

function isSegmentName(name: string): boolean {
  return SEGMENT_FILE_NAME.test(name);
}

function segmentFile(dir: string, name: string): SegmentFile {
  return { name, path: join(dir, name), firstSeq: firstSeqOfFileName(name) };
}

function bySequence(a: SegmentFile, b: SegmentFile): number {
  return a.firstSeq - b.firstSeq;
}

/**
 * The `count` newest of the segment file names `names` in sequence order, by
 * linear scans instead of a sort of them all: the names are zero-padded
 * decimal of one width, so their string order is their sequence order.
 */
function newestSegments(dir: string, names: string[], count: number): SegmentFile[] {
  const newest: SegmentFile[] = [];
  let below: string | null = null;
  while (newest.length < count) {
    let best: string | null = null;
    for (const name of names) {
      if ((below === null || name < below) && (best === null || name > best)) best = name;
    }
    if (best === null) break;
    newest.unshift(segmentFile(dir, best));
    below = best;
  }
  return newest;
}

/** Reads `dir/recovery.json`, or null when there is none. */
export async function readRecoveryState(dir: string): Promise<ChainPosition | null> {
  const path = join(dir, RECOVERY_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw toGraphstreamError(err, `reading ${path}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new GraphstreamError('invalid_segment', `${path} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const { last_seq: sequence, chain_hash: hash } = (parsed ?? {}) as { last_seq?: unknown; chain_hash?: unknown };
  if (typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence < 0) {
    throw new GraphstreamError('invalid_segment', `${path}: last_seq must be a non-negative integer below 2^53`);
  }
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/i.test(hash)) {
    throw new GraphstreamError('invalid_segment', `${path}: chain_hash must be 64 hex digits`);
  }
  return { sequence, chainHash: Buffer.from(hash, 'hex') };
}

/**
 * Writes `dir/recovery.json` atomically (temp file, fsync, rename, directory
 * fsync) so that a journal restored from a snapshot at `sequence` continues the
 * chain from `chainHash` when no segment exists yet.
 */
export async function writeRecoveryState(dir: string, sequence: number, chainHash: Uint8Array): Promise<void> {
  if (typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence < 0) {
    throw new GraphstreamError('invalid_argument', `sequence must be a non-negative integer below 2^53, got ${String(sequence)}`);
  }
  if (!(chainHash instanceof Uint8Array) || chainHash.length !== HASH_SIZE) {
    throw new GraphstreamError('invalid_argument', `chainHash must be ${HASH_SIZE} bytes`);
  }
  const json = JSON.stringify({ last_seq: sequence, chain_hash: Buffer.from(chainHash).toString('hex') });
  try {
    await replaceFileAtomically(join(dir, RECOVERY_FILE), join(dir, RECOVERY_TEMP), Buffer.from(json + '\n'));
  } catch (err) {
    throw toGraphstreamError(err, `writing ${join(dir, RECOVERY_FILE)}`);
  }
}

/** Reads the first `length` bytes of a file (fewer if it is shorter) and its size. */
async function readHead(path: string, length: number): Promise<{ bytes: Buffer; size: number }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const bytes = Buffer.alloc(Math.min(length, size));
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    return { bytes: bytes.subarray(0, bytesRead), size };
  } finally {
    await handle.close();
  }
}

async function readTrailer(path: string, offset: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const trailer = Buffer.alloc(TRAILER_SIZE);
    const { bytesRead } = await handle.read(trailer, 0, TRAILER_SIZE, offset);
    if (bytesRead !== TRAILER_SIZE) throw new GraphstreamError('truncated', `trailer at offset ${offset}: file ends early`);
    return trailer;
  } finally {
    await handle.close();
  }
}

function isSealed(header: HeaderFields): boolean {
  return (header.flags & FLAG_SEALED) !== 0;
}

/** The position after a sealed segment with a trailer, from its header and trailer alone. */
async function positionAfterTrailer(segment: SegmentFile, header: HeaderFields, size: number): Promise<ChainPosition> {
  const expected = HEADER_SIZE + header.bodyLen + TRAILER_SIZE;
  if (size !== expected) {
    throw new GraphstreamError(
      size < expected ? 'truncated' : 'invalid_segment',
      `${segment.path} (sequence ${header.lastSeq}): sealed segment is ${size} bytes, its header declares ${expected}`,
    );
  }
  try {
    return { sequence: header.lastSeq, chainHash: await readTrailer(segment.path, expected - TRAILER_SIZE) };
  } catch (err) {
    throw segmentError(err, segment.path, header.lastSeq);
  }
}

/**
 * Checks that a decoded segment continues `from`: its first sequence follows
 * on, and its first entry's prev_hash is the chain hash so far. `from.chainHash`
 * null means nothing anchors the chain here (the journal's start was removed).
 */
export function checkContinuity(
  path: string,
  firstSeq: number,
  entryCount: number,
  startHash: Buffer,
  from: { sequence: number; chainHash: Buffer | null },
): void {
  if (firstSeq !== from.sequence + 1) {
    throw new GraphstreamError(
      firstSeq > from.sequence + 1 ? 'gap' : 'overlap',
      `${path} (sequence ${firstSeq}): expected the segment to start at sequence ${from.sequence + 1}`,
    );
  }
  if (entryCount > 0 && from.chainHash !== null && !startHash.equals(from.chainHash)) {
    throw new GraphstreamError(
      'chain_broken',
      `${path} (sequence ${firstSeq}): prev_hash does not match the chain hash after sequence ${from.sequence}`,
    );
  }
}

/**
 * Where the chain stands before the first segment `first`: recovery.json or
 * the journal's start when they line up with it, otherwise unanchored
 * (chainHash null: the journal's start was removed).
 */
export async function basePosition(dir: string, first: SegmentFile | undefined): Promise<{ sequence: number; chainHash: Buffer | null }> {
  const recorded = await readRecoveryState(dir);
  if (recorded !== null && (first === undefined || first.firstSeq === recorded.sequence + 1)) return recorded;
  if (first === undefined || first.firstSeq === 1) return { sequence: 0, chainHash: ZERO_HASH };
  return { sequence: first.firstSeq - 1, chainHash: null };
}

/**
 * Finds the (sequence, chain hash) a writer continues from and the unsealed
 * segment it continues, repairing a crash's leftovers: a torn tail is cut back
 * to the last whole, CRC-valid entry (and fsynced), a temporary sealed file
 * whose rename never happened is removed (the unsealed original is intact), and
 * an unsealed segment shorter than its header (a crash while creating it, so

/** Something stored that fails its checks in a way a crash cannot explain. */
export interface Corruption {
  /** the file */
  path: string;
  /** byte offset in the file where the damage starts */
  offset: number;
  /** the sequence at which the damage starts, when known */
  sequence: number | null;
  /** the check that failed: `checksum_mismatch`, `chain_broken`, `gap`, `invalid_segment`, ... */
  code: ErrorCode;
  message: string;
}

/** What `repair: 'quarantine'` moved aside (or would move, on a dry run). */
export interface QuarantineReport {
  /** `quarantine/<time>/` inside the journal directory */
  directory: string;
  /** whole segment files (offset 0), and the ends of segments cut at `offset`, with where they went */
  moved: { from: string; to: string; offset: number }[];
  /** the sequences the journal no longer holds, first..last as far as the moved data shows; null when it held none */
  dropped: { first: number; last: number } | null;
  /** what was found, the first problem first */
  corruptions: Corruption[];
}

/** The error for corruption: it names the file, the byte offset and the sequence. */
export function corruptError(corruption: Corruption): GraphstreamError {
  const { path, offset, sequence, code, message } = corruption;
  const at = sequence === null ? '' : ` (sequence ${sequence})`;
  return new GraphstreamError(
    'corrupt',
    `${path}${at} at byte offset ${offset}: ${message} [${code}]. Nothing was changed; ` +
      'restore from storage, or move the damaged data aside with `graphstream repair`',
    { details: { file: path, offset, sequence: sequence ?? undefined } },
  );
}

/** What one segment file holds, read and verified on its own. */
interface SegmentCheck {
  segment: SegmentFile;
  size: number;
  /** the header says sealed */
  sealed: boolean;
  /** whole entries that verify */
  count: number;
  /** bytes holding the header and those entries */
  validLength: number;
  /** zero bytes ending the file after `validLength` (see RecoveredJournalState.zeroTailBytes) */
  zeroTail: number;
  startHash: Buffer;
  chainHash: Buffer;
  /** an unsealed header that fits the file's name: a writer can continue the file */
  liveHeader: boolean;
  /** what is wrong inside the file */
  corruption: Corruption | null;
  /** the corruption is a bad entry at `validLength` of an unsealed segment: everything before it verifies */
  cuttable: boolean;
}

/** The header fields a writer fills only when it seals, with their offsets. */
const SEALED_ONLY_FIELDS = [
  ['last_seq', HEADER_OFFSET.lastSeq, (h: HeaderFields) => h.lastSeq !== 0],
  ['entry_count', HEADER_OFFSET.entryCount, (h: HeaderFields) => h.entryCount !== 0],
  ['body_len', HEADER_OFFSET.bodyLen, (h: HeaderFields) => h.bodyLen !== 0],
  ['body_checksum', HEADER_OFFSET.bodyChecksum, (h: HeaderFields) => !h.bodyChecksum.equals(ZERO_HASH)],
] as const;

/**
 * What a sealed segment's header holds that no checksum covers and only damage changes: flag
 * bits other than sealed, compressed and has-trailer, a compression that disagrees with them,
 * reserved bytes that are not zero. Null when there is none. The Uploader refuses what this finds,
 * so recovery and verify find it too.
 */
export function sealedHeaderProblem(header: HeaderFields, bytes: Uint8Array): { offset: number; message: string } | null {
  if ((header.flags & ~(FLAG_COMPRESSED | FLAG_HAS_CHAIN_HASH)) !== FLAG_SEALED) {
    return { offset: HEADER_OFFSET.flags, message: `flags 0x${header.flags.toString(16)} set bits no sealed segment has` };
  }
  if (header.compression !== (header.flags & FLAG_COMPRESSED)) {
    return { offset: HEADER_OFFSET.compression, message: `compression ${header.compression} disagrees with flags 0x${header.flags.toString(16)}` };
  }
  for (const [start, end] of HEADER_RESERVED_RANGES) {
    const nonZero = bytes.subarray(start, end).findIndex((byte) => byte !== 0);
    if (nonZero >= 0) return { offset: start + nonZero, message: `reserved header byte ${start + nonZero} is not zero` };
  }
  return null;
}

/** Reads one segment file and checks everything it can show on its own. */
async function checkSegment(segment: SegmentFile, core: RecoveryCore): Promise<SegmentCheck> {
  return checkSegmentBytes(segment, await readSegmentFile(segment), core);
}

async function checkSegmentBytes(segment: SegmentFile, bytes: Buffer, core: RecoveryCore): Promise<SegmentCheck> {
  const check: SegmentCheck = {
    segment,
    size: bytes.length,
    sealed: false,
    count: 0,
    validLength: 0,
    zeroTail: 0,
    startHash: ZERO_HASH,
    chainHash: ZERO_HASH,
    liveHeader: false,
    corruption: null,
    cuttable: false,
  };
  if (bytes.length < HEADER_SIZE) return check; // a header never finished: holds no entry
  const corrupt = (offset: number, code: ErrorCode, message: string, sequence = segment.firstSeq): SegmentCheck => {
    check.corruption = { path: segment.path, offset, sequence, code, message };
    return check;
  };
  let header: HeaderFields;
  try {
    header = core.decodeHeader(bytes.subarray(0, HEADER_SIZE));
  } catch (err) {
    const error = toGraphstreamError(err);
    return corrupt(0, error.code, `header: ${error.message}`);
  }
  check.sealed = isSealed(header);
  if (header.firstSeq !== segment.firstSeq) {
    return corrupt(12, 'invalid_segment', `header first_seq ${header.firstSeq} does not match the file name`);
  }
  if (check.sealed) {
    const problem = sealedHeaderProblem(header, bytes);
    if (problem !== null) return corrupt(problem.offset, 'invalid_segment', problem.message);
  } else {
    const field = SEALED_ONLY_FIELDS.find(([, , isSet]) => isSet(header));
    if (field !== undefined) {
      return corrupt(field[1], 'invalid_segment', `the header says unsealed (flags ${header.flags}) but carries a ${field[0]}, which only sealing writes`);
    }
  }
  let decoded: RawSegment;
  try {
    decoded = await core.decodeSegmentAsync(bytes, { allowTornTail: !check.sealed });
  } catch (err) {
    const error = toGraphstreamError(err);
    // where the entry or trailer that failed its check starts, when the core can say
    const stated = error.details?.offset;
    if (check.sealed) return corrupt(stated ?? HEADER_SIZE, error.code, error.message);
    // An unsealed segment is walked entry by entry: everything before the entry named verifies.
    const offset = Math.max(HEADER_SIZE, stated ?? HEADER_SIZE);
    check.cuttable = stated !== undefined;
    check.validLength = offset;
    return corrupt(offset, error.code, error.message, sequenceAtOffset(core, bytes, segment.firstSeq, offset));
  }
  check.count = decoded.entryOffsets.length;
  check.validLength = decoded.validLength;
  // copies: the decoded body they may point into is not kept
  check.startHash = Buffer.from(decoded.startHash);
  check.chainHash = Buffer.from(decoded.chainHash);
  if (check.sealed) {
    const expected = decoded.startHash.readBigUInt64BE(0);
    // 0 is what the reference writes for the first segment of a journal
    if (header.prevSegmentChecksum !== expected && header.prevSegmentChecksum !== 0n) {
      return corrupt(76, 'invalid_segment', `prev_segment_checksum ${header.prevSegmentChecksum.toString(16)} does not match the first entry's prev_hash`);
    }
    return check;
  }
  check.liveHeader = true;
  if (decoded.tornTail) {
    check.zeroTail = zeroTailLength(bytes, decoded.validLength);
    const lastGood = segment.firstSeq + check.count - 1;
    const later = findVerifiedEntry(core, bytes, decoded.validLength, lastGood);
    if (later !== null) {
      check.cuttable = true;
      return corrupt(
        decoded.validLength,
        'checksum_mismatch',
        `the entry at offset ${decoded.validLength} does not verify, yet entry ${later.sequence} at offset ${later.offset} after it does: damage, not a torn tail`,
        lastGood + 1,
      );
    }
  }
  return check;
}

/** The sequence of the entry that would sit at `offset` of an unsealed segment (counting the entries before it). */
function sequenceAtOffset(core: RecoveryCore, bytes: Buffer, firstSeq: number, offset: number): number {
  let sequence = firstSeq;
  for (let at = HEADER_SIZE; at < offset; sequence++) {
    try {
      at += core.decodeEntry(bytes, at).size;
    } catch {
      break;
    }
  }
  return sequence;
}

/**
 * The first entry after `tornAt` (where a walk of whole entries stopped) whose CRC
 * verifies and whose sequence is beyond `lastGood`, or null. Every offset is tried;
 * an entry can only be the k-th after the torn one if it starts at least 48·k bytes
 * later, which bounds its sequence and leaves few offsets to verify.
 */
function findVerifiedEntry(core: RecoveryCore, bytes: Buffer, tornAt: number, lastGood: number): { offset: number; sequence: number } | null {
  // an entry past lastGood (>= 0) has a sequence that is not 0: it starts no later than
  // ENTRY_SEQUENCE_OFFSET + 7 bytes before the last byte that is not zero (a preallocated
  // segment's zeros, up to its whole size, need no walk)
  const last = lastNonZero(bytes, tornAt + 1) - ENTRY_SEQUENCE_OFFSET;
  for (let offset = tornAt + 1; offset <= last && offset + ENTRY_HEADER_SIZE <= bytes.length; offset++) {
    const payloadLength = bytes.readUInt32BE(offset + ENTRY_PAYLOAD_LEN_OFFSET);
    if (offset + ENTRY_HEADER_SIZE + payloadLength > bytes.length) continue;
    const high = bytes.readUInt32BE(offset + ENTRY_SEQUENCE_OFFSET);
    const sequence = high * 2 ** 32 + bytes.readUInt32BE(offset + ENTRY_SEQUENCE_OFFSET + 4);
    const highest = lastGood + 1 + Math.floor((offset - tornAt) / ENTRY_HEADER_SIZE);
    if (high > 0x1f_ffff || sequence <= lastGood || sequence > highest) continue;
    try {
      core.decodeEntry(bytes, offset);
      return { offset, sequence };
    } catch {
      // not an entry
    }
  }
  return null;
}


/** The highest sequence of an entry that verifies anywhere in `bytes` from `from` on, beyond `floor`; `floor` when there is none. */
function highestVerifiedSequence(core: RecoveryCore, bytes: Buffer, from: number, floor: number): number {
  let highest = floor;
  let entry = findVerifiedEntry(core, bytes, from - 1, floor);
  while (entry !== null) {
    highest = entry.sequence;
    entry = findVerifiedEntry(core, bytes, entry.offset, highest);
  }
  return highest;
}

/** A segment that holds no complete entry: 0 bytes, part of a header, a header alone or with part of an entry. */
function holdsNoEntry(check: SegmentCheck): boolean {
  return !check.sealed && check.count === 0 && check.corruption === null;
}

/** A problem found while planning, with the index of the check it is about. */
class CorruptionFound extends Error {
  constructor(
    readonly corruption: Corruption,
    readonly index: number,
    /** where the file can be cut so that what stays verifies, when it can */
    readonly cutAt: number | null,
  ) {
    super(corruption.message);
  }
}

/** Where the chain stands before a run of segments: null hash when nothing anchors it. */
type Anchor = { sequence: number; chainHash: Buffer | null };

/** What recovery finds in the segments it checked, and what it changes. */
interface TailPlan {
  /** null only when problems were collected and nothing after them anchors the chain */
  position: Anchor | null;
  lastSealed: SegmentFile | null;
  live: SegmentFile | null;
  retired: SegmentFile[];
  /** the live segment's torn tail (or a partial first entry after a header alone): cut at validLength */
  cut: { segment: SegmentFile; size: number; validLength: number; zeroTail: number } | null;
  /** trailing segments holding no entry, which are removed */
  empty: SegmentFile[];
}

/**
 * Decides, from the checks of consecutive segments (oldest first) and where the chain
 * stands before them, where the journal ends and what a crash left to tidy. A torn tail
 * is only the end of the last segment holding entries, and the trailing run of segments
 * holding none; anything else is reported to `report` (which throws, or collects and
 * lets the walk go on).
 */
type Report = (corruption: Corruption, index: number, cutAt: number | null) => void;

function planTail(checks: SegmentCheck[], base: Anchor, report: Report): TailPlan {
  let end = checks.length;
  while (end > 0 && holdsNoEntry(checks[end - 1]!)) end--;
  let position: Anchor | null = base;
  let lastSealed: SegmentFile | null = null;
  let live: SegmentFile | null = null;
  let retired: SegmentFile[] = [];
  for (let i = 0; i < end; i++) {
    const check = checks[i]!;
    const { segment } = check;
    if (check.corruption !== null) {
      report(check.corruption, i, check.cuttable ? check.validLength : null);
      position = null;
      continue;
    }
    if (check.count === 0) {
      const next = checks[i + 1]!.segment.firstSeq;
      report(
        { path: segment.path, offset: HEADER_SIZE, sequence: segment.firstSeq, code: 'gap', message: `holds no entry, yet a later segment starts at sequence ${next}: sequences ${segment.firstSeq}..${next - 1} are in no file` },
        i,
        null,
      );
      position = null;
      continue;
    }
    if (position !== null) {
      if (segment.firstSeq !== position.sequence + 1) {
        report(
          {
            path: segment.path,
            offset: 0,
            sequence: segment.firstSeq,
            code: segment.firstSeq > position.sequence + 1 ? 'gap' : 'overlap',
            message: `starts at sequence ${segment.firstSeq}, but the journal before it ends at sequence ${position.sequence}`,
          },
          i,
          null,
        );
      } else if (position.chainHash !== null && !check.startHash.equals(position.chainHash)) {
        report(
          { path: segment.path, offset: HEADER_SIZE + ENTRY_PREV_HASH_OFFSET, sequence: segment.firstSeq, code: 'chain_broken', message: `prev_hash does not match the chain hash after sequence ${position.sequence}` },
          i,
          null,
        );
      }
    }
    if (!check.sealed && check.validLength < check.size && i < end - 1) {
      report(
        {
          path: segment.path,
          offset: check.validLength,
          sequence: segment.firstSeq + check.count,
          code: 'torn_tail',
          message: `the entry at offset ${check.validLength} is cut short or does not verify, yet a later segment holds entries`,
        },
        i,
        check.validLength,
      );
    }
    position = { sequence: segment.firstSeq + check.count - 1, chainHash: check.chainHash };
    if (check.sealed) {
      lastSealed = segment;
      retired = [];
      live = null;
    } else {
      if (live !== null) retired.push(live);
      live = segment;
    }
  }

  const last = checks[end - 1];
  let cut = live !== null && last!.validLength < last!.size ? { segment: live, size: last!.size, validLength: last!.validLength, zeroTail: last!.zeroTail } : null;
  const empty = checks.slice(end);
  const first = empty[0];
  if (first !== undefined && position !== null) {
    if (first.segment.firstSeq !== position.sequence + 1) {
      report(
        {
          path: first.segment.path,
          offset: 0,
          sequence: position.sequence + 1,
          code: 'gap',
          message: `the journal ends at sequence ${position.sequence}, and the segment after it is named for sequence ${first.segment.firstSeq}`,
        },
        end,
        null,
      );
    } else if (first.liveHeader) {
      // a crash after a new segment's header: it becomes the live segment, the one before it waits to be sealed
      if (live !== null) retired.push(live);
      live = first.segment;
      cut = first.size > HEADER_SIZE ? { segment: first.segment, size: first.size, validLength: HEADER_SIZE, zeroTail: first.zeroTail } : null;
      empty.shift();
    }
  }
  return { position, lastSealed, live, retired, cut, empty: empty.map((check) => check.segment) };
}

function throwing(corruption: Corruption, index: number, cutAt: number | null): never {
  throw new CorruptionFound(corruption, index, cutAt);
}

/** The segments recovery checks and where the chain stands before them. */
interface Window {
  /** segment files of the directory, oldest first: all of them, or the newest few when `complete` is false */
  segments: SegmentFile[];
  complete: boolean;
  /** index in `segments` of the first one checked: the last sealed segment, or the first one */
  start: number;
}

/**
 * Walks back from the newest segment to the last one whose header says sealed.
 * Null when `segments` are not all of them and the walk runs off their start.
 */
async function windowStart(segments: SegmentFile[], complete: boolean, core: RecoveryCore): Promise<number | null> {
  for (let index = segments.length - 1; index >= 0; index--) {
    const segment = segments[index]!;
    const { bytes, size } = await readHead(segment.path, HEADER_SIZE).catch((err: unknown) => {
      throw segmentError(err, segment.path);
    });
    if (size < HEADER_SIZE) continue;
    let sealed: boolean;
    try {
      sealed = isSealed(core.decodeHeader(bytes));
    } catch {
      continue; // checked with the tail
    }
    if (sealed) return index;
  }
  return complete ? 0 : null;
}

async function anchorBefore(dir: string, window: Window): Promise<Anchor> {
  const first = window.segments[window.start];
  if (window.start === 0 && window.complete) return basePosition(dir, first);
  return { sequence: first!.firstSeq - 1, chainHash: null };
}

async function checkAll(segments: SegmentFile[], core: RecoveryCore): Promise<SegmentCheck[]> {
  const checks: SegmentCheck[] = [];
  for (const segment of segments) checks.push(await checkSegment(segment, core));
  return checks;
}

/**
 * Finds the (sequence, chain hash) a writer continues from and the unsealed
 * segment it continues. It reads the last sealed segment (verified in full:
 * checksum, CRCs, entry count, last_seq, trailer) and what follows it, and checks
 * them against each other; `verify: 'full'` checks every segment and the chain
 * across all of them instead.
 *
 * What a crash leaves is repaired: a torn tail (bytes after the last whole,
 * verified entry of the last segment holding entries, with no verified entry
 * after them) is cut off and fsynced; trailing segments that hold no complete
 * entry are removed (however many: a power loss can leave several); a temporary
 * sealed file whose rename never happened is removed. Nothing that holds an
 * entry is removed. Anything else is corruption and fails with `corrupt`,
 * naming the file, the byte offset and the sequence, changing nothing, unless
 * `repair: 'quarantine'` moves the damaged data aside (see RecoverOptions).
 * Repairing also rewrites an out-of-date head hint.
 */
export async function recoverJournalState(dir: string, options: RecoverOptions = {}): Promise<RecoveredJournalState> {
  if (typeof options !== 'object' || options === null) throw new GraphstreamError('invalid_argument', 'recoverJournalState: options must be an object');
  const core = options.core ?? (await resolveCore(undefined));
  const { repair = true, dryRun = false, verify = 'tail' } = options;
  if (repair !== true && repair !== false && repair !== 'quarantine') {
    throw new GraphstreamError('invalid_argument', `repair must be true, false or 'quarantine', got ${String(repair)}`);
  }
  if (verify !== 'tail' && verify !== 'full') {
    throw new GraphstreamError('invalid_argument', `verify must be 'tail' or 'full', got ${String(verify)}`);
  }
  const changes = !dryRun && repair !== false;
  const quarantine = repair === 'quarantine';
  const hint = await readHeadHint(dir);
  if (hint !== null && !quarantine && verify === 'tail') {
    const found = await windowFromHint(dir, hint, core).catch(() => null);
    if (found !== null) {
      try {
        const plan = planTail(found.checks, found.anchor, throwing);
        return await finish(dir, hint, plan, { known: found.known, complete: found.complete, leftovers: [], quarantine: null, changes });
      } catch (err) {
        if (!(err instanceof CorruptionFound)) throw err;
        // the full path finds it again and reports it
      }
    }
  }

  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw toGraphstreamError(err, `opening journal directory ${dir}`);
  }
  const { leftovers, orphans } = leftoversAmong(dir, names);
  const found = orphans.map(orphanCorruption);
  if (found.length > 0 && !quarantine) throw corruptError(found[0]!);

  // Normally the last sealed segment is the newest or the one before the live segment, so only
  // the newest few are put in order; all of them only when the walk back has to go further.
  const segmentNames = names.filter(isSegmentName);
  let window: Window | null = null;
  if (verify === 'tail' && !quarantine) {
    const newest = newestSegments(dir, segmentNames, TAIL_GUESS);
    const complete = newest.length === segmentNames.length;
    const start = await windowStart(newest, complete, core);
    if (start !== null) window = { segments: newest, complete, start };
  }
  if (window === null) {
    const segments = segmentsAmong(dir, segmentNames);
    window = { segments, complete: true, start: verify === 'full' ? 0 : (await windowStart(segments, true, core))! };
  }

  let checks = await checkAll(window.segments.slice(window.start), core);
  let anchor = await anchorBefore(dir, window);
  const moved: Moved[] = orphans.map((path) => ({ path, offset: 0, check: null }));
  for (;;) {
    let plan: TailPlan;
    try {
      plan = planTail(checks, anchor, throwing);
    } catch (err) {
      if (!(err instanceof CorruptionFound)) throw err;
      if (!quarantine) throw corruptError(err.corruption);
      found.push(err.corruption);
      const damaged = checks[err.index]!;
      for (const later of checks.slice(err.index + 1).reverse()) moved.push({ path: later.segment.path, offset: 0, check: later });
      if (err.cutAt !== null) {
        // keep what verifies before the damage; the rest of the file and every later one go aside
        moved.push({ path: damaged.segment.path, offset: err.cutAt, check: damaged });
        const kept = (await readSegmentFile(damaged.segment)).subarray(0, err.cutAt);
        checks = [...checks.slice(0, err.index), await checkSegmentBytes(damaged.segment, kept, core)];
        continue;
      }
      moved.push({ path: damaged.segment.path, offset: 0, check: damaged });
      checks = checks.slice(0, err.index);
      if (checks.length === 0 && window.start > 0) {
        // the last sealed segment went: the sealed one before it takes its place
        const end: number = window.start;
        window = { ...window, start: (await windowStart(window.segments.slice(0, end), true, core))! };
        checks = await checkAll(window.segments.slice(window.start, end), core);
        anchor = await anchorBefore(dir, window);
      }
      continue;
    }
    anchoredPosition(dir, plan); // before anything moves
    const report = found.length === 0 ? null : await quarantineReport(dir, plan, moved, found, core);
    if (report !== null && changes) await moveAside(dir, report, moved);
    return finish(dir, hint, plan, { known: window.segments, complete: window.complete, leftovers, quarantine: report, changes });
  }
}

/** Leftovers a crash leaves (removed), and temporary sealed files whose segment is gone (corruption). */
function leftoversAmong(dir: string, names: string[]): { leftovers: string[]; orphans: string[] } {
  const present = new Set(names);
  const leftovers: string[] = [];
  const orphans: string[] = [];
  for (const name of names) {
    const isSealTemp = name.endsWith(SEAL_TEMP_SUFFIX);
    if (!isSealTemp && name !== RECOVERY_TEMP && name !== SPARE_SEGMENT_FILE) continue;
    // The writer renames the temp file over its unsealed original, so the original always exists.
    if (isSealTemp && !present.has(name.slice(0, -SEAL_TEMP_SUFFIX.length))) orphans.push(join(dir, name));
    else leftovers.push(join(dir, name));
  }
  return { leftovers, orphans };
}

function orphanCorruption(path: string): Corruption {
  return { path, offset: 0, sequence: null, code: 'invalid_segment', message: 'temporary sealed file without its segment' };
}

/** A file (offset 0) or the end of one from `offset` that quarantine moves aside. */
interface Moved {
  path: string;
  offset: number;
  /** null for a temporary sealed file */
  check: SegmentCheck | null;
}

/** What to report and where the moved data goes; the highest sequence it held bounds the dropped range. */
async function quarantineReport(dir: string, plan: TailPlan, moved: Moved[], corruptions: Corruption[], core: RecoveryCore): Promise<QuarantineReport> {
  const directory = await freeQuarantineDirectory(dir);
  const kept = plan.position!.sequence;
  let highest = kept;
  for (const { offset, check } of moved) {
    if (check === null) continue;
    const { segment } = check;
    if (offset > 0) {
      const bytes = await readSegmentFile(segment);
      highest = Math.max(highest, highestVerifiedSequence(core, bytes, offset, kept));
    } else if (check.corruption === null) {
      highest = Math.max(highest, segment.firstSeq + check.count - 1);
    } else {
      highest = Math.max(highest, await highestSequenceOfDamaged(check, core));
    }
  }
  return {
    directory,
    moved: moved.map(({ path, offset }) => ({ from: path, to: join(directory, basename(path) + (offset > 0 ? `.from-${offset}` : '')), offset })),
    dropped: highest > kept ? { first: kept + 1, last: highest } : null,
    corruptions,
  };
}

/** As far as a damaged segment shows: the highest sequence of an entry in it that verifies, or that its header's fields agree on. */
async function highestSequenceOfDamaged(check: SegmentCheck, core: RecoveryCore): Promise<number> {
  const { segment } = check;
  const bytes = await readSegmentFile(segment);
  let highest = highestVerifiedSequence(core, bytes, HEADER_SIZE, segment.firstSeq - 1);
  if (check.sealed) {
    highest = Math.max(highest, segment.firstSeq); // a sealed segment holds at least one entry
    try {
      const header = core.decodeHeader(bytes.subarray(0, HEADER_SIZE));
      if (header.lastSeq >= segment.firstSeq && header.lastSeq - segment.firstSeq + 1 === header.entryCount) highest = Math.max(highest, header.lastSeq);
    } catch {
      // the header tells nothing
    }
  }
  return highest;
}

async function freeQuarantineDirectory(dir: string): Promise<string> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  for (let n = 0; ; n++) {
    const candidate = join(dir, QUARANTINE_DIR, n === 0 ? stamp : `${stamp}-${n}`);
    if (!(await fileExists(candidate))) return candidate;
  }
}

/**
 * Moves the damaged data aside, durably: the end of a segment is copied out (and
 * fsynced) before the segment is cut, whole files are renamed, and the directories
 * involved are fsynced. Nothing is deleted.
 */
async function moveAside(dir: string, report: QuarantineReport, moved: Moved[]): Promise<void> {
  try {
    await mkdir(report.directory, { recursive: true });
    for (const [i, { path, offset }] of moved.entries()) {
      const { to } = report.moved[i]!;
      if (offset === 0) {
        await rename(path, to);
        continue;
      }
      const bytes = await readFile(path);
      const handle = await open(to, 'wx');
      try {
        await handle.writeFile(bytes.subarray(offset));
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    await syncDirectory(report.directory);
    await syncDirectory(dirname(report.directory));
    await syncDirectory(dir);
  } catch (err) {
    throw toGraphstreamError(err, `moving damaged data of ${dir} into ${report.directory}`);
  }
  const movedWhole = new Set(moved.filter(({ offset }) => offset === 0).map(({ path }) => path));
  for (const { path, offset } of moved) {
    if (offset > 0 && !movedWhole.has(path)) await truncateDurably(path, offset);
  }
}

/** Where the plan ends, which must be anchored: a chain hash to continue from. */
function anchoredPosition(dir: string, plan: TailPlan): ChainPosition {
  const position = plan.position!;
  if (position.chainHash === null) {
    throw new GraphstreamError(
      'chain_broken',
      `${dir}: no entry, sealed segment or recovery.json gives the chain hash after sequence ${position.sequence}`,
    );
  }
  return { sequence: position.sequence, chainHash: position.chainHash };
}

/** Applies (unless `changes` is false) and reports what recovery decided. */
async function finish(
  dir: string,
  hint: HeadHint | null,
  plan: TailPlan,
  options: {
    /** segments in order, newest last, that the plan was made from */
    known: SegmentFile[];
    /** `known` starts at the journal's first segment */
    complete: boolean;
    leftovers: string[];
    quarantine: QuarantineReport | null;
    changes: boolean;
  },
): Promise<RecoveredJournalState> {
  const { known, complete, leftovers, quarantine, changes } = options;
  const position = anchoredPosition(dir, plan);
  const removedFiles = [...leftovers, ...plan.empty.map((segment) => segment.path)];
  const truncatedBytes = plan.cut === null ? 0 : plan.cut.size - plan.cut.validLength;
  const zeroTailBytes = plan.cut === null ? 0 : Math.min(plan.cut.zeroTail, truncatedBytes);
  if (changes) {
    for (const path of removedFiles) await removeFile(path);
    if (plan.cut !== null) await truncateDurably(plan.cut.segment.path, plan.cut.validLength);
    if (removedFiles.length > 0) {
      await syncDirectory(dir).catch((err: unknown) => {
        throw toGraphstreamError(err, `fsync of journal directory ${dir}`);
      });
    }
    const gone = new Set([...removedFiles, ...(quarantine?.moved.filter((m) => m.offset === 0).map((m) => m.from) ?? [])]);
    const remaining = known.filter((segment) => !gone.has(segment.path));
    const head = remaining.at(-1);
    const previous = remaining.at(-2)?.name ?? (complete ? null : undefined);
    if (head !== undefined && previous !== undefined) await refreshHeadHint(dir, hint, { segment: head.name, previous });
  }
  return {
    sequence: position.sequence,
    chainHash: Buffer.from(position.chainHash),
    liveSegment: plan.live?.path ?? null,
    lastSealedSegment: plan.lastSealed?.path ?? null,
    retiredSegments: plan.retired.map((segment) => segment.path),
    truncatedBytes,
    zeroTailBytes,
    removedFiles,
    quarantine,
  };
}

/** How many segments recovery reads from the head hint on before it lists the directory instead. */
const HINT_WALK_LIMIT = 4;

/**
 * The segments recovery checks, found from the head hint without listing the
 * directory: the last sealed segment and those after it, as the full path finds
 * them, from the segments the hint names and those that follow them by sequence.
 * Null when the hint does not lead there, for the full path to decide.
 */
async function windowFromHint(
  dir: string,
  hint: HeadHint,
  core: RecoveryCore,
): Promise<{ checks: SegmentCheck[]; anchor: Anchor; known: SegmentFile[]; complete: boolean } | null> {
  if (!isSegmentName(hint.segment) || (hint.previous !== null && !isSegmentName(hint.previous))) return null;
  const hinted = segmentFile(dir, hint.segment);
  const hintedHead = await readSegmentHeader(hinted, core);
  if (hintedHead === null) return null;
  const previous = hint.previous === null ? null : segmentFile(dir, hint.previous);
  let first = hinted;
  if (!isSealed(hintedHead.header) && previous !== null) {
    // an unsealed head continues the segment before it, which must be sealed
    const previousHead = await readSegmentHeader(previous, core);
    if (previousHead === null || !isSealed(previousHead.header)) return null;
    first = previous;
  }
  const checks = [await checkSegment(first, core)];
  if (first !== hinted) checks.push(await checkSegment(hinted, core));
  // Forward by sequence: normally nothing follows. A crash between creating a segment and
  // rewriting the hint leaves one more.
  for (;;) {
    const last = checks.at(-1)!;
    if (last.corruption !== null) break;
    // what follows a segment holding no entry cannot be named from it: the listing finds it
    if (last.count === 0) return null;
    const next = segmentFile(dir, segmentFileName(last.segment.firstSeq + last.count));
    if (!(await fileExists(next.path))) break;
    if (checks.length === HINT_WALK_LIMIT) return null;
    checks.push(await checkSegment(next, core));
  }
  // leftovers of a crash the full path removes
  const leftovers = [join(dir, RECOVERY_TEMP), join(dir, SPARE_SEGMENT_FILE), ...checks.map((check) => check.segment.path + SEAL_TEMP_SUFFIX)];
  if ((await Promise.all(leftovers.map(fileExists))).some(Boolean)) return null;
  const known = checks.map((check) => check.segment);
  const atStart = first === hinted && previous === null;
  if (first === hinted && previous !== null) known.unshift(previous);
  const anchor = atStart ? await basePosition(dir, first) : { sequence: first.firstSeq - 1, chainHash: null };
  return { checks, anchor, known, complete: atStart };
}

/** What `verifyJournal` found in a journal directory. */
export interface JournalVerification {
  segments: number;
  bytes: number;
  /** entries that verify */
  entries: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** chain hash after lastSeq */
  chainHash: Buffer | null;
  /** every problem, in file order; a torn tail or trailing segments holding no entry are not problems */
  problems: Corruption[];
}

/**
 * Checks every segment of a journal directory on its own and against its
 * neighbours, by the rules recovery applies, and reports every problem instead
 * of stopping at the first.
 */
export async function verifyJournal(dir: string, options: { core?: RecoveryCore; onSegment?: (done: number) => void } = {}): Promise<JournalVerification> {
  const core = options.core ?? (await resolveCore(undefined));
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw toGraphstreamError(err, `journal directory ${dir}`);
  }
  const problems = leftoversAmong(dir, names).orphans.map(orphanCorruption);
  const segments = segmentsAmong(dir, names);
  const checks: SegmentCheck[] = [];
  for (const segment of segments) {
    checks.push(await checkSegment(segment, core));
    options.onSegment?.(checks.length);
  }
  planTail(checks, await basePosition(dir, segments[0]), (corruption) => problems.push(corruption));
  const holding = checks.filter((check) => check.corruption === null && check.count > 0);
  return {
    segments: segments.length,
    bytes: checks.reduce((sum, check) => sum + check.size, 0),
    entries: holding.reduce((sum, check) => sum + check.count, 0),
    firstSeq: holding[0]?.segment.firstSeq ?? null,
    lastSeq: holding.length === 0 ? null : holding.at(-1)!.segment.firstSeq + holding.at(-1)!.count - 1,
    chainHash: holding.at(-1)?.chainHash ?? null,
    problems,
  };
}

/** Writes the head hint `wanted` unless `current` (what the directory holds) already says it. */
async function refreshHeadHint(dir: string, current: HeadHint | null, wanted: HeadHint): Promise<void> {
  if (current?.segment === wanted.segment && current.previous === wanted.previous) return;
  await writeHeadHint(dir, wanted);
}

/** A segment's header and size, or null when the file does not exist. */
async function readSegmentHeader(segment: SegmentFile, core: RecoveryCore): Promise<{ header: HeaderFields; size: number } | null> {
  let head: { bytes: Buffer; size: number };
  try {
    head = await readHead(segment.path, HEADER_SIZE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw segmentError(err, segment.path);
  }
  try {
    return { header: core.decodeHeader(head.bytes), size: head.size };
  } catch (err) {
    throw segmentError(err, segment.path, segment.firstSeq);
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw toGraphstreamError(err, `checking ${path}`);
  }
}

async function readSegmentFile(segment: SegmentFile): Promise<Buffer> {
  try {
    return await readFile(segment.path);
  } catch (err) {
    throw segmentError(err, segment.path);
  }
}

/**
 * Decodes an unsealed tail segment (a torn tail allowed) and checks that it


/**
 * The position after one segment: from its header and trailer when it has
 * one, otherwise by decoding (and so verifying) it.
 */
export async function positionAfterSegment(segment: SegmentFile, core: SegmentReadCore): Promise<ChainPosition> {
  const { bytes, size } = await readHead(segment.path, HEADER_SIZE).catch((err: unknown) => {
    throw segmentError(err, segment.path);
  });
  let header: HeaderFields;
  try {
    header = core.decodeHeader(bytes);
  } catch (err) {
    throw segmentError(err, segment.path, segment.firstSeq);
  }
  if (isSealed(header) && (header.flags & FLAG_HAS_CHAIN_HASH) !== 0) return positionAfterTrailer(segment, header, size);
  const decoded = await decodeSegmentFile(segment, core);
  const count = decoded.entryOffsets.length;
  if (count === 0) throw new GraphstreamError('invalid_segment', `${segment.path}: empty segment followed by another segment`);
  return { sequence: decoded.header.firstSeq + count - 1, chainHash: decoded.chainHash };
}

/** Reads and fully decodes a segment file; failures name the file and its first sequence. */
async function decodeSegmentFile(segment: SegmentFile, core: SegmentReadCore) {
  try {
    return await core.decodeSegmentAsync(await readFile(segment.path));
  } catch (err) {
    throw segmentError(err, segment.path, segment.firstSeq);
  }
}


async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toGraphstreamError(err, `removing ${path}`);
  }
}

async function truncateDurably(path: string, length: number): Promise<void> {
  try {
    await truncate(path, length);
    const handle = await open(path, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw toGraphstreamError(err, `truncating the torn tail of ${path} to ${length} bytes`);
  }
}

/**
 * What another writer that opened the journal meanwhile would have changed, in
 * O(1): it appends to the file recovery continues from (size), seals it (rename:
 * inode), creates the segment after the recovered sequence, or a restore wrote
 * recovery.json. Segments removed meanwhile (retention) do not change the state.
 */
export async function journalFingerprint(dir: string, state: RecoveredJournalState): Promise<string> {
  const describe = async (path: string): Promise<string> => {
    try {
      const { ino, size, mtimeNs, ctimeNs } = await stat(path, { bigint: true });
      return `${ino}/${size}/${mtimeNs}/${ctimeNs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '-';
      throw toGraphstreamError(err, `checking ${path}`);
    }
  };
  const current = state.liveSegment ?? state.lastSealedSegment;
  const parts = await Promise.all([
    current === null ? '-' : describe(current),
    describe(join(dir, segmentFileName(state.sequence + 1))),
    describe(join(dir, RECOVERY_FILE)),
  ]);
  return parts.join(',');
}
