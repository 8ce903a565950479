/**
 * Crash recovery of a journal directory: where the writer continues from.
 *
 * The last sealed segment's header gives its last sequence and its trailer
 * the chain hash after it; only what follows it (normally one unsealed
 * segment) is scanned. A sealed segment without a trailer is decoded from the
 * nearest segment that has one (or from the start).
 *
 * Finding that segment costs no directory listing when the head hint
 * (ts/head-hint.ts) holds: it names the newest segment and the one before it,
 * and recovery starts from them, checks that nothing follows (the successor's
 * name follows from the sequences: a few segments a crash left before the hint
 * was rewritten are followed forward) and applies the same checks and repairs
 * as the full path. Whenever something does not check out (no hint, a named
 * file missing, the segment before an unsealed head not sealed with a trailer,
 * a leftover temporary file, an error) the directory is listed and the full
 * path decides, reporting any error itself; it then rewrites the hint.
 *
 * What the hint path cannot see: files it has no reason to look at. Only the
 * writer creates segments, in sequence order, and it seals them in order, so
 * a segment that skips sequences after the head, or a temporary sealed file of
 * a segment older than the last sealed one, is not a state a crash leaves; the
 * full path would report the first and remove the second.
 */
import { open, readdir, readFile, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Core, HeaderFields, WriterStart } from './core.js';
import { resolveCore } from './default-core.js';
import { replaceFileAtomically, syncDirectory } from './durable-fs.js';
import { GraphstreamError, toGraphstreamError } from './errors.js';
import { segmentFileName } from './format.js';
import { readHeadHint, writeHeadHint, type HeadHint } from './head-hint.js';

export const RECOVERY_FILE = 'recovery.json';
const RECOVERY_TEMP = 'recovery.json.tmp';
const SEAL_TEMP_SUFFIX = '.seal.tmp';
const HEADER_SIZE = 128;
const TRAILER_SIZE = 32;
const HASH_SIZE = 32;
const FLAG_SEALED = 0x04;
const FLAG_HAS_CHAIN_HASH = 0x08;
const SEGMENT_NAME = /^journal-(\d{16})\.hadbj$/;
/** How many of the newest segments recovery orders before it falls back to ordering them all. */
const TAIL_GUESS = 2;
const ZERO_HASH = Buffer.alloc(HASH_SIZE);

/** The format functions recovery and the reader need from a Core. */
export type RecoveryCore = Pick<Core, 'decodeHeader' | 'decodeSegmentAsync'>;

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
  /** bytes cut off a torn tail (a crash mid-append) */
  truncatedBytes: number;
  /** leftover files removed: temporary sealed files, and an unsealed segment that died before its header */
  removedFiles: string[];
}

export interface RecoverOptions {
  /** the core doing the decoding; default the native addon (the pure twin where it does not load) */
  core?: RecoveryCore;
  /**
   * Truncate a torn tail and remove leftovers (default true). Only the holder
   * of the journal's lock may repair: Journal.open does it under the lock.
   */
  repair?: boolean;
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
  return SEGMENT_NAME.test(name);
}

function segmentFile(dir: string, name: string): SegmentFile {
  return { name, path: join(dir, name), firstSeq: Number(SEGMENT_NAME.exec(name)![1]) };
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
 * it holds no entry) is removed. Nothing that holds an entry is removed.
 * Repairing also rewrites an out-of-date head hint.
 */
export async function recoverJournalState(dir: string, options: RecoverOptions = {}): Promise<RecoveredJournalState> {
  const core = options.core ?? (await resolveCore(undefined));
  const repair = options.repair ?? true;
  const hint = await readHeadHint(dir);
  if (hint !== null) {
    const recovered = await recoverFromHint(dir, hint, core, repair).catch(() => null);
    if (recovered !== null) return recovered;
  }
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw toGraphstreamError(err, `opening journal directory ${dir}`);
  }
  const removedFiles: string[] = [];
  const present = new Set(names);
  let directoryChanged = false;
  for (const name of names) {
    const isSealTemp = name.endsWith(SEAL_TEMP_SUFFIX);
    if (!isSealTemp && name !== RECOVERY_TEMP) continue;
    if (isSealTemp && !present.has(name.slice(0, -SEAL_TEMP_SUFFIX.length))) {
      // The writer renames the temp file over its unsealed original, so the original always exists.
      throw new GraphstreamError('invalid_segment', `${join(dir, name)}: temporary sealed file without its segment`);
    }
    if (repair) {
      await removeFile(join(dir, name));
      removedFiles.push(join(dir, name));
      directoryChanged = true;
    }
  }

  // Normally the last sealed segment is the newest or the one before the live segment, so only
  // the newest few are put in order; all of them only when the walk back has to go further.
  const segmentNames = names.filter(isSegmentName);
  let segments = newestSegments(dir, segmentNames, TAIL_GUESS);
  let found = await findLastSealed(segments, core);
  if (segments.length < segmentNames.length && (found === null || (found.header.flags & FLAG_HAS_CHAIN_HASH) === 0)) {
    segments = segmentsAmong(dir, segmentNames);
    found = await findLastSealed(segments, core);
  }
  const lastSealed = found?.index ?? -1;
  const lastSealedHeader = found?.header ?? null;
  const lastSealedSize = found?.size ?? 0;

  if (lastSealedHeader !== null && lastSealedHeader.firstSeq !== segments[lastSealed]!.firstSeq) {
    throw new GraphstreamError(
      'invalid_segment',
      `${segments[lastSealed]!.path}: header first_seq ${lastSealedHeader.firstSeq} does not match the file name`,
    );
  }
  let position: { sequence: number; chainHash: Buffer | null };
  if (lastSealedHeader === null) {
    position = await basePosition(dir, segments[0]);
  } else if ((lastSealedHeader.flags & FLAG_HAS_CHAIN_HASH) !== 0) {
    position = await positionAfterTrailer(segments[lastSealed]!, lastSealedHeader, lastSealedSize);
  } else {
    position = await positionWithoutTrailer(dir, segments, lastSealed, core);
  }

  // The tail: unsealed segments after the last sealed one, scanned and checked against the chain.
  let liveSegment: string | null = null;
  const retiredSegments: string[] = [];
  let truncatedBytes = 0;
  let removedSegments = 0;
  const tail = segments.slice(lastSealed + 1);
  for (let i = 0; i < tail.length; i++) {
    const segment = tail[i]!;
    const isLast = i === tail.length - 1;
    const bytes = await readSegmentFile(segment);
    if (bytes.length <= HEADER_SIZE && isLast && !headerDecodes(core, bytes)) {
      if (repair) {
        await removeFile(segment.path);
        removedFiles.push(segment.path);
        removedSegments++;
        directoryChanged = true;
      }
      break;
    }
    const scanned = await scanUnsealed(segment, bytes, position, core);
    if (scanned.tornTail) {
      if (!isLast) {
        throw new GraphstreamError(
          'torn_tail',
          `${segment.path} (sequence ${segment.firstSeq + scanned.count}): torn entry in an unsealed segment that is not the last one`,
        );
      }
      if (repair) truncatedBytes = await cutTornTail(segment, bytes.length, scanned.validLength);
    }
    position = scanned.position;
    if (isLast) liveSegment = segment.path;
    else retiredSegments.push(segment.path);
  }
  if (directoryChanged) await syncDirectory(dir).catch((err: unknown) => {
    throw toGraphstreamError(err, `fsync of journal directory ${dir}`);
  });

  if (position.chainHash === null) {
    throw new GraphstreamError(
      'chain_broken',
      `${dir}: no entry, sealed segment or recovery.json gives the chain hash after sequence ${position.sequence}`,
    );
  }
  if (repair) {
    const remaining = segments.slice(0, segments.length - removedSegments);
    const head = remaining.at(-1);
    if (head !== undefined) await refreshHeadHint(dir, hint, { segment: head.name, previous: remaining.at(-2)?.name ?? null });
  }
  return {
    sequence: position.sequence,
    chainHash: Buffer.from(position.chainHash),
    liveSegment,
    lastSealedSegment: lastSealed >= 0 ? segments[lastSealed]!.path : null,
    retiredSegments,
    truncatedBytes,
    removedFiles,
  };
}

/** How many segments recovery reads from the head hint on before it lists the directory instead. */
const HINT_WALK_LIMIT = 4;

/**
 * Recovery from the head hint, without listing the directory: the last sealed
 * segment and the unsealed tail after it, as the full path finds them, from the
 * segments the hint names and those that follow them by sequence. Null when
 * the hint does not check out, for the full path to decide; its errors too are
 * left to the full path, which reports them.
 */
async function recoverFromHint(dir: string, hint: HeadHint, core: RecoveryCore, repair: boolean): Promise<RecoveredJournalState | null> {
  if (!isSegmentName(hint.segment) || (hint.previous !== null && !isSegmentName(hint.previous))) return null;
  const hinted = segmentFile(dir, hint.segment);
  const hintedHead = await readSegmentHeader(hinted, core);
  if (hintedHead === null) return null;

  /** the segments recovery rests on, in sequence order: the last sealed one and the unsealed tail */
  const chain: SegmentFile[] = [];
  let lastSealed: SegmentFile | null = null;
  let position: ChainPosition;
  if (!isSealed(hintedHead.header)) {
    // an unsealed head continues the segment before it, which must be sealed with a trailer
    if (hint.previous === null) {
      const base = await basePosition(dir, hinted);
      if (base.chainHash === null) return null;
      position = { sequence: base.sequence, chainHash: base.chainHash };
    } else {
      const previous = segmentFile(dir, hint.previous);
      const previousHead = await readSegmentHeader(previous, core);
      const after = previousHead === null ? null : await sealedPosition(previous, previousHead);
      if (after === null || after.sequence + 1 !== hinted.firstSeq) return null;
      chain.push(previous);
      lastSealed = previous;
      position = after;
    }
  } else {
    const after = await sealedPosition(hinted, hintedHead);
    if (after === null) return null;
    chain.push(hinted);
    lastSealed = hinted;
    position = after;
  }

  // Forward from there, by sequence: normally nothing follows. A crash between creating a
  // segment and rewriting the hint leaves one more; several unsealed segments (a crash while
  // the one before the live segment waited to be sealed) are the full path's to scan.
  let next = lastSealed === hinted ? segmentFile(dir, segmentFileName(position.sequence + 1)) : hinted;
  let live: { segment: SegmentFile; size: number; validLength: number; tornTail: boolean } | null = null;
  for (let read = 0; ; read++) {
    const found = next === hinted ? hintedHead : await readSegmentHeader(next, core);
    if (found === null) break;
    if (live !== null || read === HINT_WALK_LIMIT) return null;
    chain.push(next);
    if (isSealed(found.header)) {
      const after = await sealedPosition(next, found);
      if (after === null) return null;
      lastSealed = next;
      position = after;
      next = segmentFile(dir, segmentFileName(position.sequence + 1));
      continue;
    }
    const bytes = await readSegmentFile(next);
    const scanned = await scanUnsealed(next, bytes, position, core);
    position = scanned.position;
    live = { segment: next, size: bytes.length, validLength: scanned.validLength, tornTail: scanned.tornTail };
    // an empty segment's successor would have its own name: nothing follows it
    if (scanned.count === 0) break;
    next = segmentFile(dir, segmentFileName(next.firstSeq + scanned.count));
  }

  // leftovers of a crash the full path removes
  const leftovers = [join(dir, RECOVERY_TEMP), ...chain.map((segment) => segment.path + SEAL_TEMP_SUFFIX)];
  if ((await Promise.all(leftovers.map(fileExists))).some(Boolean)) return null;

  let truncatedBytes = 0;
  if (live?.tornTail && repair) truncatedBytes = await cutTornTail(live.segment, live.size, live.validLength);
  if (repair) {
    const head = chain.at(-1)!;
    const previous = chain.at(-2)?.name ?? (head === hinted ? hint.previous : null);
    await refreshHeadHint(dir, hint, { segment: head.name, previous });
  }
  return {
    sequence: position.sequence,
    chainHash: Buffer.from(position.chainHash),
    liveSegment: live?.segment.path ?? null,
    lastSealedSegment: lastSealed?.path ?? null,
    retiredSegments: [],
    truncatedBytes,
    removedFiles: [],
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

/** The position after a sealed segment from its header and trailer, or null when it has no trailer or another first_seq. */
async function sealedPosition(segment: SegmentFile, { header, size }: { header: HeaderFields; size: number }): Promise<ChainPosition | null> {
  if ((header.flags & FLAG_HAS_CHAIN_HASH) === 0 || header.firstSeq !== segment.firstSeq) return null;
  return positionAfterTrailer(segment, header, size);
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
 * continues `from`; returns the position after its whole entries.
 */
async function scanUnsealed<Hash extends Buffer | null>(
  segment: SegmentFile,
  bytes: Buffer,
  from: { sequence: number; chainHash: Hash },
  core: RecoveryCore,
): Promise<{ count: number; tornTail: boolean; validLength: number; position: { sequence: number; chainHash: Hash | Buffer } }> {
  let decoded;
  try {
    decoded = await core.decodeSegmentAsync(bytes, { allowTornTail: true });
  } catch (err) {
    throw segmentError(err, segment.path, segment.firstSeq);
  }
  const count = decoded.entryOffsets.length;
  if (isSealed(decoded.header)) {
    throw new GraphstreamError('invalid_segment', `${segment.path}: sealed segment found after the last sealed one`);
  }
  if (decoded.header.firstSeq !== segment.firstSeq) {
    throw new GraphstreamError(
      'invalid_segment',
      `${segment.path}: header first_seq ${decoded.header.firstSeq} does not match the file name`,
    );
  }
  checkContinuity(segment.path, segment.firstSeq, count, decoded.startHash, from);
  const position = count > 0 ? { sequence: segment.firstSeq + count - 1, chainHash: decoded.chainHash } : from;
  return { count, tornTail: decoded.tornTail, validLength: decoded.validLength, position };
}

/** Truncates a torn tail to its last whole entry; returns the bytes cut off. */
async function cutTornTail(segment: SegmentFile, size: number, validLength: number): Promise<number> {
  await truncateDurably(segment.path, validLength);
  return size - validLength;
}

/** Walks back from the newest of `segments` (in sequence order) to the last sealed one. */
async function findLastSealed(
  segments: SegmentFile[],
  core: RecoveryCore,
): Promise<{ index: number; header: HeaderFields; size: number } | null> {
  for (let index = segments.length - 1; index >= 0; index--) {
    const segment = segments[index]!;
    const { bytes, size } = await readHead(segment.path, HEADER_SIZE).catch((err: unknown) => {
      throw segmentError(err, segment.path);
    });
    if (size < HEADER_SIZE) continue; // checked with the tail
    let header: HeaderFields;
    try {
      header = core.decodeHeader(bytes);
    } catch (err) {
      throw segmentError(err, segment.path, segment.firstSeq);
    }
    if (isSealed(header)) return { index, header, size };
  }
  return null;
}

function headerDecodes(core: RecoveryCore, bytes: Buffer): boolean {
  if (bytes.length < HEADER_SIZE) return false;
  try {
    core.decodeHeader(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * The position after one segment: from its header and trailer when it has
 * one, otherwise by decoding (and so verifying) it.
 */
export async function positionAfterSegment(segment: SegmentFile, core: RecoveryCore): Promise<ChainPosition> {
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
async function decodeSegmentFile(segment: SegmentFile, core: RecoveryCore) {
  try {
    return await core.decodeSegmentAsync(await readFile(segment.path));
  } catch (err) {
    throw segmentError(err, segment.path, segment.firstSeq);
  }
}

/**
 * The position after sealed segment `lastSealed`, which has no trailer: decoded
 * forward from the nearest earlier segment with a trailer (or the start).
 */
async function positionWithoutTrailer(
  dir: string,
  segments: SegmentFile[],
  lastSealed: number,
  core: RecoveryCore,
): Promise<{ sequence: number; chainHash: Buffer | null }> {
  let from = lastSealed;
  let position: { sequence: number; chainHash: Buffer | null } | null = null;
  while (from > 0 && position === null) {
    from--;
    const segment = segments[from]!;
    const { bytes, size } = await readHead(segment.path, HEADER_SIZE);
    const header = core.decodeHeader(bytes);
    if (isSealed(header) && (header.flags & FLAG_HAS_CHAIN_HASH) !== 0) {
      position = await positionAfterTrailer(segment, header, size);
    }
  }
  if (position === null) {
    from = -1;
    position = await basePosition(dir, segments[0]);
  }
  for (let i = from + 1; i <= lastSealed; i++) {
    const segment = segments[i]!;
    const decoded = await decodeSegmentFile(segment, core);
    const count = decoded.entryOffsets.length;
    checkContinuity(segment.path, decoded.header.firstSeq, count, decoded.startHash, position);
    position = { sequence: decoded.header.firstSeq + count - 1, chainHash: decoded.chainHash };
  }
  return position;
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
