/**
 * graphd's entry payload: the protobuf `graphd.JournalEntry` (FORMAT.md),
 * written by a schema-specialised encoder (ts/payload/wire.ts) that produces exactly
 * the bytes `toBinary` of the schema generated from proto/graphd.proto would
 * (the generated code decodes, and is the reference in tests). proto3 defaults
 * (sequence 0, empty query, no params, timestamp 0) are omitted, so the same
 * entry always encodes to the same bytes (the hash chain covers them).
 */
import { GraphstreamError } from '../errors.js';
import { fromMapEntries, writeParamEntries, type ParamsInput, type ParamValue } from './params.js';
import { graphdDecoding } from './proto/graphd.js';
import type { JournalEntry as JournalEntryMessage } from './proto/graphd_pb.js';
import { LENGTH_DELIMITED, VARINT, WireWriter } from './wire.js';

export interface JournalEntryInput {
  /** the entry's journal sequence; omitted (0) when not known at encoding time */
  sequence?: number | bigint;
  /** Cypher text */
  query: string;
  /** named parameters, in order */
  params?: ParamsInput;
  /** the leader's clock in ms since the epoch; omitted (0) when not given */
  timestampMs?: number | bigint;
}

export interface JournalEntry {
  /** a number, or a bigint beyond 2^53 (a u64, as written) */
  sequence: number | bigint;
  query: string;
  /** named parameters in their encoded order */
  params: [string, ParamValue][];
  /** a number, or a bigint beyond ±2^53 (an i64, as written) */
  timestampMs: number | bigint;
}

const MAX_U64 = 2n ** 64n - 1n;
const MIN_I64 = -(2n ** 63n);
const MAX_I64 = 2n ** 63n - 1n;

// Field numbers of graphd.JournalEntry (proto/graphd.proto).
const SEQUENCE = 1;
const QUERY = 2;
const PARAMS = 3;
const TIMESTAMP_MS = 4;

/** Writes an optional 64-bit integer field (omitted when 0, as proto3 does), checking its range. */
function writeInt64Field(
  writer: WireWriter,
  field: number,
  value: number | bigint | undefined,
  name: string,
  min: bigint,
  max: bigint,
): void {
  if (value === undefined || value === 0) return;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new GraphstreamError('invalid_argument', `journal entry ${name} must be a safe integer, got ${value}`);
    }
    if (value < 0 && min === 0n) {
      throw new GraphstreamError('invalid_argument', `journal entry ${name} is out of range: ${value}`);
    }
    writer.tag(field, VARINT);
    writer.int64Number(value);
    return;
  }
  if (typeof value !== 'bigint' || value < min || value > max) {
    throw new GraphstreamError('invalid_argument', `journal entry ${name} is out of range: ${String(value)}`);
  }
  if (value === 0n) return;
  writer.tag(field, VARINT);
  writer.int64Bigint(value);
}

function badQuery(): GraphstreamError {
  return new GraphstreamError('invalid_argument', 'journal entry query must be a well-formed string');
}

/**
 * Checks `entry` and writes it as a graphd.JournalEntry at the writer's
 * position, in one walk over its values.
 */
export function writeJournalEntry(writer: WireWriter, entry: JournalEntryInput): void {
  if (typeof entry !== 'object' || entry === null) {
    throw new GraphstreamError('invalid_argument', 'encodeJournalEntry takes { query, params?, sequence?, timestampMs? }');
  }
  const { query, params } = entry;
  writeJournalEntryFields(writer, query, params, entry.sequence, entry.timestampMs);
}

/** `writeJournalEntry` of the entry's fields, read once by the caller (no entry object to make). */
export function writeJournalEntryFields(
  writer: WireWriter,
  query: string,
  params: ParamsInput | undefined,
  sequence: number | bigint | undefined,
  timestampMs: number | bigint | undefined,
): void {
  if (typeof query !== 'string') throw badQuery();
  writeInt64Field(writer, SEQUENCE, sequence, 'sequence', 0n, MAX_U64);
  if (query !== '') {
    writer.tag(QUERY, LENGTH_DELIMITED);
    if (!writer.repeatedString(query)) throw badQuery();
  }
  if (params !== undefined) writeParamEntries(writer, PARAMS, params);
  writeInt64Field(writer, TIMESTAMP_MS, timestampMs, 'timestampMs', MIN_I64, MAX_I64);
}

const sharedWriter = new WireWriter();
let sharedWriterBusy = false;

/** Encodes a graphd.JournalEntry payload. */
export function encodeJournalEntry(entry: JournalEntryInput): Uint8Array {
  // a getter inside params could call back in here: it gets a writer of its own
  const owner = !sharedWriterBusy;
  const writer = owner ? sharedWriter : new WireWriter(256);
  sharedWriterBusy = true;
  try {
    writer.reset();
    writeJournalEntry(writer, entry);
    return writer.copy();
  } finally {
    if (owner) sharedWriterBusy = false;
  }
}

/** A decoded 64-bit field as a number where a number holds it exactly, else as the bigint. */
function exactNumber(value: bigint): number | bigint {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value;
}

/**
 * Decodes a graphd.JournalEntry payload; ints come back as bigint, an unknown temporal kind as
 * a string, sequence and timestampMs as numbers or, where a number cannot hold them, bigints:
 * whatever encodeJournalEntry writes reads back.
 */
export function decodeJournalEntry(bytes: Uint8Array): JournalEntry {
  if (!(bytes instanceof Uint8Array)) throw new GraphstreamError('invalid_argument', 'payload must be a Uint8Array');
  const { fromBinary, JournalEntrySchema } = graphdDecoding();
  let message: JournalEntryMessage;
  try {
    message = fromBinary(JournalEntrySchema, bytes);
  } catch (err) {
    throw new GraphstreamError('invalid_argument', `payload is not a graphd.JournalEntry: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    sequence: exactNumber(message.sequence),
    query: message.query,
    params: fromMapEntries(message.params),
    timestampMs: exactNumber(message.timestampMs),
  };
}
