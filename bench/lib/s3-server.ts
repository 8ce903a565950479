/**
 * The local S3-compatible server of the shipping and follower groups: moto (default) or versitygw
 * (`--s3-server=versitygw`) on loopback, started by the bench, bounded in time, and killed at exit
 * (also on Ctrl-C).
 */
import type { ChildProcess } from 'node:child_process';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startS3Server, type S3ServerName } from '../../scripts/s3-servers.js';

export const CREDENTIALS = { accessKeyId: 'graphstream-bench', secretAccessKey: 'graphstream-bench' };
export const REGION = 'us-east-1';

export interface BenchS3Server {
  name: S3ServerName;
  endpoint: string;
  pid: number;
  client(): S3Client;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
}
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

export async function startBenchS3Server(name: S3ServerName): Promise<BenchS3Server> {
  const server = await startS3Server(name, CREDENTIALS);
  const child = server.process;
  running.add(child);
  const endpoint = server.endpoint;
  const client = () => new S3Client({ endpoint, region: REGION, credentials: CREDENTIALS, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  return {
    name,
    endpoint,
    pid: child.pid!,
    client,
    async createBucket(bucket) {
      const c = client();
      try {
        await c.send(new CreateBucketCommand({ Bucket: bucket }));
      } finally {
        c.destroy();
      }
    },
    async stop() {
      await server.stop();
      running.delete(child);
    },
  };
}
