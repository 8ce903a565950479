/**
 * The S3-compatible server the tests and benchmarks run against: moto in server mode on a free
 * loopback port. Used by __test__/helpers/global-setup.ts and bench/lib/moto.ts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export const MOTO_INSTALL = "python3 -m pip install 'moto[server]==5.2.1'";
const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

export interface MotoServer {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

function requireMoto(): void {
  const check = spawnSync('python3', ['-c', 'import moto.server, moto; print(moto.__version__)'], { encoding: 'utf8' });
  if (check.error || check.status !== 0) {
    const why = check.error ? check.error.message : check.stderr.trim().split('\n').pop();
    throw new Error(`moto's S3 server (python3 -m moto.server) is not available: ${why}.\nInstall it with: ${MOTO_INSTALL}`);
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

async function stop(moto: ChildProcess): Promise<void> {
  if (moto.exitCode !== null || moto.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => moto.once('exit', () => resolve()));
  moto.kill('SIGTERM');
  const timer = setTimeout(() => moto.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
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

export async function startMotoServer(): Promise<MotoServer> {
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
  return { endpoint, process: moto, stop: () => stop(moto) };
}
