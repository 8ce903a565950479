/**
 * graphstream: the journal replication engine for graph databases.
 *
 * The package root binds the public API to the native core (the napi-rs addon). Where no
 * prebuilt binary loads, it falls back to the pure-TypeScript twin (`graphstream/pure`),
 * which has the same API and writes the same bytes; `activeCore.kind` says which one runs.
 */
import type { Core } from './core.js';
import { createFormatApi } from './format.js';
import { nativeCore, nativeLoadError } from './native.js';
import { pureCore } from './pure/index.js';

/** The core behind the root API: native when the addon loads, otherwise pure. */
export const activeCore: Core = nativeCore ?? pureCore;
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

// Without a `core` option these pick the same core as activeCore (ts/default-core.ts).
export { Journal } from './journal.js';
export { readJournal } from './reader.js';
export { recoverJournalState, verifyJournal } from './recovery.js';
export { Follower, downloadNewSegments } from './follower.js';
export { restore } from './restore.js';
export { compactOnce, runBackgroundCompaction } from './compaction.js';
export * from './public.js';
