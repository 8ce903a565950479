/**
 * Runs the real `graphstream` CLI as a user would: ts/cli/main.ts bundled once per test file with
 * esbuild (the bundler tsup uses, same target and externals) into a private directory, then spawned
 * with node. A private bundle keeps the suite independent of dist/, which `npm run build` cleans.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleScripts } from './bundle.js';

export const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const BUILD_DIR = join(ROOT, '.vitest-tmp', `cli-${process.pid}`);
const CLI_SCRIPT = join(BUILD_DIR, 'graphstream.mjs');
const WRITER_SCRIPT = join(BUILD_DIR, 'cli-writer.mjs');

/** Bundles the CLI and the test's journal writer (call in beforeAll). */
export async function buildCli(): Promise<void> {
  await bundleScripts(
    { graphstream: join(ROOT, 'ts/cli/main.ts'), 'cli-writer': join(ROOT, '__test__/helpers/cli-writer.ts') },
    BUILD_DIR,
  );
}

export async function removeCliBuild(): Promise<void> {
  await rm(BUILD_DIR, { recursive: true, force: true });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/** A running process: its output so far, and a way to wait for a line. */
export class RunningProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<CliResult>;
  private readonly child;
  private listeners: (() => void)[] = [];

  constructor(script: string, args: readonly string[], options: RunOptions = {}) {
    this.child = spawn(process.execPath, [script, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.on('data', (chunk: Buffer) => {
      this.stdout += chunk.toString('utf8');
      for (const listener of this.listeners) listener();
    });
    this.child.stderr.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
    });
    this.exited = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('close', (code, signal) => {
        for (const listener of this.listeners) listener();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves with the first match of `pattern` in stdout; rejects if the process exits first. */
  waitFor(pattern: RegExp, predicate: (match: RegExpMatchArray[]) => boolean = (matches) => matches.length > 0): Promise<RegExpMatchArray[]> {
    const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
    return new Promise((resolve, reject) => {
      const check = () => {
        const matches = [...this.stdout.matchAll(global)];
        if (predicate(matches)) {
          this.listeners = this.listeners.filter((listener) => listener !== check);
          resolve(matches);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          this.listeners = this.listeners.filter((listener) => listener !== check);
          reject(new Error(`process exited (${this.child.exitCode ?? this.child.signalCode}) before ${pattern}:\n${this.stdout}\n${this.stderr}`));
        }
      };
      this.listeners.push(check);
      check();
    });
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  closeInput(): void {
    this.child.stdin.end();
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

/** Starts `graphstream <args>` and returns at once. */
export function startCli(args: readonly string[], options?: RunOptions): RunningProcess {
  return new RunningProcess(CLI_SCRIPT, args, options);
}

/** Runs `graphstream <args>` to completion. */
export function runCli(args: readonly string[], options?: RunOptions): Promise<CliResult> {
  const running = startCli(args, options);
  running.closeInput();
  return running.exited;
}

/** Runs `graphstream <args> | <shellPipe>` in bash: stdout is the pipe's, `code` the CLI's own exit code. */
export function runCliPiped(args: readonly string[], shellPipe: string): Promise<CliResult> {
  const child = spawn('bash', ['-c', `"$0" "$@" | ${shellPipe}; exit "\${PIPESTATUS[0]}"`, process.execPath, CLI_SCRIPT, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Starts the journal writer of __test__/helpers/cli-writer.ts on `dir`. */
export function startWriter(dir: string, maxSegmentBytes: number): RunningProcess {
  return new RunningProcess(WRITER_SCRIPT, [dir, String(maxSegmentBytes)]);
}
