/**
 * graphstream/kuzu with real Kuzu databases (each in its own directory), a real journal, an
 * Uploader shipping to a LocalStorage and a Follower replaying from it: mutations are journaled
 * exactly when they commit, replicas end equal to the leader (compared value by value as Kuzu's
 * exact strings), what cannot replay the same is refused, a failing entry stops replay loudly,
 * the leader redoes what its database lacks, and a promoted replica continues the chain.
 * The crash suite (kuzu-crash.test.ts) kills real leader and replica processes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AbortError } from '../ts/abort.js';
import { GraphstreamError } from '../ts/errors.js';
import { Journal } from '../ts/journal/journal.js';
import { readJournal } from '../ts/journal/reader.js';
import { META_TABLE, PREPARED_PER_CONNECTION, PRUNE_EVERY, readPosition, runStatement, writePosition, type KuzuConnection } from '../ts/kuzu/database.js';
import { openKuzuLeader, replayIntoKuzu, type KuzuLeader } from '../ts/kuzu/index.js';
import { GraphstreamMetrics } from '../ts/metrics.js';
import { ParamValue } from '../ts/payload/params.js';
import { Follower } from '../ts/replication/follower.js';
import { Uploader } from '../ts/replication/uploader.js';
import { LocalStorage } from '../ts/storage/local.js';
import { cores } from './helpers/cores.js';
import { dump, openDatabase, prng, randomMutation, RandomValues, SCHEMA, type OpenDatabase } from './helpers/kuzu.js';

const DB = 'graph';
const MUTATIONS = Number(process.env.GRAPHSTREAM_KUZU_MUTATIONS ?? 2000);
/** the randomized test's seed, in its name so that any failure shows it; rerun with GRAPHSTREAM_KUZU_SEED */
const SEED = Number(process.env.GRAPHSTREAM_KUZU_SEED ?? Date.now() % 2 ** 31);
let work: string;
let counter = 0;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gs-kuzu-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function fresh(name: string): string {
  return join(work, `${name}-${counter++}`);
}

interface Leader {
  db: OpenDatabase;
  journal: Journal;
  uploader: Uploader;
  leader: KuzuLeader;
  storage: LocalStorage;
  ship(): Promise<void>;
  close(): Promise<void>;
}

async function openLeader(storage = new LocalStorage(fresh('store'))): Promise<Leader> {
  const db = await openDatabase(fresh('leader-db'));
  const journal = await Journal.open(fresh('leader-journal'), { maxSegmentBytes: 64 * 1024 });
  const uploader = new Uploader({ journal, storage, db: DB, sealIntervalMs: 3_600_000 });
  await uploader.start();
  const leader = await openKuzuLeader({ connection: db.connection, journal });
  return {
    db,
    journal,
    uploader,
    leader,
    storage,
    ship: async () => {
      await journal.sealForUpload();
      await uploader.sync();
    },
    close: async () => {
      await uploader.stop();
      await journal.close();
      await db.close();
    },
  };
}

/** Replays into `db` until it recorded `sequence`, then stops the replay. */
async function replayUntil(follower: Follower, db: OpenDatabase, sequence: number): Promise<void> {
  const controller = new AbortController();
  const replay = replayIntoKuzu({ follower, connection: db.connection, signal: controller.signal, tail: { pollIntervalMs: 10, maxPollIntervalMs: 50 } });
  const failed = replay.done.catch((err: unknown) => err);
  while ((replay.position?.sequence ?? -1) < sequence) {
    const outcome = await Promise.race([failed, new Promise((resolve) => setTimeout(resolve, 10, 'wait'))]);
    if (outcome !== 'wait') throw outcome;
  }
  controller.abort();
  const err = await failed;
  expect(err).toBeInstanceOf(AbortError);
}

describe('graphstream/kuzu: the leader', () => {
  test('mutate journals each committed statement with its typed parameters; a statement Kuzu refuses is rolled back and never journaled; query journals nothing and cannot write', async () => {
    const l = await openLeader();
    try {
      for (const statement of SCHEMA) await l.leader.mutate(statement);
      const born = new Date(Date.UTC(1990, 3, 1, 12, 30));
      const created = await l.leader.mutate('CREATE (n:Item {id: $id, ts: $born, dt: $day, c: 0}) RETURN n.id AS id', { id: 1, born, day: ParamValue.date('1990-04-01') });
      expect(created).toMatchObject({ sequence: 3, rows: [{ id: 1 }] });
      expect(l.journal.sequence).toBe(3);
      expect(created.chainHash.equals(l.journal.chainHash)).toBe(true);

      await expect(l.leader.mutate('CREATE (n:Item {id: $id})', { id: 1 })).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/duplicated primary key/) });
      await expect(l.leader.mutate('CREATE (n:Nope {id: 1})')).rejects.toMatchObject({ code: 'invalid_argument' });
      expect(l.journal.sequence).toBe(3);

      expect(await l.leader.query('MATCH (n:Item) RETURN count(*) AS n')).toEqual([{ n: 1 }]);
      await expect(l.leader.query('CREATE (n:Item {id: 2})')).rejects.toMatchObject({ code: 'invalid_argument' });
      expect(await l.leader.query('MATCH (n:Item) WHERE n.ts = $born RETURN n.id AS id', { born })).toEqual([{ id: 1 }]);
      expect(l.journal.sequence).toBe(3);
      expect(l.leader.position.sequence).toBe(3);
      expect(await readPosition(l.db.connection)).toEqual({ sequence: 3, chainHash: l.journal.chainHash });

      const entries = [];
      for await (const record of readJournal(l.journal.directory)) entries.push(record.entry);
      expect(entries.map((entry) => entry.query)).toEqual([...SCHEMA, 'CREATE (n:Item {id: $id, ts: $born, dt: $day, c: 0}) RETURN n.id AS id']);
      expect(entries[2]!.params).toEqual([
        ['id', ParamValue.int(1)],
        ['born', ParamValue.datetime('1990-04-01T12:30:00.000Z')],
        ['day', ParamValue.date('1990-04-01')],
      ]);
    } finally {
      await l.close();
    }
  });

  test('nondeterministic functions, several statements and transaction control are refused before anything runs', async () => {
    const l = await openLeader();
    try {
      await l.leader.mutate(SCHEMA[0]!);
      const refusals = [
        ['CREATE (:Item {id: 5, s: gen_random_uuid()})', /gen_random_uuid\(\) at offset \d+ is nondeterministic/],
        ['CREATE (:Item {id: 5, ts: current_timestamp()})', /current_timestamp/],
        ['CREATE (:Item {id: 5, dt: CURRENT_DATE()})', /current_date/],
        ['MATCH (n:Item) SET n.d = rand()', /rand/],
        ['MATCH (n:Item) SET n.d = random ()', /random/],
        ['CREATE (:Item {id: 5}); CREATE (:Item {id: 6})', /one statement/],
        ['BEGIN TRANSACTION', /BEGIN/],
        ['COMMIT', /COMMIT/],
      ] as const;
      for (const [query, message] of refusals) {
        await expect(l.leader.mutate(query)).rejects.toSatisfy((err: unknown) => err instanceof GraphstreamError && err.code === 'invalid_argument' && message.test(err.message));
      }
      await expect(l.leader.query('RETURN rand() AS r')).rejects.toMatchObject({ code: 'invalid_argument' });
      // the same names inside strings, comments or as properties are fine
      await l.leader.mutate("CREATE (:Item {id: 7, s: 'rand() current_timestamp()'}) // gen_random_uuid()");
      expect(l.journal.sequence).toBe(2);
    } finally {
      await l.close();
    }
  });

  test('a transaction that fails after its append is applied again at once: the journal holds the entry, so the database does too', async () => {
    const dbDir = fresh('db');
    const journalDir = fresh('journal');
    const db = await openDatabase(dbDir);
    const journal = await Journal.open(journalDir);
    let fail = true;
    const leader = await openKuzuLeader({
      connection: db.connection,
      journal,
      afterAppend: () => {
        if (fail) {
          fail = false;
          throw new Error('injected failure between the append and the COMMIT');
        }
      },
    });
    try {
      await expect(leader.mutate(SCHEMA[0]!)).rejects.toThrow(/injected failure/);
      expect(journal.sequence).toBe(1);
      expect(leader.position.sequence).toBe(1);
      await leader.mutate(SCHEMA[1]!);
      await leader.mutate('CREATE (:Item {id: 1, c: 0})');
      expect(await readPosition(db.connection)).toEqual({ sequence: 3, chainHash: journal.chainHash });
      expect(await dump(db.connection)).toHaveLength(1);
    } finally {
      await journal.close();
      await db.close();
    }
  });

  test.each(cores)('on the $kind core, opening the leader redoes the journal entries the database lacks; a database ahead of the journal, or on another chain, is refused', async (core) => {
    const journalDir = fresh('journal');
    const journal = await Journal.open(journalDir, { core });
    const first = await openDatabase(fresh('db'));
    const leader = await openKuzuLeader({ connection: first.connection, journal, core });
    for (const statement of SCHEMA) await leader.mutate(statement);
    for (let id = 0; id < 20; id++) await leader.mutate('CREATE (:Item {id: $id, c: $id, ts: $ts})', { id, ts: new Date(1_700_000_000_000 + id) });
    const expected = await dump(first.connection);

    // a database that recorded nothing gets the whole journal
    const second = await openDatabase(fresh('db'));
    const redone = await openKuzuLeader({ connection: second.connection, journal, core });
    expect(redone.redone).toBe(22);
    expect(await dump(second.connection)).toEqual(expected);
    expect(await readPosition(second.connection)).toEqual({ sequence: 22, chainHash: journal.chainHash });
    await second.close();

    // a journal behind the database (another journal) is refused
    const other = await Journal.open(fresh('journal'), { core });
    await expect(openKuzuLeader({ connection: first.connection, journal: other, core })).rejects.toMatchObject({ code: 'conflict', message: expect.stringMatching(/recorded sequence 22/) });
    // the same length on another chain is refused too
    for (let i = 0; i < 22; i++) await other.append({ query: 'RETURN 1' });
    await expect(openKuzuLeader({ connection: first.connection, journal: other, core })).rejects.toMatchObject({ code: 'conflict' });
    await other.close();
    await journal.close();
    await first.close();
  });
});

/** The connection, with the query text of every prepare() it is asked for. */
function countingPrepares(connection: KuzuConnection): { connection: KuzuConnection; prepares: string[] } {
  const prepares: string[] = [];
  return {
    prepares,
    connection: {
      prepare: (statement) => {
        prepares.push(statement);
        return connection.prepare(statement);
      },
      execute: (statement, params) => connection.execute(statement, params),
      query: (statement) => connection.query(statement),
    },
  };
}

describe('graphstream/kuzu: statements and the meta table', () => {
  test('each query text is prepared once per connection (Kuzu keeps every prepare until the connection closes), least recently used dropped past the limit', async () => {
    const db = await openDatabase(fresh('db'));
    const journal = await Journal.open(fresh('journal'));
    try {
      const { connection, prepares } = countingPrepares(db.connection);
      const leader = await openKuzuLeader({ connection, journal });
      for (const statement of SCHEMA) await leader.mutate(statement);
      for (let id = 0; id < 30; id++) await leader.mutate('CREATE (:Item {id: $id, c: 0})', { id });
      for (let id = 0; id < 30; id++) await leader.mutate('MATCH (n:Item) WHERE n.id = $id SET n.c = n.c + 1', { id });
      expect(await leader.query('MATCH (n:Item) RETURN sum(n.c) AS c')).toEqual([{ c: 30n }]);
      const counts = new Map<string, number>();
      for (const text of prepares) counts.set(text, (counts.get(text) ?? 0) + 1);
      expect([...counts.values()].every((n) => n === 1), JSON.stringify([...counts])).toBe(true);
      expect(prepares.length).toBeLessThan(15);

      // past the limit the least recently used text is prepared again, the most recent is not
      const distinct = (k: number) => `RETURN $x + ${k} AS y`;
      for (let k = 0; k <= PREPARED_PER_CONNECTION; k++) expect(await runStatement(connection, distinct(k), { x: 1 })).toEqual([{ y: k + 1 }]);
      const before = prepares.length;
      expect(await runStatement(connection, distinct(PREPARED_PER_CONNECTION), { x: 2 })).toEqual([{ y: PREPARED_PER_CONNECTION + 2 }]);
      expect(prepares.length).toBe(before);
      expect(await runStatement(connection, distinct(0), { x: 2 })).toEqual([{ y: 2 }]);
      expect(prepares.length).toBe(before + 1);
    } finally {
      await journal.close();
      await db.close();
    }
  });

  test('a reused statement binds what this execution passes: a parameter left out is NULL, not the last value; it sees schema changes; a failed prepare is tried again', async () => {
    const l = await openLeader();
    const replica = await openDatabase(fresh('replica-db'));
    const follower = new Follower({ storage: l.storage, db: DB, dir: fresh('replica-journal') });
    try {
      const conn = l.db.connection;
      expect(await runStatement(conn, 'RETURN $a AS a, $b AS b', { a: 1, b: 2 })).toEqual([{ a: 1, b: 2 }]);
      expect(await runStatement(conn, 'RETURN $a AS a, $b AS b', { a: 3 })).toEqual([{ a: 3, b: null }]);

      for (const statement of SCHEMA) await l.leader.mutate(statement);
      await l.leader.mutate('CREATE (:Item {id: $id, s: $s, c: 0})', { id: 1, s: 'one' });
      await l.leader.mutate('CREATE (:Item {id: $id, s: $s, c: 0})', { id: 2 });
      // parameter names as Kuzu reads them: Unicode letters too (the scan once stopped at the é, and Kuzu bound NULL)
      await l.leader.mutate('CREATE (:Item {id: $id, s: $café, c: 0})', { id: 3, café: 'crème' });
      await expect(l.leader.mutate('CREATE (:Item {id: $`id`})', { id: 4 })).rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/quoted name/) });
      const items = 'MATCH (n:Item) RETURN n.id AS id, n.s AS s ORDER BY n.id';
      expect(await l.leader.query(items)).toEqual([
        { id: 1, s: 'one' },
        { id: 2, s: null },
        { id: 3, s: 'crème' },
      ]);

      // a statement that failed to prepare (no such table yet) is prepared again once the table exists
      await expect(l.leader.mutate('CREATE (:Later {id: $id})', { id: 1 })).rejects.toMatchObject({ code: 'invalid_argument' });
      await l.leader.mutate('CREATE NODE TABLE Later(id INT64 PRIMARY KEY)');
      await l.leader.mutate('CREATE (:Later {id: $id})', { id: 1 });
      // a reused statement is bound and planned again at each execution: it sees the table dropped and made again
      const count = 'MATCH (n:Later) RETURN count(*) AS n';
      expect(await l.leader.query(count)).toEqual([{ n: 1 }]);
      await l.leader.mutate('DROP TABLE Later');
      await expect(l.leader.query(count)).rejects.toMatchObject({ code: 'invalid_argument' });
      await l.leader.mutate('CREATE NODE TABLE Later(id INT64 PRIMARY KEY, v STRING)');
      for (const id of [1, 2, 3]) await l.leader.mutate('CREATE (:Later {id: $id})', { id });
      expect(await l.leader.query(count)).toEqual([{ n: 3 }]);

      await l.ship();
      await replayUntil(follower, replica, l.journal.sequence);
      expect(await runStatement(replica.connection, items, {})).toEqual(await l.leader.query(items));
      expect(await runStatement(replica.connection, count, {})).toEqual([{ n: 3 }]);
      expect(await dump(replica.connection)).toEqual(await dump(l.db.connection));
    } finally {
      await l.close();
      await replica.close();
    }
  });

  test('a small buffer pool takes thousands of entries: the position is inserted, not updated in place (Kuzu keeps every update in the pool until a checkpoint)', async () => {
    const db = await openDatabase(fresh('db'), 16 * 1024 * 1024);
    const journal = await Journal.open(fresh('journal'));
    try {
      await journal.append({ query: 'CREATE NODE TABLE Row(id INT64 PRIMARY KEY)' });
      // an in-place update of one meta row filled this pool after about 550 entries
      for (let id = 0; id < 2000; id++) await journal.append({ query: 'CREATE (:Row {id: $id})', params: { id } });
      const leader = await openKuzuLeader({ connection: db.connection, journal });
      expect(leader.redone).toBe(2001);
      expect(await leader.query('MATCH (r:Row) RETURN count(*) AS n')).toEqual([{ n: 2000 }]);
      expect(await readPosition(db.connection)).toEqual({ sequence: 2001, chainHash: journal.chainHash });
    } finally {
      await journal.close();
      await db.close();
    }
  });

  test(`the meta table is append-only (a row per entry, the largest sequence is the position), every ${PRUNE_EVERY}th entry deletes the older rows; a redo crosses a prune; the earlier one-row layout resumes; a sequence recorded twice fails`, async () => {
    const db = await openDatabase(fresh('db'));
    const journal = await Journal.open(fresh('journal'));
    const conn = db.connection;
    const rows = () => runStatement(conn, `MATCH (m:${META_TABLE}) RETURN m.id AS id, m.seq AS seq ORDER BY m.seq`, {});
    try {
      // the journal holds the schema, one counter and increments of it, past a prune
      await journal.append({ query: SCHEMA[0]! });
      await journal.append({ query: 'CREATE (:Item {id: $id, c: 0})', params: { id: 1 } });
      const total = PRUNE_EVERY + 6;
      for (let seq = 3; seq <= total; seq++) await journal.append({ query: 'MATCH (n:Item) WHERE n.id = 1 SET n.c = n.c + 1' });
      let afterTwo: Buffer | undefined;
      for await (const record of readJournal(journal.directory)) {
        if (record.sequence === 2) afterTwo = record.chainHash;
      }
      // the database applied the first two in the earlier layout: one row, id 0, updated in place
      await runStatement(conn, SCHEMA[0]!, {});
      await runStatement(conn, 'CREATE (:Item {id: 1, c: 0})', {});
      await runStatement(conn, `CREATE NODE TABLE ${META_TABLE}(id INT64 PRIMARY KEY, seq INT64, hash STRING)`, {});
      await runStatement(conn, `CREATE (:${META_TABLE} {id: 0, seq: 2, hash: $hash})`, { hash: afterTwo!.toString('hex') });
      expect(await readPosition(conn)).toEqual({ sequence: 2, chainHash: afterTwo });

      // the redo (as after a crash between appends and COMMITs) applies the rest once, pruning on its way
      let leader = await openKuzuLeader({ connection: conn, journal });
      expect(leader.redone).toBe(total - 2);
      expect(await leader.query('MATCH (n:Item) RETURN n.c AS c')).toEqual([{ c: total - 2 }]);
      expect(await rows()).toEqual(Array.from({ length: total - PRUNE_EVERY + 1 }, (_, i) => ({ id: PRUNE_EVERY + i, seq: PRUNE_EVERY + i })));
      expect(await readPosition(conn)).toEqual({ sequence: total, chainHash: journal.chainHash });

      // a mutation that matches nothing still records its position
      await leader.mutate('MATCH (n:Item) WHERE n.id = 99 SET n.c = n.c + 1');
      expect(await readPosition(conn)).toEqual({ sequence: total + 1, chainHash: journal.chainHash });
      leader = await openKuzuLeader({ connection: conn, journal });
      expect(leader.redone).toBe(0);
      expect(await leader.query('MATCH (n:Item) RETURN n.c AS c')).toEqual([{ c: total - 2 }]);

      // recording a sequence again (an entry applied twice) fails
      await expect(writePosition(conn, { sequence: total + 1, chainHash: journal.chainHash })).rejects.toMatchObject({ message: expect.stringMatching(/duplicated primary key/) });
      // a largest row that is not a position is corrupt
      await runStatement(conn, `CREATE (:${META_TABLE} {id: $seq, seq: $seq, hash: 'nope'})`, { seq: total + 2 });
      await expect(readPosition(conn)).rejects.toMatchObject({ code: 'corrupt' });
    } finally {
      await journal.close();
      await db.close();
    }
  });
});

describe('graphstream/kuzu: replicas', () => {
  test(`randomized equivalence (seed ${SEED}): ${MUTATIONS} random typed mutations over every mapped type, shipped and replayed, leave equal databases`, async () => {
    const seed = SEED;
    const values = new RandomValues(prng(seed));
    const l = await openLeader();
    const replica = await openDatabase(fresh('replica-db'));
    const follower = new Follower({ storage: l.storage, db: DB, dir: fresh('replica-journal') });
    let refused = 0;
    try {
      for (const statement of SCHEMA) await l.leader.mutate(statement);
      for (let i = 0; i < MUTATIONS; i++) {
        const { query, params } = randomMutation(values);
        try {
          await l.leader.mutate(query, params);
        } catch (err) {
          // a duplicate id; anything else is a bug of the mapping
          if (!(err instanceof GraphstreamError && /duplicated primary key/.test(err.message))) throw new Error(`seed ${seed}, mutation ${i}: ${query} ${String(err)}`, { cause: err });
          refused++;
        }
        if (i === Math.floor(MUTATIONS / 2)) {
          // replay part of it while the leader goes on
          await l.ship();
          await replayUntil(follower, replica, l.journal.sequence);
        }
      }
      await l.ship();
      await replayUntil(follower, replica, l.journal.sequence);
      const leaderDump = await dump(l.db.connection);
      expect(leaderDump.length).toBeGreaterThan(Math.min(50, MUTATIONS / 10));
      expect(await dump(replica.connection), `seed ${seed}`).toEqual(leaderDump);
      expect(await readPosition(replica.connection)).toEqual({ sequence: l.journal.sequence, chainHash: l.journal.chainHash });
      expect(l.journal.sequence).toBe(SCHEMA.length + MUTATIONS - refused);
    } finally {
      await l.close();
      await replica.close();
    }
  });

  test('an entry that fails to apply stops the replay: a failed event, the failure metric, and an error naming its sequence', async () => {
    const storage = new LocalStorage(fresh('store'));
    const journal = await Journal.open(fresh('journal'));
    const uploader = new Uploader({ journal, storage, db: DB, sealIntervalMs: 3_600_000 });
    await uploader.start();
    // written to the journal directly, past the leader: the third entry cannot apply
    await journal.append({ query: SCHEMA[0]! });
    await journal.append({ query: 'CREATE (:Item {id: $id})', params: { id: 1 } });
    await journal.append({ query: 'CREATE (:Item {id: $id})', params: { id: 1 } });
    await journal.append({ query: 'CREATE (:Item {id: $id})', params: { id: 2 } });
    await journal.sealForUpload();
    await uploader.sync();
    const replica = await openDatabase(fresh('db'));
    const metrics = new GraphstreamMetrics({ db: DB });
    const follower = new Follower({ storage, db: DB, dir: fresh('replica-journal') });
    const replay = replayIntoKuzu({ follower, connection: replica.connection, metrics, tail: { pollIntervalMs: 10 } });
    const failed: { sequence: number; error: GraphstreamError }[] = [];
    replay.on('failed', (event) => failed.push(event));
    const err = await replay.done.catch((error: unknown) => error);
    expect(err).toBeInstanceOf(GraphstreamError);
    expect(err).toMatchObject({ code: 'conflict', details: { sequence: 3 }, message: expect.stringMatching(/entry 3 failed to apply.*duplicated primary key/) });
    expect(failed).toEqual([{ sequence: 3, error: err }]);
    expect(await metrics.toPrometheus()).toMatch(/graphstream_kuzu_apply_failures_total\{db="graph"\} 1/);
    expect(await metrics.toPrometheus()).toMatch(/graphstream_kuzu_applied_sequence\{db="graph"\} 2/);
    expect((await readPosition(replica.connection)).sequence).toBe(2);
    expect(await runStatement(replica.connection, 'MATCH (n:Item) RETURN count(*) AS n', {})).toEqual([{ n: 1 }]);
    // and again on restart: it stops at the same entry, nothing applied twice
    const again = replayIntoKuzu({ follower, connection: replica.connection, tail: { pollIntervalMs: 10 } });
    await expect(again.done).rejects.toMatchObject({ details: { sequence: 3 } });
    expect(await runStatement(replica.connection, 'MATCH (n:Item) RETURN count(*) AS n', {})).toEqual([{ n: 1 }]);
    await uploader.stop();
    await journal.close();
    await replica.close();
  });

  test('failover: a replica replayed into is promoted, openKuzuLeader on its journal and database continues the chain, and a third database following it stays equal', async () => {
    const storage = new LocalStorage(fresh('store'));
    const db = await openDatabase(fresh('leader-db'));
    const journal = await Journal.open(fresh('leader-journal'));
    const uploader = new Uploader({ journal, storage, db: DB, sealIntervalMs: 3_600_000, lease: { ttlMs: 3000 } });
    await uploader.start();
    const leader = await openKuzuLeader({ connection: db.connection, journal });
    for (const statement of SCHEMA) await leader.mutate(statement);
    for (let id = 0; id < 50; id++) await leader.mutate('CREATE (:Item {id: $id, c: 0, dt: $dt})', { id, dt: ParamValue.date('2020-01-01') });
    await journal.sealForUpload();
    await uploader.sync();
    // the replica replays part of what is shipped; more is shipped, then the leader hands over
    const replicaDb = await openDatabase(fresh('replica-db'));
    const replicaDir = fresh('replica-journal');
    const standby = new Follower({ storage, db: DB, dir: replicaDir });
    await replayUntil(standby, replicaDb, 30);
    const replicaAt = (await readPosition(replicaDb.connection)).sequence;
    for (let id = 0; id < 50; id++) await leader.mutate('MATCH (n:Item) WHERE n.id = $id SET n.c = n.c + 1', { id });
    await journal.sealForUpload();
    await uploader.release();
    const before = await dump(db.connection);
    const tip = journal.sequence;
    await journal.close();
    await db.close();

    // the Follower that replayed promotes: its catch-up lists storage again (segments came after its tail stopped)
    const promotion = await standby.promote({ lease: { ttlMs: 3000 } });
    expect(promotion.journal.sequence).toBe(tip);
    const promoted = await openKuzuLeader({ connection: replicaDb.connection, journal: promotion.journal });
    expect(promoted.redone).toBe(tip - replicaAt);
    expect(await dump(replicaDb.connection)).toEqual(before);
    for (let id = 0; id < 50; id += 2) await promoted.mutate('MATCH (n:Item) WHERE n.id = $id SET n.c = n.c + 10', { id });
    await promoted.mutate('CREATE (:Item {id: 1000, c: 0})');
    expect(promoted.position.sequence).toBe(tip + 26);
    await promotion.journal.sealForUpload();
    await promotion.uploader.sync();

    const third = await openDatabase(fresh('third-db'));
    const follower = new Follower({ storage, db: DB, dir: fresh('third-journal') });
    await replayUntil(follower, third, tip + 26);
    const after = await dump(replicaDb.connection);
    expect(after).not.toEqual(before);
    expect(await dump(third.connection)).toEqual(after);
    expect(await readPosition(third.connection)).toEqual({ sequence: tip + 26, chainHash: promotion.journal.chainHash });

    await promotion.uploader.release();
    await promotion.journal.close();
    await replicaDb.close();
    await third.close();
  });
});
