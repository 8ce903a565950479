/**
 * Verification of a db in object storage, as `graphstream verify <url>` runs it: every segment of
 * every generation is downloaded (and decrypted), decoded and checked, and the generations' chains
 * are checked against each other and their records. Segments past the end of their generation
 * (left by a writer that had lost the lease) are listed as stale, not read.
 */
import type { Core } from '../core/core.js';
import { resolveCore } from '../core/default.js';
import { GraphstreamError, toGraphstreamError, type ErrorCode } from '../errors.js';
import { FLAG_SEALED, ZERO_HASH } from '../format/constants.js';
import { checkDb, checkPrefix } from '../storage/names.js';
import type { SegmentStorage } from '../storage/types.js';
import { decryptDownloaded, type ReadEncryption } from './encryption.js';
import { GenerationRecords, type Generation, type UndecidedGeneration } from './generations.js';
import { COMPACTED_GENERATION_BIT, dbPrefix, listDbKeys, type DbSegmentKey } from './layout.js';

/** remote segments downloaded ahead of the one being verified */
const DOWNLOAD_WINDOW = 4;

/** One problem found: where, at which sequence (when known), its error code and what is wrong. */
export interface VerifyProblem {
  /** file path, or storage URL of the key */
  where: string;
  sequence: number | null;
  code: ErrorCode;
  message: string;
}

/** What verifying a journal (a directory or a db in storage) found. */
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
  problems: VerifyProblem[];
  /** keys under the db's prefix that are not segments (not verified) */
  ignoredKeys: string[];
  /**
   * segments no reader reads (not verified): past the end of their generation (the next one starts
   * before them), or in a generation that has no record
   */
  staleKeys: string[];
  /**
   * set while lease.json names a generation that has no record yet: where the newest generation
   * ends is not decided, and its newest segments may be a stale writer's (readers wait there)
   */
  undecided: UndecidedGeneration | null;
}

export interface VerifyStoreOptions {
  /** key prefix, empty (the default) or ending in `/` */
  prefix?: string;
  db: string;
  /** identities to open encrypted objects with (several, for rotated keys); allowPlaintext accepts plaintext ones too */
  encryption?: ReadEncryption;
  /** the core that decrypts and decodes; default the native addon (the pure twin where it does not load) */
  core?: Core;
  /** called after each segment is checked, with how many are done and how many there are */
  onSegment?: (done: number, total: number) => void;
}

/** A report with nothing found yet. */
export function emptyReport(target: string): VerifyReport {
  return { target, ok: true, segments: 0, entries: 0, firstSeq: null, lastSeq: null, chainHash: null, bytes: 0, problems: [], ignoredKeys: [], staleKeys: [], undecided: null };
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
async function verifySegmentBytes(core: Core, segment: RemoteSegment, bytes: Uint8Array, report: VerifyReport): Promise<VerifiedSegment | null> {
  const problem = (code: ErrorCode, message: string, sequence: number | null = segment.firstSeq) => {
    report.problems.push({ where: segment.url, sequence, code, message });
    return null;
  };
  let decoded;
  try {
    decoded = await core.decodeSegmentAsync(bytes);
  } catch (err) {
    const error = toGraphstreamError(err);
    return problem(error.code, error.message, error.details?.sequence ?? segment.firstSeq);
  }
  const { header } = decoded;
  if ((header.flags & FLAG_SEALED) === 0) return problem('invalid_segment', 'segment is not sealed (only sealed segments belong in storage)');
  if (header.firstSeq !== segment.firstSeq) {
    return problem('invalid_segment', `the key names first sequence ${segment.firstSeq} but the header says ${header.firstSeq}`);
  }
  report.segments++;
  report.bytes += bytes.byteLength;
  if (decoded.entryOffsets.length === 0) return null;
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
        message: `sequences ${coveredTo + 1}..${segment.firstSeq - 1} of generation ${segment.generation & ~COMPACTED_GENERATION_BIT} are in no segment`,
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

/**
 * Checks every segment of a db in storage (CRCs, the hash chain within and across segments and
 * generations, gaps, overlaps) and reports every problem with where it is, instead of stopping at
 * the first. Encrypted objects are decrypted with `encryption.identities` first; an encrypted
 * object without them (or with the wrong ones) is a `decryption_failed` problem, and with them a
 * plaintext one is `not_encrypted` unless `encryption.allowPlaintext`. `graphstream verify <url>`
 * prints this report.
 */
export async function verifyStore(storage: SegmentStorage, options: VerifyStoreOptions): Promise<VerifyReport> {
  if (typeof options !== 'object' || options === null) throw new GraphstreamError('invalid_argument', 'verifyStore: options must be an object');
  const { prefix = '', db, encryption } = options;
  checkPrefix(prefix, 'verifyStore');
  checkDb(db, 'verifyStore');
  const core = await resolveCore(options.core);
  const location = storage.description.replace(/\/?$/, '/');
  const report = emptyReport(`${location}${dbPrefix(prefix, db)}`);
  const listing = await listDbKeys(storage, prefix, db);
  let generations: readonly Generation[] = [];
  try {
    const records = new GenerationRecords(storage, prefix, db);
    report.undecided = await records.refreshAfterListing();
    generations = records.generations;
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
  let done = 0;
  {
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
      const verified = await verifySegmentBytes(core, segment, bytes, report);
      if (verified !== null) {
        const family = verified.generation & ~COMPACTED_GENERATION_BIT;
        families.set(family, [...(families.get(family) ?? []), verified]);
      }
      options.onSegment?.(++done, segments.length);
    }
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
