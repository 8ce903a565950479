/**
 * S3 and S3-compatible servers (MinIO, R2, Ceph, moto, ...) through @aws-sdk/client-s3.
 * Segments are created with `If-None-Match: *`, so a key is written once: a second writer finds
 * the first one's object and gets `created: false` (same bytes) or `conflict` (different bytes).
 */
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { GraphstreamError, type ErrorCode } from '../errors.js';
import { checkBody, checkPutConditions, preconditionFailed, sameBytes } from './bytes.js';
import { checkKey, checkListPrefix, checkPrefix, objectName } from './names.js';
import { ReadBuffers } from './read-buffers.js';
import type { GetOptions, ListOptions, ObjectHead, PutOptions, PutResult, SegmentStorage, StagedFile, VersionedObject } from './types.js';
import { RETRYABLE_ERRNO } from '../replication/retry.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3StorageOptions {
  bucket: string;
  /** prepended to every key, e.g. `wal/`; keys returned by list() do not include it */
  prefix?: string;
  /** custom endpoint for S3-compatible servers, e.g. `http://127.0.0.1:9000` */
  endpoint?: string;
  /** default: the SDK's resolution (AWS_REGION, profile), or `us-east-1` with a custom endpoint */
  region?: string;
  /** default: the standard AWS credential chain */
  credentials?: S3Credentials;
  /** `bucket` in the path instead of the host name (most S3-compatible servers need this) */
  forcePathStyle?: boolean;
  /** attempts per request inside the SDK (default 3); graphstream's Uploader retries on top */
  maxAttempts?: number;
  /** page size of ListObjectsV2 (default: the server's, 1000 on S3) */
  maxKeysPerPage?: number;
  /** largest object get() and stageFile() read into memory (default 1 GiB) */
  maxObjectBytes?: number;
  /** use this @aws-sdk/client-s3 S3Client instead of building one (close() then leaves it open) */
  client?: S3ClientLike;
}

const DEFAULT_MAX_OBJECT_BYTES = 1 << 30;
/** Read buffers kept for stageFile while no upload uses them. */
const MAX_IDLE_READ_BUFFER_BYTES = 32 * 1024 * 1024;
/** The SigV4 header that carries the payload's SHA-256; when set, the SDK signs it instead of hashing the body. */
const PAYLOAD_SHA256_HEADER = 'x-amz-content-sha256';

type S3Sdk = typeof import('@aws-sdk/client-s3');
const SDK_PACKAGE = '@aws-sdk/client-s3';
let sdkLoading: Promise<S3Sdk> | null = null;

/** Whether an import failed because the SDK is not installed, rather than an install of it being broken. */
function isSdkMissing(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && typeof message === 'string' && message.includes(`'${SDK_PACKAGE}'`);
}

/**
 * The SDK, imported on first use: it costs ~20 MiB and ~0.1 s, which only users of S3Storage pay.
 * It is an optional peer dependency: where it is not installed, the error says so.
 */
function loadSdk(): Promise<S3Sdk> {
  sdkLoading ??= import('@aws-sdk/client-s3').catch((err: unknown) => {
    sdkLoading = null;
    if (isSdkMissing(err)) {
      throw new GraphstreamError(
        'invalid_argument',
        `S3Storage needs ${SDK_PACKAGE}, an optional peer dependency of graphstream that is not installed: ` +
          `install it (npm install ${SDK_PACKAGE}), or use the native addon's client (ObjectStoreStorage, openStorage's backend 'object_store')`,
        { cause: err },
      );
    }
    throw new GraphstreamError('storage', `loading ${SDK_PACKAGE} failed: ${(err as Error).message}`, { cause: err });
  });
  return sdkLoading;
}

/** Whether the SDK can be imported (it is then loaded); false where it is not installed. */
export async function s3SdkInstalled(): Promise<boolean> {
  try {
    await loadSdk();
    return true;
  } catch (err) {
    if (isSdkMissing((err as Error).cause)) return false;
    throw err;
  }
}

/**
 * The part of @aws-sdk/client-s3's S3Client that S3Storage uses, declared here so that the
 * package's types do not need the optional SDK installed. An S3Client is one.
 */
export interface S3ClientLike {
  // any: the SDK's send is generic over its commands and their outputs
  send(command: any, options?: any): Promise<any>;
  destroy(): void;
}

const THROTTLING_ERRORS = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestTimeout',
]);
interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: { throttling?: boolean };
  $fault?: 'client' | 'server';
}

function statusOf(err: unknown): number | undefined {
  return (err as SdkError | undefined)?.$metadata?.httpStatusCode;
}

function isConditionalFailure(err: unknown): boolean {
  const status = statusOf(err);
  const name = (err as SdkError | undefined)?.name;
  return status === 412 || name === 'PreconditionFailed' || (status === 409 && name === 'ConditionalRequestConflict');
}

function isNoSuchKey(err: unknown): boolean {
  const name = (err as SdkError | undefined)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(err) === 404;
}

/** Whether repeating the request may succeed: 5xx, 429, throttling, timeouts, broken connections. */
export function isRetryableS3Error(err: unknown): boolean {
  const sdk = err as SdkError | undefined;
  const status = statusOf(err);
  if (sdk?.$retryable?.throttling || THROTTLING_ERRORS.has(sdk?.name ?? '')) return true;
  if (status !== undefined) return status >= 500 || status === 429 || status === 408;
  if (RETRYABLE_ERRNO.has(sdk?.code ?? '') || sdk?.name === 'TimeoutError') return true;
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  return cause !== undefined && cause !== err && isRetryableS3Error(cause);
}

function describeSdkError(err: unknown): string {
  const sdk = err as SdkError | undefined;
  if (!(err instanceof Error)) return String(err);
  const parts = [sdk?.name && sdk.name !== 'Error' ? `${sdk.name}: ${err.message}` : err.message];
  if (sdk?.code && !err.message.includes(sdk.code)) parts.push(`(${sdk.code})`);
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error && !err.message.includes(cause.message)) parts.push(`caused by ${cause.message}`);
  return parts.join(' ');
}

/** SegmentStorage.identity of an S3 bucket and prefix, whichever client reaches it. */
export function s3Identity(bucket: string, prefix: string, endpoint: string | undefined): string {
  const path = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  return `s3://${bucket}/${path}${endpoint === undefined ? '' : `?endpoint=${endpoint.replace(/\/+$/, '')}`}`;
}

export class S3Storage implements SegmentStorage {
  readonly description: string;
  readonly identity: string;
  readonly bucket: string;
  readonly prefix: string;
  /** the client given in the options, or the one built from `config` on first use */
  private client: S3Client | null = null;
  private readonly config: S3ClientConfig;
  private readonly ownsClient: boolean;
  private readonly maxKeysPerPage: number | undefined;
  private readonly maxObjectBytes: number;
  private readonly readBuffers = new ReadBuffers(MAX_IDLE_READ_BUFFER_BYTES);

  constructor(options: S3StorageOptions) {
    if (!options.bucket) {
      throw new GraphstreamError('invalid_argument', 'S3Storage needs a bucket name');
    }
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? '';
    checkPrefix(this.prefix, 'S3Storage');
    this.description = `s3://${this.bucket}/${this.prefix}`;
    this.identity = s3Identity(this.bucket, this.prefix, options.endpoint);
    this.maxKeysPerPage = options.maxKeysPerPage;
    this.maxObjectBytes = options.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES;
    this.ownsClient = options.client === undefined;
    if (options.client) this.client = options.client as S3Client;
    const config: S3ClientConfig = {
      forcePathStyle: options.forcePathStyle ?? false,
      maxAttempts: options.maxAttempts ?? 3,
    };
    if (options.endpoint !== undefined) {
      config.endpoint = options.endpoint;
      config.region = options.region ?? 'us-east-1';
      // S3-compatible servers often lack the newer default flexible checksums.
      config.requestChecksumCalculation = 'WHEN_REQUIRED';
      config.responseChecksumValidation = 'WHEN_REQUIRED';
    } else if (options.region !== undefined) {
      config.region = options.region;
    }
    if (options.credentials) config.credentials = options.credentials;
    this.config = config;
  }

  /** The SDK and the client, both created on first use. */
  private async sdk(): Promise<{ sdk: S3Sdk; client: S3Client }> {
    const sdk = await loadSdk();
    this.client ??= new sdk.S3Client(this.config);
    return { sdk, client: this.client };
  }

  private failure(op: string, key: string, err: unknown, code: ErrorCode = 'storage'): GraphstreamError {
    if (err instanceof GraphstreamError) return err;
    const status = statusOf(err);
    const retryable = isRetryableS3Error(err);
    const statusText = status === undefined ? '' : `HTTP ${status}, `;
    return new GraphstreamError(
      (err as SdkError | undefined)?.name === 'NoSuchBucket' ? 'not_found' : code,
      `${op} ${objectName(this.description, key)} failed: ${describeSdkError(err)} (${statusText}${retryable ? 'retryable' : 'not retryable'})`,
      { cause: err, details: { key, retryable, ...(status === undefined ? {} : { status }) } },
    );
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    const sha256 = options?.sha256;
    return this.putBytes(key, bytes, options, typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : undefined);
  }

  /**
   * Reads the file into a reused buffer (no fresh allocation per file for the GC to collect) and
   * hashes it off the JavaScript thread; each put signs the request with that hash, so the SDK
   * does not hash the body again and S3 checks the bytes it stores against it. The SDK is done
   * with a body once send() settles (answered, or its request destroyed): the buffer can be
   * reused after release().
   */
  async stageFile(path: string): Promise<StagedFile> {
    const file = await this.readBuffers.read(path, this.maxObjectBytes);
    let released = false;
    return {
      size: file.bytes.byteLength,
      sha256: file.sha256,
      put: async (key, options) => {
        if (released) throw new GraphstreamError('closed', `put ${objectName(this.description, key)}: the staged file ${path} was released`);
        return this.putBytes(key, file.bytes, options, file.sha256);
      },
      release: () => {
        released = true;
        file.release();
      },
    };
  }

  private async putBytes(key: string, bytes: Uint8Array, options?: PutOptions, sha256?: string): Promise<PutResult> {
    checkKey(key, this.description);
    checkBody(bytes, objectName(this.description, key));
    checkPutConditions(options, objectName(this.description, key));
    const createOnly = options?.ifNoneMatch === '*';
    const ifMatch = options?.ifMatch;
    options?.signal?.throwIfAborted();
    try {
      const { sdk, client } = await this.sdk();
      const command = new sdk.PutObjectCommand({
        Bucket: this.bucket,
        Key: this.prefix + key,
        Body: bytes,
        ContentLength: bytes.byteLength,
        ...(createOnly ? { IfNoneMatch: '*' } : {}),
        ...(ifMatch !== undefined ? { IfMatch: ifMatch } : {}),
        ...(options?.metadata !== undefined ? { Metadata: { ...options.metadata } } : {}),
      });
      if (sha256 !== undefined) {
        command.middlewareStack.add(
          (next) => (args) => {
            const request = args.request as { headers?: Record<string, string> };
            if (request.headers) request.headers[PAYLOAD_SHA256_HEADER] = sha256;
            return next(args);
          },
          { step: 'build', name: 'graphstreamPayloadSha256' },
        );
      }
      const response = await client.send(command, options?.signal ? { abortSignal: options.signal } : undefined);
      return { created: true, ...(response.ETag ? { etag: response.ETag } : {}) };
    } catch (err) {
      if (options?.signal?.aborted) throw options.signal.reason;
      if (ifMatch !== undefined && (isConditionalFailure(err) || isNoSuchKey(err))) {
        throw preconditionFailed(key, objectName(this.description, key), ifMatch, isNoSuchKey(err) ? null : undefined, statusOf(err));
      }
      if (!createOnly || !isConditionalFailure(err)) throw this.failure('put', key, err);
    }
    const existing = await this.getWithETag(key);
    if (existing === null) {
      // 409 ConditionalRequestConflict: another conditional write to the key is in flight.
      throw new GraphstreamError(
        'storage',
        `put ${objectName(this.description, key)}: a concurrent write to the key is in progress (retryable)`,
        { details: { key, retryable: true, status: 409 } },
      );
    }
    if (sameBytes(existing.bytes, bytes)) return { created: false, etag: existing.etag };
    throw new GraphstreamError(
      'conflict',
      `${objectName(this.description, key)} already holds different bytes (another writer created it); not overwritten`,
      { details: { key, retryable: false, status: 412 } },
    );
  }

  async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    return (await this.fetch(key, options?.into))?.bytes ?? null;
  }

  async getWithETag(key: string): Promise<VersionedObject | null> {
    const fetched = await this.fetch(key, undefined);
    if (fetched === null) return null;
    if (fetched.etag === undefined) {
      throw new GraphstreamError('storage', `get ${objectName(this.description, key)}: the server sent no ETag`, { details: { key, retryable: false } });
    }
    return { bytes: fetched.bytes, etag: fetched.etag };
  }

  /** HeadObject: the SDK gives the metadata keys as the server sent the headers (lowercase, as S3 stores them). */
  async head(key: string): Promise<ObjectHead | null> {
    checkKey(key, this.description);
    let response;
    try {
      const { sdk, client } = await this.sdk();
      response = await client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (err) {
      if (isNoSuchKey(err)) return null;
      throw this.failure('head', key, err);
    }
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries((response.Metadata ?? {}) as Record<string, string>)) metadata[name.toLowerCase()] = value;
    return { size: response.ContentLength ?? 0, ...(response.ETag ? { etag: response.ETag } : {}), metadata };
  }

  private async fetch(key: string, into: Uint8Array | undefined): Promise<{ bytes: Uint8Array; etag: string | undefined } | null> {
    checkKey(key, this.description);
    let response;
    try {
      const { sdk, client } = await this.sdk();
      response = await client.send(new sdk.GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (err) {
      if (isNoSuchKey(err)) return null;
      throw this.failure('get', key, err);
    }
    const body = response.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    const length = response.ContentLength;
    if (length !== undefined && length > this.maxObjectBytes) {
      body?.destroy?.();
      throw this.tooLarge(key, `is ${length} bytes, more`);
    }
    const etag = response.ETag;
    if (body === undefined) return { bytes: new Uint8Array(0), etag };
    try {
      return { bytes: await this.readBody(key, body, length, into), etag };
    } catch (err) {
      throw this.failure('get', key, err);
    }
  }

  /**
   * An object's body, copied chunk by chunk into one buffer of its Content-Length (`into` when it
   * fits) as the chunks arrive: no chunk outlives its arrival (collecting them all first, as
   * transformToByteArray does, ages 1 MiB of chunks per object into the old generation). Without
   * a Content-Length the chunks are collected, up to maxObjectBytes.
   */
  private async readBody(key: string, body: AsyncIterable<Uint8Array>, length: number | undefined, into: Uint8Array | undefined): Promise<Uint8Array> {
    if (length === undefined) {
      const chunks: Uint8Array[] = [];
      let total = 0;
      for await (const chunk of body) {
        total += chunk.byteLength;
        if (total > this.maxObjectBytes) throw this.tooLarge(key, 'has no Content-Length, and its body runs to more');
        chunks.push(chunk);
      }
      return Buffer.concat(chunks, total);
    }
    const bytes = into !== undefined && into.length >= length ? into : Buffer.allocUnsafeSlow(length);
    let received = 0;
    for await (const chunk of body) {
      if (received + chunk.byteLength > length) throw this.brokenBody(key, `more than the ${length} bytes of its Content-Length`);
      bytes.set(chunk, received);
      received += chunk.byteLength;
    }
    if (received !== length) throw this.brokenBody(key, `${received} of the ${length} bytes of its Content-Length`);
    return bytes.subarray(0, length);
  }

  private tooLarge(key: string, size: string): GraphstreamError {
    return new GraphstreamError('too_large', `${objectName(this.description, key)} ${size} than the ${this.maxObjectBytes} bytes allowed (maxObjectBytes)`, {
      details: { key, retryable: false },
    });
  }

  /** A body that ended before, or ran past, its Content-Length: a broken transfer, worth repeating. */
  private brokenBody(key: string, carried: string): GraphstreamError {
    return new GraphstreamError('storage', `get ${objectName(this.description, key)} failed: the response body carried ${carried} (retryable)`, {
      details: { key, retryable: true },
    });
  }

  async list(prefix: string, options?: ListOptions): Promise<string[]> {
    checkListPrefix(prefix, this.description);
    const keys: string[] = [];
    let continuationToken: string | undefined;
    try {
      const { sdk, client } = await this.sdk();
      do {
        const page = await client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ...(continuationToken !== undefined
              ? { ContinuationToken: continuationToken }
              : options?.startAfter !== undefined
                ? { StartAfter: this.prefix + options.startAfter }
                : {}),
            ...(this.maxKeysPerPage !== undefined ? { MaxKeys: this.maxKeysPerPage } : {}),
          }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key !== undefined) keys.push(object.Key.slice(this.prefix.length));
        }
        continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
        if (page.IsTruncated && continuationToken === undefined) {
          throw new GraphstreamError(
            'storage',
            `list ${objectName(this.description, prefix)}: the server reported more keys but gave no continuation token`,
            { details: { key: prefix, retryable: false } },
          );
        }
      } while (continuationToken !== undefined);
    } catch (err) {
      throw this.failure('list', prefix, err);
    }
    return keys;
  }

  async delete(key: string): Promise<void> {
    checkKey(key, this.description);
    try {
      const { sdk, client } = await this.sdk();
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (err) {
      if (isNoSuchKey(err)) return;
      throw this.failure('delete', key, err);
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client?.destroy();
  }
}
