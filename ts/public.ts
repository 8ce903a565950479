/**
 * The public API that does not depend on which core runs: types, errors, typed parameters,
 * payloads, storage, retry, metrics. Both entry points (the package root and `graphstream/pure`)
 * re-export it and add the core-bound functions and classes.
 */
export type { DecodedEntry, DecodedSegment, Entry, FormatApi, FormatCore } from './format/format.js';
export type {
  AppendedBatch,
  Core,
  CoreWriter,
  DecodeOptions,
  Durability,
  EncodedBatch,
  HeaderFields,
  HeaderInit,
  Payloads,
  PackedPayloads,
  RawEntry,
  RawSegment,
  SealOptions,
  WriterOptions,
  WriterStart,
  WriterStats,
} from './core/core.js';
export { AbortError } from './abort.js';
export type { AgeIdentities, AgeRecipients, EncryptedFile } from './core/core.js';
export type { ReadEncryption, UploadEncryption } from './replication/encryption.js';
export { GraphstreamError, isGraphstreamError, ERROR_CODES, type ErrorCode, type ErrorDetails } from './errors.js';
export { ParamValue, TypedParam, type ParamInput, type ParamsInput, type ParamType, type ParamValueTypes, type Point } from './payload/params.js';
export { decodeJournalEntry, encodeJournalEntry, type JournalEntry, type JournalEntryInput } from './payload/payload.js';
export {
  type AppendResult,
  type Compression,
  type JournalAppendEntry,
  type JournalOptions,
  type JournalStats,
} from './journal/journal.js';
export { type JournalRecord, type RawJournalRecord, type ReadJournalOptions } from './journal/reader.js';
export {
  writeRecoveryState,
  type Corruption,
  type JournalVerification,
  type QuarantineReport,
  type RecoverOptions,
  type RecoveryCore,
  type SegmentReadCore,
  type RecoveredJournalState,
} from './journal/recovery.js';
export type { GetOptions, ListOptions, ObjectHead, ObjectMetadata, PutOptions, PutResult, SegmentStorage, StagedEncryptedFile, StagedFile, VersionedObject } from './storage/types.js';
export {
  LocalStorage,
  MemoryStorage,
  ObjectStoreStorage,
  S3Storage,
  openStorage,
  type ObjectStoreStorageOptions,
  type OpenStorageOptions,
  type S3ClientLike,
  type S3StorageOptions,
} from './storage/index.js';
export type { S3Credentials } from './storage/s3.js';
export {
  CircuitBreaker,
  RetryPolicy,
  DEFAULT_RETRY_CONFIG,
  type BreakerConfig,
  type BreakerState,
  type Clock,
  type RetryConfig,
  type RetryConfigInit,
  type RetryPolicyDeps,
  type RetryRunOptions,
} from './replication/retry.js';
export { DEFAULT_LEASE_TTL_MS, Lease, leaseMarginMs, type AcquireOptions, type GenerationStart, type LeaseEvents, type LeaseOptions, type LeaseState } from './replication/lease.js';
export {
  parseGenerationRecord,
  parseLeaseRecord,
  serializeGenerationRecord,
  serializeLeaseRecord,
  type GenerationRecord,
  type LeaseRecord,
} from './replication/ownership.js';
export { generationRecordKey, leaseKey } from './replication/layout.js';
export type { PromoteOptions, Promotion, TakeOver, TakeOverOptions } from './replication/promote.js';
export type { ChainPosition } from './journal/recovery.js';
export type { CacheConfig, CacheStats, CleanupStats, Destination, PendingSegment, UploadRecord, UploadedHighWater } from './replication/cache.js';
export { GraphstreamMetrics, type LeaseSnapshot, type MetricsOptions } from './metrics.js';
export { SharedLimits, type SharedLimitsOptions, type SharedLimitsStats } from './replication/limits.js';
export type { SealableJournal, UploaderEvents, UploaderLeaseOptions, UploaderOptions, UploaderStats } from './replication/uploader.js';
export type { DownloadedSegment } from './replication/remote-journal.js';
export {
  type CatchUpResult,
  type DownloadOptions,
  type FollowerOptions,
  type FollowerPosition,
  type ReplicationLag,
  type TailOptions,
} from './replication/follower.js';
export { type RestoreOptions, type RestoreProgress, type RestoreResult } from './replication/restore.js';
export type { VerifyProblem, VerifyReport, VerifyStoreOptions } from './replication/verify-store.js';
export { type UndecidedGeneration } from './replication/generations.js';
export {
  DEFAULT_COMPACTION_CONFIG,
  type BackgroundCompaction,
  type BackgroundCompactionOptions,
  type CompactionConfig,
  type CompactionConfigInit,
  type CompactionOptions,
  type CompactionResult,
  type CompactedSegmentRecord,
  type RetentionPolicy,
} from './replication/compaction.js';
