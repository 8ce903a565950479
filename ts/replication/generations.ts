/**
 * The generations of a db as readers follow them (FORMAT.md, "Ownership and generations"):
 * generation 0 first (from sequence 1 and the zero hash when it has no record), then every
 * generation that has a record, in order. Generation g holds the sequences from its start_seq up
 * to the next one's start_seq - 1; whatever a segment of g holds past that was left by a writer
 * that had lost the lease, and nobody reads it.
 *
 * The newest generation's end is not known until the next one's record exists, and a writer that
 * lost the lease may still land a segment (a put in flight across a pause) after the new holder
 * took the lease and caught up, but before it wrote its record. So a reader takes newly listed
 * segments of the newest generation g only when lease.json, read after that listing, names
 * generation g or an earlier one (or there is none): then no new writer has begun yet, and
 * whatever landed in g belongs to it. When the lease names a later generation that has no record
 * yet, the reader waits (`undecided`) until the record says where g ends.
 */
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { ZERO_HASH } from '../format/constants.js';
import { objectName } from '../storage/names.js';
import type { SegmentStorage } from '../storage/types.js';
import { generationOfRecordKey, generationRecordsPrefix, leaseKey } from './layout.js';
import { parseGenerationRecord, parseLeaseRecord } from './ownership.js';

/** Why a reader waits at the end of what it has: the lease names a generation whose record is not written yet. */
export interface UndecidedGeneration {
  /** the newest generation with a record (or 0): where the reader is */
  generation: number;
  /** the generation lease.json names */
  leaseGeneration: number;
  /** who holds it, under which epoch */
  holder: string;
  epoch: number;
}

export interface Generation {
  generation: number;
  /** the first sequence it holds */
  startSeq: number;
  /** the chain hash after startSeq - 1 */
  prevHash: Buffer;
  /** its record's key; null for generation 0 without one */
  recordKey: string | null;
  /** the last sequence it holds: the next generation's start_seq - 1 (MAX_SAFE_INTEGER for the newest) */
  lastSeq: number;
}

/** The generation records of one db, read once each (a record is written once and never changes). */
export class GenerationRecords {
  private readonly recordsPrefix: string;
  private readonly leaseKey: string;
  private readonly read = new Map<string, Generation>();
  private current: Generation[] = [];

  constructor(
    readonly storage: SegmentStorage,
    prefix: string,
    db: string,
  ) {
    this.recordsPrefix = generationRecordsPrefix(prefix, db);
    this.leaseKey = leaseKey(prefix, db);
  }

  /**
   * For a reader that just listed the segments of the newest generation: reads lease.json, then
   * the records again (refresh()). Resolves with null when what was listed may be taken (the
   * lease names the newest generation with a record or an earlier one, it was released, there is
   * no lease, or a later record now says where the generation ends), else with why the reader
   * must wait.
   * `holding`: the generation of a lease the reader holds itself (a follower taking over, whose
   * catch-up decides where the generation before it ends): that lease holds nothing back.
   */
  async refreshAfterListing(holding: number | null = null): Promise<UndecidedGeneration | null> {
    const where = objectName(this.storage.description, this.leaseKey);
    let bytes: Uint8Array | null;
    try {
      bytes = await this.storage.get(this.leaseKey);
    } catch (err) {
      throw toGraphstreamError(err, `downloading ${where}`);
    }
    const lease = bytes === null ? null : parseLeaseRecord(bytes, where);
    const generations = await this.refresh();
    const newest = generations[generations.length - 1]!.generation;
    // A released lease whose generation has no record was given up before its holder began:
    // whoever writes the next record catches up with everything listed now first.
    if (lease === null || lease.released || lease.generation <= newest || lease.generation === holding) return null;
    return { generation: newest, leaseGeneration: lease.generation, holder: lease.holder, epoch: lease.epoch };
  }

  /** The generations as of the last refresh(), in order. */
  get generations(): readonly Generation[] {
    return this.current;
  }

  /** Lists the records again, reads the new ones, and resolves with the generations in order. */
  async refresh(): Promise<readonly Generation[]> {
    let keys: string[];
    try {
      keys = await this.storage.list(this.recordsPrefix);
    } catch (err) {
      throw toGraphstreamError(err, `listing ${objectName(this.storage.description, this.recordsPrefix)}`);
    }
    const found: Generation[] = [];
    for (const key of keys) {
      const generation = generationOfRecordKey(this.recordsPrefix, key);
      if (generation === null) continue;
      let known = this.read.get(key);
      if (known === undefined) {
        known = await this.readRecord(key, generation);
        this.read.set(key, known);
      }
      found.push({ ...known });
    }
    if (found[0]?.generation !== 0) found.unshift({ generation: 0, startSeq: 1, prevHash: ZERO_HASH, recordKey: null, lastSeq: 0 });
    for (let index = 0; index < found.length; index++) {
      const next = found[index + 1];
      if (next !== undefined && next.startSeq < found[index]!.startSeq) {
        throw new GraphstreamError(
          'corrupt',
          `${objectName(this.storage.description, next.recordKey!)}: generation ${next.generation} starts at sequence ${next.startSeq}, ` +
            `before generation ${found[index]!.generation} (sequence ${found[index]!.startSeq}): a new writer continues the journal, it never goes back`,
          { details: { key: next.recordKey! } },
        );
      }
      found[index]!.lastSeq = next === undefined ? Number.MAX_SAFE_INTEGER : next.startSeq - 1;
    }
    this.current = found;
    return found;
  }

  private async readRecord(key: string, generation: number): Promise<Generation> {
    const where = objectName(this.storage.description, key);
    let bytes: Uint8Array | null;
    try {
      bytes = await this.storage.get(key);
    } catch (err) {
      throw toGraphstreamError(err, `downloading ${where}`);
    }
    if (bytes === null) throw new GraphstreamError('not_found', `${where} was listed but is gone`, { details: { key, retryable: true } });
    const record = parseGenerationRecord(bytes, where);
    if (record.generation !== generation) {
      throw new GraphstreamError('corrupt', `${where} holds the record of generation ${record.generation}`, { details: { key } });
    }
    return { generation, startSeq: record.startSeq, prevHash: record.prevHash, recordKey: key, lastSeq: 0 };
  }
}

/** Index of the generation holding `sequence`: the first one that does not end before it (the newest when all do). */
export function generationHolding(generations: readonly Generation[], sequence: number): number {
  const index = generations.findIndex((generation) => generation.lastSeq >= sequence);
  return index < 0 ? generations.length - 1 : index;
}

/** Checks that a reader at `position` (which ends the generation before) may enter `generation`. */
export function checkGenerationStart(
  generation: Generation,
  position: { sequence: number; chainHash: Buffer },
  storage: SegmentStorage,
): void {
  if (generation.recordKey === null || generation.startSeq !== position.sequence + 1) return;
  if (!generation.prevHash.equals(position.chainHash)) {
    throw new GraphstreamError(
      'chain_broken',
      `${objectName(storage.description, generation.recordKey)}: generation ${generation.generation} continues the chain hash ` +
        `${generation.prevHash.toString('hex')} after sequence ${position.sequence}, not the one the journal has there ` +
        `(${position.chainHash.toString('hex')})`,
      { details: { key: generation.recordKey, sequence: generation.startSeq } },
    );
  }
}
