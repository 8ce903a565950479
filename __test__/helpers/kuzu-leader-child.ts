/**
 * Child process of __test__/kuzu-crash.test.ts (bundled with esbuild, run with node): a Kuzu
 * leader incrementing counters.
 *
 *   kuzu-leader-child <dbDir> <journalDir> <storeDir> <mutations> [stopAtSequence]
 *
 * Opens the database and the journal (durability 'fsync') and the leader (printing
 * `opened <redone> <sequence>`), creates the schema and 10 counters when the journal is empty,
 * then runs `mutations` counter increments, printing `acked <sequence>` after each. With
 * stopAtSequence, the entry with that sequence is appended and then the child stops, between the
 * append and the COMMIT, printing `stopped <sequence>`, until it is killed. At the end it ships
 * everything to the LocalStorage and prints `done <sequence>`.
 */
import { Journal } from '../../ts/journal/journal.js';
import { openKuzuLeader } from '../../ts/kuzu/leader.js';
import { Uploader } from '../../ts/replication/uploader.js';
import { LocalStorage } from '../../ts/storage/local.js';
import { openDatabase } from './kuzu.js';

const [dbDir, journalDir, storeDir, mutations, stopAt] = process.argv.slice(2);
const say = (line: string) => process.stdout.write(`${line}\n`);

async function lead(): Promise<void> {
  const db = await openDatabase(dbDir!);
  const journal = await Journal.open(journalDir!, { maxSegmentBytes: 4096 });
  const uploader = new Uploader({ journal, storage: new LocalStorage(storeDir!), db: 'graph', sealIntervalMs: 3_600_000 });
  await uploader.start();
  const leader = await openKuzuLeader({
    connection: db.connection,
    journal,
    afterAppend: async ({ sequence }) => {
      if (stopAt !== undefined && sequence === Number(stopAt)) {
        say(`stopped ${sequence}`);
        await new Promise(() => undefined);
      }
    },
  });
  say(`opened ${leader.redone} ${leader.position.sequence}`);
  if (leader.position.sequence === 0) {
    await leader.mutate('CREATE NODE TABLE Counter(id INT64 PRIMARY KEY, c INT64)');
    for (let id = 0; id < 10; id++) await leader.mutate('CREATE (:Counter {id: $id, c: 0})', { id });
  }
  for (let i = 0; i < Number(mutations); i++) {
    const { sequence } = await leader.mutate('MATCH (n:Counter) WHERE n.id = $id SET n.c = n.c + 1', { id: i % 10 });
    say(`acked ${sequence}`);
  }
  await uploader.sync();
  await uploader.stop();
  say(`done ${journal.sequence}`);
  await journal.close();
  await db.close();
}

lead().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
