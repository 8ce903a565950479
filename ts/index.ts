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

export type { DecodedEntry, DecodedSegment, Entry, FormatApi, FormatCore } from './format.js';
export type {
  Core,
  CoreWriter,
  DecodeOptions,
  Durability,
  HeaderFields,
  HeaderInit,
  RawSegment,
  SealOptions,
  WriterStats,
} from './core.js';
export { GraphstreamError, isGraphstreamError, ERROR_CODES, type ErrorCode } from './errors.js';
export { ParamValue, TypedParam, type ParamInput, type ParamsInput, type ParamType, type Point } from './params.js';
export { decodeJournalEntry, encodeJournalEntry, type JournalEntry, type JournalEntryInput } from './payload.js';
export {
  Journal,
  type AppendResult,
  type Compression,
  type JournalAppendEntry,
  type JournalOptions,
  type JournalStats,
} from './journal.js';
export { readJournal, type JournalRecord, type RawJournalRecord, type ReadJournalOptions } from './reader.js';
export { recoverJournalState, writeRecoveryState, type RecoveredJournalState } from './recovery.js';
export type { ListOptions, PutOptions, PutResult, SegmentStorage } from './storage/types.js';
export {
  LocalStorage,
  MemoryStorage,
  ObjectStoreStorage,
  S3Storage,
  openStorage,
  type ObjectStoreStorageOptions,
  type OpenStorageOptions,
  type S3StorageOptions,
} from './storage/index.js';
export {
  CircuitBreaker,
  RetryPolicy,
  DEFAULT_RETRY_CONFIG,
  type BreakerConfig,
  type BreakerState,
  type RetryConfig,
  type RetryConfigInit,
} from './retry.js';
export { SegmentCache, type CacheConfig, type CacheStats, type CleanupStats } from './cache.js';
export { GraphstreamMetrics, type MetricsOptions } from './metrics.js';
export { Uploader, type UploaderOptions, type UploaderStats } from './uploader.js';
export {
  Follower,
  downloadNewSegments,
  type CatchUpResult,
  type DownloadedSegment,
  type DownloadOptions,
  type FollowerOptions,
  type FollowerPosition,
  type ReplicationLag,
  type TailOptions,
} from './follower.js';
export { restore, type RestoreOptions, type RestoreProgress, type RestoreResult } from './restore.js';
export {
  compactOnce,
  runBackgroundCompaction,
  DEFAULT_COMPACTION_CONFIG,
  type BackgroundCompaction,
  type BackgroundCompactionOptions,
  type CompactionConfig,
  type CompactionConfigInit,
  type CompactionOptions,
  type CompactionResult,
  type CompactedSegmentRecord,
  type RetentionPolicy,
} from './compaction.js';
