/** Real child processes for the crash suites: their stdout as lines, their exit, SIGKILL. */
import { spawn, type SpawnOptions } from 'node:child_process';

export interface Child {
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): void;
  /** sends `signal` to the child */
  signal(signal: NodeJS.Signals): void;
  stderr(): string;
  /** writes a line to the child's stdin (only when spawned with `stdin: true`) */
  send(line: string): void;
  /** closes the child's stdin */
  endInput(): void;
}

export function run(command: string, args: string[], options: { stdin?: boolean; env?: SpawnOptions['env'] } = {}): Child {
  const child = spawn(command, args, { stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: options.env });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    lines,
    exited,
    kill: () => child.kill('SIGKILL'),
    signal: (signal) => child.kill(signal),
    stderr: () => stderr,
    send: (line) => child.stdin!.write(`${line}\n`),
    endInput: () => child.stdin!.end(),
  };
}

export async function waitFor(child: Child, predicate: (lines: string[]) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate(child.lines)) {
    if (Date.now() > deadline) throw new Error(`child never printed ${what}; stderr:\n${child.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
