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
 *
 * Records are produced a segment at a time (a synchronous iterator per decoded segment) and
 * handed out by `recordsBySegment`, so a record costs its own objects and not an async
 * generator's promise machinery.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Core, RawSegment } from '../core/core.js';
import { resolveCore } from '../core/default.js';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { ENTRY_HEADER_SIZE, HASH_SIZE, HEADER_SIZE } from '../format/constants.js';
import { chainHashBefore, copyChainHashAfter, payloadOf } from '../format/raw-entries.js';
import { decodeJournalEntry, type JournalEntry } from '../payload/payload.js';
import {
  basePosition,
  checkContinuity,
  listSegments,
  positionAfterSegment,
  segmentError,
  type SegmentFile,
} from './recovery.js';

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

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * An async iterator over records that arrive a segment at a time: `segments` yields one
 * synchronous iterator per segment, and its records are handed out as they are asked for. An
 * async generator yielding each record costs ~0.6 KB of promises and results per record (a
 * 1 GiB replay made ~150 MiB of such garbage, enough to grow V8's young generation); here a
 * record costs one resolved promise. As with an async generator, the code of a segment iterator
 * after its `yield` runs when the next record is asked for, calls are served in order, an error
 * of a segment iterator closes `segments` (running its `finally`) before it is thrown, and
 * `return()` closes both.
 */
class SegmentedRecords<T> implements AsyncIterableIterator<T> {
  private records: IterableIterator<T> | null = null;
  private done = false;
  /** calls waiting for a segment, a failure or the close; later calls queue behind them */
  private queued = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly segments: AsyncGenerator<IterableIterator<T>, void, undefined>) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.queued === 0 && this.records !== null) {
      let step: IteratorResult<T>;
      try {
        step = this.records.next();
      } catch (err) {
        this.records = null;
        return this.enqueue(() => this.fail(err));
      }
      if (step.done !== true) return Promise.resolve(step);
      this.records = null;
    }
    return this.enqueue(() => this.advance());
  }

  return(): Promise<IteratorResult<T>> {
    return this.enqueue(async () => {
      this.records?.return?.();
      this.records = null;
      if (!this.done) {
        this.done = true;
        await this.segments.return(undefined);
      }
      return DONE;
    });
  }

  private enqueue(task: () => Promise<IteratorResult<T>>): Promise<IteratorResult<T>> {
    this.queued++;
    const result = this.queue.then(task).finally(() => this.queued--);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** The next record, from the current segment or the ones after it. */
  private async advance(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.records !== null) {
        let step: IteratorResult<T>;
        try {
          step = this.records.next();
        } catch (err) {
          this.records = null;
          return this.fail(err);
        }
        if (step.done !== true) return step;
        this.records = null;
      }
      if (this.done) return DONE;
      let segment: IteratorResult<IterableIterator<T>>;
      try {
        segment = await this.segments.next();
      } catch (err) {
        this.done = true; // the generator has run its finally
        throw err;
      }
      if (segment.done === true) {
        this.done = true;
        return DONE;
      }
      this.records = segment.value;
    }
  }

  /** Closes the segments after an error of a segment iterator (an error of their own cleanup wins), then throws it. */
  private async fail(err: unknown): Promise<never> {
    if (!this.done) {
      this.done = true;
      await this.segments.return(undefined);
    }
    throw err;
  }
}

/** Records of the segments `segments` yields, handed out one by one (see SegmentedRecords). */
export function recordsBySegment<T>(segments: AsyncGenerator<IterableIterator<T>, void, undefined>): AsyncIterableIterator<T> {
  return new SegmentedRecords(segments);
}

/** The records of each segment with their payloads decoded; a payload that is not a graphd entry ends the iteration. */
export async function* decodedSegments(
  segments: AsyncGenerator<IterableIterator<RawJournalRecord>, void, undefined>,
  dir: string,
): AsyncGenerator<IterableIterator<JournalRecord>, void, undefined> {
  for await (const records of segments) yield decodedRecords(records, dir);
}

function* decodedRecords(records: IterableIterator<RawJournalRecord>, dir: string): Generator<JournalRecord, void, undefined> {
  for (const record of records) {
    let entry: JournalEntry;
    try {
      entry = decodeJournalEntry(record.payload);
    } catch (err) {
      throw toGraphstreamError(err, `${dir}: payload of sequence ${record.sequence}`);
    }
    yield { sequence: record.sequence, chainHash: record.chainHash, entry };
  }
}

/**
 * The journal in `dir` a segment at a time: for each segment, an iterator over its records from
 * `fromSeq` on. A segment is read and verified when the records before it have all been taken.
 */
export async function* readJournalSegments(dir: string, options: ReadJournalOptions): AsyncGenerator<IterableIterator<RawJournalRecord>, void, undefined> {
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

  // Segments too short to hold an entry are still being created; a power loss can leave several.
  let end = segments.length;
  while (end > start && (await sizeOf(segments[end - 1]!)) < HEADER_SIZE + ENTRY_HEADER_SIZE) end--;
  for (let index = start; index < end; index++) {
    const segment = segments[index]!;
    const isLast = index === end - 1;
    let bytes: Buffer;
    try {
      bytes = await readFile(segment.path);
    } catch (err) {
      throw segmentError(err, segment.path, segment.firstSeq);
    }
    let decoded;
    try {
      decoded = await core.decodeSegmentAsync(bytes, { allowTornTail: isLast });
    } catch (err) {
      throw segmentError(err, segment.path, segment.firstSeq);
    }
    const { header, entryOffsets } = decoded;
    if (header.firstSeq !== segment.firstSeq) {
      throw new GraphstreamError('invalid_segment', `${segment.path}: header first_seq ${header.firstSeq} does not match the file name`);
    }
    const count = entryOffsets.length;
    // initialHash may anchor the chain inside the first segment read: at the entry before fromSeq.
    const anchoredInside = index === start && options.initialHash !== undefined && header.firstSeq < fromSeq!;
    if (!anchoredInside) checkContinuity(segment.path, header.firstSeq, count, decoded.startHash, position);
    if (anchoredInside) {
      // the chain hash after fromSeq - 1 is the prev_hash of fromSeq's entry, or the segment's last one
      const anchor = fromSeq! - header.firstSeq;
      const chainHash = anchor < count ? chainHashBefore(decoded, anchor) : decoded.chainHash;
      if (anchor <= count && !chainHash.equals(options.initialHash!)) {
        throw new GraphstreamError(
          'chain_broken',
          `${segment.path} (sequence ${fromSeq! - 1}): the chain hash does not match the given initialHash`,
        );
      }
    }
    const first = fromSeq !== undefined && fromSeq > header.firstSeq ? fromSeq - header.firstSeq : 0;
    if (first < count) yield segmentRecords(decoded, first);
    if (count > 0) position = { sequence: header.firstSeq + count - 1, chainHash: decoded.chainHash };
  }
}

async function sizeOf(segment: SegmentFile): Promise<number> {
  try {
    return (await stat(segment.path)).size;
  } catch (err) {
    throw segmentError(err, segment.path, segment.firstSeq);
  }
}

function* segmentRecords(decoded: RawSegment, first: number): Generator<RawJournalRecord, void, undefined> {
  const firstSeq = decoded.header.firstSeq;
  for (let index = first; index < decoded.entryOffsets.length; index++) {
    yield { sequence: firstSeq + index, chainHash: copyChainHashAfter(decoded, index), payload: payloadOf(decoded, index) };
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
  const segments = readJournalSegments(dir, options);
  return options?.raw === true ? recordsBySegment(segments) : recordsBySegment(decodedSegments(segments, dir));
}
