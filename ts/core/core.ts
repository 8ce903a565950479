/**
 * The binding surface: what the native addon (crate/src/binding/) and the pure
 * TypeScript twin (ts/pure/) both implement, byte for byte. The public facade
 * (ts/format/format.ts, ts/journal/journal.ts, ...) is written once against this interface.
 * Only storage reaches the addon beside it, through a seam of its own: `NativeStorage`
 * (ts/core/native.ts), the object_store client and the whole-file read for uploads, which have
 * no pure twin.
 *
 * Conventions:
 * - sequences and lengths are JS numbers (sequences above 2^53 are rejected);
 * - hashes are 32-byte Buffers; `prevSegmentChecksum` is a u64 as bigint;
 * - every failure is thrown (or rejected) as a core error (`coreError` below), which the
 *   facade turns into GraphstreamError (ts/errors.ts).
 */
import { isErrorCode, type ErrorCode } from '../errors.js';

/**
 * What a core error may carry beside its code: whether a failed storage request may succeed if
 * repeated, and its HTTP status; where the entry or trailer that failed its check starts in the
 * segment's bytes, when they hold it as it is (not inside a compressed body).
 */
export interface CoreErrorDetails {
  retryable?: boolean;
  status?: number;
  offset?: number;
  /** the sequence of the entry that failed its check */
  sequence?: number;
}

/** A failure as both cores throw it: an Error whose `code` is one of ERROR_CODES, with its details as properties. */
export type CoreError = Error & CoreErrorDetails & { code: ErrorCode };

export function coreError(code: ErrorCode, message: string, options?: { cause?: unknown; details?: CoreErrorDetails }): CoreError {
  const err = new Error(message, options?.cause === undefined ? undefined : { cause: options.cause });
  return Object.assign(err, { code }, options?.details);
}

export function isCoreError(err: unknown): err is CoreError {
  return err instanceof Error && isErrorCode((err as { code?: unknown }).code);
}

export interface HeaderFields {
  version: number;
  flags: number;
  compression: number;
  firstSeq: number;
  lastSeq: number;
  entryCount: number;
  bodyLen: number;
  bodyChecksum: Buffer;
  prevSegmentChecksum: bigint;
  /** any i64 (as in the reference crate): a number while it is a safe integer, a bigint beyond */
  createdMs: number | bigint;
}

/** Fields accepted by encodeHeader; omitted ones are zero (version is always 1). */
export interface HeaderInit {
  flags?: number;
  compression?: number;
  firstSeq: number;
  lastSeq?: number;
  entryCount?: number;
  bodyLen?: number;
  bodyChecksum?: Uint8Array;
  prevSegmentChecksum?: bigint;
  /** a safe integer, or a bigint for any i64 */
  createdMs?: number | bigint;
}

/** One entry located inside a buffer; the payload is `bytes[payloadOffset, payloadOffset+payloadLength)`. */
export interface RawEntry {
  sequence: number;
  prevHash: Buffer;
  payloadOffset: number;
  payloadLength: number;
  /** bytes this entry occupies (48 + payloadLength) */
  size: number;
}

export interface DecodeOptions {
  /** Unsealed segments only: stop at the last whole CRC-valid entry instead of throwing `torn_tail`. */
  allowTornTail?: boolean;
  /**
   * Ceiling on the decoded body (and on any single length field); default 64 MiB
   * (DEFAULT_MAX_BODY_BYTES). Decoding never holds more than the input, this much body, and
   * a zstd buffer of at most as much.
   */
  maxBodyBytes?: number;
  /**
   * A buffer to decode the body into when it fits: `body` is then its first bytes, and a
   * reader decoding one segment after another can reuse its buffers instead of leaving one
   * dead body per segment to the garbage collector. When the body does not fit, it gets a
   * buffer of its own (`into` may have been written to). It must not share memory with the
   * input, and must not be touched until the decode settles.
   */
  into?: Buffer;
}

/**
 * A decoded, fully verified segment. `body` holds the raw (decompressed) entries;
 * entry i starts at `entryOffsets[i]` in it.
 */
export interface RawSegment {
  header: HeaderFields;
  body: Buffer;
  entryOffsets: Uint32Array;
  /** chain hash after the last entry (the trailer for sealed segments) */
  chainHash: Buffer;
  /** prev_hash of the first entry: the chain hash this segment continues from */
  startHash: Buffer;
  /** bytes of the input that hold the header and whole, valid entries (unsealed segments) */
  validLength: number;
  /** true when an unsealed segment ended in a partial or CRC-invalid entry that was cut off */
  tornTail: boolean;
}

/** Throws (as a core error) unless `into` is absent or a Buffer sharing no memory with `bytes`. */
export function checkDecodeTarget(bytes: Uint8Array, into: unknown): void {
  checkOutputTarget('decode', 'the bytes being decoded', bytes, into);
}

/** The same check for SealOptions.into. */
export function checkSealTarget(unsealed: Uint8Array, into: unknown): void {
  checkOutputTarget('seal', 'the segment being sealed', unsealed, into);
}

function checkOutputTarget(operation: string, input: string, bytes: Uint8Array, into: unknown): void {
  if (into === undefined) return;
  if (!Buffer.isBuffer(into)) throw coreError('invalid_argument', `${operation}: into must be a Buffer`);
  const apart =
    into.buffer !== bytes.buffer || into.byteOffset + into.length <= bytes.byteOffset || bytes.byteOffset + bytes.length <= into.byteOffset;
  if (!apart) throw coreError('invalid_argument', `${operation}: into shares memory with ${input}`);
}

export interface SealOptions {
  /** zstd level 1..22, or 0 for no compression. Default 3. */
  level?: number;
  /** Ceiling on the unsealed input; default 64 MiB (DEFAULT_MAX_BODY_BYTES). */
  maxBodyBytes?: number;
  /**
   * A buffer to write the sealed segment into when it fits: the result is then a view of its
   * first bytes, and a caller sealing one segment after another can reuse one buffer instead of
   * leaving a dead one per call to the garbage collector. When the sealed segment does not fit,
   * it gets a buffer of its own and `into` is not written to. It must not share memory with the
   * input, and must not be touched until the seal settles.
   */
  into?: Buffer;
}

/**
 * Payloads back to back in one buffer: payload i is the `lengths[i]` bytes
 * after payload i-1. This is how a group of payloads crosses into the native
 * core: one buffer and one Uint32Array instead of an array of buffers.
 */
export interface PackedPayloads {
  bytes: Uint8Array;
  lengths: Uint32Array;
}

/** Payloads as an array, or packed (the cheaper form for the native core). */
export type Payloads = readonly Uint8Array[] | PackedPayloads;

export interface EncodedBatch {
  /** the encoded entries, back to back */
  bytes: Buffer;
  /** the chain hash after each entry, 32 bytes each */
  chainHashes: Buffer;
}

export type Durability = 'fsync' | 'interval' | 'none';

export interface WriterOptions {
  maxSegmentBytes: number;
  /** zstd level for sealing, 0 for none */
  level: number;
  durability: Durability;
  fsyncIntervalMs: number;
  /** capacity of the queue of pending append batches before appends wait */
  queueCapacity: number;
}

/** Where a writer starts, as found by recovery (ts/journal/recovery.ts). */
export interface WriterStart {
  /** last sequence written (0 for a new journal) */
  sequence: number;
  /** chain hash after `sequence` (32 zero bytes for a new journal) */
  chainHash: Buffer;
  /** an unsealed segment to continue appending to, already truncated to its valid length */
  liveSegment: string | null;
  /**
   * complete unsealed segments before the live one, oldest first (a crash came while they
   * waited for the background sealer): the writer seals them before any later segment
   */
  retiredSegments?: readonly string[];
}

export interface AppendedBatch {
  firstSequence: number;
  /** chain hash after each appended entry, 32 bytes each */
  chainHashes: Buffer;
}

export interface WriterStats {
  /** fdatasync calls made for appends (group commit makes this smaller than the appends) */
  syncs: number;
  /** write batches committed */
  batches: number;
  segmentsSealed: number;
}

/** A journal writer: one per journal directory, doing its I/O off the JS thread. */
export interface CoreWriter {
  /**
   * Appends the payloads as consecutive entries; resolves once durable per the
   * writer's durability. The bytes are copied before it returns: the caller may
   * reuse its buffers at once. With `stampSequences`, each payload is a graphd
   * `JournalEntry` without its `sequence` field, and the writer puts the
   * sequence it assigns in front of it as field 1 (tag 0x08, varint) before
   * framing and hashing: so callers never need to know the sequence in advance
   * and may keep several appends in flight.
   */
  append(payloads: Payloads, stampSequences?: boolean): Promise<AppendedBatch>;
  /**
   * `append`, done at once on the calling thread when the writer can do so with no more than
   * one write into the page cache (durability 'none' or 'interval', nothing queued ahead of it,
   * no rotation due, a small group: the native core takes up to 16 KiB): then it returns the result itself, the entries handed to the OS as
   * `append` would have them. Otherwise it is `append` and returns its promise. Optional: a
   * writer without it always queues.
   */
  appendNow?(payloads: Payloads, stampSequences?: boolean): AppendedBatch | Promise<AppendedBatch>;
  /** Seals the live segment if it has entries; resolves to the sealed file's path or null. */
  sealForUpload(): Promise<string | null>;
  /** Writes and fsyncs everything appended so far. */
  flush(): Promise<void>;
  /** Flushes, seals the live segment and stops the writer. Idempotent. */
  close(): Promise<void>;
  readonly sequence: number;
  readonly chainHash: Buffer;
  readonly alive: boolean;
  stats(): WriterStats;
}

/** Who may read an encrypted object (docs/FORMAT.md, "Encrypted objects"): X25519 recipients, or one passphrase alone. */
export interface AgeRecipients {
  /** `age1...` */
  recipients?: readonly string[];
  /** scrypt; cannot be combined with recipients */
  passphrase?: string;
}

/** AgeRecipients as the addon takes them (napi wants a mutable array). */
export function nativeRecipients(to: AgeRecipients): { recipients?: string[]; passphrase?: string } {
  return { recipients: to.recipients && [...to.recipients], passphrase: to.passphrase };
}

/** A file encrypted for its upload (Core.encryptFileForUpload). */
export interface EncryptedFile {
  /** the age file */
  bytes: Buffer;
  /** SHA-256 of `bytes`, lowercase hex */
  sha256: string;
  /** bytes read from the file */
  plaintextSize: number;
  /** SHA-256 of the bytes read from the file (those encrypted), lowercase hex */
  plaintextSha256: string;
}

/** What a reader may open encrypted objects with: X25519 identities and/or a passphrase. */
export interface AgeIdentities {
  /** `AGE-SECRET-KEY-1...` */
  identities?: readonly string[];
  passphrase?: string;
  /**
   * Ceiling on the decrypted bytes (`too_large` past it); default the largest sealed segment a
   * reader accepts (DEFAULT_MAX_BODY_BYTES + header + trailer). Decryption never holds more
   * than the input and this much output.
   */
  maxBytes?: number;
}

/** The part of a Core that compaction, followers and restore use: reading, sealing, encrypting and decrypting segments. */
export type SegmentCore = Pick<Core, 'encodeHeader' | 'decodeHeader' | 'sealSegmentAsync' | 'decodeSegmentAsync' | 'encryptSegment' | 'decryptSegment'>;

export interface Core {
  readonly kind: 'native' | 'pure';
  crc32c(data: Uint8Array, initial?: number): number;
  computeEntryHash(prevHash: Uint8Array, payload: Uint8Array): Buffer;
  encodeEntry(sequence: number, prevHash: Uint8Array, payload: Uint8Array): Buffer;
  /** Encodes payloads as consecutive entries starting at `firstSequence`, chained from `prevHash`. */
  encodeEntries(firstSequence: number, prevHash: Uint8Array, payloads: Payloads): EncodedBatch;
  decodeEntry(bytes: Uint8Array, offset: number): RawEntry;
  encodeHeader(header: HeaderInit): Buffer;
  decodeHeader(bytes: Uint8Array): HeaderFields;
  /** Seals an unsealed segment (header + raw entries): verifies it, fills the header, compresses, adds the trailer. */
  sealSegment(unsealed: Uint8Array, options?: SealOptions): Buffer;
  sealSegmentAsync(unsealed: Uint8Array, options?: SealOptions): Promise<Buffer>;
  decodeSegment(bytes: Uint8Array, options?: DecodeOptions): RawSegment;
  decodeSegmentAsync(bytes: Uint8Array, options?: DecodeOptions): Promise<RawSegment>;
  /** The whole object as one age v1 file (binary), off the JS thread. No key reaches an error message. */
  encryptSegment(bytes: Uint8Array, to: AgeRecipients): Promise<Buffer>;
  /**
   * The plaintext of an age v1 file: `not_encrypted` unless it starts with the age header,
   * `decryption_failed` when no identity opens it or it is truncated or altered.
   */
  decryptSegment(bytes: Uint8Array, using: AgeIdentities): Promise<Buffer>;
  /**
   * Native only: reads the file at `path` (at most the largest sealed segment), hashes it and
   * age-encrypts those very bytes, hashing the ciphertext as it is written, in one task off the JS
   * thread. The Uploader stages an encrypted upload with it and checks the file by its plaintext
   * SHA-256. No key reaches an error message.
   */
  encryptFileForUpload?(path: string, to: AgeRecipients): Promise<EncryptedFile>;
  /** Locks `dir` (OS advisory lock) and starts a writer from `start`. */
  openWriter(dir: string, start: WriterStart, options: WriterOptions): Promise<CoreWriter>;
}
