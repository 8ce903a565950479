/**
 * Failover with real processes on a real S3 server: a leader child under a lease ships, then dies
 * (SIGKILL) or stalls (SIGSTOP past its TTL); a standby follower promotes, continues the chain in
 * a new generation, and a third, plain follower reads one chain across the switch. A graceful
 * handover (release, then promote) does not wait for the TTL.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Journal } from '../ts/journal/journal.js';
import { Follower } from '../ts/replication/follower.js';
import { Lease } from '../ts/replication/lease.js';
import { Uploader } from '../ts/replication/uploader.js';
import type { SegmentStorage } from '../ts/storage/types.js';
import { bundleScripts } from './helpers/bundle.js';
import { run, waitFor, type Child } from './helpers/child-process.js';
import { entryFor, journalRecords } from './helpers/replication.js';
import { s3BackendsAndCores } from './helpers/s3.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const buildDir = join(root, '.vitest-tmp', `failover-${process.pid}`);
const script = join(buildDir, 'lease-leader.mjs');
const DB = 'graph';
/** the shortest TTL a lease takes: a standby takes over ~4 s (TTL + margin) after the leader stopped renewing */
const TTL_MS = 3000;
let testCounter = 0;

beforeAll(async () => {
  await bundleScripts({ 'lease-leader': join(root, '__test__/helpers/lease-leader.ts') }, buildDir);
});
afterAll(async () => {
  await rm(buildDir, { recursive: true, force: true });
});

/** The highest `acked <seq>` a child printed (0 when none). */
function lastAcked(lines: readonly string[]): number {
  return Math.max(0, ...lines.filter((line) => line.startsWith('acked ')).map((line) => Number(line.slice(6))));
}

describe.each(s3BackendsAndCores.filter(({ s3 }) => s3.server === 'moto'))('failover: $s3.name ($core.kind core)', ({ s3, core }) => {
  let storage: SegmentStorage;
  let bucket: string;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    bucket = await s3.createBucket('failover');
    storage = await s3.open(bucket);
    return () => storage.close?.();
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-failover-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  async function startLeader(prefix: string): Promise<{ child: Child; dir: string }> {
    const dir = await tempDir();
    const backend = s3.name.split(' ')[0]!;
    const child = run(process.execPath, [script, core.kind, backend, s3.endpoint(), bucket, prefix, DB, dir, String(TTL_MS)]);
    cleanups.push(async () => {
      child.kill();
      await child.exited;
    });
    await waitFor(child, (lines) => lastAcked(lines) >= 60, 'acked 60');
    return { child, dir };
  }

  function follower(prefix: string, dir: string): Follower {
    return new Follower({ storage, prefix, db: DB, dir, core });
  }

  /** The promoted journal appends and ships `count` entries of its own; resolves with its sequence. */
  async function writeAsNewLeader(promotion: Awaited<ReturnType<Follower['promote']>>, count: number): Promise<number> {
    cleanups.push(async () => {
      await promotion.uploader.release();
      await promotion.journal.close();
    });
    await promotion.journal.appendBatch(Array.from({ length: count }, (_, k) => entryFor(5000 + k)));
    await promotion.uploader.sync();
    return promotion.journal.sequence;
  }

  it('kill -9 of the leader: the standby promotes after the TTL, loses no acknowledged entry, and followers read one chain', { timeout: 60_000 }, async () => {
    const prefix = `crash${++testCounter}/`;
    const { child, dir: leaderDir } = await startLeader(prefix);
    const readerDir = await tempDir();
    const reader = follower(prefix, readerDir);
    expect((await reader.catchUp()).sequence).toBeGreaterThanOrEqual(60); // part-way, in the leader's generation

    child.kill();
    await child.exited;
    const acknowledged = lastAcked(child.lines);
    const standbyDir = await tempDir();
    const promotion = await follower(prefix, standbyDir).promote({ lease: { ttlMs: TTL_MS } });
    expect(promotion.record.startSeq - 1).toBeGreaterThanOrEqual(acknowledged);
    expect(promotion.lease.epoch).toBe(2);
    // everything it took over is the dead leader's own journal, entry for entry and hash for hash
    const leaderRecords = await journalRecords(leaderDir, core);
    expect(await journalRecords(standbyDir, core)).toEqual(leaderRecords.slice(0, promotion.record.startSeq - 1));

    const end = await writeAsNewLeader(promotion, 40);
    expect((await reader.catchUp()).sequence).toBe(end);
    expect(await journalRecords(readerDir, core)).toEqual(await journalRecords(standbyDir, core));
  });

  it('a leader paused past its TTL is fenced when it resumes, and nothing it writes after the new epoch is read', { timeout: 60_000 }, async () => {
    const prefix = `pause${++testCounter}/`;
    const { child } = await startLeader(prefix);
    child.signal('SIGSTOP');
    const paused = child.lines.length;
    const standbyDir = await tempDir();
    const promotion = await follower(prefix, standbyDir).promote({ lease: { ttlMs: TTL_MS } });
    const end = await writeAsNewLeader(promotion, 40);

    child.signal('SIGCONT');
    await waitFor(child, (lines) => lines.slice(paused).some((line) => line === 'rejected fenced'), 'rejected fenced');
    const resumed = child.lines.slice(paused);
    expect(resumed).toContain('fenced');
    // no sync of the old leader resolved for anything past where the new generation starts
    expect(lastAcked(resumed)).toBeLessThan(promotion.record.startSeq);
    child.kill();
    await child.exited;

    const readerDir = await tempDir();
    expect((await follower(prefix, readerDir).catchUp()).sequence).toBe(end);
    expect(await journalRecords(readerDir, core)).toEqual(await journalRecords(standbyDir, core));
  });

  it('a graceful handover: after the leader releases, the standby promotes without waiting for the TTL', { timeout: 20_000 }, async () => {
    const prefix = `handover${++testCounter}/`;
    // a TTL far longer than the test's timeout: only the release lets the standby in
    const lease = new Lease({ storage, prefix, db: DB, ttlMs: 120_000 });
    const journal = await Journal.open(await tempDir(), { core, maxSegmentBytes: 2048, durability: 'none' });
    const uploader = new Uploader({ journal, storage, core, prefix, db: DB, lease, sealIntervalMs: 3_600_000 });
    await journal.appendBatch(Array.from({ length: 50 }, (_, k) => entryFor(k + 1)));
    await uploader.sync();
    await uploader.release();
    await journal.close();

    const standbyDir = await tempDir();
    const promotion = await follower(prefix, standbyDir).promote({ lease: { ttlMs: 120_000 } });
    expect(promotion.record).toMatchObject({ startSeq: 51, generation: 1, epoch: 2 });
    const end = await writeAsNewLeader(promotion, 20);
    const readerDir = await tempDir();
    expect((await follower(prefix, readerDir).catchUp()).sequence).toBe(end);
    expect(await journalRecords(readerDir, core)).toEqual(await journalRecords(standbyDir, core));
  });
});
