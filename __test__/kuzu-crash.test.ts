/**
 * graphstream/kuzu across kill -9 of real processes (each database in its own directory, opened by
 * one process at a time). Counters are incremented (`SET n.c = n.c + 1`), so an entry applied
 * twice, or lost, shows in the counts.
 * - A leader killed between a journal append and its COMMIT (stopped there by a test hook), and
 *   at random moments: after the restart the database holds every journaled entry exactly once,
 *   every acknowledged mutation among them, and a replica replaying the journal equals it.
 * - A replica killed mid-replay, several times: it resumes from the sequence its database
 *   recorded and ends equal to the leader.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Journal } from '../ts/journal/journal.js';
import { readJournal } from '../ts/journal/reader.js';
import { readPosition, runStatement } from '../ts/kuzu/database.js';
import { openKuzuLeader, replayIntoKuzu } from '../ts/kuzu/index.js';
import { Follower } from '../ts/replication/follower.js';
import { Uploader } from '../ts/replication/uploader.js';
import { LocalStorage } from '../ts/storage/local.js';
import { bundleScripts } from './helpers/bundle.js';
import { run, waitFor, type Child } from './helpers/child-process.js';
import { openDatabase, prng, type OpenDatabase } from './helpers/kuzu.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const buildDir = join(root, '.vitest-tmp', `kuzu-crash-${process.pid}`);
const seed = Number(process.env.GRAPHSTREAM_KUZU_SEED ?? Date.now() % 2 ** 31);
const random = prng(seed);
let work: string;

beforeAll(async () => {
  await bundleScripts(
    {
      'kuzu-leader-child': join(root, '__test__/helpers/kuzu-leader-child.ts'),
      'kuzu-replica-child': join(root, '__test__/helpers/kuzu-replica-child.ts'),
    },
    buildDir,
  );
  work = await mkdtemp(join(tmpdir(), 'gs-kuzu-crash-'));
});
afterAll(async () => {
  await rm(buildDir, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

function child(name: string, args: string[]): Child {
  return run(process.execPath, [join(buildDir, `${name}.mjs`), ...args]);
}

async function exitedCleanly(c: Child): Promise<void> {
  const { code } = await c.exited;
  expect(code, c.stderr()).toBe(0);
}

async function killed(c: Child): Promise<void> {
  c.kill();
  const { signal } = await c.exited;
  expect(signal).toBe('SIGKILL');
}

function numbers(lines: readonly string[], prefix: string): number[] {
  return lines.filter((line) => line.startsWith(`${prefix} `)).map((line) => Number(line.split(' ')[1]));
}

async function counters(db: OpenDatabase): Promise<number[]> {
  const rows = await runStatement(db.connection, 'MATCH (n:Counter) RETURN n.id AS id, n.c AS c ORDER BY n.id', {});
  return rows.map((row) => row.c as number);
}

/** What the journal says the counters must be: one increment per entry, each entry once. */
async function countersInJournal(dir: string): Promise<{ counts: number[]; sequence: number }> {
  const counts = Array.from({ length: 10 }, () => 0);
  let sequence = 0;
  for await (const record of readJournal(dir)) {
    sequence = record.sequence;
    if (record.entry.query.includes('n.c + 1')) counts[Number(record.entry.params[0]![1].value)]! += 1;
  }
  return { counts, sequence };
}

describe(`graphstream/kuzu across kill -9 (seed ${seed})`, () => {
  test('a leader killed between the append and the COMMIT, then at a random moment: the restart redoes what the database lacks, loses nothing acknowledged, applies nothing twice, and a replica equals it', async () => {
    const dbDir = join(work, 'leader-db');
    const journalDir = join(work, 'leader-journal');
    const storeDir = join(work, 'store');
    const acked: number[] = [];

    // 1. stopped between the append of entry `stopAt` and its COMMIT, then killed
    const stopAt = 11 + 20 + Math.floor(random() * 40);
    const first = child('kuzu-leader-child', [dbDir, journalDir, storeDir, '200', String(stopAt)]);
    await waitFor(first, (lines) => lines.some((line) => line.startsWith('stopped ')), 'stopped');
    await killed(first);
    acked.push(...numbers(first.lines, 'acked'));
    expect(Math.max(...acked)).toBe(stopAt - 1);
    expect((await countersInJournal(journalDir)).sequence).toBe(stopAt);
    const lacking = await openDatabase(dbDir);
    expect((await readPosition(lacking.connection)).sequence).toBe(stopAt - 1);
    await lacking.close();

    // 2. restarted: it applies entry `stopAt` first; then killed at a random moment
    const second = child('kuzu-leader-child', [dbDir, journalDir, storeDir, '400']);
    await waitFor(second, (lines) => lines.some((line) => line.startsWith('opened ')), 'opened');
    expect(second.lines.find((line) => line.startsWith('opened '))).toBe(`opened 1 ${stopAt}`);
    const killAfter = 5 + Math.floor(random() * 100);
    await waitFor(second, (lines) => numbers(lines, 'acked').length >= killAfter, `${killAfter} acks`);
    await killed(second);
    acked.push(...numbers(second.lines, 'acked'));

    // 3. restarted to the end
    const third = child('kuzu-leader-child', [dbDir, journalDir, storeDir, '30']);
    await exitedCleanly(third);
    acked.push(...numbers(third.lines, 'acked'));
    const opened = third.lines.find((line) => line.startsWith('opened '))!.split(' ').map(Number);
    expect(opened[1]).toBeLessThanOrEqual(1); // 1 when the kill fell between an append and its COMMIT

    const expected = await countersInJournal(journalDir);
    expect(third.lines.at(-1)).toBe(`done ${expected.sequence}`);
    expect(Math.max(...acked)).toBeLessThanOrEqual(expected.sequence);
    expect(new Set(acked).size).toBe(acked.length); // no sequence acknowledged twice
    const leader = await openDatabase(dbDir);
    try {
      expect(await readPosition(leader.connection)).toMatchObject({ sequence: expected.sequence });
      expect(await counters(leader)).toEqual(expected.counts);
      expect(expected.counts.reduce((a, b) => a + b)).toBe(expected.sequence - 11);

      // a replica of the shipped journal ends equal
      const replica = await openDatabase(join(work, 'leader-replica-db'));
      const follower = new Follower({ storage: new LocalStorage(storeDir), db: 'graph', dir: join(work, 'leader-replica-journal') });
      const controller = new AbortController();
      const replay = replayIntoKuzu({ follower, connection: replica.connection, signal: controller.signal, tail: { pollIntervalMs: 10 } });
      replay.on('applied', ({ sequence }) => sequence === expected.sequence && controller.abort());
      await expect(replay.done).rejects.toMatchObject({ name: 'AbortError' });
      expect(await counters(replica)).toEqual(expected.counts);
      await replica.close();
    } finally {
      await leader.close();
    }
  });

  test('a replica killed mid-replay, three times: each restart resumes after the sequence its database recorded, and it ends equal to the leader, no increment applied twice', async () => {
    const storeDir = join(work, 'replica-store');
    const leaderDb = await openDatabase(join(work, 'replica-leader-db'));
    const journal = await Journal.open(join(work, 'replica-leader-journal'), { maxSegmentBytes: 2048 });
    const uploader = new Uploader({ journal, storage: new LocalStorage(storeDir), db: 'graph', sealIntervalMs: 3_600_000 });
    await uploader.start();
    const leader = await openKuzuLeader({ connection: leaderDb.connection, journal });
    await leader.mutate('CREATE NODE TABLE Counter(id INT64 PRIMARY KEY, c INT64)');
    for (let id = 0; id < 10; id++) await leader.mutate('CREATE (:Counter {id: $id, c: 0})', { id });
    for (let i = 0; i < 400; i++) await leader.mutate('MATCH (n:Counter) WHERE n.id = $id SET n.c = n.c + 1', { id: Math.floor(random() * 10) });
    await uploader.sync();
    const tip = journal.sequence;
    const expected = await counters(leaderDb);
    await uploader.stop();
    await journal.close();
    await leaderDb.close();

    const args = [storeDir, join(work, 'replica-journal'), join(work, 'replica-db'), String(tip)];
    let lastApplied = 0;
    for (let round = 0; round < 3; round++) {
      const replica = child('kuzu-replica-child', args);
      await waitFor(replica, (lines) => lines.some((line) => line.startsWith('start ')), 'start');
      const start = numbers(replica.lines, 'start')[0]!;
      // every entry it said it applied was committed: the restart begins after it
      expect(start).toBeGreaterThanOrEqual(lastApplied);
      const killAt = start + 5 + Math.floor(random() * 80);
      await waitFor(replica, (lines) => numbers(lines, 'applied').some((sequence) => sequence >= killAt), `applied ${killAt}`);
      await killed(replica);
      const applied = numbers(replica.lines, 'applied');
      expect(applied[0]).toBe(start + 1);
      lastApplied = applied.at(-1)!;
    }
    const last = child('kuzu-replica-child', args);
    await exitedCleanly(last);
    expect(numbers(last.lines, 'start')[0]).toBeGreaterThanOrEqual(lastApplied);
    expect(last.lines.at(-1)).toBe(`done ${tip}`);

    const replicaDb = await openDatabase(join(work, 'replica-db'));
    try {
      expect(await counters(replicaDb)).toEqual(expected);
      expect(expected.reduce((a, b) => a + b)).toBe(400);
    } finally {
      await replicaDb.close();
    }
  });
});
