/**
 * Group 3, shipping: the Uploader through S3Storage (aws-sdk) and ObjectStoreStorage (native
 * object_store) against plain PutObject calls of the same bytes at the same concurrency, all
 * against a local moto server started here. A second reference, the same PutObject calls with
 * `If-None-Match: *`, separates the cost of the create-only condition (which the Uploader must
 * keep) from the Uploader's own work. Runs interleaved; objects deleted between runs.
 */
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { nativeCore, ObjectStoreStorage, S3Storage, segmentFileName, Uploader, type SegmentStorage } from '../../ts/index.js';
import { addTable, MB, type Context } from '../lib/context.js';
import { CREDENTIALS, REGION, startMoto } from '../lib/moto.js';
import type { Cell } from '../lib/report.js';
import { deleteObjects, pool, putObject } from '../lib/s3.js';
import { interleave, nowMs, ratioOf, type Summary } from '../lib/stats.js';
import { graphdPayloads, sealJournal } from '../lib/workload.js';

const BUCKET = 'graphstream-bench-ship';

export async function shippingGroup(context: Context): Promise<void> {
  if (nativeCore === null) throw new Error('the native addon did not load (npm run build:native)');
  const quick = context.quick;
  const runs = quick ? 2 : 4;
  const segmentCount = quick ? 12 : 32;
  context.log(`shipping: sealing ${segmentCount} segments of 4 MiB`);
  const perSegment = 14_600;
  const journal = sealJournal(nativeCore, graphdPayloads(segmentCount * perSegment, 1, 21), 4 * 1024 * 1024);
  const segments = journal.segments.slice(0, segmentCount);
  const totalBytes = segments.reduce((sum, s) => sum + s.bytes.length, 0);
  const source = join(context.scratch, 'ship-source');
  await mkdir(source, { recursive: true });
  for (const segment of segments) await writeFile(join(source, segmentFileName(segment.firstSeq)), segment.bytes);

  context.log('shipping: starting moto');
  const moto = await startMoto();
  try {
    await moto.createBucket(BUCKET);
    const client = moto.client();
    const s3Storage = new S3Storage({ bucket: BUCKET, endpoint: moto.endpoint, region: REGION, credentials: CREDENTIALS, forcePathStyle: true });
    const objectStore = await ObjectStoreStorage.open(`s3://${BUCKET}`, { endpoint: moto.endpoint, region: REGION, credentials: CREDENTIALS, forcePathStyle: true });
    let runId = 0;

    const clearBucket = async () => {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
      let keys = (listed.Contents ?? []).map((o) => o.Key!);
      while (keys.length > 0) {
        await deleteObjects(client, BUCKET, keys);
        const more = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
        keys = (more.Contents ?? []).map((o) => o.Key!);
      }
    };

    /** Seconds to ship every segment with the Uploader (sidecar over a fresh copy of the directory). */
    const uploaderRun = async (storage: SegmentStorage, concurrency: number): Promise<number> => {
      const dir = await mkdtemp(join(context.scratch, 'ship-'));
      for (const segment of segments) await link(join(source, segmentFileName(segment.firstSeq)), join(dir, segmentFileName(segment.firstSeq)));
      const uploader = new Uploader({ directory: dir, storage, db: 'bench', prefix: `run${runId++}/`, concurrency });
      const start = nowMs();
      await uploader.sync();
      const seconds = (nowMs() - start) / 1000;
      await uploader.stop();
      if (uploader.stats().succeeded !== segments.length) throw new Error(`uploader shipped ${uploader.stats().succeeded} of ${segments.length} segments`);
      await rm(dir, { recursive: true, force: true });
      await clearBucket();
      return seconds;
    };
    const plainRun = async (concurrency: number, options: { ifNoneMatch?: '*' } = {}): Promise<number> => {
      const prefix = `plain${runId++}/`;
      const start = nowMs();
      await pool(segments.length, concurrency, (i) => putObject(client, BUCKET, `${prefix}${String(i).padStart(6, '0')}.hadbj`, segments[i]!.bytes, options));
      const seconds = (nowMs() - start) / 1000;
      await clearBucket();
      return seconds;
    };

    const rows: Cell[][] = [];
    const ratios: Record<number, { s3: Summary; os: Summary }> = {};
    for (const concurrency of [1, 4, 16]) {
      context.log(`shipping: concurrency ${concurrency}`);
      const toMBs = (seconds: number) => totalBytes / MB / seconds;
      const result = await interleave(runs, {
        plain: async () => toMBs(await plainRun(concurrency)),
        conditional: async () => toMBs(await plainRun(concurrency, { ifNoneMatch: '*' })),
        s3Storage: async () => toMBs(await uploaderRun(s3Storage, concurrency)),
        objectStore: async () => toMBs(await uploaderRun(objectStore, concurrency)),
      });
      const segmentsPerSecond = (s: Summary) => (s.median * MB * segments.length) / totalBytes;
      ratios[concurrency] = { s3: ratioOf(result.s3Storage, result.plain), os: ratioOf(result.objectStore, result.plain) };
      rows.push(
        [`c=${concurrency}: plain PutObject (aws-sdk)`, result.plain, segmentsPerSecond(result.plain), null, null],
        [`c=${concurrency}: PutObject If-None-Match: * (aws-sdk)`, result.conditional, segmentsPerSecond(result.conditional), ratioOf(result.conditional, result.plain), null],
        [`c=${concurrency}: Uploader + S3Storage`, result.s3Storage, segmentsPerSecond(result.s3Storage), ratios[concurrency]!.s3, ratioOf(result.s3Storage, result.conditional)],
        [`c=${concurrency}: Uploader + ObjectStoreStorage`, result.objectStore, segmentsPerSecond(result.objectStore), ratios[concurrency]!.os, ratioOf(result.objectStore, result.conditional)],
      );
    }
    addTable(context, {
      group: 'shipping',
      title: `3. Shipping — ${segments.length} sealed segments (4 MiB of entries each, ${(totalBytes / segments.length / 1048576).toFixed(2)} MiB sealed) to moto on loopback`,
      columns: ['uploader / storage', 'MB/s', 'segments/s', 'vs plain PutObject', 'vs PutObject If-None-Match'],
      rows,
      notes: [`median of ${runs} interleaved runs; the Uploader reads each file, hashes it (SHA-256), puts it with If-None-Match: * and records it in manifest.json`],
    });
    for (const [concurrency, ratio] of Object.entries(ratios)) {
      context.figures[`upload S3Storage c=${concurrency}`] = ratio.s3;
      context.figures[`upload ObjectStoreStorage c=${concurrency}`] = ratio.os;
    }
    await s3Storage.close();
    client.destroy();
  } finally {
    await moto.stop();
  }
}
