/**
 * The S3-compatible servers the tests and benchmarks run against, each started on a free loopback
 * port: moto (a Python mock of S3, in server mode) and versitygw (a production S3 gateway in Go,
 * serving a temporary directory through its posix backend). scripts/ensure-test-servers.mjs
 * installs both. Used by __test__/helpers/global-setup.ts and bench/lib/s3-server.ts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const S3_SERVER_NAMES = ['moto', 'versitygw'] as const;
export type S3ServerName = (typeof S3_SERVER_NAMES)[number];

export const MOTO_INSTALL = "python3 -m pip install 'moto[server]==5.2.1'";
export const VERSITYGW_MODULE = 'github.com/versity/versitygw/cmd/versitygw@v1.8.0';
/**
 * Where scripts/ensure-test-servers.mjs installs versitygw (GOBIN), under the repository npm runs
 * the tests and benchmarks in (the bench runs from a bundle elsewhere); VERSITYGW names another binary.
 */
export const VERSITYGW_BIN = process.env.VERSITYGW ?? resolve('.tools', 'bin', 'versitygw');
const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3Server {
  readonly name: S3ServerName;
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

function requireVersitygw(): void {
  if (!existsSync(VERSITYGW_BIN)) {
    throw new Error(`versitygw is not installed at ${VERSITYGW_BIN}.\nInstall it with: node scripts/ensure-test-servers.mjs (GOBIN=.tools/bin go install ${VERSITYGW_MODULE})`);
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

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Until the server answers HTTP at all: moto's root lists buckets, versitygw's refuses an unsigned request. */
async function waitUntilAnswering(name: S3ServerName, endpoint: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited during startup (code ${child.exitCode}, signal ${child.signalCode}):\n${output()}`);
    }
    try {
      const response = await fetch(endpoint, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${name} at ${endpoint} did not answer within ${STARTUP_TIMEOUT_MS} ms:\n${output()}`);
}

/** Whether the filesystem of `dir` refuses user extended attributes (asked through python3, which moto needs anyway). */
function xattrsMissing(dir: string): boolean {
  const probe = spawnSync('python3', ['-c', 'import os,sys; p=sys.argv[1]; os.setxattr(p, "user.graphstream-probe", b"1"); os.removexattr(p, "user.graphstream-probe")', dir], { encoding: 'utf8' });
  return probe.error === undefined && probe.status !== 0;
}

/**
 * Starts `name` on a free loopback port. moto accepts any credentials; versitygw accepts only
 * `credentials` (its root user). versitygw's data directory is removed when it stops.
 */
export async function startS3Server(name: S3ServerName, credentials: S3Credentials): Promise<S3Server> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess;
  let dataDir: string | undefined;
  let metaDir: string | undefined;
  if (name === 'moto') {
    requireMoto();
    child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    requireVersitygw();
    dataDir = mkdtempSync(join(tmpdir(), 'graphstream-versitygw-'));
    // The posix backend keeps object metadata (x-amz-meta-*, which the Uploader's encrypted
    // objects carry) in user extended attributes, and refuses to start where the filesystem has
    // none ("xattr check failed", e.g. an old tmpfs): metadata then goes to its sidecar directory.
    if (xattrsMissing(dataDir)) metaDir = mkdtempSync(join(tmpdir(), 'graphstream-versitygw-meta-'));
    const sidecar = metaDir === undefined ? [] : ['--sidecar', metaDir];
    child = spawn(VERSITYGW_BIN, ['--port', `127.0.0.1:${port}`, '--quiet', 'posix', ...sidecar, dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ROOT_ACCESS_KEY: credentials.accessKeyId, ROOT_SECRET_KEY: credentials.secretAccessKey },
    });
  }
  let output = '';
  const keepTail = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);
  const stopAndClean = async () => {
    await stop(child);
    for (const dir of [dataDir, metaDir]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilAnswering(name, endpoint, child, () => output);
  } catch (err) {
    await stopAndClean();
    throw err;
  }
  return { name, endpoint, process: child, stop: stopAndClean };
}
