/**
 * vitest globalSetup: starts one real S3-compatible server (moto in server mode) on loopback for
 * the whole run and provides its endpoint to tests as `inject('s3Endpoint')`. It creates no
 * buckets; each test file makes its own (see ./s3.ts). Never skipped: without moto the run fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { TestProject } from 'vitest/node';

const MOTO_INSTALL = "python3 -m pip install 'moto[server]==5.2.1'";
const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

declare module 'vitest' {
  export interface ProvidedContext {
    /** `http://127.0.0.1:<port>` of the moto S3 server */
    s3Endpoint: string;
  }
}

function requireMoto(): void {
  const check = spawnSync('python3', ['-c', 'import moto.server, moto; print(moto.__version__)'], {
    encoding: 'utf8',
  });
  if (check.error || check.status !== 0) {
    const why = check.error ? check.error.message : check.stderr.trim().split('\n').pop();
    throw new Error(
      `The test suite needs moto's S3 server (python3 -m moto.server), which is not available: ${why}.\n` +
        `Install it with: ${MOTO_INSTALL}`,
    );
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitUntilAnswering(endpoint: string, moto: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (moto.exitCode !== null || moto.signalCode !== null) {
      throw new Error(`moto server exited during startup (code ${moto.exitCode}, signal ${moto.signalCode}):\n${output()}`);
    }
    try {
      const response = await fetch(endpoint, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`moto server at ${endpoint} did not answer within ${STARTUP_TIMEOUT_MS} ms:\n${output()}`);
}

async function stop(moto: ChildProcess): Promise<void> {
  if (moto.exitCode !== null || moto.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => moto.once('exit', () => resolve()));
  moto.kill('SIGTERM');
  const timer = setTimeout(() => moto.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  requireMoto();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const moto = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keepTail = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4_000);
  };
  moto.stdout?.on('data', keepTail);
  moto.stderr?.on('data', keepTail);
  try {
    await waitUntilAnswering(endpoint, moto, () => output);
  } catch (err) {
    await stop(moto);
    throw err;
  }
  project.provide('s3Endpoint', endpoint);
  process.env.GRAPHSTREAM_TEST_S3_ENDPOINT = endpoint;
  return () => stop(moto);
}
