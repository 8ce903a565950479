/**
 * `openStorage(url)`: the storage backend a URL names.
 *   s3://bucket/prefix   → S3Storage (or the native ObjectStoreStorage with backend 'object_store',
 *                          and by default where the optional @aws-sdk/client-s3 is not installed)
 *   gs://, az://         → ObjectStoreStorage
 *   file:///dir, a path  → LocalStorage (or ObjectStoreStorage file:// with backend 'object_store')
 *   memory://            → MemoryStorage (or ObjectStoreStorage memory://)
 * Endpoint, region and credentials come from the options, else from the standard AWS environment
 * variables (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION,
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else from the SDK's chain.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphstreamError } from '../errors.js';
import { LocalStorage } from './local.js';
import { MemoryStorage } from './memory.js';
import { ObjectStoreStorage } from './object-store.js';
import { S3Storage, s3SdkInstalled, type S3Credentials } from './s3.js';
import type { SegmentStorage } from './types.js';

export type { GetOptions, ListOptions, ObjectHead, ObjectMetadata, PutOptions, PutResult, SegmentStorage, StagedFile, VersionedObject } from './types.js';
export { LocalStorage } from './local.js';
export { MemoryStorage } from './memory.js';
export { ObjectStoreStorage, type ObjectStoreStorageOptions } from './object-store.js';
export { S3Storage, isRetryableS3Error, type S3ClientLike, type S3Credentials, type S3StorageOptions } from './s3.js';

export interface OpenStorageOptions {
  /**
   * which client serves s3://, file:// and memory:// URLs (default 'sdk': S3Storage / LocalStorage /
   * MemoryStorage; for s3://, the native client where @aws-sdk/client-s3 is not installed)
   */
  backend?: 'sdk' | 'object_store';
  endpoint?: string;
  region?: string;
  credentials?: S3Credentials;
  /** default: true when an endpoint is set (S3-compatible servers), else false */
  forcePathStyle?: boolean;
  /** attempts per request inside the client (default 3) */
  maxAttempts?: number;
  /** extra `object_store` configuration keys for the native backend (e.g. `google_service_account`) */
  objectStoreOptions?: Record<string, string>;
  /** where to read AWS_* variables from (default process.env) */
  env?: Record<string, string | undefined>;
}

function invalidUrl(url: string, why: string): GraphstreamError {
  return new GraphstreamError('invalid_argument', `invalid storage URL ${JSON.stringify(url)}: ${why}`);
}

function awsSettings(options: OpenStorageOptions) {
  const env = options.env ?? process.env;
  const endpoint = options.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  let credentials = options.credentials;
  if (credentials === undefined && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  const forcePathStyle = options.forcePathStyle ?? endpoint !== undefined;
  return { endpoint, region, credentials, forcePathStyle };
}

/**
 * Whether s3:// without a backend named goes to the native client: the AWS SDK is an optional peer
 * dependency, and where it is not installed the addon speaks S3 too (if it loads).
 */
async function nativeServesS3(): Promise<boolean> {
  if (await s3SdkInstalled()) return false;
  // imported here, not by the module: graphstream/pure loads the addon only for what needs it
  const { nativeStorage } = await import('../core/native.js');
  return nativeStorage !== null;
}

/** Opens the storage `url` names. Bad URLs are GraphstreamError `invalid_argument`. */
export async function openStorage(url: string, options: OpenStorageOptions = {}): Promise<SegmentStorage> {
  const native = options.backend === 'object_store';
  if (options.backend !== undefined && options.backend !== 'sdk' && !native) {
    throw new GraphstreamError('invalid_argument', `unknown storage backend ${JSON.stringify(options.backend)}`);
  }
  if (typeof url !== 'string' || url.trim() === '') throw invalidUrl(String(url), 'empty');
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]+):/.exec(url)?.[1]?.toLowerCase();

  // No scheme (or a Windows drive letter): a local directory.
  if (scheme === undefined) {
    const dir = resolve(url);
    return native ? ObjectStoreStorage.open(new URL(`file://${dir}`).href) : new LocalStorage(dir);
  }

  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidUrl(url, 'not a URL');
  }
  switch (scheme) {
    case 'file': {
      if (parsed.host !== '' && parsed.host !== 'localhost') throw invalidUrl(url, 'file URLs must name a local path (file:///dir)');
      const dir = fileURLToPath(parsed);
      if (!isAbsolute(dir)) throw invalidUrl(url, 'not an absolute path');
      return native ? ObjectStoreStorage.open(url) : new LocalStorage(dir);
    }
    case 'memory':
      return native ? ObjectStoreStorage.open('memory://') : new MemoryStorage();
    case 's3':
    case 's3a': {
      if (!parsed.hostname) throw invalidUrl(url, 'no bucket name');
      const aws = awsSettings(options);
      if (native || (options.backend === undefined && (await nativeServesS3()))) {
        return ObjectStoreStorage.open(url, {
          ...aws,
          ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
          ...(options.objectStoreOptions ? { options: options.objectStoreOptions } : {}),
        });
      }
      const path = decodeURIComponent(parsed.pathname).replace(/^\/+/, '');
      return new S3Storage({
        bucket: parsed.hostname,
        prefix: path === '' || path.endsWith('/') ? path : `${path}/`,
        forcePathStyle: aws.forcePathStyle,
        ...(aws.endpoint !== undefined ? { endpoint: aws.endpoint } : {}),
        ...(aws.region !== undefined ? { region: aws.region } : {}),
        ...(aws.credentials !== undefined ? { credentials: aws.credentials } : {}),
        ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      });
    }
    case 'gs':
    case 'az':
    case 'azure':
      if (!parsed.hostname) throw invalidUrl(url, 'no bucket or container name');
      return ObjectStoreStorage.open(url, {
        ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
        ...(options.objectStoreOptions ? { options: options.objectStoreOptions } : {}),
      });
    default:
      throw invalidUrl(url, `unsupported scheme "${scheme}:" (expected s3, gs, az, file or memory, or a directory path)`);
  }
}
