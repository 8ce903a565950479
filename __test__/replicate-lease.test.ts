/**
 * `graphstream replicate` in its flag form under a lease (--lease, --lease-holder, --lease-ttl,
 * --lease-no-wait, or GRAPHSTREAM_LEASE_* from the environment), as the config file's `lease:`:
 * the real CLI, bundled and spawned, on a LocalStorage store.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Journal } from '../ts/journal/journal.js';
import { parseGenerationRecord, parseLeaseRecord } from '../ts/replication/ownership.js';
import { buildCli, removeCliBuild, runCli, startCli } from './helpers/cli.js';
import { entryFor } from './helpers/replication.js';

const dirs: string[] = [];

beforeAll(buildCli, 120_000);
afterAll(async () => {
  await removeCliBuild();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'graphstream-replicate-lease-'));
  dirs.push(dir);
  return dir;
}

/** A journal directory holding sealed segments of 60 entries. */
async function journalDir(): Promise<string> {
  const dir = await tempDir();
  const journal = await Journal.open(dir, { maxSegmentBytes: 2048, durability: 'none' });
  for (let k = 1; k <= 60; k++) await journal.append(entryFor(k));
  await journal.sealForUpload();
  await journal.close();
  return dir;
}

describe('graphstream replicate --lease', () => {
  it('ships under the lease it takes; a second writer with the flags from the environment is fenced at once; --config refuses them', async () => {
    const store = await tempDir();
    const leader = startCli(['replicate', await journalDir(), `file://${store}`, '--db', 'graph', '--lease-holder', 'leader-a', '--lease-ttl', '4000', '--interval', '50']);
    try {
      await leader.waitFor(/holding the lease as leader-a \(epoch 1, generation 0\)/);
      await leader.waitFor(/^uploaded journal-/m);
      expect(parseLeaseRecord(await readFile(join(store, 'graph', 'lease.json')), 'lease.json')).toMatchObject({ holder: 'leader-a', epoch: 1, ttlMs: 4000, released: false });
      expect(parseGenerationRecord(await readFile(join(store, 'graph', 'generations', '0000.json')), '0000.json')).toMatchObject({ holder: 'leader-a', startSeq: 1 });

      const second = await runCli(['replicate', await journalDir(), `file://${store}`, '--db', 'graph', '--interval', '50'], {
        env: { GRAPHSTREAM_LEASE: '1', GRAPHSTREAM_LEASE_HOLDER: 'leader-b', GRAPHSTREAM_LEASE_NO_WAIT: '1' },
      });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/error \[fenced\].*held by leader-a \(epoch 1\)/);
      expect(second.stdout).not.toMatch(/^uploaded/m);

      const usage = await runCli(['replicate', '--config', join(store, 'none.yml'), '--lease']);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain("each database's lease comes from the file");
    } finally {
      leader.kill('SIGTERM');
    }
    expect((await leader.exited).code).toBe(0);
  });
});
