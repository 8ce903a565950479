/**
 * Access to the S3-compatible servers started by global-setup.ts (moto and versitygw): endpoints,
 * clients, fresh buckets, `s3Servers` for suites that run against each server
 * (`describe.each(s3Servers)`), and `s3Backends` for suites that run against each server through
 * each S3 backend (`describe.each(s3Backends)`).
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { inject } from 'vitest';
import { S3_SERVER_NAMES, type S3ServerName } from '../../scripts/s3-servers.js';
import { ObjectStoreStorage } from '../../ts/storage/object-store.js';
import { S3Storage } from '../../ts/storage/s3.js';
import type { SegmentStorage } from '../../ts/storage/types.js';
import { cores } from './cores.js';

/** moto accepts any credentials; versitygw is started with these as its root user. */
export const TEST_CREDENTIALS = { accessKeyId: 'graphstream-test', secretAccessKey: 'graphstream-test' };
export const TEST_REGION = 'us-east-1';

export interface S3TestServer {
  /** `moto` or `versitygw`, for test names */
  server: S3ServerName;
  endpoint(): string;
  createBucket(label?: string): Promise<string>;
}

/** Each S3-compatible server of the run, for `describe.each(s3Servers)('... ($server)', ...)`. */
export const s3Servers: S3TestServer[] = S3_SERVER_NAMES.map((server) => ({
  server,
  endpoint: () => s3Endpoint(server),
  createBucket: (label?: string) => createTestBucket(label, server),
}));

/** The endpoint of `server` (default moto). */
export function s3Endpoint(server: S3ServerName = 'moto'): string {
  return inject('s3Endpoints')[server];
}

export function testS3Client(endpoint: string = s3Endpoint()): S3Client {
  return new S3Client({ endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS, forcePathStyle: true });
}

/** Creates a bucket with a unique name on `server` (call once per test file, or per test for isolation). */
export async function createTestBucket(label = 'test', server: S3ServerName = 'moto'): Promise<string> {
  const name = `gs-${label}-${randomBytes(6).toString('hex')}`.toLowerCase().slice(0, 63);
  const client = testS3Client(s3Endpoint(server));
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    client.destroy();
  }
  return name;
}

export interface S3BackendOptions {
  /** another way to the same server, e.g. a fault proxy in front of it (default: the server itself) */
  endpoint?: string;
  /** attempts per request inside the client (default the backend's) */
  maxAttempts?: number;
}

/** One of the S3 backends on one server: `S3Storage on moto`, `ObjectStoreStorage on versitygw`, ... */
export interface S3TestBackend extends S3TestServer {
  /** e.g. `S3Storage on versitygw`, for test names */
  name: string;
  /** a storage over `bucket` (made by createBucket) of this server, through this backend */
  open(bucket: string, options?: S3BackendOptions): Promise<SegmentStorage>;
}

/** Every S3 backend (S3Storage via @aws-sdk/client-s3, the native ObjectStoreStorage) on every server. */
export const s3Backends: S3TestBackend[] = s3Servers.flatMap((server) => [
  {
    ...server,
    name: `S3Storage on ${server.server}`,
    open: async (bucket: string, options: S3BackendOptions = {}) =>
      new S3Storage({
        bucket,
        endpoint: options.endpoint ?? server.endpoint(),
        region: TEST_REGION,
        credentials: TEST_CREDENTIALS,
        forcePathStyle: true,
        ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      }),
  },
  {
    ...server,
    name: `ObjectStoreStorage on ${server.server}`,
    open: (bucket: string, options: S3BackendOptions = {}) =>
      ObjectStoreStorage.open(`s3://${bucket}`, {
        endpoint: options.endpoint ?? server.endpoint(),
        region: TEST_REGION,
        credentials: TEST_CREDENTIALS,
        forcePathStyle: true,
        ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      }),
  },
]);

/**
 * Every S3 backend on every server, each with one core, so that each core runs against both
 * servers and through both backends (native: S3Storage on moto, ObjectStoreStorage on versitygw;
 * pure: the other two): four runs of a suite instead of eight. The core decides decoding and
 * verification, the server and the backend the requests; no case depends on both at once.
 * `describe.each(s3BackendsAndCores)('...: $s3.name ($core.kind core)', ...)`.
 */
export const s3BackendsAndCores = s3Backends.map((s3, i) => ({ s3, core: cores[(i + Math.floor(i / 2)) % cores.length]! }));
