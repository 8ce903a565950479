/**
 * Child process of __test__/encryption-replication.test.ts (bundled with esbuild, run with node):
 * an encrypting leader that is killed right after a segment's put lands, before the manifest
 * records it.
 *
 *   encrypted-uploader <native|pure> <S3Storage|ObjectStoreStorage> <endpoint> <bucket> <prefix> <db> <dir> <recipient> <leaseTtlMs|0> <entries> <landAt>
 *
 * Appends `entries` entries (several segments), then syncs with one upload at a time. The put of
 * the `landAt`-th segment (counting from 1) is let through to the server, then the process prints
 * `landed <key>` and never goes on: that upload's manifest write never happens. The parent kills
 * it there. With a lease TTL other than 0, the uploads are made under a lease.
 */
import { Journal } from '../../ts/journal/journal.js';
import { Uploader } from '../../ts/replication/uploader.js';
import { ObjectStoreStorage } from '../../ts/storage/object-store.js';
import { S3Storage } from '../../ts/storage/s3.js';
import type { SegmentStorage } from '../../ts/storage/types.js';
import { loadCore, say } from './child-core.js';
import { entryFor } from './replication.js';

const [kind, backend, endpoint, bucket, prefix, db, dir, recipient, ttl, entries, landAt] = process.argv.slice(2);

function open(): SegmentStorage | Promise<SegmentStorage> {
  const credentials = { accessKeyId: 'graphstream-test', secretAccessKey: 'graphstream-test' };
  const common = { endpoint: endpoint!, region: 'us-east-1', credentials, forcePathStyle: true };
  return backend === 'S3Storage' ? new S3Storage({ bucket: bucket!, ...common }) : ObjectStoreStorage.open(`s3://${bucket!}`, common);
}

/** `inner`, but the `landAt`-th segment put hangs for ever once it has landed. */
function landThenHang(inner: SegmentStorage, at: number): SegmentStorage {
  let segmentPuts = 0;
  return {
    description: inner.description,
    identity: inner.identity,
    async put(key, bytes, options) {
      const result = await inner.put(key, bytes, options);
      if (key.endsWith('.hadbj') && ++segmentPuts === at) {
        say(`landed ${key}`);
        setInterval(() => undefined, 1000); // alive until killed
        await new Promise(() => undefined);
      }
      return result;
    },
    get: (key, options) => inner.get(key, options),
    ...(inner.getWithETag ? { getWithETag: (key: string) => inner.getWithETag!(key) } : {}),
    ...(inner.head ? { head: (key: string) => inner.head!(key) } : {}),
    list: (key, options) => inner.list(key, options),
    delete: (key) => inner.delete(key),
  };
}

const core = await loadCore(kind);
const storage = landThenHang(await open(), Number(landAt));
const journal = await Journal.open(dir!, { core, maxSegmentBytes: 1500, durability: 'fsync' });
const leaseTtl = Number(ttl);
const uploader = new Uploader({
  journal,
  storage,
  core,
  prefix,
  db: db!,
  concurrency: 1,
  sealIntervalMs: 3_600_000,
  encryption: { recipients: [recipient!] },
  ...(leaseTtl > 0 ? { lease: { holder: `crashing/${process.pid}`, ttlMs: leaseTtl } } : {}),
});
for (let next = 1; next <= Number(entries); next += 5) {
  await journal.appendBatch(Array.from({ length: 5 }, (_, k) => entryFor(next + k)));
}
say(`appended ${journal.sequence}`);
await uploader.sync();
say('synced');
