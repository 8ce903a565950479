/**
 * examples/kuzu-replica.ts runs as a user runs it (bundled, in its own process, with 'graphstream'
 * and 'graphstream/kuzu' resolving to this package) and its replica ends equal to its leader; run
 * again on the same directories, it continues both (the leader redoes nothing, the replica
 * resumes after what its database recorded).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bundleScripts } from './helpers/bundle.js';
import { ROOT } from './helpers/cli.js';

const BUILD_DIR = join(ROOT, '.vitest-tmp', `kuzu-examples-${process.pid}`);
let work: string;

beforeAll(async () => {
  await bundleScripts({ 'kuzu-replica': join(ROOT, 'examples', 'kuzu-replica.ts') }, BUILD_DIR, {
    'graphstream/kuzu': join(ROOT, 'ts/kuzu/index.ts'),
    graphstream: join(ROOT, 'ts/index.ts'),
  });
  work = await mkdtemp(join(tmpdir(), 'gs-kuzu-example-'));
});

afterAll(async () => {
  await rm(BUILD_DIR, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

function runExample(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(BUILD_DIR, 'kuzu-replica.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`kuzu-replica exited ${code}:\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>);
    });
  });
}

it('kuzu-replica: the replica holds what the leader holds, and a second run continues both', async () => {
  const first = await runExample([work, '40']);
  expect(first).toEqual({ sequence: 2 + 40 + 39, leader: { people: 40, knows: 39, visits: 40 }, replica: { people: 40, knows: 39, visits: 40 } });
  const second = await runExample([work, '40']);
  expect(second).toEqual({ sequence: 2 * (40 + 39) + 2, leader: { people: 40, knows: 78, visits: 80 }, replica: { people: 40, knows: 78, visits: 80 } });
});
