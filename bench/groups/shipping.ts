/**
 * Group 3, shipping: the Uploader through S3Storage (aws-sdk) and ObjectStoreStorage (native
 * object_store) against plain PutObject calls of the same bytes at the same concurrency, all
 * against a local S3-compatible server started here (moto, or versitygw with --s3-server). A second reference, the same PutObject calls with
 * `If-None-Match: *`, separates the cost of the create-only condition (which the Uploader must
 * keep) from the Uploader's own work. Runs interleaved; objects deleted between runs.
 */
import { readFileSync } from 'node:fs';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { nativeCore, segmentFileName, Uploader, type SegmentStorage } from '../../ts/index.js';
import { addTable, MB, type Context } from '../lib/context.js';
import { benchStorages } from '../lib/replication.js';
import { startBenchS3Server } from '../lib/s3-server.js';
import type { Cell } from '../lib/report.js';
import { deleteObjects, pool, putObject } from '../lib/s3.js';
import { interleave, median, nowMs, ratioOf, type Summary } from '../lib/stats.js';
import { graphdPayloads, sealJournal } from '../lib/workload.js';

const BUCKET = 'graphstream-bench-ship';
/** USER_HZ: the unit of the CPU times in /proc/<pid>/stat on Linux */
const PROC_TICKS_PER_SECOND = 100;

/** CPU time (user + system) the server's process used so far, in ms; null where there is no /proc. */
function processCpuMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / PROC_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

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

  context.log(`shipping: starting ${context.s3Server}`);
  const server = await startBenchS3Server(context.s3Server);
  try {
    await server.createBucket(BUCKET);
    const client = server.client();
    const { s3Storage, objectStore } = await benchStorages(server, BUCKET);
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

    /** CPU per MB shipped, of this process (all its threads) and of the server, for each run of each variant. */
    const cpu = new Map<string, { node: number[]; server: number[] }>();
    /** Seconds `ship` takes; its CPU goes to `variant`'s samples. */
    const measure = async (variant: string, ship: () => Promise<void>): Promise<number> => {
      const node0 = process.cpuUsage();
      const server0 = processCpuMs(server.pid);
      const start = nowMs();
      await ship();
      const seconds = (nowMs() - start) / 1000;
      const node = process.cpuUsage(node0);
      const server1 = processCpuMs(server.pid);
      const samples = cpu.get(variant) ?? { node: [], server: [] };
      samples.node.push((node.user + node.system) / 1000 / (totalBytes / MB));
      if (server0 !== null && server1 !== null) samples.server.push((server1 - server0) / (totalBytes / MB));
      cpu.set(variant, samples);
      return seconds;
    };

    /** Seconds to ship every segment with the Uploader (sidecar over a fresh copy of the directory). */
    const uploaderRun = async (variant: string, storage: SegmentStorage, concurrency: number): Promise<number> => {
      const dir = await mkdtemp(join(context.scratch, 'ship-'));
      for (const segment of segments) await link(join(source, segmentFileName(segment.firstSeq)), join(dir, segmentFileName(segment.firstSeq)));
      const uploader = new Uploader({ directory: dir, storage, db: 'bench', prefix: `run${runId++}/`, concurrency });
      const seconds = await measure(variant, () => uploader.sync());
      await uploader.stop();
      if (uploader.stats().succeeded !== segments.length) throw new Error(`uploader shipped ${uploader.stats().succeeded} of ${segments.length} segments`);
      await rm(dir, { recursive: true, force: true });
      await clearBucket();
      return seconds;
    };
    const plainRun = async (variant: string, concurrency: number, options: { ifNoneMatch?: '*' } = {}): Promise<number> => {
      const prefix = `plain${runId++}/`;
      const seconds = await measure(variant, () =>
        pool(segments.length, concurrency, (i) => putObject(client, BUCKET, `${prefix}${String(i).padStart(6, '0')}.hadbj`, segments[i]!.bytes, options)),
      );
      await clearBucket();
      return seconds;
    };

    const rows: Cell[][] = [];
    const ratios: Record<number, { s3: Summary; os: Summary }> = {};
    for (const concurrency of [1, 4, 16]) {
      context.log(`shipping: concurrency ${concurrency}`);
      const toMBs = (seconds: number) => totalBytes / MB / seconds;
      cpu.clear();
      const result = await interleave(runs, {
        plain: async () => toMBs(await plainRun('plain', concurrency)),
        conditional: async () => toMBs(await plainRun('conditional', concurrency, { ifNoneMatch: '*' })),
        s3Storage: async () => toMBs(await uploaderRun('s3Storage', s3Storage, concurrency)),
        objectStore: async () => toMBs(await uploaderRun('objectStore', objectStore, concurrency)),
      });
      const segmentsPerSecond = (s: Summary) => (s.median * MB * segments.length) / totalBytes;
      // the first sample of each variant is interleave's warm-up round
      const cpuOf = (variant: string): [number, number | null] => {
        const samples = cpu.get(variant)!;
        return [median(samples.node.slice(1)), samples.server.length > 1 ? median(samples.server.slice(1)) : null];
      };
      ratios[concurrency] = { s3: ratioOf(result.s3Storage, result.plain), os: ratioOf(result.objectStore, result.plain) };
      rows.push(
        [`c=${concurrency}: plain PutObject (aws-sdk)`, result.plain, segmentsPerSecond(result.plain), null, null, ...cpuOf('plain')],
        [`c=${concurrency}: PutObject If-None-Match: * (aws-sdk)`, result.conditional, segmentsPerSecond(result.conditional), ratioOf(result.conditional, result.plain), null, ...cpuOf('conditional')],
        [`c=${concurrency}: Uploader + S3Storage`, result.s3Storage, segmentsPerSecond(result.s3Storage), ratios[concurrency]!.s3, ratioOf(result.s3Storage, result.conditional), ...cpuOf('s3Storage')],
        [`c=${concurrency}: Uploader + ObjectStoreStorage`, result.objectStore, segmentsPerSecond(result.objectStore), ratios[concurrency]!.os, ratioOf(result.objectStore, result.conditional), ...cpuOf('objectStore')],
      );
    }
    addTable(context, {
      group: 'shipping',
      title: `3. Shipping — ${segments.length} sealed segments (4 MiB of entries each, ${(totalBytes / segments.length / 1048576).toFixed(2)} MiB sealed) to ${server.name} on loopback`,
      columns: ['uploader / storage', 'MB/s', 'segments/s', 'vs plain PutObject', 'vs PutObject If-None-Match', 'bench CPU ms/MB', `${server.name} CPU ms/MB`],
      rows,
      notes: [
        `median of ${runs} interleaved runs; the Uploader reads each file, hashes it (SHA-256), puts it with If-None-Match: * and records it in manifest.json; ` +
          'CPU per MB shipped: the bench process (all its threads: JavaScript, libuv pool, the addon) and the server (/proc), which share the machine',
      ],
    });
    for (const [concurrency, ratio] of Object.entries(ratios)) {
      context.figures[`upload S3Storage c=${concurrency}`] = ratio.s3;
      context.figures[`upload ObjectStoreStorage c=${concurrency}`] = ratio.os;
    }
    await s3Storage.close();
    client.destroy();
  } finally {
    await server.stop();
  }
}
