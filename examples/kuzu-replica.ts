/**
 * A replicated Kuzu database: a leader whose every mutation is journaled inside its transaction
 * and shipped, and a replica that replays them exactly once into its own database.
 *
 *   node kuzu-replica.mjs <work-dir> [people]
 *
 * Writes <work-dir>/leader-db, leader-journal, store, replica-db and replica-journal, then prints
 * what both databases hold as JSON.
 */
import kuzu from 'kuzu';
import { Follower, Journal, LocalStorage, ParamValue, Uploader } from 'graphstream';
import { openKuzuLeader, replayIntoKuzu } from 'graphstream/kuzu';

const [work, peopleArg = '200'] = process.argv.slice(2);
if (work === undefined) {
  console.error('usage: kuzu-replica <work-dir> [people]');
  process.exitCode = 2;
} else {
  const storage = new LocalStorage(`${work}/store`);

  // The leader: a Kuzu database, its journal, and an Uploader shipping the journal.
  const leaderDb = new kuzu.Database(`${work}/leader-db`);
  const journal = await Journal.open(`${work}/leader-journal`); // durability 'fsync'
  const uploader = new Uploader({ journal, storage, db: 'people' });
  await uploader.start();
  const leader = await openKuzuLeader({ connection: new kuzu.Connection(leaderDb), journal });

  if (leader.position.sequence === 0) {
    await leader.mutate('CREATE NODE TABLE Person(id INT64 PRIMARY KEY, name STRING, born DATE, seen TIMESTAMP, visits INT64)');
    await leader.mutate('CREATE REL TABLE Knows(FROM Person TO Person, since DATE)');
  }
  const people = Number(peopleArg);
  for (let id = 1; id <= people; id++) {
    await leader.mutate('MERGE (p:Person {id: $id}) SET p.name = $name, p.born = $born, p.seen = $seen, p.visits = coalesce(p.visits, 0) + 1', {
      id: BigInt(id),
      name: `person ${id}`,
      born: ParamValue.date(`19${String(50 + (id % 50)).padStart(2, '0')}-04-01`),
      seen: new Date(Date.UTC(2026, 0, 1) + id * 60_000), // a JS Date is a TIMESTAMP
    });
    if (id > 1) await leader.mutate('MATCH (a:Person), (b:Person) WHERE a.id = $a AND b.id = $b CREATE (a)-[:Knows {since: $since}]->(b)', { a: id, b: id - 1, since: ParamValue.date('2020-01-01') });
  }
  await uploader.sync(); // everything journaled so far is in storage

  // The replica: replays what is in storage into its own database, then stops.
  const replicaDb = new kuzu.Database(`${work}/replica-db`);
  const replicaConnection = new kuzu.Connection(replicaDb);
  const follower = new Follower({ storage, db: 'people', dir: `${work}/replica-journal` });
  const stop = new AbortController();
  const replay = replayIntoKuzu({ follower, connection: replicaConnection, signal: stop.signal, tail: { pollIntervalMs: 50 } });
  const target = leader.position.sequence;
  const caughtUp = new Promise<void>((resolve) => {
    const check = () => ((replay.position?.sequence ?? -1) >= target ? resolve() : void setTimeout(check, 20));
    check();
  });
  await Promise.race([caughtUp, replay.done]); // done only settles when replay stops (an entry failed)
  stop.abort();
  await replay.done.catch((err: unknown) => {
    if ((err as Error).name !== 'AbortError') throw err;
  });

  const one = async (connection: InstanceType<typeof kuzu.Connection>, query: string) => {
    const result = await connection.query(query);
    const first = Array.isArray(result) ? result[0]! : result;
    const [row] = await first.getAll();
    first.close(); // Kuzu's binding wants every result closed before its database
    return Number(Object.values(row!)[0]); // count() and sum() are bigints (INT128)
  };
  const count = async (connection: InstanceType<typeof kuzu.Connection>) => ({
    people: await one(connection, 'MATCH (p:Person) RETURN count(p)'),
    knows: await one(connection, 'MATCH ()-[k:Knows]->() RETURN count(k)'),
    visits: await one(connection, 'MATCH (p:Person) RETURN sum(p.visits)'),
  });
  const summary = { sequence: leader.position.sequence, leader: await count(new kuzu.Connection(leaderDb)), replica: await count(replicaConnection) };
  await uploader.stop();
  await journal.close();
  console.log(JSON.stringify(summary));
}
