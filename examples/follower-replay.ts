/**
 * A replica: a Follower downloads and verifies what the leader shipped, and the application
 * replays each mutation into its own copy of the graph (here a Map standing in for a database).
 * The follower's position is persisted in its directory, so a restart continues where it stopped.
 *
 *   node follower-replay.mjs <storage> <replica-dir> [idle-ms]
 *
 * It tails storage until nothing new has arrived for idle-ms (default 2000), then stops.
 */
import { Follower, openStorage } from 'graphstream';

const [storageUrl, replicaDir, idleArg = '2000'] = process.argv.slice(2);
if (storageUrl === undefined || replicaDir === undefined) {
  console.error('usage: follower-replay <storage> <replica-dir> [idle-ms]');
  process.exitCode = 2;
} else {
  const storage = await openStorage(storageUrl);
  const follower = new Follower({ storage, prefix: 'wal/', db: 'people', dir: replicaDir });
  const people = new Map<bigint, { name: string; born: string }>();
  // close() ends the tail (normally, its position persisted) once nothing new came for idle-ms
  let idle = setTimeout(() => void follower.close(), Number(idleArg));
  try {
    for await (const { sequence, entry } of follower.tail({ pollIntervalMs: 100 })) {
      clearTimeout(idle);
      idle = setTimeout(() => void follower.close(), Number(idleArg));
      // a real replica runs entry.query with entry.params against its database
      const params = new Map(entry.params);
      const [id, name, born] = [params.get('id'), params.get('name'), params.get('born')];
      if (id?.type !== 'int' || name?.type !== 'string' || born?.type !== 'date') {
        throw new Error(`entry ${sequence}: unexpected parameters for ${entry.query}`);
      }
      people.set(id.value, { name: name.value, born: born.value });
    }
  } finally {
    clearTimeout(idle);
    await storage.close?.();
  }
  const { sequence, chainHash } = follower.position;
  console.log(JSON.stringify({ people: people.size, sequence, chainHash: chainHash?.toString('hex') }));
}
