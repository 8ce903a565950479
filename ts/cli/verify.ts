/**
 * `graphstream verify <dir | storage URL>`: checks a whole journal, CRCs and the hash chain end to
 * end, and reports every problem with where it is (file or key, sequence, error code). In storage,
 * the segments of each generation are checked up to where the next generation starts; those past
 * it (left by a writer that had lost the lease) are listed as stale, not read.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { GraphstreamError, toGraphstreamError, type ErrorCode } from '../errors.js';
import { FLAG_SEALED, ZERO_HASH } from '../format/constants.js';
import { GenerationRecords, type Generation } from '../replication/generations.js';
import { COMPACTED_GENERATION_BIT, dbPrefix, listDbKeys, type DbSegmentKey } from '../replication/layout.js';
import { decodeSegmentAsync, verifyJournal } from '../index.js';
import type { SegmentStorage } from '../storage/types.js';
import { Output, formatBytes, formatFields, toJson } from './output.js';
import {
  dbArg,
  isStorageUrl,
  openStorageArg,
  prefixArg,
  requireDirectory,
  splitDbUrl,
  usageError,
  withStorageOptions,
  readEncryptionArg,
  withEncryptionOptions,
  type EncryptionFlags,
  type StorageFlags,
} from './options.js';
import { resolveCore } from '../core/default.js';
import { decryptDownloaded, type ReadEncryption } from '../replication/encryption.js';

/** remote segments downloaded ahead of the one being verified */
const DOWNLOAD_WINDOW = 4;

export interface Problem {
  /** file path, or storage URL of the key */
  where: string;
  sequence: number | null;
  code: ErrorCode;
  message: string;
}

export interface VerifyReport {
  target: string;
  ok: boolean;
  segments: number;
  entries: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** chain hash after lastSeq, hex */
  chainHash: string | null;
  bytes: number;
  problems: Problem[];
  /** keys under the db's prefix that are not segments (not verified) */
  ignoredKeys: string[];
  /**
   * segments no reader reads (not verified): past the end of their generation (the next one starts
   * before them), or in a generation that has no record
   */
  staleKeys: string[];
}

interface VerifyOptions extends StorageFlags, EncryptionFlags {
  db?: string;
  prefix: string;
  json?: boolean;
}

function emptyReport(target: string): VerifyReport {
  return { target, ok: true, segments: 0, entries: 0, firstSeq: null, lastSeq: null, chainHash: null, bytes: 0, problems: [], ignoredKeys: [], staleKeys: [] };
}

/** The sequence a GraphstreamError message names (`... (sequence 12) ...`), if any. */
function sequenceIn(message: string): number | null {
  const match = /\(sequence (\d+)\)/.exec(message);
  return match ? Number(match[1]) : null;
}

async function verifyDirectory(dir: string, output: Output): Promise<VerifyReport> {
  const report = emptyReport(dir);
  await requireDirectory(dir);
  const progress = output.progress('verifying', undefined);
  let verified;
  try {
    verified = await verifyJournal(dir, { onSegment: (done) => progress.update(done) });
  } finally {
    progress.done();
  }
  report.segments = verified.segments;
  report.bytes = verified.bytes;
  report.entries = verified.entries;
  report.firstSeq = verified.firstSeq;
  report.lastSeq = verified.lastSeq;
  report.chainHash = verified.chainHash?.toString('hex') ?? null;
  for (const { path, offset, sequence, code, message } of verified.problems) {
    report.problems.push({ where: path, sequence, code, message: `at byte offset ${offset}: ${message}` });
  }
  if (verified.segments === 0) {
    report.problems.push({ where: dir, sequence: null, code: 'not_found', message: `${dir} holds no journal segments` });
  }
  report.ok = report.problems.length === 0;
  return report;
}

/** A segment key of the db, and where it is (the storage location and the key) for messages. */
type RemoteSegment = DbSegmentKey & { url: string };

/** What verifying one remote segment established about the chain. */
interface VerifiedSegment {
  url: string;
  generation: number;
  firstSeq: number;
  lastSeq: number;
  /** chain hash before firstSeq */
  startHash: Buffer;
  /** chain hash after lastSeq */
  chainHash: Buffer;
}

/** A sequence, the chain hash after it, and where that was read. */
interface ChainPoint {
  sequence: number;
  hash: Buffer;
  url: string;
}

/** Downloads `segments` a few at a time ahead of the caller, yielding them in order. */
async function* downloads(storage: SegmentStorage, segments: RemoteSegment[]): AsyncGenerator<[RemoteSegment, Promise<Uint8Array | null>]> {
  const started: Promise<Uint8Array | null>[] = [];
  const start = (index: number) => {
    const segment = segments[index];
    if (segment !== undefined) {
      const download = storage.get(segment.key);
      download.catch(() => undefined); // observed when its turn comes
      started[index] = download;
    }
  };
  for (let i = 0; i < DOWNLOAD_WINDOW; i++) start(i);
  for (let i = 0; i < segments.length; i++) {
    yield [segments[i]!, started[i]!];
    delete started[i];
    start(i + DOWNLOAD_WINDOW);
  }
}

/** Decodes and checks one downloaded segment on its own; null (and a problem) when it cannot be trusted. */
async function verifySegmentBytes(segment: RemoteSegment, bytes: Uint8Array, report: VerifyReport): Promise<VerifiedSegment | null> {
  const problem = (code: ErrorCode, message: string, sequence: number | null = segment.firstSeq) => {
    report.problems.push({ where: segment.url, sequence, code, message });
    return null;
  };
  let decoded;
  try {
    decoded = await decodeSegmentAsync(bytes);
  } catch (err) {
    const error = toGraphstreamError(err);
    return problem(error.code, error.message, sequenceIn(error.message) ?? segment.firstSeq);
  }
  const { header } = decoded;
  if ((header.flags & FLAG_SEALED) === 0) return problem('invalid_segment', 'segment is not sealed (only sealed segments belong in storage)');
  if (header.firstSeq !== segment.firstSeq) {
    return problem('invalid_segment', `the key names first sequence ${segment.firstSeq} but the header says ${header.firstSeq}`);
  }
  report.segments++;
  report.bytes += bytes.byteLength;
  if (decoded.entries.length === 0) return null;
  return {
    url: segment.url,
    generation: segment.generation,
    firstSeq: header.firstSeq,
    lastSeq: header.lastSeq,
    startHash: decoded.startHash,
    chainHash: decoded.chainHash,
  };
}

/**
 * Checks that the segments of one family (the originals of a generation and the compacted
 * segments that replace runs of them, see ts/replication/compaction.ts) form one chain: every sequence from
 * the first to the last is in some segment, originals do not overlap each other (nor do compacted
 * ones), and wherever segments meet, they agree on the chain hash at that sequence. A generation
 * with a record starts where its record says (`start`): its segments must continue from there.
 * Returns where the family ends (null when it has no segment).
 */
function checkFamily(segments: VerifiedSegment[], report: VerifyReport, start: ChainPoint | null): ChainPoint | null {
  const hashAfter = new Map<number, { hash: Buffer; url: string }>([[0, { hash: ZERO_HASH, url: 'the journal start' }]]);
  if (start !== null) hashAfter.set(start.sequence, { hash: start.hash, url: start.url });
  const agree = (sequence: number, hash: Buffer, segment: VerifiedSegment, what: string) => {
    const known = hashAfter.get(sequence);
    if (known === undefined) hashAfter.set(sequence, { hash, url: segment.url });
    else if (!known.hash.equals(hash)) {
      report.problems.push({
        where: segment.url,
        sequence: sequence === segment.lastSeq ? sequence : sequence + 1,
        code: 'chain_broken',
        message: `${what} does not match the chain hash after sequence ${sequence} in ${known.url}`,
      });
    }
  };
  const lastByKind = new Map<boolean, VerifiedSegment>();
  let coveredTo = start?.sequence ?? -1;
  let end: ChainPoint | null = null;
  const ordered = [...segments].sort((a, b) => a.firstSeq - b.firstSeq || a.generation - b.generation);
  for (const segment of ordered) {
    agree(segment.firstSeq - 1, segment.startHash, segment, `prev_hash of sequence ${segment.firstSeq}`);
    agree(segment.lastSeq, segment.chainHash, segment, `the chain hash after sequence ${segment.lastSeq}`);
    const compacted = (segment.generation & COMPACTED_GENERATION_BIT) !== 0;
    const previous = lastByKind.get(compacted);
    if (previous !== undefined && segment.firstSeq <= previous.lastSeq) {
      report.problems.push({
        where: segment.url,
        sequence: segment.firstSeq,
        code: 'overlap',
        message: `starts at sequence ${segment.firstSeq}, inside ${previous.url} (${previous.firstSeq}..${previous.lastSeq})`,
      });
    }
    lastByKind.set(compacted, segment);
    if (coveredTo >= 0 && segment.firstSeq > coveredTo + 1) {
      report.problems.push({
        where: segment.url,
        sequence: segment.firstSeq,
        code: 'gap',
        message: `sequences ${coveredTo + 1}..${segment.firstSeq - 1} are in no segment`,
      });
    }
    if (end === null) report.firstSeq = Math.min(report.firstSeq ?? segment.firstSeq, segment.firstSeq);
    if (segment.lastSeq > coveredTo) {
      end = { sequence: segment.lastSeq, hash: segment.chainHash, url: segment.url };
      report.entries += segment.lastSeq - Math.max(coveredTo, segment.firstSeq - 1);
      coveredTo = segment.lastSeq;
      report.lastSeq = segment.lastSeq;
      report.chainHash = segment.chainHash.toString('hex');
    }
  }
  return end;
}

async function verifyRemote(storage: SegmentStorage, prefix: string, db: string, output: Output, encryption: ReadEncryption | undefined): Promise<VerifyReport> {
  const core = await resolveCore(undefined);
  const location = storage.description.replace(/\/?$/, '/');
  const report = emptyReport(`${location}${dbPrefix(prefix, db)}`);
  const listing = await listDbKeys(storage, prefix, db);
  let generations: readonly Generation[] = [];
  try {
    generations = await new GenerationRecords(storage, prefix, db).refresh();
  } catch (err) {
    const error = toGraphstreamError(err);
    report.problems.push({ where: report.target, sequence: null, code: error.code, message: `reading the generation records: ${error.message}` });
  }
  const segments: RemoteSegment[] = [];
  for (const segment of listing.segments) {
    const generation = generations.find((known) => known.generation === (segment.generation & ~COMPACTED_GENERATION_BIT));
    if (generations.length > 0 && (generation === undefined || segment.firstSeq > generation.lastSeq)) report.staleKeys.push(location + segment.key);
    else segments.push({ ...segment, url: location + segment.key });
  }
  report.ignoredKeys = listing.others.map((key) => location + key);
  if (segments.length === 0) {
    report.problems.push({ where: report.target, sequence: null, code: 'not_found', message: `no segments under ${report.target}` });
  }
  const families = new Map<number, VerifiedSegment[]>();
  const progress = output.progress('verifying', segments.length);
  let done = 0;
  try {
    for await (const [segment, download] of downloads(storage, segments)) {
      let bytes: Uint8Array | null;
      try {
        bytes = await download;
      } catch (err) {
        const error = toGraphstreamError(err);
        report.problems.push({ where: segment.url, sequence: segment.firstSeq, code: error.code, message: `download failed: ${error.message}` });
        continue;
      }
      if (bytes === null) {
        report.problems.push({ where: segment.url, sequence: segment.firstSeq, code: 'not_found', message: 'the object disappeared while being verified' });
        continue;
      }
      try {
        bytes = await decryptDownloaded(core, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), encryption, 'the object');
      } catch (err) {
        const error = toGraphstreamError(err);
        report.problems.push({ where: segment.url, sequence: segment.firstSeq, code: error.code, message: error.message });
        continue;
      }
      const verified = await verifySegmentBytes(segment, bytes, report);
      if (verified !== null) {
        const family = verified.generation & ~COMPACTED_GENERATION_BIT;
        families.set(family, [...(families.get(family) ?? []), verified]);
      }
      progress.update(++done);
    }
  } finally {
    progress.done();
  }
  if (generations.length === 0) {
    for (const family of [...families.keys()].sort((a, b) => a - b)) checkFamily(families.get(family)!, report, null);
  }
  let previous: ChainPoint | null = null;
  for (const generation of generations) {
    const start = generation.recordKey === null ? null : { sequence: generation.startSeq - 1, hash: generation.prevHash, url: location + generation.recordKey };
    if (start !== null && previous !== null && start.sequence > 0) {
      if (previous.sequence < start.sequence) {
        report.problems.push({
          where: start.url,
          sequence: previous.sequence + 1,
          code: 'gap',
          message: `generation ${generation.generation} starts at sequence ${generation.startSeq}, but the generations before it end at ${previous.sequence} (${previous.url})`,
        });
      } else if (previous.sequence === start.sequence && !previous.hash.equals(start.hash)) {
        report.problems.push({
          where: start.url,
          sequence: generation.startSeq,
          code: 'chain_broken',
          message: `prev_hash of generation ${generation.generation} does not match the chain hash after sequence ${start.sequence} in ${previous.url}`,
        });
      }
    }
    previous = checkFamily(families.get(generation.generation) ?? [], report, start) ?? previous;
  }
  report.ok = report.problems.length === 0;
  return report;
}

function printReport(report: VerifyReport, output: Output): void {
  const range = report.firstSeq === null ? 'none' : `${report.firstSeq}..${report.lastSeq}`;
  output.print(`verify ${report.target}`);
  output.print(
    formatFields([
      ['segments', report.segments],
      ['entries', report.entries],
      ['sequences', range],
      ['bytes', formatBytes(report.bytes)],
      ['chain hash', report.chainHash ?? '-'],
    ]),
  );
  if (report.staleKeys.length > 0) {
    output.print(
      `  stale: ${report.staleKeys.length} segment(s) past the end of their generation, left by a writer that had lost ` +
        `the lease; no reader reads them: ${report.staleKeys.join(', ')}`,
    );
  }
  if (report.ignoredKeys.length > 0) {
    output.print(`  ignored ${report.ignoredKeys.length} key(s) that are not segments, e.g. ${report.ignoredKeys[0]}`);
  }
  for (const problem of report.problems) {
    const sequence = problem.sequence === null ? '' : ` sequence ${problem.sequence}`;
    output.print(`PROBLEM [${problem.code}] ${problem.where}${sequence}: ${problem.message}`);
  }
  output.print(report.ok ? 'OK: the chain verifies end to end' : `FAILED: ${report.problems.length} problem(s)`);
}

export function registerVerify(program: Command, output: Output): void {
  withStorageOptions(
    withEncryptionOptions(
      program
        .command('verify')
        .summary('check a whole journal: CRCs, hash chain, gaps and overlaps')
        .description(
          'Checks every segment of a journal, the CRC of every entry and the hash chain end to end, and reports ' +
            'every problem with where it is. In a journal directory, a torn tail (the end of the last write, and ' +
            'trailing segments holding no entry) is what a crash leaves, not a problem; anything else is, as ' +
            '`Journal.open` sees it. Exit code 0 when everything verifies, 1 otherwise.',
        )
        .argument('<target>', 'a journal directory, or s3://bucket/prefix/db, file:///root/prefix/db, memory://')
        .option('--db <db>', 'the db name, when the URL names the storage root rather than the db', dbArg)
        .option('--prefix <prefix>', 'key prefix in front of the db name (with --db)', prefixArg, '')
        .option('--json', 'print the report as JSON'),
      { read: true },
    ),
  ).action(async function (this: Command, target: string, options: VerifyOptions) {
    let report: VerifyReport;
    if (!isStorageUrl(target)) {
      if (options.db !== undefined) usageError(this, '--db is for storage URLs; a directory is one journal');
      report = await verifyDirectory(resolve(target), output);
    } else {
      let storageUrl = target;
      let db = options.db;
      if (db === undefined) {
        const split = splitDbUrl(target);
        if (split === null) usageError(this, `${target} does not name a db: use s3://bucket/prefix/db or give --db`);
        ({ storageUrl, db } = split);
      }
      const storage = await openStorageArg(this, storageUrl, options);
      try {
        report = await verifyRemote(storage, options.prefix, db, output, await readEncryptionArg(options));
      } finally {
        await storage.close?.();
      }
    }
    if (options.json) output.print(toJson(report, 2));
    else printReport(report, output);
    const first = report.problems[0];
    if (first !== undefined) {
      throw new GraphstreamError(first.code, `${report.target} does not verify: ${report.problems.length} problem(s), the first at ${first.where}`);
    }
  });
}
