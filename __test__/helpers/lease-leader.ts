/**
 * Child process of __test__/failover.test.ts (bundled with esbuild, run with node): a leader under
 * a lease on a real S3 server.
 *
 *   lease-leader <native|pure> <S3Storage|ObjectStoreStorage> <endpoint> <bucket> <prefix> <db> <dir> <ttlMs>
 *
 * Takes the lease, then appends 10 entries at a time and syncs,
 * printing `acked <seq>` once sync() resolved (everything up to seq is in storage) and
 * `rejected <code>` when it did not; it goes on appending after a rejection (a leader that does
 * not know it lost the lease), until it is killed. Prints `fenced` when the lease reports it.
 */
import { toGraphstreamError } from '../../ts/errors.js';
import { Journal } from '../../ts/journal/journal.js';
import { Lease } from '../../ts/replication/lease.js';
import { Uploader } from '../../ts/replication/uploader.js';
import { ObjectStoreStorage } from '../../ts/storage/object-store.js';
import { S3Storage } from '../../ts/storage/s3.js';
import type { SegmentStorage } from '../../ts/storage/types.js';
import { loadCore, say } from './child-core.js';
import { entryFor } from './replication.js';

const [kind, backend, endpoint, bucket, prefix, db, dir, ttl] = process.argv.slice(2);

async function open(): Promise<SegmentStorage> {
  const credentials = { accessKeyId: 'graphstream-test', secretAccessKey: 'graphstream-test' };
  const common = { endpoint: endpoint!, region: 'us-east-1', credentials, forcePathStyle: true };
  return backend === 'S3Storage' ? new S3Storage({ bucket: bucket!, ...common }) : ObjectStoreStorage.open(`s3://${bucket!}`, common);
}

async function lead(): Promise<void> {
  const core = await loadCore(kind);
  const storage = await open();
  const lease = new Lease({ storage, prefix: prefix!, db: db!, holder: `leader/${process.pid}`, ttlMs: Number(ttl) });
  lease.on('fenced', () => say('fenced'));
  await lease.acquire();
  const journal = await Journal.open(dir!, { core, maxSegmentBytes: 2048, durability: 'fsync' });
  const uploader = new Uploader({ journal, storage, core, prefix, db: db!, lease, sealIntervalMs: 3_600_000 });
  say(`leading ${lease.epoch} ${lease.generation}`);
  for (let next = journal.sequence + 1; ; next += 10) {
    await journal.appendBatch(Array.from({ length: 10 }, (_, k) => entryFor(next + k)));
    try {
      await uploader.sync();
      say(`acked ${journal.sequence}`);
    } catch (err) {
      say(`rejected ${toGraphstreamError(err).code}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

lead().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
  process.exitCode = 1;
});
