/**
 * vitest globalSetup: starts one real S3-compatible server (moto in server mode) on loopback for
 * the whole run and provides its endpoint to tests as `inject('s3Endpoint')`. It creates no
 * buckets; each test file makes its own (see ./s3.ts). Never skipped: without moto the run fails.
 */
import type { TestProject } from 'vitest/node';
import { startMotoServer } from '../../scripts/moto-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `http://127.0.0.1:<port>` of the moto S3 server */
    s3Endpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const moto = await startMotoServer();
  project.provide('s3Endpoint', moto.endpoint);
  process.env.GRAPHSTREAM_TEST_S3_ENDPOINT = moto.endpoint;
  return () => moto.stop();
}
