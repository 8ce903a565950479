/**
 * Child of the memory group: a Follower replays a whole journal from a LocalStorage root (tail,
 * raw records, until `lastSeq`) and prints its peak RSS.
 * Usage: memory-follower.mjs <storage-root> <dir> <lastSeq> <native|pure>
 */
import { Follower, LocalStorage, nativeCore, pureCore } from '../../ts/index.js';
import { currentRssKiB, peakRssKiB } from '../lib/rss.js';

const [root, dir, lastSeqArg, coreName] = process.argv.slice(2);
const lastSeq = Number(lastSeqArg);
const core = coreName === 'pure' ? pureCore : nativeCore;
if (!root || !dir || !Number.isSafeInteger(lastSeq) || core === null) throw new Error('usage: memory-follower.mjs <root> <dir> <lastSeq> <native|pure>');
const baselineKiB = currentRssKiB();
const start = performance.now();
const follower = new Follower({ dir, storage: new LocalStorage(root), db: 'bench', core });
let entries = 0;
let payloadBytes = 0;
for await (const record of follower.tail({ raw: true, pollIntervalMs: 50 })) {
  entries++;
  payloadBytes += record.payload.length;
  if (record.sequence >= lastSeq) break;
}
if (entries !== lastSeq) throw new Error(`replayed ${entries} of ${lastSeq} entries`);
process.stdout.write(
  `${JSON.stringify({ baselineKiB, peakKiB: peakRssKiB(), seconds: (performance.now() - start) / 1000, entries, payloadBytes })}\n`,
);
