/**
 * A focused probe of target 17.1 (issue 17), outside the suite: the Uploader (directory mode,
 * native core, concurrency 4) shipping the same sealed segments (4 MiB of entries each) plaintext
 * and encrypted to moto on loopback, through S3Storage and ObjectStoreStorage, in `pairs`
 * interleaved pairs (the order inside a pair alternates), each pair's own encrypted/plaintext
 * ratio printed and their median. More pairs than the group's `--quick` 2, so that on a loaded
 * machine the median of the per-pair ratios means something. Bundle it in the tree to measure
 * (it imports that tree's ts/), e.g. before and after a change:
 *
 *   npx esbuild bench/probes/encryption-upload.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=.bench-cache/encryption-upload.mjs
 *   node .bench-cache/encryption-upload.mjs 12 6
 *
 * Arguments: segments per upload (default 12), pairs (default 6).
 */
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { nativeCore, segmentFileName, Uploader, type SegmentStorage } from '../../ts/index.js';
import { benchStorages } from '../lib/replication.js';
import { startBenchS3Server } from '../lib/s3-server.js';
import { graphdPayloads, sealJournal } from '../lib/workload.js';

const segments = Number(process.argv[2] ?? 12);
const pairs = Number(process.argv[3] ?? 6);
const native = nativeCore!;
const recipients = [await identityToRecipient(await generateX25519Identity())];
const scratch = await mkdtemp(join(tmpdir(), 'encryption-upload-'));
const shipped = sealJournal(native, graphdPayloads(segments * 14_600, 1, 21), 4 * 1024 * 1024).segments.slice(0, segments);
const source = join(scratch, 'source');
await mkdir(source);
for (const segment of shipped) await writeFile(join(source, segmentFileName(segment.firstSeq)), segment.bytes);
const server = await startBenchS3Server('moto');
let runId = 0;
try {
  await server.createBucket('probe');
  const { s3Storage, objectStore } = await benchStorages(server, 'probe');
  const upload = async (storage: SegmentStorage, encrypt: boolean): Promise<number> => {
    const dir = await mkdtemp(join(scratch, 'ship-'));
    for (const segment of shipped) await link(join(source, segmentFileName(segment.firstSeq)), join(dir, segmentFileName(segment.firstSeq)));
    const uploader = new Uploader({ directory: dir, storage, db: 'probe', prefix: `r${runId++}/`, core: native, concurrency: 4, ...(encrypt ? { encryption: { recipients } } : {}) });
    const start = performance.now();
    const cpu = process.cpuUsage();
    await uploader.sync();
    const ms = performance.now() - start;
    const used = process.cpuUsage(cpu);
    console.log(`  ${encrypt ? 'encrypted' : 'plaintext'} wall ${ms.toFixed(0)} ms, cpu ${((used.user + used.system) / 1000).toFixed(0)} ms`);
    await uploader.stop();
    if (uploader.stats().succeeded !== shipped.length) throw new Error(`shipped ${uploader.stats().succeeded} of ${shipped.length}`);
    await rm(dir, { recursive: true, force: true });
    return ms;
  };
  for (const [name, storage] of [['S3Storage', s3Storage], ['ObjectStoreStorage', objectStore]] as const) {
    await upload(storage, false); // warm-up
    await upload(storage, true);
    const ratios: number[] = [];
    for (let pair = 0; pair < pairs; pair++) {
      const order = pair % 2 === 0 ? [false, true] : [true, false];
      const times = new Map<boolean, number>();
      for (const encrypt of order) times.set(encrypt, await upload(storage, encrypt));
      ratios.push(times.get(true)! / times.get(false)!);
      console.log(`${name} pair ${pair + 1}: plaintext ${times.get(false)!.toFixed(0)} ms, encrypted ${times.get(true)!.toFixed(0)} ms, ratio ${ratios.at(-1)!.toFixed(3)}`);
    }
    const sorted = [...ratios].sort((a, b) => a - b);
    const median = sorted.length % 2 ? sorted[sorted.length >> 1]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    console.log(`${name}: median encrypted/plaintext ${median.toFixed(3)} (+${((median - 1) * 100).toFixed(1)}%) over ${pairs} pairs; range ${sorted[0]!.toFixed(3)}..${sorted.at(-1)!.toFixed(3)}`);
  }
} finally {
  await server.stop();
  await rm(scratch, { recursive: true, force: true });
}
process.exit(0);
