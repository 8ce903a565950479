import type { AgeRecipients } from '../core/core.js';

/** Object storage as graphstream uses it: whole objects, listed in key order. */
export interface PutOptions {
  /** `'*'`: create only; an existing object is left untouched (see SegmentStorage.put). */
  ifNoneMatch?: '*';
  /**
   * Replace only the object whose ETag is this one (as getWithETag or a put gave it): any other
   * object, or none, is a GraphstreamError `conflict` and nothing is written. Not with ifNoneMatch.
   */
  ifMatch?: string;
  /**
   * Gives the put up when aborted: it rejects with the signal's reason, and the object may or may
   * not have been stored (a request the server already received cannot be called back). Every
   * backend stops a request in flight: S3Storage through the SDK's abortSignal, ObjectStoreStorage
   * by dropping the native request (its connection closes); LocalStorage looks at it before it
   * links the object into place, MemoryStorage before it stores it.
   */
  signal?: AbortSignal;
  /**
   * User metadata stored with the object, atomically with it (S3 `x-amz-meta-*`): keys lowercase
   * `[a-z0-9-]` (S3 and HTTP fold header names to lowercase), values printable ASCII, at most
   * 2 KiB in all; anything else is `invalid_argument`. SegmentStorage.head reads it back. The
   * create-only comparison is of the bytes alone: an identical object with other metadata is
   * still `created: false`.
   */
  metadata?: ObjectMetadata;
  /**
   * The SHA-256 of `bytes` (lowercase hex), when the caller has it already: S3Storage signs the
   * request with it instead of hashing the body again on the JavaScript thread (S3 checks the
   * bytes it receives against it: a wrong one fails the put). Other backends ignore it.
   */
  sha256?: string;
}

/** User metadata of an object (PutOptions.metadata): lowercase keys, ASCII values. */
export type ObjectMetadata = Readonly<Record<string, string>>;

/** What SegmentStorage.head says of an object, without its bytes. */
export interface ObjectHead {
  /** bytes stored */
  size: number;
  /** its ETag, when the backend reports one */
  etag?: string;
  /** the metadata its put stored (empty when none); a reader must never trust it for the bytes */
  metadata: Record<string, string>;
}

export interface ListOptions {
  /** only keys strictly greater than this one */
  startAfter?: string;
}

export interface PutResult {
  /** false when ifNoneMatch found the identical bytes already stored (a no-op success) */
  created: boolean;
  /** the stored object's ETag, when the backend reports one (every built-in backend does) */
  etag?: string;
}

/** An object read together with its ETag (SegmentStorage.getWithETag). */
export interface VersionedObject {
  bytes: Uint8Array;
  /** opaque: pass it as PutOptions.ifMatch; it changes whenever the object's bytes change */
  etag: string;
}

/** A file read and hashed ahead of its upload (SegmentStorage.stageFile). */
export interface StagedFile {
  /** bytes read from the file */
  readonly size: number;
  /** SHA-256 of those bytes, lowercase hex */
  readonly sha256: string;
  /** Stores the bytes at `key` exactly as SegmentStorage.put would; may be called again (a retry). */
  put(key: string, options?: PutOptions): Promise<PutResult>;
  /** Frees the bytes; call it once no put() is in flight and none will follow. */
  release(): void;
}

/** A file read, hashed and age-encrypted ahead of its upload (SegmentStorage.stageEncryptedFile): `size` and `sha256` are of the ciphertext put() stores. */
export interface StagedEncryptedFile extends StagedFile {
  /** bytes read from the file */
  readonly plaintextSize: number;
  /** SHA-256 of the bytes read from the file, the very bytes that were encrypted; lowercase hex */
  readonly plaintextSha256: string;
}

export interface GetOptions {
  /**
   * A buffer the object may be read into, sparing an allocation per object: when the object fits,
   * the result is a view of the start of `into`. Until done with the result, the caller must not
   * use `into` otherwise. A backend may ignore it; the result then has memory of its own.
   */
  into?: Uint8Array;
}

export interface SegmentStorage {
  /** human-readable location (for messages), e.g. `s3://bucket/prefix` */
  readonly description: string;
  /**
   * What the objects are: the same string for every client of the same bucket and prefix, another
   * one for any other (e.g. `s3://bucket/prefix/?endpoint=http://127.0.0.1:9000`, `file:///abs/root`).
   * The Uploader keeps one manifest per identity, prefix, db and generation; a storage without an
   * identity is identified by its description.
   */
  readonly identity?: string;
  /**
   * Stores `bytes` at `key`. With `ifNoneMatch: '*'`, an existing object with identical bytes is a
   * no-op success (`created: false`) and one with different bytes is a GraphstreamError `conflict`;
   * the stored object is never overwritten.
   */
  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult>;
  /**
   * Optional: reads and hashes the file at `path`, keeping its bytes where this backend sends them
   * from (a reused buffer, native memory) instead of in a fresh JavaScript Buffer. The Uploader
   * stages the next segment while earlier puts are in flight; without stageFile it reads the file
   * itself and calls put().
   */
  stageFile?(path: string): Promise<StagedFile>;
  /**
   * Optional: stageFile for an encrypted upload: reads the file at `path`, hashes it and
   * age-encrypts it to `to`, keeping the ciphertext where this backend sends it from. The
   * Uploader checks the file against plaintextSha256; without this method it encrypts through its
   * core and calls put(). No key reaches an error message.
   */
  stageEncryptedFile?(path: string, to: AgeRecipients): Promise<StagedEncryptedFile>;
  /** The object's bytes, or null when there is no object at `key`. */
  get(key: string, options?: GetOptions): Promise<Uint8Array | null>;
  /**
   * Optional: the object and its ETag, or null when there is none. With put's `ifMatch`, this is
   * the compare-and-swap a Lease needs; a storage without it cannot hold a lease.
   */
  getWithETag?(key: string): Promise<VersionedObject | null>;
  /**
   * Optional: the object's size, ETag and metadata (PutOptions.metadata), or null when there is
   * none. Every built-in backend has it; the Uploader reads it to recognise its own earlier put of
   * an encrypted segment (age output differs each time), and without it cannot.
   */
  head?(key: string): Promise<ObjectHead | null>;
  /** All keys under `prefix` (every page), in ascending key order. */
  list(prefix: string, options?: ListOptions): Promise<string[]>;
  /** Deletes `key`; deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /** Releases connections and native resources. */
  close?(): Promise<void>;
}
