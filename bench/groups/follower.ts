/**
 * Group 4, follower: catch-up of a large journal from moto or versitygw (Follower.catchUp: list, get, verify
 * off-thread, write atomically), native vs pure core, S3Storage vs ObjectStoreStorage, against
 * plain sequential GetObject of the same objects (the reference fetches one object at a time; the
 * follower keeps up to 3 GETs in flight while it verifies and writes, its default prefetch).
 */
import { nativeCore, pureCore, segmentKey, type SegmentStorage } from '../../ts/index.js';
import type { Core } from '../../ts/core/core.js';
import { addTable, MB, type Context } from '../lib/context.js';
import { benchStorages, timedCatchUp } from '../lib/replication.js';
import { startBenchS3Server } from '../lib/s3-server.js';
import { getObject, pool, putObject } from '../lib/s3.js';
import { interleave, nowMs, ratioOf, summarize } from '../lib/stats.js';
import { graphdPayloads, sealJournal } from '../lib/workload.js';

const BUCKET = 'graphstream-bench-follow';
const DB = 'bench';

export async function followerGroup(context: Context): Promise<void> {
  if (nativeCore === null) throw new Error('the native addon did not load (npm run build:native)');
  const quick = context.quick;
  const entries = quick ? 200_000 : 1_000_000;
  const runs = quick ? 2 : 3;
  context.log(`follower: building a ${entries.toLocaleString('en')}-entry journal`);
  // 100k distinct payloads, repeated: the follower verifies chain and CRCs, not payload contents
  const distinct = graphdPayloads(Math.min(entries, 100_000), 1, 33);
  const payloads = Array.from({ length: entries }, (_, i) => distinct[i % distinct.length]!);
  const journal = sealJournal(nativeCore, payloads, 4 * 1024 * 1024);
  const keys = journal.segments.map((s) => segmentKey('', DB, 0, s.firstSeq));
  const objectBytes = journal.segments.reduce((sum, s) => sum + s.bytes.length, 0);

  context.log(`follower: starting ${context.s3Server}, uploading`);
  const server = await startBenchS3Server(context.s3Server);
  try {
    await server.createBucket(BUCKET);
    const client = server.client();
    await pool(keys.length, 8, (i) => putObject(client, BUCKET, keys[i]!, journal.segments[i]!.bytes));
    const { s3Storage, objectStore } = await benchStorages(server, BUCKET);

    const plainGet = async (): Promise<number> => {
      const start = nowMs();
      let bytes = 0;
      for (const key of keys) bytes += (await getObject(client, BUCKET, key)).byteLength;
      const seconds = (nowMs() - start) / 1000;
      if (bytes !== objectBytes) throw new Error(`GetObject returned ${bytes} bytes, expected ${objectBytes}`);
      return seconds;
    };
    const catchUp = async (core: Core, storage: SegmentStorage): Promise<number> => (await timedCatchUp(context.scratch, { storage, db: DB, core }, entries)).wall;
    context.log(`follower: ${keys.length} segments, ${(objectBytes / 1048576).toFixed(1)} MiB of objects; catch-up runs`);
    const times = await interleave(runs, {
      plain: plainGet,
      nativeS3: () => catchUp(nativeCore!, s3Storage),
      pureS3: () => catchUp(pureCore, s3Storage),
      nativeObjectStore: () => catchUp(nativeCore!, objectStore),
    });
    const throughput = (seconds: ReturnType<typeof summarize>, units: number) => {
      const values = seconds.samples.map((s) => units / s);
      return summarize(values);
    };
    const row = (label: string, key: keyof typeof times) => [
      label,
      throughput(times[key], entries),
      throughput(times[key], objectBytes / MB),
      times[key],
      key === 'plain' ? null : ratioOf(throughput(times[key], 1), throughput(times.plain, 1)),
    ];
    addTable(context, {
      group: 'follower',
      title: `4. Follower catch-up — ${entries.toLocaleString('en')} entries, ${keys.length} segments, ${(objectBytes / 1048576).toFixed(1)} MiB of objects (${(journal.unsealedBytes / 1048576).toFixed(0)} MiB of entries) from ${server.name}`,
      columns: ['reader', 'entries/s', 'MB/s (objects)', 'seconds', 'vs plain GetObject'],
      rows: [
        row('plain GetObject, one at a time (aws-sdk)', 'plain'),
        row('Follower.catchUp, native core, S3Storage', 'nativeS3'),
        row('Follower.catchUp, pure core, S3Storage', 'pureS3'),
        row('Follower.catchUp, native core, ObjectStoreStorage', 'nativeObjectStore'),
      ],
      notes: [`median of ${runs} interleaved runs; catch-up = list + get + decode/verify every segment + atomic write (fsync) into a fresh directory`],
    });
    context.figures['follow native S3Storage'] = ratioOf(throughput(times.nativeS3, 1), throughput(times.plain, 1));
    context.figures['follow native ObjectStoreStorage'] = ratioOf(throughput(times.nativeObjectStore, 1), throughput(times.plain, 1));
    await s3Storage.close();
    client.destroy();
  } finally {
    await server.stop();
  }
}
