/**
 * graphstream: the journal replication engine for graph databases.
 *
 * The package root binds the public API to the native core (the napi-rs addon). Where no
 * prebuilt binary loads, it falls back to the pure-TypeScript twin (`graphstream/pure`),
 * which has the same API and writes the same bytes; `core` says which one runs.
 */
import type { Core } from './core/core.js';
import { createFormatApi } from './format/format.js';
import { defaultNativeCore, nativeCore, nativeLoadError } from './core/native.js';
import { pureCore } from './pure/core.js';

/**
 * The core behind the root API: native when the addon loads, otherwise pure (with a
 * `GRAPHSTREAM_PURE_FALLBACK` warning where a prebuilt binary exists). `GRAPHSTREAM_CORE=native|pure`
 * forces one; forcing native where it does not load throws at import.
 */
export const activeCore: Core = defaultNativeCore() ?? pureCore;
/** Which core the root API runs: `'native'` or `'pure'`. */
export const core: 'native' | 'pure' = activeCore.kind;
export { nativeCore, nativeLoadError, pureCore };

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
} = createFormatApi(activeCore);

// Without a `core` option these pick the same core as activeCore (ts/core/default.ts).
export { Journal } from './journal/journal.js';
export { readJournal } from './journal/reader.js';
export { recoverJournalState, verifyJournal } from './journal/recovery.js';
export { Follower, downloadNewSegments } from './replication/follower.js';
export { restore } from './replication/restore.js';
export { verifyStore } from './replication/verify-store.js';
export { compactOnce, runBackgroundCompaction } from './replication/compaction.js';
export { SegmentCache } from './replication/cache.js';
export { Uploader } from './replication/uploader.js';
export * from './public.js';
