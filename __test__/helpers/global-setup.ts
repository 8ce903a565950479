/**
 * vitest globalSetup: starts the real S3-compatible servers (moto and versitygw, see
 * scripts/s3-servers.ts) on loopback for the whole run, side by side, and provides their endpoints
 * to tests as `inject('s3Endpoints')`. It creates no buckets; each test file makes its own (see
 * ./s3.ts). Never skipped: without either server the run fails. Each server is stopped by its PID
 * when the run ends.
 */
import type { TestProject } from 'vitest/node';
import { S3_SERVER_NAMES, startS3Server, type S3Server, type S3ServerName } from '../../scripts/s3-servers.js';
import { TEST_CREDENTIALS } from './s3.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `http://127.0.0.1:<port>` of each S3 server */
    s3Endpoints: Record<S3ServerName, string>;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = await Promise.allSettled(S3_SERVER_NAMES.map((name) => startS3Server(name, TEST_CREDENTIALS)));
  const servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const stopAll = () => Promise.all(servers.map((server) => server.stop())).then(() => undefined);
  const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined) {
    await stopAll();
    throw failed.reason;
  }
  const endpoints = Object.fromEntries(servers.map((server: S3Server) => [server.name, server.endpoint])) as Record<S3ServerName, string>;
  project.provide('s3Endpoints', endpoints);
  return stopAll;
}
