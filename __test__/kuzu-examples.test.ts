/**
 * `graphstream demo --kuzu` replicates a Kuzu database through a promotion and checks a follower
 * equals the promoted leader. examples/kuzu-replica.ts runs as a user runs it (bundled, in its own process, with 'graphstream'
 * and 'graphstream/kuzu' resolving to this package) and its replica ends equal to its leader; run
 * again on the same directories, it continues both (the leader redoes nothing, the replica
 * resumes after what its database recorded).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleScripts } from './helpers/bundle.js';
import { ROOT, buildCli, removeCliBuild, runCli } from './helpers/cli.js';

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

describe('graphstream demo --kuzu', () => {
  beforeAll(buildCli);
  afterAll(removeCliBuild);

  it('journals, replays, promotes and follows a Kuzu database, and the follower equals the promoted leader', async () => {
    const result = await runCli(['demo', '--kuzu', '--entries', '200', '--dir', join(work, 'demo')]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/promoted: +generation 1 from sequence 163;/);
    expect(result.stdout).toMatch(/OK: the follower's database equals the promoted leader's, \d+ rows, sequence 202, chain hash [0-9a-f]{64}/);
  });
});
