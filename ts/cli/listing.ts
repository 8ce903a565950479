/**
 * `graphstream generations <storage-url> --db <db>` and `graphstream segments <storage-url> --db <db>`:
 * what storage holds of a db, from its listing and its generation records (FORMAT.md, "Names and
 * keys" and "Ownership and generations"), without downloading a segment. The counterparts of
 * Litestream's `generations`, `snapshots` and `wal`.
 */
import type { Command } from 'commander';
import { GraphstreamError } from '../errors.js';
import { GenerationRecords, type Generation } from '../replication/generations.js';
import { COMPACTED_GENERATION_BIT, leaseKey, listDbKeys, type DbSegmentKey } from '../replication/layout.js';
import { parseGenerationRecord, parseLeaseRecord, type GenerationRecord, type LeaseRecord } from '../replication/ownership.js';
import { objectName } from '../storage/names.js';
import type { SegmentStorage } from '../storage/types.js';
import { Output, formatTable, toJson } from './output.js';
import { dbArg, integerArg, openStorageArg, prefixArg, withStorageOptions, type StorageFlags } from './options.js';

interface ListingOptions extends StorageFlags {
  db: string;
  prefix: string;
  json?: boolean;
  generation?: number;
}

/** Where a segment stands: read by readers, a compacted copy, or past its generation's end (left by a writer that lost the lease). */
type SegmentState = 'current' | 'compacted' | 'stale';

export interface ListedDbSegment {
  generation: number;
  firstSeq: number;
  /** the next segment's first_seq - 1 in the same folder; null for the last one */
  lastSeqBefore: number | null;
  state: SegmentState;
  key: string;
}

export interface ListedGeneration {
  generation: number;
  startSeq: number;
  /** the next generation's start_seq - 1; null for the newest */
  lastSeq: number | null;
  /** null for generation 0 without a record, and for a generation whose record is missing */
  record: Omit<GenerationRecord, 'generation' | 'startSeq' | 'prevHash'> | null;
  prevHash: string;
  segments: number;
  compactedSegments: number;
  staleSegments: number;
}

interface DbContents {
  lease: LeaseRecord | null;
  generations: ListedGeneration[];
  segments: ListedDbSegment[];
}

async function readRecord<T>(storage: SegmentStorage, key: string, parse: (bytes: Uint8Array, where: string) => T): Promise<T | null> {
  const bytes = await storage.get(key);
  return bytes === null ? null : parse(bytes, objectName(storage.description, key));
}

function stateOf(segment: DbSegmentKey, generations: readonly Generation[]): SegmentState {
  if ((segment.generation & COMPACTED_GENERATION_BIT) !== 0) return 'compacted';
  const generation = generations.find((known) => known.generation === segment.generation);
  return generation === undefined || segment.firstSeq > generation.lastSeq ? 'stale' : 'current';
}

/** The db's generations and segments; not_found when storage holds nothing of it. */
async function readDb(storage: SegmentStorage, prefix: string, db: string): Promise<DbContents> {
  const listing = await listDbKeys(storage, prefix, db);
  if (listing.segments.length === 0 && listing.others.length === 0) {
    throw new GraphstreamError('not_found', `${storage.description} holds no replica of db ${prefix}${db}`);
  }
  const generations = await new GenerationRecords(storage, prefix, db).refresh();
  const segments = listing.segments.map((segment, index): ListedDbSegment => {
    const next = listing.segments[index + 1];
    return {
      generation: segment.generation,
      firstSeq: segment.firstSeq,
      lastSeqBefore: next?.generation === segment.generation ? next.firstSeq - 1 : null,
      state: stateOf(segment, generations),
      key: segment.key,
    };
  });
  const listed: ListedGeneration[] = [];
  for (const generation of generations) {
    const record = generation.recordKey === null ? null : await readRecord(storage, generation.recordKey, parseGenerationRecord);
    const own = segments.filter((segment) => (segment.generation & ~COMPACTED_GENERATION_BIT) === generation.generation);
    listed.push({
      generation: generation.generation,
      startSeq: generation.startSeq,
      lastSeq: generation.lastSeq === Number.MAX_SAFE_INTEGER ? null : generation.lastSeq,
      record: record === null ? null : { epoch: record.epoch, holder: record.holder, writtenMs: record.writtenMs },
      prevHash: generation.prevHash.toString('hex'),
      segments: own.filter((segment) => segment.state === 'current').length,
      compactedSegments: own.filter((segment) => segment.state === 'compacted').length,
      staleSegments: own.filter((segment) => segment.state === 'stale').length,
    });
  }
  return { lease: await readRecord(storage, leaseKey(prefix, db), parseLeaseRecord), generations: listed, segments };
}

function leaseLine(lease: LeaseRecord | null): string {
  if (lease === null) return 'lease: none';
  const state = lease.released ? 'released' : `ttl ${lease.ttlMs} ms, renewed ${lease.renewals} time(s)`;
  return `lease: ${lease.holder}, epoch ${lease.epoch}, generation ${lease.generation}, ${state}, written ${new Date(lease.writtenMs).toISOString()}`;
}

function printGenerations(contents: DbContents, output: Output): void {
  output.print(leaseLine(contents.lease));
  const rows = contents.generations.map((generation) => [
    String(generation.generation),
    String(generation.startSeq),
    generation.lastSeq === null ? '-' : String(generation.lastSeq),
    String(generation.segments),
    String(generation.compactedSegments),
    String(generation.staleSegments),
    generation.record === null ? '-' : String(generation.record.epoch),
    generation.record === null ? '-' : generation.record.holder,
    generation.record === null ? '-' : new Date(generation.record.writtenMs).toISOString(),
  ]);
  output.print(formatTable(['generation', 'start', 'end', 'segments', 'compacted', 'stale', 'epoch', 'holder', 'written'], rows));
}

function printSegments(segments: readonly ListedDbSegment[], output: Output): void {
  const rows = segments.map((segment) => [
    String(segment.generation & ~COMPACTED_GENERATION_BIT),
    String(segment.firstSeq),
    segment.lastSeqBefore === null ? '-' : String(segment.lastSeqBefore),
    segment.state,
    segment.key,
  ]);
  output.print(formatTable(['generation', 'first', 'last', 'state', 'key'], rows));
}

function listingCommand(program: Command, name: string, summary: string, description: string): Command {
  return withStorageOptions(
    program
      .command(name)
      .summary(summary)
      .description(description)
      .argument('<storage-url>', 's3://bucket[/prefix], file:///dir, or a directory')
      .requiredOption('--db <db>', 'the db to list', dbArg)
      .option('--prefix <prefix>', 'key prefix in front of the db name', prefixArg, '')
      .option('--json', 'print JSON'),
  );
}

async function withDb(command: Command, storageUrl: string, options: ListingOptions): Promise<DbContents> {
  const storage = await openStorageArg(command, storageUrl, options);
  try {
    return await readDb(storage, options.prefix, options.db);
  } finally {
    await storage.close?.();
  }
}

export function registerListing(program: Command, output: Output): void {
  listingCommand(
    program,
    'generations',
    "list a db's generations in storage and who holds its lease",
    'Lists the generations of a db in object storage, oldest first: where each starts and ends, its segments ' +
      '(current, compacted, and stale ones past its end, left by a writer that had lost the lease), and the ' +
      'epoch and holder of its record; and the lease on the db. Reads the listing and the small ownership ' +
      'records only. Fails with not_found when storage holds nothing of the db.',
  ).action(async function (this: Command, storageUrl: string, options: ListingOptions) {
    const contents = await withDb(this, storageUrl, options);
    if (options.json) output.print(toJson({ db: `${options.prefix}${options.db}`, lease: contents.lease, generations: contents.generations }, 2));
    else printGenerations(contents, output);
  });

  listingCommand(
    program,
    'segments',
    "list a db's segments in storage",
    'Lists the segment objects of a db in object storage by generation and first sequence, with the last ' +
      'sequence each can hold (the next one starts after it) and its state: current, compacted, or stale ' +
      '(past the end of its generation: no reader reads it). Reads the listing only; `graphstream verify` ' +
      'checks the contents.',
  )
    .option('--generation <g>', 'only this generation (its compacted segments included)', integerArg(0, COMPACTED_GENERATION_BIT - 1))
    .action(async function (this: Command, storageUrl: string, options: ListingOptions) {
      const { segments } = await withDb(this, storageUrl, options);
      const shown = options.generation === undefined ? segments : segments.filter((segment) => (segment.generation & ~COMPACTED_GENERATION_BIT) === options.generation);
      if (options.json) output.print(toJson({ db: `${options.prefix}${options.db}`, segments: shown }, 2));
      else printSegments(shown, output);
    });
}
