/**
 * Child process of __test__/kuzu-crash.test.ts (bundled with esbuild, run with node): a Kuzu
 * replica replaying a follower of a LocalStorage.
 *
 *   kuzu-replica-child <storeDir> <followerDir> <dbDir> <untilSequence>
 *
 * Prints `start <sequence>` with the sequence the database recorded, `applied <sequence>` after
 * each entry it committed, and `done <sequence>` once the database recorded untilSequence.
 */
import { ensureMetaTable, readPosition } from '../../ts/kuzu/database.js';
import { replayIntoKuzu } from '../../ts/kuzu/replay.js';
import { Follower } from '../../ts/replication/follower.js';
import { LocalStorage } from '../../ts/storage/local.js';
import { openDatabase } from './kuzu.js';

const [storeDir, followerDir, dbDir, until] = process.argv.slice(2);
const say = (line: string) => process.stdout.write(`${line}\n`);

async function replicate(): Promise<void> {
  const db = await openDatabase(dbDir!);
  await ensureMetaTable(db.connection);
  say(`start ${(await readPosition(db.connection)).sequence}`);
  const follower = new Follower({ storage: new LocalStorage(storeDir!), db: 'graph', dir: followerDir!, prefetch: 1 });
  const controller = new AbortController();
  const replay = replayIntoKuzu({ follower, connection: db.connection, signal: controller.signal, tail: { pollIntervalMs: 10, maxPollIntervalMs: 50 } });
  replay.on('applied', ({ sequence }) => {
    say(`applied ${sequence}`);
    if (sequence >= Number(until)) controller.abort();
  });
  await replay.done.catch((err: unknown) => {
    if ((err as Error).name !== 'AbortError') throw err;
  });
  say(`done ${(await readPosition(db.connection)).sequence}`);
  await db.close();
}

replicate().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
