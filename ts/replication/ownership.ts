/**
 * The lease object and the generation records (FORMAT.md, "Ownership and generations"): one JSON
 * object on one line followed by `\n`, members in the specified order when written; read in any
 * order, unknown members ignored, a missing or mistyped member `corrupt`.
 */
import { GraphstreamError } from '../errors.js';
import { ZERO_HASH } from '../format/constants.js';
import { COMPACTED_GENERATION_BIT } from './layout.js';

export const OWNERSHIP_LAYOUT_VERSION = 1;
/** the margin is at least 1000 ms: a shorter TTL would leave the holder less than two renewals of validity */
export const MIN_LEASE_TTL_MS = 3000;
const MAX_HOLDER_LENGTH = 256;

/** `lease.json`: who may write the db. */
export interface LeaseRecord {
  holder: string;
  /** +1 on every acquisition: the fencing token */
  epoch: number;
  /** the generation this epoch writes into */
  generation: number;
  ttlMs: number;
  /** +1 on every renewal, so that each renewal changes the object */
  renewals: number;
  /** given up: anyone may take it at once */
  released: boolean;
  /** the holder's wall clock at the write; for people only, never compared */
  writtenMs: number;
}

/** `generations/{g:04x}.json`: where generation g starts. */
export interface GenerationRecord {
  generation: number;
  /** the lease epoch that wrote it */
  epoch: number;
  holder: string;
  /** the first sequence the generation holds */
  startSeq: number;
  /** the chain hash after startSeq − 1 (zeros when startSeq is 1) */
  prevHash: Buffer;
  writtenMs: number;
}

function corrupt(where: string, why: string): GraphstreamError {
  return new GraphstreamError('corrupt', `${where} is not a valid ownership record: ${why}`);
}

type Check = (value: unknown) => boolean;
const isInteger = (min: number, max = Number.MAX_SAFE_INTEGER): Check => (value) => Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;
const isHolder: Check = (value) => typeof value === 'string' && value.length >= 1 && value.length <= MAX_HOLDER_LENGTH;
const isGeneration = isInteger(0, COMPACTED_GENERATION_BIT - 1);

/** The members of the JSON object in `bytes`, each checked; `version` must be 1. */
function parseMembers(bytes: Uint8Array, where: string, members: Record<string, [Check, string]>): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw corrupt(where, `not UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw corrupt(where, 'not a JSON object');
  const object = parsed as Record<string, unknown>;
  if (!('version' in object) || !Number.isSafeInteger(object.version)) throw corrupt(where, '"version" is missing or not an integer');
  if (object.version !== OWNERSHIP_LAYOUT_VERSION) {
    throw new GraphstreamError('unsupported_version', `${where} has layout version ${String(object.version)}; this graphstream reads version ${OWNERSHIP_LAYOUT_VERSION}`);
  }
  for (const [name, [check, rule]] of Object.entries(members)) {
    if (!(name in object)) throw corrupt(where, `"${name}" is missing`);
    if (!check(object[name])) throw corrupt(where, `"${name}" must be ${rule}, got ${JSON.stringify(object[name])}`);
  }
  return object;
}

function serialize(members: Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify({ version: OWNERSHIP_LAYOUT_VERSION, ...members })}\n`);
}

export function serializeLeaseRecord(lease: LeaseRecord): Uint8Array {
  return serialize({
    holder: lease.holder,
    epoch: lease.epoch,
    generation: lease.generation,
    ttl_ms: lease.ttlMs,
    renewals: lease.renewals,
    released: lease.released,
    written_ms: lease.writtenMs,
  });
}

/** `where` names the object in messages. */
export function parseLeaseRecord(bytes: Uint8Array, where: string): LeaseRecord {
  const o = parseMembers(bytes, where, {
    holder: [isHolder, `a string of 1..${MAX_HOLDER_LENGTH} characters`],
    epoch: [isInteger(1), 'an integer >= 1'],
    generation: [isGeneration, 'an integer in 0..0x7fff'],
    ttl_ms: [isInteger(MIN_LEASE_TTL_MS), `an integer >= ${MIN_LEASE_TTL_MS}`],
    renewals: [isInteger(0), 'an integer >= 0'],
    released: [(value) => typeof value === 'boolean', 'a boolean'],
    written_ms: [isInteger(Number.MIN_SAFE_INTEGER), 'an integer'],
  });
  return {
    holder: o.holder as string,
    epoch: o.epoch as number,
    generation: o.generation as number,
    ttlMs: o.ttl_ms as number,
    renewals: o.renewals as number,
    released: o.released as boolean,
    writtenMs: o.written_ms as number,
  };
}

export function serializeGenerationRecord(record: GenerationRecord): Uint8Array {
  return serialize({
    generation: record.generation,
    epoch: record.epoch,
    holder: record.holder,
    start_seq: record.startSeq,
    prev_hash: record.prevHash.toString('hex'),
    written_ms: record.writtenMs,
  });
}

export function parseGenerationRecord(bytes: Uint8Array, where: string): GenerationRecord {
  const o = parseMembers(bytes, where, {
    generation: [isGeneration, 'an integer in 0..0x7fff'],
    epoch: [isInteger(1), 'an integer >= 1'],
    holder: [isHolder, `a string of 1..${MAX_HOLDER_LENGTH} characters`],
    start_seq: [isInteger(1), 'an integer >= 1'],
    prev_hash: [(value) => typeof value === 'string' && /^[0-9a-f]{64}$/.test(value), '64 lower-case hex digits'],
    written_ms: [isInteger(Number.MIN_SAFE_INTEGER), 'an integer'],
  });
  const prevHash = Buffer.from(o.prev_hash as string, 'hex');
  if (o.start_seq === 1 && !prevHash.equals(ZERO_HASH)) throw corrupt(where, '"prev_hash" must be zeros when "start_seq" is 1');
  return {
    generation: o.generation as number,
    epoch: o.epoch as number,
    holder: o.holder as string,
    startSeq: o.start_seq as number,
    prevHash,
    writtenMs: o.written_ms as number,
  };
}
