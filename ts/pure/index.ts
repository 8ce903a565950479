/**
 * `graphstream/pure`: the public API bound to the pure-TypeScript core (no native addon),
 * for platforms without a prebuilt binary and as the benchmark baseline. Same functions,
 * same classes, same bytes as the package root; a `core` option still overrides.
 */
import { createFormatApi } from '../format/format.js';
import { Journal as JournalWithCore, type JournalOptions } from '../journal/journal.js';
import {
  readJournal as readJournalWithCore,
  type JournalRecord,
  type RawJournalRecord,
  type ReadJournalOptions,
} from '../journal/reader.js';
import { recoverJournalState as recoverWithCore, verifyJournal as verifyWithCore, type RecoverOptions } from '../journal/recovery.js';
import {
  Follower as FollowerWithCore,
  downloadNewSegments as downloadWithCore,
  type FollowerOptions,
} from '../replication/follower.js';
import { restore as restoreWithCore } from '../replication/restore.js';
import { verifyStore as verifyStoreWithCore } from '../replication/verify-store.js';
import { SegmentCache as SegmentCacheWithCore } from '../replication/cache.js';
import { Uploader as UploaderWithCore, type UploaderOptions } from '../replication/uploader.js';
import {
  compactOnce as compactOnceWithCore,
  runBackgroundCompaction as runCompactionWithCore,
} from '../replication/compaction.js';
import { pureCore } from './core.js';

export { pureCore } from './core.js';

export const {
  crc32c,
  computeEntryHash,
  encodeEntry,
  decodeEntry,
  encodeHeader,
  decodeHeader,
  sealSegment,
  sealSegmentAsync,
  decodeSegment,
  decodeSegmentAsync,
  segmentFileName,
  segmentKey,
} = createFormatApi(pureCore);

export class Journal extends JournalWithCore {
  static override open(dir: string, options: JournalOptions = {}): Promise<JournalWithCore> {
    return super.open(dir, { core: pureCore, ...options });
  }
}

export class Follower extends FollowerWithCore {
  constructor(options: FollowerOptions) {
    super({ core: pureCore, ...options });
  }
}

export class SegmentCache extends SegmentCacheWithCore {
  static override open(...[dir, destination, config, options]: Parameters<typeof SegmentCacheWithCore.open>): Promise<SegmentCacheWithCore> {
    return super.open(dir, destination, config, { core: pureCore, ...options });
  }
}

export class Uploader extends UploaderWithCore {
  constructor(options: UploaderOptions) {
    super({ core: pureCore, ...options });
  }
}

export function readJournal(dir: string, options: ReadJournalOptions & { raw: true }): AsyncIterable<RawJournalRecord>;
export function readJournal(dir: string, options?: ReadJournalOptions & { raw?: false }): AsyncIterable<JournalRecord>;
export function readJournal(
  dir: string,
  options: ReadJournalOptions & { raw?: boolean } = {},
): AsyncIterable<JournalRecord | RawJournalRecord> {
  const bound = { core: pureCore, ...options };
  return bound.raw === true ? readJournalWithCore(dir, { ...bound, raw: true }) : readJournalWithCore(dir, { ...bound, raw: false });
}

export const recoverJournalState = (dir: string, options: RecoverOptions = {}) =>
  recoverWithCore(dir, { core: pureCore, ...options });

export const verifyJournal = (dir: string, options: Parameters<typeof verifyWithCore>[1] = {}) =>
  verifyWithCore(dir, { core: pureCore, ...options });

export const downloadNewSegments: typeof downloadWithCore = (storage, prefix, db, dir, sinceSeq, options = {}) =>
  downloadWithCore(storage, prefix, db, dir, sinceSeq, { core: pureCore, ...options });

export const restore: typeof restoreWithCore = (storage, options) => restoreWithCore(storage, { core: pureCore, ...options });

export const verifyStore: typeof verifyStoreWithCore = (storage, options) => verifyStoreWithCore(storage, { core: pureCore, ...options });

export const compactOnce: typeof compactOnceWithCore = (options) => compactOnceWithCore({ core: pureCore, ...options });

export const runBackgroundCompaction: typeof runCompactionWithCore = (options) =>
  runCompactionWithCore({ core: pureCore, ...options });

export * from '../public.js';
