/**
 * `graphstream demo --kuzu`: graphstream/kuzu end to end on real Kuzu databases (the kuzu package
 * must be installed). A leader database journals a stream of typed mutations and ships them under
 * a lease; a replica replays them exactly once; the leader hands over, the replica promotes and
 * continues the chain as the new leader; a third database follows it, and its contents are
 * compared with the new leader's value for value.
 */
import { join } from 'node:path';
import { GraphstreamError } from '../errors.js';
import { openKuzuLeader, replayIntoKuzu, type KuzuConnection, type KuzuLeader, type KuzuParams } from '../kuzu/index.js';
import { ParamValue } from '../kuzu/root.js';
import { runStatement } from '../kuzu/database.js';
import { Follower } from '../replication/follower.js';
import { GraphstreamMetrics, Journal, LocalStorage, Uploader } from '../index.js';
import { formatDuration, formatFields, formatRate, type Output } from './output.js';

const DB = 'kuzu-demo';
const SCHEMA = [
  'CREATE NODE TABLE Person(id INT64 PRIMARY KEY, name STRING, born DATE, seen TIMESTAMP, score DOUBLE, tags STRING[], visits INT64)',
  'CREATE REL TABLE Knows(FROM Person TO Person, since DATE)',
];
const COLUMNS = ['name', 'born', 'seen', 'score', 'tags', 'visits'];

interface KuzuModule {
  Database: new (path: string) => { close(): Promise<void> };
  Connection: new (db: unknown) => KuzuConnection & { close(): Promise<void> };
}

async function loadKuzu(): Promise<KuzuModule> {
  try {
    const loaded = (await import('kuzu')) as unknown as { default?: KuzuModule } & KuzuModule;
    return loaded.default ?? loaded;
  } catch (err) {
    throw new GraphstreamError('invalid_argument', 'graphstream demo --kuzu needs the kuzu package: npm install kuzu', { cause: err });
  }
}

/** The i-th mutation of the demo's stream (deterministic). */
function mutation(i: number, people: number): { query: string; params: KuzuParams } {
  if (i < people) {
    return {
      query: 'CREATE (:Person {id: $id, name: $name, born: $born, seen: $seen, score: $score, tags: $tags, visits: 0})',
      params: {
        id: i,
        name: `person ${i}`,
        born: ParamValue.date(`${1950 + (i % 50)}-0${1 + (i % 9)}-1${i % 10}`),
        seen: new Date(Date.UTC(2026, 0, 1) + i * 1000),
        score: ParamValue.float(i / 4),
        tags: [`t${i % 7}`, `g${i % 3}`],
      },
    };
  }
  const a = (i * 7919) % people;
  if (i % 3 === 0) {
    return { query: 'MATCH (a:Person), (b:Person) WHERE a.id = $a AND b.id = $b CREATE (a)-[:Knows {since: $since}]->(b)', params: { a, b: (a + 1) % people, since: ParamValue.date('2020-02-29') } };
  }
  return { query: 'MATCH (p:Person) WHERE p.id = $id SET p.visits = p.visits + 1, p.seen = $seen', params: { id: a, seen: new Date(Date.UTC(2026, 0, 2) + i) } };
}

async function run(leader: KuzuLeader, from: number, to: number, people: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const { query, params } = mutation(i, people);
    await leader.mutate(query, params);
  }
}

/** Replays into `connection` until its database recorded `sequence`, then stops. */
async function replayTo(follower: Follower, connection: KuzuConnection, sequence: number, metrics: GraphstreamMetrics): Promise<void> {
  const stop = new AbortController();
  const replay = replayIntoKuzu({ follower, connection, signal: stop.signal, metrics, tail: { pollIntervalMs: 20, maxPollIntervalMs: 200 } });
  const caughtUp = new Promise<void>((resolve) => {
    const check = () => ((replay.position?.sequence ?? -1) >= sequence ? resolve() : void setTimeout(check, 10));
    check();
  });
  await Promise.race([caughtUp, replay.done]);
  stop.abort();
  await replay.done.catch((err: unknown) => {
    if ((err as Error).name !== 'AbortError') throw err;
  });
}

/** Every Person and Knows, each value as Kuzu's exact string, sorted. */
async function dump(connection: KuzuConnection): Promise<string[]> {
  const people = await runStatement(connection, `MATCH (p:Person) RETURN p.id AS id, ${COLUMNS.map((c) => `CAST(p.${c} AS STRING) AS ${c}`).join(', ')}`, {});
  const knows = await runStatement(connection, 'MATCH (a:Person)-[k:Knows]->(b:Person) RETURN a.id AS a, b.id AS b, CAST(k.since AS STRING) AS since', {});
  return [...people, ...knows].map((row) => JSON.stringify(row)).sort();
}

export async function runKuzuDemo(options: { dir: string; entries: number; output: Output }): Promise<void> {
  const { dir, entries, output } = options;
  const kuzu = await loadKuzu();
  const storage = new LocalStorage(join(dir, 'store'));
  const metrics = new GraphstreamMetrics({ db: DB });
  const people = Math.max(2, Math.floor(entries / 4));
  const handoverAt = Math.max(people, Math.floor(entries * 0.8));
  const opened: { close(): Promise<void> }[] = [];
  const database = (name: string) => {
    const db = new kuzu.Database(join(dir, name));
    const connection = new kuzu.Connection(db);
    opened.push(connection, db);
    return connection;
  };
  output.print(`graphstream demo --kuzu: ${entries} mutations of a Kuzu database, replicated through ${join(dir, 'store')}`);
  try {
    // the leader
    let started = performance.now();
    const leaderJournal = await Journal.open(join(dir, 'leader-journal'), { maxSegmentBytes: 64 * 1024 });
    const uploader = new Uploader({ journal: leaderJournal, storage, db: DB, lease: { holder: 'demo-leader' }, sealIntervalMs: 200, metrics });
    await uploader.start();
    const leader = await openKuzuLeader({ connection: database('leader-db'), journal: leaderJournal });
    for (const statement of SCHEMA) await leader.mutate(statement);
    await run(leader, 0, handoverAt, people);
    await uploader.sync();
    const leaderMs = performance.now() - started;
    const leaderTip = leader.position.sequence;

    // a replica, exactly once
    started = performance.now();
    const replicaConnection = database('replica-db');
    await replayTo(new Follower({ storage, db: DB, dir: join(dir, 'replica-journal') }), replicaConnection, leaderTip, metrics);
    const replicaMs = performance.now() - started;

    // handover: the leader releases its lease, the replica promotes and goes on
    await uploader.release();
    await leaderJournal.close();
    started = performance.now();
    const promotion = await new Follower({ storage, db: DB, dir: join(dir, 'replica-journal') }).promote({ lease: { holder: 'demo-replica' }, uploader: { sealIntervalMs: 200 } });
    const promoted = await openKuzuLeader({ connection: replicaConnection, journal: promotion.journal });
    await run(promoted, handoverAt, entries, people);
    await promotion.uploader.sync();
    const promotedMs = performance.now() - started;
    const tip = promoted.position;

    // a third database follows across both generations
    started = performance.now();
    const followerConnection = database('follower-db');
    await replayTo(new Follower({ storage, db: DB, dir: join(dir, 'follower-journal') }), followerConnection, tip.sequence, metrics);
    const followerMs = performance.now() - started;
    await promotion.uploader.release();
    await promotion.journal.close();

    const [expected, actual] = [await dump(replicaConnection), await dump(followerConnection)];
    if (expected.length === 0 || expected.join('\n') !== actual.join('\n')) {
      throw new GraphstreamError('conflict', `the follower's database differs from the promoted leader's (${actual.length} rows against ${expected.length})`);
    }
    output.print(
      formatFields([
        ['leader', `${handoverAt + SCHEMA.length} mutations journaled and committed in ${formatDuration(leaderMs)} (${formatRate(handoverAt + SCHEMA.length, leaderMs)}/s)`],
        ['replica', `replayed to sequence ${leaderTip} in ${formatDuration(replicaMs)}`],
        ['promoted', `generation ${promotion.record.generation} from sequence ${promotion.record.startSeq}; ${entries - handoverAt} more mutations in ${formatDuration(promotedMs)}`],
        ['follower', `replayed ${tip.sequence} entries across both generations in ${formatDuration(followerMs)}`],
      ]),
    );
    output.print();
    output.print(`OK: the follower's database equals the promoted leader's, ${expected.length} rows, sequence ${tip.sequence}, chain hash ${tip.chainHash.toString('hex')}`);
  } finally {
    for (const closable of opened) await closable.close().catch(() => undefined);
  }
}
