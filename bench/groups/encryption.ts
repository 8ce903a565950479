/**
 * Group 6, encryption at rest (issue 17): age encryption and decryption of one sealed segment
 * (4 MiB of entries), native (the age crate) and pure (age-encryption); then, against a local
 * S3-compatible server, the Uploader shipping the same segments with and without encryption
 * (native core, both storages, concurrency 4), and a native follower's catch-up of the same journal
 * stored plaintext and encrypted. The end-to-end figures are pairs of runs back to back (plaintext
 * and encrypted, alternating which goes first), several per storage, with the wall time and this
 * process's CPU time of each; a target is the median of the per-pair ratios.
 */
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { nativeCore, pureCore, segmentFileName, segmentKey, Uploader, type SegmentStorage } from '../../ts/index.js';
import type { Core } from '../../ts/core/core.js';
import { addTable, addTarget, MB, type Context } from '../lib/context.js';
import type { Cell } from '../lib/report.js';
import { benchStorages, timedCatchUp } from '../lib/replication.js';
import { startBenchS3Server } from '../lib/s3-server.js';
import { deleteObjects, pool, putObject } from '../lib/s3.js';
import { asyncThroughput, interleave, measuredPairs, summarize, timedRun, type PairedRuns, type Summary, type TimedRun } from '../lib/stats.js';
import { graphdPayloads, sealJournal } from '../lib/workload.js';

const BUCKET = 'graphstream-bench-age';
const DB = 'bench';
/** the bound: encryption adds at most this much to an upload and to a native follower's catch-up */
const MAX_OVERHEAD = 0.15;

export async function encryptionGroup(context: Context): Promise<void> {
  if (nativeCore === null) throw new Error('the native addon did not load (npm run build:native)');
  const native = nativeCore;
  const quick = context.quick;
  const runs = quick ? 2 : 4;
  const identity = await generateX25519Identity();
  const recipients = [await identityToRecipient(identity)];
  const identities = [identity];

  // 1. one sealed segment of 4 MiB of entries, encrypted and decrypted by each core
  context.log('encryption: age of one sealed segment, native and pure');
  const one = sealJournal(native, graphdPayloads(14_600, 1, 21), 4 * 1024 * 1024).segments[0]!.bytes;
  const minMs = quick ? 300 : 1000;
  const ciphertexts = new Map<Core, Buffer>();
  for (const core of [native, pureCore]) ciphertexts.set(core, await core.encryptSegment(one, { recipients }));
  const crypto = await interleave(runs, {
    nativeEncrypt: () => asyncThroughput(one.length / MB, () => native.encryptSegment(one, { recipients }), minMs),
    nativeDecrypt: () => asyncThroughput(one.length / MB, () => native.decryptSegment(ciphertexts.get(native)!, { identities }), minMs),
    pureEncrypt: () => asyncThroughput(one.length / MB, () => pureCore.encryptSegment(one, { recipients }), minMs),
    pureDecrypt: () => asyncThroughput(one.length / MB, () => pureCore.decryptSegment(ciphertexts.get(pureCore)!, { identities }), minMs),
  });
  const perSecond = (s: Summary) => (s.median * MB) / one.length;
  addTable(context, {
    group: 'encryption',
    title: `6a. age encryption of one sealed segment — 4 MiB of entries, ${(one.length / 1048576).toFixed(2)} MiB sealed, one X25519 recipient`,
    columns: ['operation', 'MB/s (sealed bytes)', 'segments/s'],
    rows: [
      ['encryptSegment, native (age crate, off the JS thread)', crypto.nativeEncrypt, perSecond(crypto.nativeEncrypt)],
      ['decryptSegment, native', crypto.nativeDecrypt, perSecond(crypto.nativeDecrypt)],
      ['encryptSegment, pure (age-encryption)', crypto.pureEncrypt, perSecond(crypto.pureEncrypt)],
      ['decryptSegment, pure', crypto.pureDecrypt, perSecond(crypto.pureDecrypt)],
    ],
    notes: [`median of ${runs} interleaved runs of at least ${minMs} ms each, one call at a time`],
  });

  // 2. and 3. against a server
  const segmentCount = quick ? 12 : 32;
  const uploadPairs = quick ? 6 : 8;
  const followPairs = quick ? 4 : 6;
  const entries = quick ? 200_000 : 1_000_000;
  context.log(`encryption: sealing ${segmentCount} segments to upload and a ${entries.toLocaleString('en')}-entry journal to follow`);
  const shipped = sealJournal(native, graphdPayloads(segmentCount * 14_600, 1, 21), 4 * 1024 * 1024).segments.slice(0, segmentCount);
  const shippedBytes = shipped.reduce((sum, s) => sum + s.bytes.length, 0);
  const source = join(context.scratch, 'age-source');
  await mkdir(source, { recursive: true });
  for (const segment of shipped) await writeFile(join(source, segmentFileName(segment.firstSeq)), segment.bytes);
  const distinct = graphdPayloads(Math.min(entries, 100_000), 1, 33);
  const followed = sealJournal(native, Array.from({ length: entries }, (_, i) => distinct[i % distinct.length]!), 4 * 1024 * 1024).segments;
  const followedBytes = followed.reduce((sum, s) => sum + s.bytes.length, 0);

  context.log(`encryption: starting ${context.s3Server}`);
  const server = await startBenchS3Server(context.s3Server);
  try {
    await server.createBucket(BUCKET);
    const client = server.client();
    const { s3Storage, objectStore } = await benchStorages(server, BUCKET);
    let runId = 0;
    const clear = async (prefix: string) => {
      for (;;) {
        const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
        const keys = (listed.Contents ?? []).map((o) => o.Key!);
        if (keys.length === 0) return;
        await deleteObjects(client, BUCKET, keys);
      }
    };

    /** Wall and CPU seconds the Uploader (sidecar, native core, concurrency 4) takes to ship every segment. */
    const upload = async (storage: SegmentStorage, encrypt: boolean): Promise<TimedRun> => {
      const dir = await mkdtemp(join(context.scratch, 'age-ship-'));
      for (const segment of shipped) await link(join(source, segmentFileName(segment.firstSeq)), join(dir, segmentFileName(segment.firstSeq)));
      const prefix = `up${runId++}/`;
      const uploader = new Uploader({ directory: dir, storage, db: DB, prefix, core: native, concurrency: 4, ...(encrypt ? { encryption: { recipients } } : {}) });
      const timed = await timedRun(() => uploader.sync());
      await uploader.stop();
      if (uploader.stats().succeeded !== shipped.length) throw new Error(`uploader shipped ${uploader.stats().succeeded} of ${shipped.length} segments`);
      await rm(dir, { recursive: true, force: true });
      await clear(prefix);
      return timed;
    };
    context.log(`encryption: uploads, ${shipped.length} segments, ${uploadPairs} pairs with and without encryption per storage`);
    const uploads = {
      s3: await measuredPairs(uploadPairs, () => upload(s3Storage, false), () => upload(s3Storage, true)),
      objectStore: await measuredPairs(uploadPairs, () => upload(objectStore, false), () => upload(objectStore, true)),
    };

    context.log(`encryption: storing the ${followed.length}-segment journal plaintext and encrypted`);
    await pool(followed.length, 8, (i) => putObject(client, BUCKET, segmentKey('plain/', DB, 0, followed[i]!.firstSeq), followed[i]!.bytes));
    await pool(followed.length, 4, async (i) =>
      putObject(client, BUCKET, segmentKey('age/', DB, 0, followed[i]!.firstSeq), await native.encryptSegment(followed[i]!.bytes, { recipients })),
    );
    /** Wall and CPU seconds a native follower takes to catch up from nothing. */
    const catchUp = (storage: SegmentStorage, encrypted: boolean): Promise<TimedRun> =>
      timedCatchUp(context.scratch, { storage, prefix: encrypted ? 'age/' : 'plain/', db: DB, core: native, ...(encrypted ? { encryption: { identities } } : {}) }, entries);
    context.log(`encryption: catch-up, ${followPairs} pairs, plaintext and encrypted, per storage`);
    const follows = {
      s3: await measuredPairs(followPairs, () => catchUp(s3Storage, false), () => catchUp(s3Storage, true)),
      objectStore: await measuredPairs(followPairs, () => catchUp(objectStore, false), () => catchUp(objectStore, true)),
    };

    const rate = (seconds: Summary, bytes: number) => summarize(seconds.samples.map((s) => bytes / MB / s));
    const rows = (what: string, pairs: PairedRuns, bytes: number): Cell[][] => [
      [`${what}, plaintext`, pairs.wall.a, pairs.cpu.a, rate(pairs.wall.a, bytes), null, null],
      [`${what}, encrypted`, pairs.wall.b, pairs.cpu.b, rate(pairs.wall.b, bytes), pairs.wallRatio, pairs.cpuRatio],
    ];
    addTable(context, {
      group: 'encryption',
      title:
        `6b. Encryption at rest end to end — Uploader: ${shipped.length} segments (4 MiB of entries, ${(shippedBytes / shipped.length / 1048576).toFixed(2)} MiB sealed), ` +
        `concurrency 4; native follower: ${entries.toLocaleString('en')} entries, ${followed.length} segments; ${server.name} on loopback`,
      columns: ['run', 'seconds', 'CPU seconds', 'MB/s (sealed bytes)', 'time vs plaintext', 'CPU vs plaintext'],
      rows: [
        ...rows('upload, S3Storage', uploads.s3, shippedBytes),
        ...rows('upload, ObjectStoreStorage', uploads.objectStore, shippedBytes),
        ...rows('catch-up, native, S3Storage', follows.s3, followedBytes),
        ...rows('catch-up, native, ObjectStoreStorage', follows.objectStore, followedBytes),
      ],
      notes: [
        `${uploadPairs} pairs of uploads and ${followPairs} pairs of catch-ups per storage, after one warm-up of each; the two runs of a pair are back to back, ` +
          'in alternating order; "vs plaintext" is the median of the per-pair ratios (the range is theirs). CPU seconds are this process\'s ' +
          '(JS thread, thread pool and the addon\'s threads; the S3 server runs in another process).',
        'encrypted uploads stage each segment as its ciphertext (read, hashed and encrypted in one native task), check the file against the ' +
          'plaintext\'s SHA-256, and put it with its identifying metadata; the encrypted follower decrypts each object before its checks',
      ],
    });
    const worst = (a: Summary, b: Summary) => (a.median >= b.median ? a : b);
    const upload15 = worst(uploads.s3.wallRatio, uploads.objectStore.wallRatio);
    const follow15 = worst(follows.s3.wallRatio, follows.objectStore.wallRatio);
    const percent = (s: Summary) => `${((s.median - 1) * 100).toFixed(1)}%`;
    const both = (pairs: { s3: PairedRuns; objectStore: PairedRuns }) =>
      `S3Storage ${percent(pairs.s3.wallRatio)} (CPU ${percent(pairs.s3.cpuRatio)}), ObjectStoreStorage ${percent(pairs.objectStore.wallRatio)} (CPU ${percent(pairs.objectStore.cpuRatio)})`;
    addTarget(context, {
      id: 17.1,
      target: 'encrypted upload time vs plaintext (issue 17)',
      measured: both(uploads),
      required: `≤ +${MAX_OVERHEAD * 100}%`,
      met: upload15.median <= 1 + MAX_OVERHEAD,
      value: upload15.median,
    });
    addTarget(context, {
      id: 17.2,
      target: 'native follower catch-up, encrypted vs plaintext (issue 17)',
      measured: both(follows),
      required: `≤ +${MAX_OVERHEAD * 100}%`,
      met: follow15.median <= 1 + MAX_OVERHEAD,
      value: follow15.median,
    });
    await s3Storage.close();
    client.destroy();
  } finally {
    await server.stop();
  }
}
