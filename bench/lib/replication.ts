/** What the shipping, follower and encryption groups share: the two storages on the bench's S3 server, and a timed catch-up. */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Follower, ObjectStoreStorage, S3Storage, type FollowerOptions } from '../../ts/index.js';
import { CREDENTIALS, REGION, type BenchS3Server } from './s3-server.js';
import { timedRun, type TimedRun } from './stats.js';

/** S3Storage (aws-sdk) and ObjectStoreStorage (object_store) on `bucket` of `server`. */
export async function benchStorages(server: BenchS3Server, bucket: string): Promise<{ s3Storage: S3Storage; objectStore: ObjectStoreStorage }> {
  const connection = { endpoint: server.endpoint, region: REGION, credentials: CREDENTIALS, forcePathStyle: true };
  return { s3Storage: new S3Storage({ bucket, ...connection }), objectStore: await ObjectStoreStorage.open(`s3://${bucket}`, connection) };
}

/** Wall and CPU seconds a fresh Follower (in a new directory under `scratch`) takes to catch up with `entries` entries. */
export async function timedCatchUp(scratch: string, options: Omit<FollowerOptions, 'dir'>, entries: number): Promise<TimedRun> {
  const dir = await mkdtemp(join(scratch, 'follow-'));
  const follower = new Follower({ ...options, dir });
  let caughtUp = 0;
  const timed = await timedRun(async () => {
    caughtUp = (await follower.catchUp()).entries;
  });
  if (caughtUp !== entries) throw new Error(`follower caught up ${caughtUp} of ${entries} entries`);
  await rm(dir, { recursive: true, force: true });
  return timed;
}
