/**
 * Group kuzu (issue 20): graphstream/kuzu against plain Kuzu, on real databases in the scratch
 * directory. The same statements (the schema's CREATE NODE TABLE, then typed creates and updates)
 * run from a fresh database, each variant timing all of them
 *  - plainly: prepare + execute of each statement as graphstream/kuzu binds it, auto-commit, one
 *    at a time (what an application does without replication), and the same with each query
 *    text prepared once;
 *  - as the design floor: Kuzu alone doing what the design asks of it per statement
 *    (prepared once: BEGIN, the statement, the meta table row, COMMIT), no journal and no
 *    graphstream code: what no leader or replica of that design can beat;
 *  - through the leader: `mutate` one at a time (c=1): BEGIN, execute, journal append with
 *    fsync, meta table update, COMMIT;
 *  - through replay: `replayIntoKuzu` of that journal from a LocalStorage into a fresh database
 *    (each entry in its own transaction with the meta update).
 * Targets: mutate ≤ 1.3× the plain execute's time per statement; replay ≥ 0.8× its entries/s.
 * Skipped, with a note, when the kuzu package is not installed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Follower, Journal, LocalStorage, ParamValue, Uploader } from '../../ts/index.js';
import { META_TABLE } from '../../ts/kuzu/database.js';
import { bindForKuzu, openKuzuLeader, replayIntoKuzu, scanCypher, toParamsInput, type KuzuConnection, type KuzuParams } from '../../ts/kuzu/index.js';
import type { KuzuBound, KuzuPreparedStatement, KuzuQueryResult } from '../../ts/kuzu/index.js';
import { addTable, addTarget, type Context } from '../lib/context.js';
import { interleave, nowMs, ratioOf, summarize, type Summary } from '../lib/stats.js';

interface KuzuModule {
  Database: new (path: string, bufferPoolSize?: number, compression?: boolean, readOnly?: boolean, maxDbSize?: number) => { close(): Promise<void> };
  Connection: new (db: unknown) => KuzuConnection & { close(): Promise<void> };
}

const SCHEMA = 'CREATE NODE TABLE Person(id INT64 PRIMARY KEY, name STRING, born DATE, seen TIMESTAMP, score DOUBLE, visits INT64)';
// graphstream/kuzu's meta table and the row each entry inserts (ts/kuzu/database.ts), spelled out
// here so that the design floor runs Kuzu alone
const META_SCHEMA = `CREATE NODE TABLE ${META_TABLE}(id INT64 PRIMARY KEY, seq INT64, hash STRING)`;
const META_ROW = `CREATE (:${META_TABLE} {id: $seq, seq: $seq, hash: $hash})`;

function statements(count: number): { query: string; params: KuzuParams }[] {
  const people = Math.floor(count / 2);
  return Array.from({ length: count }, (_, i): { query: string; params: KuzuParams } =>
    i < people
      ? {
          query: 'CREATE (:Person {id: $id, name: $name, born: $born, seen: $seen, score: $score, visits: 0})',
          params: { id: i, name: `person ${i}`, born: ParamValue.date('1990-04-01'), seen: new Date(1_700_000_000_000 + i), score: ParamValue.float(i / 3) },
        }
      : { query: 'MATCH (p:Person) WHERE p.id = $id SET p.visits = p.visits + 1, p.seen = $seen', params: { id: (i * 31) % people, seen: new Date(1_700_000_000_000 - i) } },
  );
}

/** Executes a prepared statement and reads and closes its results, as graphstream/kuzu does. */
async function executeAll(connection: KuzuConnection, statement: KuzuPreparedStatement, values: Record<string, KuzuBound>): Promise<void> {
  if (!statement.isSuccess()) throw new Error(statement.getErrorMessage());
  const result = await connection.execute(statement, values);
  for (const one of Array.isArray(result) ? result : [result]) {
    await one.getAll();
    (one as KuzuQueryResult).close?.();
  }
}

export async function kuzuGroup(context: Context): Promise<void> {
  let kuzu: KuzuModule;
  try {
    const loaded = (await import('kuzu')) as unknown as { default?: KuzuModule } & KuzuModule;
    kuzu = loaded.default ?? loaded;
  } catch {
    context.log('kuzu: the kuzu package is not installed; skipped');
    return;
  }
  const count = context.quick ? 300 : 1000;
  const runs = context.quick ? 2 : 3;
  // the schema is the first statement of every variant, timed with the rest: replay applies it as
  // the journal's first entry
  const work = [{ query: SCHEMA, params: {} }, ...statements(count)];
  const total = work.length;
  // the plain variant binds each statement as graphstream/kuzu does, so Kuzu does the same work
  const bound = work.map(({ query, params }) => bindForKuzu(query, scanCypher(query), ParamValue.map(toParamsInput(params)).value));
  let n = 0;
  const fresh = async (name: string) => {
    const dir = await mkdtemp(join(context.scratch, `kuzu-${name}-${n++}-`));
    const db = new kuzu.Database(join(dir, 'db'), 256 * 1024 * 1024, true, false, 2 ** 34);
    const connection = new kuzu.Connection(db);
    return {
      dir,
      connection,
      close: async () => {
        await connection.close();
        await db.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  };

  // one shipped journal of the workload, for the replay runs
  const source = await fresh('source');
  const storeDir = join(source.dir, 'store');
  {
    const journal = await Journal.open(join(source.dir, 'journal'));
    const uploader = new Uploader({ journal, storage: new LocalStorage(storeDir), db: 'bench', sealIntervalMs: 3_600_000 });
    await uploader.start();
    const leader = await openKuzuLeader({ connection: source.connection, journal });
    for (const { query, params } of work) await leader.mutate(query, params);
    await uploader.sync();
    await uploader.stop();
    await journal.close();
  }

  // CPU time of the whole process (every thread: Kuzu's, the journal writer's, libuv's) per run:
  // less at the mercy of the other processes on a shared machine than the wall time
  const cpu: Record<string, number[]> = {};
  const timed = async (name: string, body: () => Promise<void>): Promise<number> => {
    const startCpu = process.cpuUsage();
    const start = nowMs();
    await body();
    const seconds = (nowMs() - start) / 1000;
    const used = process.cpuUsage(startCpu);
    (cpu[name] ??= []).push((used.user + used.system) / 1e6);
    return seconds;
  };

  context.log(`kuzu: ${total} statements per run, ${runs} interleaved runs`);
  const times = await interleave(runs, {
    plain: async () => {
      const db = await fresh('plain');
      const seconds = await timed('plain', async () => {
        for (const statement of bound) await executeAll(db.connection, await db.connection.prepare(statement.query), statement.values);
      });
      await db.close();
      return seconds;
    },
    reused: async () => {
      const db = await fresh('reused');
      const prepared = new Map<string, KuzuPreparedStatement>();
      const seconds = await timed('reused', async () => {
        for (const statement of bound) {
          let one = prepared.get(statement.query);
          if (one === undefined) prepared.set(statement.query, (one = await db.connection.prepare(statement.query)));
          await executeAll(db.connection, one, statement.values);
        }
      });
      await db.close();
      return seconds;
    },
    floor: async () => {
      const db = await fresh('floor');
      await executeAll(db.connection, await db.connection.prepare(META_SCHEMA), {});
      const prepared = new Map<string, KuzuPreparedStatement>();
      const run = async (query: string, values: Record<string, KuzuBound>) => {
        let one = prepared.get(query);
        if (one === undefined) prepared.set(query, (one = await db.connection.prepare(query)));
        await executeAll(db.connection, one, values);
      };
      const hash = 'ab'.repeat(32);
      const seconds = await timed('floor', async () => {
        let seq = 0;
        for (const statement of bound) {
          await run('BEGIN TRANSACTION', {});
          await run(statement.query, statement.values);
          await run(META_ROW, { seq: ++seq, hash });
          await run('COMMIT', {});
        }
      });
      await db.close();
      return seconds;
    },
    mutate: async () => {
      const db = await fresh('leader');
      const journal = await Journal.open(join(db.dir, 'journal'));
      const leader = await openKuzuLeader({ connection: db.connection, journal });
      const seconds = await timed('mutate', async () => {
        for (const { query, params } of work) await leader.mutate(query, params);
      });
      await journal.close();
      await db.close();
      return seconds;
    },
    replay: async () => {
      const db = await fresh('replica');
      const follower = new Follower({ storage: new LocalStorage(storeDir), db: 'bench', dir: join(db.dir, 'follower') });
      const stop = new AbortController();
      const seconds = await timed('replay', async () => {
        const replay = replayIntoKuzu({ follower, connection: db.connection, signal: stop.signal, tail: { pollIntervalMs: 5, maxPollIntervalMs: 5 } });
        replay.on('applied', ({ sequence }) => sequence === total && stop.abort());
        await replay.done.catch((err: unknown) => {
          if ((err as Error).name !== 'AbortError') throw err;
        });
      });
      await db.close();
      return seconds;
    },
  });
  await source.close();

  const perStatementUs = (summary: Summary, units: number) => summarize(summary.samples.map((s) => (s / units) * 1e6));
  const perSecond = (summary: Summary, units: number) => summarize(summary.samples.map((s) => units / s));
  // the warm-up round is the first sample of each
  const cpuUs = (name: string, units: number) => summarize(cpu[name]!.slice(1).map((s) => (s / units) * 1e6));
  const mutateRatio = ratioOf(times.mutate, times.plain);
  const replayRatio = ratioOf(perSecond(times.replay, total), perSecond(times.plain, total));
  const mutateReused = ratioOf(times.mutate, times.reused);
  const replayReused = ratioOf(perSecond(times.replay, total), perSecond(times.reused, total));
  const floorReused = ratioOf(times.floor, times.reused);
  const mutateFloor = ratioOf(times.mutate, times.floor);
  const replayFloor = ratioOf(perSecond(times.replay, total), perSecond(times.floor, total));
  addTable(context, {
    group: 'kuzu',
    title: `20. graphstream/kuzu — ${total} statements (the schema, then ${count} typed: half creates, half updates), kuzu ${String((kuzu as unknown as { VERSION?: string }).VERSION ?? '')}`,
    columns: ['variant', 'µs per statement', 'statements/s', 'vs plain execute', 'vs plain, prepared once', 'vs the design floor', 'CPU µs per statement'],
    rows: [
      ['plain Kuzu prepare + execute, auto-commit, c=1', perStatementUs(times.plain, total), perSecond(times.plain, total), null, null, null, cpuUs('plain', total)],
      ['plain Kuzu execute, prepared once per query text, auto-commit, c=1', perStatementUs(times.reused, total), perSecond(times.reused, total), null, null, null, cpuUs('reused', total)],
      ['design floor: Kuzu alone, prepared once, BEGIN + statement + meta row + COMMIT, c=1', perStatementUs(times.floor, total), perSecond(times.floor, total), null, floorReused, null, cpuUs('floor', total)],
      ["leader mutate, c=1 (transaction + journal append 'fsync' + meta update)", perStatementUs(times.mutate, total), perSecond(times.mutate, total), mutateRatio, mutateReused, mutateFloor, cpuUs('mutate', total)],
      ['replayIntoKuzu from a LocalStorage (transaction + meta update per entry)', perStatementUs(times.replay, total), perSecond(times.replay, total), replayRatio, replayReused, replayFloor, cpuUs('replay', total)],
    ],
    notes: [
      `median of ${runs} interleaved runs, each on a fresh database; "vs plain" is time per statement for mutate, entries/s for replay`,
      'graphstream/kuzu prepares each query text once per connection; the targets compare with the plain prepare + execute of every statement, "vs plain, prepared once" with a plain run that reuses prepared statements too',
      'the design floor is what the issue fixes (each statement in its own transaction with its meta table row) done by Kuzu alone: a leader also appends to the journal with fsync, a replica also reads and verifies the journal',
      'CPU: user + system time of the whole process (all threads) over the timed loop, per statement; replay includes the follower reading the store',
    ],
  });
  addTarget(context, {
    id: 20,
    target: 'graphstream/kuzu leader mutate at c=1 vs plain Kuzu execute',
    measured:
      `${mutateRatio.median.toFixed(2)}× the time per statement (${mutateReused.median.toFixed(2)}× a plain run that reuses prepared statements, ` +
      `whose floor, Kuzu alone in the design's transaction, is ${floorReused.median.toFixed(2)}×; ${mutateFloor.median.toFixed(2)}× that floor)`,
    required: '≤ 1.3×',
    met: mutateRatio.median <= 1.3,
    value: mutateRatio.median,
  });
  addTarget(context, {
    id: 20,
    target: 'replayIntoKuzu entries/s vs executing the statements directly',
    measured:
      `${replayRatio.median.toFixed(2)}× (${replayReused.median.toFixed(2)}× a plain run that reuses prepared statements, ` +
      `whose floor is ${(1 / floorReused.median).toFixed(2)}×; ${replayFloor.median.toFixed(2)}× that floor)`,
    required: '≥ 0.8×',
    met: replayRatio.median >= 0.8,
    value: replayRatio.median,
  });
}
