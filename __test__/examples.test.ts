/**
 * The examples in examples/ run as a user runs them (bundled, in their own processes, with
 * 'graphstream' resolving to this package) and do what they say: the append example's journal
 * arrives whole at the follower example's replica, and so does a journal shipped by the sidecar
 * example, which drains and exits cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Journal, ParamValue } from '../ts/index.js';
import { bundleScripts } from './helpers/bundle.js';
import { run, waitFor } from './helpers/child-process.js';
import { ROOT } from './helpers/cli.js';

const BUILD_DIR = join(ROOT, '.vitest-tmp', `examples-${process.pid}`);
let work: string;

beforeAll(async () => {
  await bundleScripts(
    Object.fromEntries(['append-and-ship', 'follower-replay', 'sidecar'].map((name) => [name, join(ROOT, 'examples', `${name}.ts`)])),
    BUILD_DIR,
    { graphstream: join(ROOT, 'ts/index.ts') },
  );
  work = await mkdtemp(join(tmpdir(), 'gs-examples-'));
});

afterAll(async () => {
  await rm(BUILD_DIR, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

/** Runs an example to completion and parses the JSON summary it prints last. */
function runExample(name: string, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(BUILD_DIR, `${name}.mjs`), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${name} exited ${code}:\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>);
    });
  });
}

describe('examples', () => {
  it('append-and-ship ships a journal that follower-replay rebuilds entry for entry', async () => {
    const store = join(work, 'store');
    const shipped = await runExample('append-and-ship', [join(work, 'journal'), store, '300']);
    expect(shipped).toMatchObject({ appended: 300, sequence: 300 });
    expect(shipped.uploaded).toBeGreaterThanOrEqual(1);

    const replayed = await runExample('follower-replay', [store, join(work, 'replica'), '1500']);
    expect(replayed).toEqual({ people: 300, sequence: 300, chainHash: shipped.chainHash });
  });

  it('sidecar ships what another process sealed, drains on SIGTERM, exits 0, and the replica is whole', async () => {
    const journalDir = join(work, 'sidecar-journal');
    const store = join(work, 'sidecar-store');
    const journal = await Journal.open(journalDir, { maxSegmentBytes: 8 * 1024 });
    for (let id = 1; id <= 200; id++) {
      const params = { id, name: `p${id}`, born: ParamValue.date('1990-01-01') };
      await journal.append({ query: 'CREATE (:Person {id: $id, name: $name, born: $born})', params });
    }
    const chainHash = journal.chainHash.toString('hex');
    await journal.close(); // seals every segment
    const sealed = (await readdir(journalDir)).filter((name) => name.endsWith('.hadbj')).length;
    expect(sealed).toBeGreaterThan(1);

    const sidecar = run(process.execPath, [join(BUILD_DIR, 'sidecar.mjs'), journalDir, store]);
    await waitFor(sidecar, (lines) => lines.filter((line) => line.startsWith('uploaded ')).length === sealed, `${sealed} uploads`);
    sidecar.signal('SIGTERM');
    expect(await sidecar.exited).toEqual({ code: 0, signal: null });
    expect(JSON.parse(sidecar.lines.at(-1)!)).toMatchObject({ succeeded: sealed, failed: 0 });

    const replayed = await runExample('follower-replay', [store, join(work, 'sidecar-replica'), '1500']);
    expect(replayed).toEqual({ people: 200, sequence: 200, chainHash });
  });
});
