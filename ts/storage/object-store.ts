/**
 * Object storage through the native addon's `object_store` client (crate/src/store.rs): S3 and
 * S3-compatible servers, Google Cloud Storage, Azure Blob Storage, a local directory or memory,
 * with every request on the addon's runtime instead of the JavaScript thread.
 */
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import type { NativeCancel, NativeObjectStore, NativeStagedFile, NativeStored } from '../core/native.js';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { checkBody, checkPutConditions } from './bytes.js';
import { checkKey, checkListPrefix, objectName } from './names.js';
import { s3Identity, type S3Credentials } from './s3.js';
import type { GetOptions, ListOptions, ObjectHead, PutOptions, PutResult, SegmentStorage, StagedEncryptedFile, StagedFile, VersionedObject } from './types.js';
import { nativeRecipients, type AgeRecipients } from '../core/core.js';

export interface ObjectStoreStorageOptions {
  /** s3://: custom endpoint of an S3-compatible server */
  endpoint?: string;
  /** s3://: default us-east-1 (object_store's default) */
  region?: string;
  /** s3://: default AWS_* environment variables, then instance/web-identity credentials */
  credentials?: S3Credentials;
  /** s3://: bucket in the path instead of the host name */
  forcePathStyle?: boolean;
  /** allow plain http (default: true when the endpoint is http://) */
  allowHttp?: boolean;
  /** attempts per request inside the client (default 3) */
  maxAttempts?: number;
  /** largest object get() reads into memory (default 1 GiB) */
  maxObjectBytes?: number;
  /** raw `object_store` configuration keys, applied last (e.g. `google_service_account`) */
  options?: Record<string, string>;
}

function nativeOptions(url: string, options: ObjectStoreStorageOptions): Record<string, string> {
  const config: Record<string, string> = {};
  if (/^s3a?:/i.test(url)) {
    if (options.endpoint !== undefined) config.aws_endpoint = options.endpoint;
    if (options.region !== undefined) config.aws_region = options.region;
    if (options.credentials) {
      config.aws_access_key_id = options.credentials.accessKeyId;
      config.aws_secret_access_key = options.credentials.secretAccessKey;
      if (options.credentials.sessionToken) config.aws_session_token = options.credentials.sessionToken;
    }
    if (options.forcePathStyle !== undefined) {
      config.aws_virtual_hosted_style_request = String(!options.forcePathStyle);
    }
    // Conditional create through If-None-Match: * (S3, R2, MinIO, moto).
    config.aws_conditional_put = 'etag';
  }
  const allowHttp = options.allowHttp ?? options.endpoint?.startsWith('http://');
  if (allowHttp) config.allow_http = 'true';
  if (options.maxAttempts !== undefined) config.max_retries = String(Math.max(0, options.maxAttempts - 1));
  if (options.maxObjectBytes !== undefined) config.max_object_bytes = String(options.maxObjectBytes);
  return { ...config, ...options.options };
}

/** Turns a native error into a GraphstreamError; a storage failure's details (retryable, status) and a conflict's name the key too. */
function fromNative(err: unknown, key?: string): GraphstreamError {
  const normalized = toGraphstreamError(err);
  if (key === undefined) return normalized;
  if (normalized.code === 'conflict') return new GraphstreamError('conflict', normalized.message, { cause: normalized.cause, details: { key, retryable: false } });
  if (normalized.code !== 'storage' || normalized.details === undefined) return normalized;
  return new GraphstreamError(normalized.code, normalized.message, { cause: normalized.cause, details: { ...normalized.details, key } });
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A put through the addon. An aborted signal stops it wherever it is: before it is sent, or in
 * flight, where the addon drops the request (its connection closes) through a NativeCancel; it
 * then rejects with the signal's reason, as SegmentStorage.put says.
 */
async function putThrough(
  key: string,
  where: string,
  cancellation: () => NativeCancel,
  send: (createOnly: boolean, ifMatch: string | undefined, cancel: NativeCancel | undefined, metadata: Record<string, string> | undefined) => Promise<NativeStored>,
  options: PutOptions | undefined,
): Promise<PutResult> {
  checkKey(key, where);
  checkPutConditions(options, objectName(where, key));
  const signal = options?.signal;
  signal?.throwIfAborted();
  const cancel = signal === undefined ? undefined : cancellation();
  const onAbort = () => cancel!.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let stored: NativeStored;
  try {
    stored = await send(options?.ifNoneMatch === '*', options?.ifMatch, cancel, options?.metadata && { ...options.metadata });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw fromNative(err, key);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return { created: stored.created, ...(stored.etag ? { etag: stored.etag } : {}) };
}

/** SegmentStorage.identity of the store `url` opens: the one LocalStorage or S3Storage gives the same objects. */
function identityOf(url: string, endpoint: string | undefined): string {
  const parsed = new URL(url);
  switch (parsed.protocol) {
    case 's3:':
    case 's3a:':
      return s3Identity(parsed.hostname, decodeURIComponent(parsed.pathname).replace(/^\/+/, ''), endpoint);
    case 'file:':
      return `file://${fileURLToPath(parsed).replace(/(.)\/+$/, '$1')}`;
    case 'memory:':
      return `memory://#${randomUUID()}`;
    default:
      return url.replace(/\/+$/, '');
  }
}

export class ObjectStoreStorage implements SegmentStorage {
  readonly description: string;

  private constructor(
    private readonly store: NativeObjectStore,
    readonly identity: string,
  ) {
    this.description = store.description;
  }

  /** Opens `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, `file:///dir` or `memory://`. */
  static async open(url: string, options: ObjectStoreStorageOptions = {}): Promise<ObjectStoreStorage> {
    if (typeof url !== 'string') throw new GraphstreamError('invalid_argument', `ObjectStoreStorage.open: the URL must be a string, got ${typeof url}`);
    // imported here, not by the module: graphstream/pure loads the addon only for what needs it
    const { nativeCoreRequired, nativeStorage } = await import('../core/native.js');
    if (nativeStorage === null) throw nativeCoreRequired(`ObjectStoreStorage (${JSON.stringify(url)})`);
    try {
      return new ObjectStoreStorage(await nativeStorage.openNativeObjectStore(url, nativeOptions(url, options)), identityOf(url, options.endpoint));
    } catch (err) {
      throw fromNative(err);
    }
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    checkBody(bytes, objectName(this.description, key));
    return putThrough(key, this.description, () => this.store.cancellation(), (createOnly, ifMatch, cancel, metadata) => this.store.put(key, asBuffer(bytes), createOnly, ifMatch, cancel, metadata), options);
  }

  /** The file is read, hashed and later sent by the addon, off the JavaScript thread: its bytes never enter JavaScript. */
  async stageFile(path: string): Promise<StagedFile> {
    return this.staged(() => this.store.stageFile(path));
  }

  /** The file is read, hashed, encrypted and its ciphertext hashed and later sent by the addon, off the JavaScript thread. */
  async stageEncryptedFile(path: string, to: AgeRecipients): Promise<StagedEncryptedFile> {
    return this.staged(() => this.store.stageEncryptedFile(path, nativeRecipients(to)));
  }

  private async staged(stage: () => Promise<NativeStagedFile>): Promise<StagedEncryptedFile> {
    let staged: NativeStagedFile;
    try {
      staged = await stage();
    } catch (err) {
      throw fromNative(err);
    }
    return {
      size: staged.size,
      sha256: staged.sha256,
      plaintextSize: staged.plaintextSize,
      plaintextSha256: staged.plaintextSha256,
      put: (key, options) => putThrough(key, this.description, () => this.store.cancellation(), (createOnly, ifMatch, cancel, metadata) => staged.put(key, createOnly, ifMatch, cancel, metadata), options),
      release: () => staged.release(),
    };
  }

  async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    checkKey(key, this.description);
    const into = options?.into;
    let got: number | Buffer | null;
    try {
      got = await this.store.get(key, into === undefined ? undefined : Buffer.from(into.buffer, into.byteOffset, into.byteLength));
    } catch (err) {
      throw fromNative(err, key);
    }
    return typeof got === 'number' ? into!.subarray(0, got) : got;
  }

  async getWithETag(key: string): Promise<VersionedObject | null> {
    checkKey(key, this.description);
    let got;
    try {
      got = await this.store.getWithEtag(key);
    } catch (err) {
      throw fromNative(err, key);
    }
    if (got === null) return null;
    if (!got.etag) {
      throw new GraphstreamError('storage', `get ${objectName(this.description, key)}: the store gave no ETag`, { details: { key, retryable: false } });
    }
    return { bytes: got.bytes, etag: got.etag };
  }

  /** S3: a HEAD request (object_store gives the x-amz-meta-* headers lowercase, as HTTP/1.1 header names); file://: the sidecar LocalStorage also reads. */
  async head(key: string): Promise<ObjectHead | null> {
    checkKey(key, this.description);
    let got;
    try {
      got = await this.store.head(key);
    } catch (err) {
      throw fromNative(err, key);
    }
    if (got === null) return null;
    return { size: got.size, ...(got.etag ? { etag: got.etag } : {}), metadata: { ...got.metadata } };
  }

  async list(prefix: string, options?: ListOptions): Promise<string[]> {
    checkListPrefix(prefix, this.description);
    try {
      return await this.store.list(prefix, options?.startAfter);
    } catch (err) {
      throw fromNative(err, prefix);
    }
  }

  async delete(key: string): Promise<void> {
    checkKey(key, this.description);
    try {
      await this.store.delete(key);
    } catch (err) {
      throw fromNative(err, key);
    }
  }
}
