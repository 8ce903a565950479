/**
 * graphd's entry payload: the protobuf `graphd.JournalEntry` (FORMAT.md),
 * encoded with the code generated from proto/graphd.proto. proto3 defaults
 * (sequence 0, empty query, no params, timestamp 0) are omitted, so the same
 * entry always encodes to the same bytes (the hash chain covers them).
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { GraphstreamError } from './errors.js';
import { fromMapEntries, isWellFormedString, toParamEntries, type ParamsInput, type ParamValue } from './params.js';
import { JournalEntrySchema, type JournalEntry as JournalEntryMessage } from './proto/graphd_pb.js';

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
  sequence: number;
  query: string;
  /** named parameters in their encoded order */
  params: [string, ParamValue][];
  timestampMs: number;
}

const MAX_U64 = 2n ** 64n - 1n;
const MIN_I64 = -(2n ** 63n);
const MAX_I64 = 2n ** 63n - 1n;

function toInt64(value: number | bigint | undefined, field: string, min: bigint, max: bigint): bigint {
  if (value === undefined) return 0n;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new GraphstreamError('invalid_argument', `journal entry ${field} must be a safe integer, got ${value}`);
    }
    value = BigInt(value);
  }
  if (typeof value !== 'bigint' || value < min || value > max) {
    throw new GraphstreamError('invalid_argument', `journal entry ${field} is out of range: ${String(value)}`);
  }
  return value;
}

/** Encodes a graphd.JournalEntry payload. */
export function encodeJournalEntry(entry: JournalEntryInput): Uint8Array {
  if (typeof entry !== 'object' || entry === null) {
    throw new GraphstreamError('invalid_argument', 'encodeJournalEntry takes { query, params?, sequence?, timestampMs? }');
  }
  if (typeof entry.query !== 'string' || !isWellFormedString(entry.query)) {
    throw new GraphstreamError('invalid_argument', 'journal entry query must be a well-formed string');
  }
  const message: JournalEntryMessage = {
    $typeName: 'graphd.JournalEntry',
    sequence: toInt64(entry.sequence, 'sequence', 0n, MAX_U64),
    query: entry.query,
    params: entry.params === undefined ? [] : toParamEntries(entry.params),
    timestampMs: toInt64(entry.timestampMs, 'timestampMs', MIN_I64, MAX_I64),
  };
  try {
    return toBinary(JournalEntrySchema, message);
  } catch (err) {
    throw new GraphstreamError('invalid_argument', `journal entry does not encode: ${(err as Error).message}`, { cause: err });
  }
}

function toSafeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new GraphstreamError('invalid_argument', `journal entry ${field} ${value} is beyond 2^53`);
  }
  return Number(value);
}

/** Decodes a graphd.JournalEntry payload; ints come back as bigint, an unknown temporal kind as a string. */
export function decodeJournalEntry(bytes: Uint8Array): JournalEntry {
  if (!(bytes instanceof Uint8Array)) throw new GraphstreamError('invalid_argument', 'payload must be a Uint8Array');
  let message: JournalEntryMessage;
  try {
    message = fromBinary(JournalEntrySchema, bytes);
  } catch (err) {
    throw new GraphstreamError('invalid_argument', `payload is not a graphd.JournalEntry: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    sequence: toSafeNumber(message.sequence, 'sequence'),
    query: message.query,
    params: fromMapEntries(message.params),
    timestampMs: toSafeNumber(message.timestampMs, 'timestampMs'),
  };
}
