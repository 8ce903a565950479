/**
 * Point-in-time restore: rebuilds a local journal directory from object storage up to a sequence
 * or up to the leader's clock (`timestamp_ms` of each graphd entry), verified end to end from the
 * journal's first entry. The segment holding the target is cut there and sealed again, so that
 * `Journal.open(dir)` continues the chain right after the target.
 */
import { checkSignal, throwIfAborted } from '../abort.js';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Core } from '../core/core.js';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { ZERO_HASH } from '../format/constants.js';
import { payloadOf } from '../format/raw-entries.js';
import type { UndecidedGeneration } from './generations.js';
import { RemoteJournal, storeSegment, type RemoteLocation, type RemoteSegment } from './remote-journal.js';
import { resolveCore } from '../core/default.js';
import type { GraphstreamMetrics } from '../metrics.js';
import { decodeJournalEntry } from '../payload/payload.js';
import { listSegments, readRecoveryState } from '../journal/recovery.js';
import { checkDb, checkPrefix } from '../storage/names.js';

export interface RestoreProgress {
  /** segments written so far */
  segments: number;
  /** entries restored so far */
  entries: number;
  /** bytes written so far */
  bytes: number;
  /** segments restore expects to read in all (from the listing; it ends early at a target) */
  totalSegments: number;
}

export interface RestoreOptions extends Omit<RemoteLocation, 'storage'> {
  /** the directory to restore into: created if needed, and must hold no journal yet */
  dir: string;
  /** last sequence to restore; default everything */
  toSequence?: number;
  /** restore the entries up to the first one whose timestamp_ms is later than this (graphd payloads) */
  toTimestampMs?: number;
  core?: Core;
  metrics?: GraphstreamMetrics;
  onProgress?: (progress: RestoreProgress) => void;
  /**
   * stops the restore between segments with an AbortError; the directory then holds a verified
   * prefix of the journal (a later restore needs an empty directory again)
   */
  signal?: AbortSignal;
}

export interface RestoreResult {
  /** last sequence restored (0 when nothing was) */
  sequence: number;
  /** chain hash after it */
  chainHash: Buffer;
  segments: number;
  entries: number;
  bytes: number;
  /**
   * Set when restore stopped short of what storage lists because the lease names a generation
   * whose record is not written yet (a new writer is starting): the segments past `sequence` may
   * be a stale writer's, so only what is certain was restored. A later restore gets the rest.
   */
  undecided?: UndecidedGeneration;
}

function checkTarget(value: number | undefined, name: string, min: number): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min)) {
    throw new GraphstreamError('invalid_argument', `restore: ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}

/** The last sequence of `segment` to keep under the targets (fromSeq - 1 when none). */
function lastToKeep(segment: RemoteSegment, options: RestoreOptions): number {
  const { decoded } = segment;
  const first = decoded.header.firstSeq;
  let last = Math.min(segment.toSeq, options.toSequence ?? Number.MAX_SAFE_INTEGER);
  if (options.toTimestampMs !== undefined) {
    for (let sequence = segment.fromSeq; sequence <= last; sequence++) {
      const payload = payloadOf(decoded, sequence - first);
      let timestampMs: number | bigint;
      try {
        timestampMs = decodeJournalEntry(payload).timestampMs;
      } catch (err) {
        throw toGraphstreamError(err, `restore by timestamp: ${segment.key} (sequence ${sequence})`);
      }
      if (timestampMs > options.toTimestampMs) {
        last = sequence - 1;
        break;
      }
    }
  }
  return last;
}

/** Rebuilds a verified local journal in `options.dir` from `storage`; see the module comment. */
export async function restore(storage: RemoteLocation['storage'], options: RestoreOptions): Promise<RestoreResult> {
  if (typeof options !== 'object' || options === null || typeof options.dir !== 'string' || options.dir === '') {
    throw new GraphstreamError('invalid_argument', 'restore: options.dir must be a non-empty path');
  }
  checkPrefix(options.prefix ?? '', 'restore');
  checkDb(options.db, 'restore');
  checkTarget(options.toSequence, 'toSequence', 1);
  checkTarget(options.toTimestampMs, 'toTimestampMs', Number.MIN_SAFE_INTEGER);
  const signal = checkSignal(options.signal, 'restore');
  throwIfAborted(signal, 'restore');
  const core = await resolveCore(options.core);
  const dir = resolve(options.dir);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw toGraphstreamError(err, `restore: creating ${dir}`);
  }
  if ((await listSegments(dir)).length > 0 || (await readRecoveryState(dir)) !== null) {
    throw new GraphstreamError('invalid_argument', `restore: ${dir} already holds a journal; restore into an empty directory`);
  }
  const remote = new RemoteJournal(
    { storage, prefix: options.prefix ?? '', db: options.db, encryption: options.encryption },
    core,
    { position: { sequence: 0, chainHash: ZERO_HASH }, aligned: true },
    options.metrics,
    { lastWanted: options.toSequence },
  );
  const progress: RestoreProgress = { segments: 0, entries: 0, bytes: 0, totalSegments: 0 };
  try {
    for (;;) {
      const segment = await remote.next();
      throwIfAborted(signal, 'restore');
      if (segment === null) break;
      progress.totalSegments = Math.max(progress.totalSegments, progress.segments + Math.max(1, remote.listedAhead));
      const last = lastToKeep(segment, options);
      if (last < segment.fromSeq) break;
      const stored = await storeSegment(core, dir, segment, last);
      progress.segments++;
      progress.entries += stored.entryCount;
      progress.bytes += stored.bytes;
      options.onProgress?.({ ...progress });
      if (last < segment.toSeq) {
        return { sequence: last, chainHash: stored.chainHash, ...counts(progress) };
      }
      remote.accept(segment);
      if (last === options.toSequence) break;
    }
  } finally {
    remote.abandonPrefetched(); // reaching a target before the listing's end leaves segments fetched ahead
  }
  const { tip, undecided } = remote;
  if (options.toSequence !== undefined && tip.sequence < options.toSequence) {
    throw new GraphstreamError(
      'not_found',
      `restore: ${storage.description} holds sequences up to ${tip.sequence}, not ${options.toSequence}` +
        (undecided === null ? '' : ` for certain (${undecidedReason(undecided)})`) +
        `; ${dir} holds them all, verified`,
    );
  }
  return { sequence: tip.sequence, chainHash: Buffer.from(tip.chainHash), ...counts(progress), ...(undecided === null ? {} : { undecided }) };
}

function counts(progress: RestoreProgress): Pick<RestoreResult, 'segments' | 'entries' | 'bytes'> {
  return { segments: progress.segments, entries: progress.entries, bytes: progress.bytes };
}

/** Why the segments past the tip are not taken yet, for messages. */
export function undecidedReason(undecided: UndecidedGeneration): string {
  return (
    `the lease names generation ${undecided.leaseGeneration} (${undecided.holder}, epoch ${undecided.epoch}), whose record is not ` +
    `written yet: the segments of generation ${undecided.generation} past it may be a stale writer's`
  );
}
