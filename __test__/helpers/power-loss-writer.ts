/**
 * Child process of __test__/power-loss.test.ts (bundled with esbuild, run with node), working on
 * the lazy file system until it is killed:
 *
 *   power-loss-writer <native|pure> <dir> <segment bytes> write <store> <durability> <round>
 *       appends from 4 concurrent callers to the journal in <dir> while an Uploader ships its
 *       sealed segments to a LocalStorage in <store>; prints `start <seq>`, `ack <seq> <i>` for
 *       each acknowledged append (query params {round, i}), and, with durability 'interval' or
 *       'none', `flushed <seq>` after each flush() that followed the acknowledgement of <seq>
 *   power-loss-writer <native|pure> <dir> <segment bytes> recover
 *       opens the journal (recovery) and closes it; prints `opened <seq>` and `closed`
 *   power-loss-writer <native|pure> <dir> <segment bytes> rotate
 *       durability 'none', slow sealing (below): appends 2 entries and flushes, appends a batch
 *       of 1000 through several rotations, then fsyncs the newest segment and the directory (as
 *       the kernel's writeback may have: a power loss can keep any unsynced write), prints
 *       `rotated <seq>`, waits
 *   power-loss-writer <native|pure> <dir> <segment bytes> flush
 *       durability 'none', slow sealing: appends one batch of 1000 entries, through several
 *       rotations, calls flush() at once, prints `flushed <seq>` when it resolves, waits
 */
import { randomBytes } from 'node:crypto';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Core } from '../../ts/core/core.js';
import { syncDirectory } from '../../ts/journal/durable-fs.js';
import { Journal, type JournalOptions } from '../../ts/journal/journal.js';
import { LocalStorage } from '../../ts/storage/local.js';
import { Uploader } from '../../ts/replication/uploader.js';
import { loadCore, say } from './child-core.js';

const [kind, dir, segmentBytes, mode, store, durability, round] = process.argv.slice(2);
const maxSegmentBytes = Number(segmentBytes);

async function write(core: Core): Promise<void> {
  const options = { core, maxSegmentBytes, durability: durability as JournalOptions['durability'] };
  const journal = await Journal.open(dir!, options);
  say(`start ${journal.sequence}`);
  const uploader = new Uploader({ journal, storage: new LocalStorage(store!), db: 'db', sealIntervalMs: 100 });
  uploader.on('error', () => undefined);
  await uploader.start();
  let acknowledged = 0;
  let counter = 0;
  const appenders = Array.from({ length: 4 }, async () => {
    for (;;) {
      const i = counter++;
      const { sequence } = await journal.append({
        query: 'CREATE (:Item {round: $round, i: $i, pad: $pad})',
        params: { round: Number(round), i, pad: 'x'.repeat((i * 37) % 300) },
      });
      acknowledged = Math.max(acknowledged, sequence);
      say(`ack ${sequence} ${i}`);
    }
  });
  if (durability !== 'fsync') {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const before = acknowledged;
      await journal.flush();
      say(`flushed ${before}`);
    }
  }
  await Promise.all(appenders);
}

async function recover(core: Core): Promise<void> {
  const journal = await Journal.open(dir!, { core, maxSegmentBytes });
  say(`opened ${journal.sequence}`);
  await journal.close();
  say('closed');
}

const waitToBeKilled = () => new Promise<never>(() => setInterval(() => undefined, 1000));

/** an entry of 2 KiB that does not compress: with zstd level 19, sealing takes long enough that segments wait for it */
const incompressible = (i: number) => ({ query: 'CREATE (:Item {i: $i, pad: $pad})', params: { i, pad: randomBytes(1500).toString('base64') } });

async function slowSealing(core: Core): Promise<Journal> {
  return Journal.open(dir!, { core, maxSegmentBytes, durability: 'none', compression: { zstd: 19 } });
}

async function rotate(core: Core): Promise<void> {
  const journal = await slowSealing(core);
  await journal.appendBatch([incompressible(0), incompressible(1)]);
  await journal.flush();
  await journal.appendBatch(Array.from({ length: 1000 }, (_, i) => incompressible(i + 2)));
  const segments = (await readdir(dir!)).filter((name) => name.endsWith('.hadbj')).sort();
  const newest = await open(join(dir!, segments.at(-1)!), 'r');
  await newest.sync();
  await newest.close();
  await syncDirectory(dir!);
  say(`rotated ${journal.sequence}`);
  await waitToBeKilled();
}

async function flush(core: Core): Promise<void> {
  const journal = await slowSealing(core);
  await journal.appendBatch(Array.from({ length: 1000 }, (_, i) => incompressible(i)));
  await journal.flush();
  say(`flushed ${journal.sequence}`);
  await waitToBeKilled();
}

const core = await loadCore(kind);
const modes: Record<string, (core: Core) => Promise<void>> = { write, recover, rotate, flush };
await modes[mode!]!(core);
