/**
 * Streaming, verified reading of a journal directory: `readJournal(dir)`.
 *
 * One segment is read and decoded at a time, so memory stays bounded by about
 * one segment whatever the journal's length. The chain is verified across
 * segment boundaries from an anchor: `initialHash` when given, otherwise the
 * segment before the first one read (its trailer) or, from the very start, the
 * zero hash / recovery.json. The directory is listed once: a reader running
 * while a writer appends yields a verified prefix of the journal, ending at
 * the last whole entry of the live segment.
 */
import { readFile } from 'node:fs/promises';
import type { Core } from './core.js';
import { resolveCore } from './default-core.js';
import { GraphstreamError, toGraphstreamError } from './errors.js';
import { decodeJournalEntry, type JournalEntry } from './payload.js';
import {
  basePosition,
  checkContinuity,
  listSegments,
  positionAfterSegment,
  segmentError,
} from './recovery.js';

const HEADER_SIZE = 128;
const ENTRY_HEADER_SIZE = 48;
const HASH_SIZE = 32;

export interface ReadJournalOptions {
  /** first sequence to yield; default the first one present */
  fromSeq?: number;
  /** chain hash after `fromSeq - 1`: verify from this point instead of from the segment before */
  initialHash?: Uint8Array;
  /** the core doing the decoding; default the native addon */
  core?: Core;
}

export interface JournalRecord {
  sequence: number;
  /** chain hash after this entry */
  chainHash: Buffer;
  entry: JournalEntry;
}

export interface RawJournalRecord {
  sequence: number;
  chainHash: Buffer;
  /** a view into the segment's decoded body: copy it to keep it beyond the next segment */
  payload: Buffer;
}

function checkOptions(options: ReadJournalOptions & { raw?: boolean }): void {
  if (typeof options !== 'object' || options === null) throw new GraphstreamError('invalid_argument', 'options must be an object');
  const { fromSeq, initialHash } = options;
  if (fromSeq !== undefined && (typeof fromSeq !== 'number' || !Number.isSafeInteger(fromSeq) || fromSeq < 1)) {
    throw new GraphstreamError('invalid_argument', `fromSeq must be a positive integer, got ${String(fromSeq)}`);
  }
  if (initialHash !== undefined && (!(initialHash instanceof Uint8Array) || initialHash.length !== HASH_SIZE)) {
    throw new GraphstreamError('invalid_argument', `initialHash must be ${HASH_SIZE} bytes`);
  }
}

async function* readEntries(dir: string, options: ReadJournalOptions): AsyncGenerator<RawJournalRecord> {
  checkOptions(options);
  const core = await resolveCore(options.core);
  const fromSeq = options.fromSeq ?? (options.initialHash !== undefined ? 1 : undefined);
  const segments = await listSegments(dir);
  if (segments.length === 0) return;

  // The segment holding fromSeq: the last one starting at or before it.
  let start = 0;
  if (fromSeq !== undefined) {
    while (start + 1 < segments.length && segments[start + 1]!.firstSeq <= fromSeq) start++;
    if (segments[0]!.firstSeq > fromSeq) {
      throw new GraphstreamError('gap', `${dir}: sequence ${fromSeq} is not in the journal, which starts at ${segments[0]!.firstSeq}`);
    }
  }
  let position: { sequence: number; chainHash: Buffer | null };
  if (options.initialHash !== undefined) {
    position = { sequence: fromSeq! - 1, chainHash: Buffer.from(options.initialHash) };
  } else if (start > 0) {
    position = await positionAfterSegment(segments[start - 1]!, core);
  } else {
    position = await basePosition(dir, segments[0]);
  }

  for (let index = start; index < segments.length; index++) {
    const segment = segments[index]!;
    const isLast = index === segments.length - 1;
    let bytes: Buffer;
    try {
      bytes = await readFile(segment.path);
    } catch (err) {
      throw segmentError(err, segment.path, segment.firstSeq);
    }
    // The live segment is still being created: nothing in it yet.
    if (isLast && bytes.length < HEADER_SIZE) return;
    let decoded;
    try {
      decoded = await core.decodeSegmentAsync(bytes, { allowTornTail: isLast });
    } catch (err) {
      throw segmentError(err, segment.path, segment.firstSeq);
    }
    const { header, body, entryOffsets } = decoded;
    if (header.firstSeq !== segment.firstSeq) {
      throw new GraphstreamError('invalid_segment', `${segment.path}: header first_seq ${header.firstSeq} does not match the file name`);
    }
    const count = entryOffsets.length;
    // initialHash may anchor the chain inside the first segment read: at the entry before fromSeq.
    const anchoredInside = index === start && options.initialHash !== undefined && header.firstSeq < fromSeq!;
    if (!anchoredInside) checkContinuity(segment.path, header.firstSeq, count, decoded.startHash, position);
    for (let i = 0; i < count; i++) {
      const sequence = header.firstSeq + i;
      const next = entryOffsets[i + 1];
      const chainHash = next !== undefined ? body.subarray(next + 16, next + 16 + HASH_SIZE) : decoded.chainHash;
      if (anchoredInside && sequence === fromSeq! - 1 && !chainHash.equals(options.initialHash!)) {
        throw new GraphstreamError(
          'chain_broken',
          `${segment.path} (sequence ${sequence}): the chain hash does not match the given initialHash`,
        );
      }
      if (fromSeq !== undefined && sequence < fromSeq) continue;
      const offset = entryOffsets[i]!;
      const payloadStart = offset + ENTRY_HEADER_SIZE;
      yield {
        sequence,
        chainHash: Buffer.from(chainHash),
        payload: body.subarray(payloadStart, payloadStart + body.readUInt32BE(offset + 4)),
      };
    }
    if (count > 0) position = { sequence: header.firstSeq + count - 1, chainHash: decoded.chainHash };
  }
}

/**
 * Reads the journal in `dir` in sequence order, verifying every entry's CRC and
 * the hash chain end to end. Yields `{ sequence, chainHash, entry }` with the
 * graphd entry decoded, or `{ sequence, chainHash, payload }` with `raw: true`.
 * A segment it cannot trust ends the iteration with a GraphstreamError naming
 * the file and sequence; the live segment's torn tail (an append in flight, or
 * a crash) just ends it.
 */
export function readJournal(dir: string, options: ReadJournalOptions & { raw: true }): AsyncIterable<RawJournalRecord>;
export function readJournal(dir: string, options?: ReadJournalOptions & { raw?: false }): AsyncIterable<JournalRecord>;
export function readJournal(
  dir: string,
  options: ReadJournalOptions & { raw?: boolean } = {},
): AsyncIterable<JournalRecord | RawJournalRecord> {
  return options?.raw === true ? readEntries(dir, options) : readDecoded(dir, options);
}

async function* readDecoded(dir: string, options: ReadJournalOptions): AsyncGenerator<JournalRecord> {
  for await (const view of readEntries(dir, options)) {
    let entry: JournalEntry;
    try {
      entry = decodeJournalEntry(view.payload);
    } catch (err) {
      throw toGraphstreamError(err, `${dir}: payload of sequence ${view.sequence}`);
    }
    yield { sequence: view.sequence, chainHash: view.chainHash, entry };
  }
}
