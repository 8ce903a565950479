/**
 * Where a journal lives in object storage (FORMAT.md, "Names and keys"), in one place: the
 * uploader, followers, restore, compaction and `graphstream verify` build and list keys here.
 *
 *   {prefix}{db}/{g:04x}/{first_seq:016x}.hadbj           a segment of generation g (0: the incremental journal)
 *   {prefix}{db}/{g | 0x8000:04x}/{first_seq:016x}.hadbj  a compacted segment of generation g
 *   {prefix}{db}/compaction-{g:04x}.json                  compaction's manifest of generation g
 *   {prefix}{db}/lease.json                               the lease: who may write the db (FORMAT.md, "Ownership and generations")
 *   {prefix}{db}/generations/{g:04x}.json                 the generation record of generation g: where it starts
 *
 * Listing a generation's folder in key order gives its segments in sequence order.
 */
import { GraphstreamError } from '../errors.js';
import { checkDb, checkNameNumber, checkPrefix } from '../storage/names.js';
import type { SegmentStorage } from '../storage/types.js';

/** The highest generation: four hex digits. */
export const MAX_GENERATION = 0xffff;
/** Set in the generation that holds the compacted segments of a generation. */
export const COMPACTED_GENERATION_BIT = 0x8000;

/** A segment's name in its generation's folder; group 1 is first_seq. */
const SEGMENT_NAME = /^([0-9a-f]{16})\.hadbj$/;
/** A generation's folder at the start of a key below the db; group 1 is the generation. */
const GENERATION_FOLDER = /^([0-9a-f]{4})\//;

function hex(value: number, digits: number): string {
  return value.toString(16).padStart(digits, '0');
}

function segmentName(firstSeq: number): string {
  return `${hex(firstSeq, 16)}.hadbj`;
}

/** The first sequence a segment's name gives, or null when it is not one (or names a sequence past 2^53). */
function sequenceOfName(name: string): number | null {
  const match = SEGMENT_NAME.exec(name);
  const sequence = match ? Number.parseInt(match[1]!, 16) : NaN;
  return Number.isSafeInteger(sequence) ? sequence : null;
}

/** `{prefix}{db}/`: what listing a whole db lists. */
export function dbPrefix(prefix: string, db: string): string {
  return `${prefix}${db}/`;
}

/** `{prefix}{db}/{generation:04x}/`: what listing a generation lists. */
export function generationPrefix(prefix: string, db: string, generation: number): string {
  checkPrefix(prefix, 'segmentKey');
  checkDb(db, 'segmentKey');
  checkNameNumber(generation, 'generation');
  return `${dbPrefix(prefix, db)}${hex(generation, 4)}/`;
}

/** Object-storage key of a segment: `{prefix}{db}/{generation:04x}/{firstSeq:016x}.hadbj`. */
export function segmentKey(prefix: string, db: string, generation: number, firstSeq: number): string {
  const folder = generationPrefix(prefix, db, generation);
  checkNameNumber(firstSeq, 'firstSeq');
  return folder + segmentName(firstSeq);
}

function checkGeneration(generation: number): void {
  if (!Number.isInteger(generation) || generation < 0 || generation >= COMPACTED_GENERATION_BIT) {
    throw new GraphstreamError('invalid_argument', `generation must be an integer in 0..0x7fff, got ${String(generation)}`);
  }
}

/** The generation compacted segments of generation `generation` live in. */
export function compactedGeneration(generation: number): number {
  checkGeneration(generation);
  return generation | COMPACTED_GENERATION_BIT;
}

export function compactionManifestKey(prefix: string, db: string, generation: number): string {
  checkGeneration(generation);
  segmentKey(prefix, db, generation, 0); // validates prefix and db
  return `${dbPrefix(prefix, db)}compaction-${hex(generation, 4)}.json`;
}

/** `{prefix}{db}/lease.json`: the lease on the db. */
export function leaseKey(prefix: string, db: string): string {
  segmentKey(prefix, db, 0, 0); // validates prefix and db
  return `${dbPrefix(prefix, db)}lease.json`;
}

export interface ListedGenerationRecord {
  key: string;
  generation: number;
}

/** The generation records of a db, in generation order (keys in the folder that are not records are left out). */
export async function listGenerationRecordKeys(storage: SegmentStorage, prefix: string, db: string): Promise<ListedGenerationRecord[]> {
  const folder = generationRecordsPrefix(prefix, db);
  const listed: ListedGenerationRecord[] = [];
  for (const key of await storage.list(folder)) {
    const generation = generationOfRecordKey(folder, key);
    if (generation !== null) listed.push({ key, generation });
  }
  return listed;
}

/** The first sequence a listed key names, or null when the key is not a segment of that generation. */
export function sequenceOfKey(genPrefix: string, key: string): number | null {
  if (!key.startsWith(genPrefix)) return null;
  const sequence = sequenceOfName(key.slice(genPrefix.length));
  return sequence !== null && sequence > 0 ? sequence : null;
}

export interface ListedSegment {
  key: string;
  firstSeq: number;
}

/** The segments of one generation listed after `afterSeq` (all when 0), in sequence order. */
export async function listSegmentKeys(storage: SegmentStorage, genPrefix: string, afterSeq: number): Promise<ListedSegment[]> {
  const startAfter = afterSeq > 0 ? genPrefix + segmentName(afterSeq) : undefined;
  const keys = await storage.list(genPrefix, startAfter === undefined ? undefined : { startAfter });
  const listed: ListedSegment[] = [];
  for (const key of keys) {
    const firstSeq = sequenceOfKey(genPrefix, key);
    if (firstSeq !== null) listed.push({ key, firstSeq });
  }
  return listed;
}

export interface DbSegmentKey {
  key: string;
  generation: number;
  firstSeq: number;
}

export interface DbListing {
  /** segment keys, by generation then first sequence */
  segments: DbSegmentKey[];
  /** keys under the db's prefix that are not segment keys */
  others: string[];
}

/** Every key of one db, in all its generations. */
export async function listDbKeys(storage: SegmentStorage, prefix: string, db: string): Promise<DbListing> {
  const base = dbPrefix(prefix, db);
  const segments: DbSegmentKey[] = [];
  const others: string[] = [];
  for (const key of await storage.list(base)) {
    const rest = key.slice(base.length);
    const folder = GENERATION_FOLDER.exec(rest);
    const firstSeq = folder ? sequenceOfName(rest.slice(folder[0].length)) : null;
    if (firstSeq !== null) segments.push({ key, generation: Number.parseInt(folder![1]!, 16), firstSeq });
    else others.push(key);
  }
  segments.sort((a, b) => a.generation - b.generation || a.firstSeq - b.firstSeq);
  return { segments, others };
}

/** `{prefix}{db}/generations/`: listing it in key order gives the generation records in order. */
export function generationRecordsPrefix(prefix: string, db: string): string {
  segmentKey(prefix, db, 0, 0); // validates prefix and db
  return `${dbPrefix(prefix, db)}generations/`;
}

/** `{prefix}{db}/generations/{generation:04x}.json`: the generation record of `generation`. */
export function generationRecordKey(prefix: string, db: string, generation: number): string {
  checkGeneration(generation);
  return `${generationRecordsPrefix(prefix, db)}${hex(generation, 4)}.json`;
}

/** The generation a listed key's record is of, or null when the key is not a generation record. */
export function generationOfRecordKey(recordsPrefix: string, key: string): number | null {
  const match = /^([0-9a-f]{4})\.json$/.exec(key.startsWith(recordsPrefix) ? key.slice(recordsPrefix.length) : '');
  const generation = match ? Number.parseInt(match[1]!, 16) : NaN;
  return generation < COMPACTED_GENERATION_BIT ? generation : null;
}
