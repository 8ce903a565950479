/**
 * Child of the memory group: writes `bytes` of journal (4 KiB journal-like payloads through
 * appendRaw, 64 callers, durability 'none', default 4 MiB zstd segments) and prints its peak RSS.
 * Usage: memory-writer.mjs <dir> <bytes> <native|pure>
 */
import { Journal, nativeCore, pureCore } from '../../ts/index.js';
import { rawPayloads } from '../lib/workload.js';
import { currentRssKiB, peakRssKiB } from '../lib/rss.js';

const [dir, bytesArg, coreName] = process.argv.slice(2);
const total = Number(bytesArg);
const core = coreName === 'pure' ? pureCore : nativeCore;
if (!dir || !Number.isFinite(total) || core === null) throw new Error('usage: memory-writer.mjs <dir> <bytes> <native|pure>');
const payloads = rawPayloads(256, 4096);
const baselineKiB = currentRssKiB();
const start = performance.now();
const journal = await Journal.open(dir, { core, durability: 'none' });
let written = 0;
let next = 0;
await Promise.all(
  Array.from({ length: 64 }, async () => {
    while (written < total) {
      const payload = payloads[next++ % payloads.length]!;
      written += payload.length;
      await journal.appendRaw(payload);
    }
  }),
);
await journal.close();
const stats = journal.stats();
process.stdout.write(
  `${JSON.stringify({ baselineKiB, peakKiB: peakRssKiB(), seconds: (performance.now() - start) / 1000, bytes: written, sequence: journal.sequence, segments: stats.segmentsSealed })}\n`,
);
