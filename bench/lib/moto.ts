/**
 * The local S3-compatible server of the shipping and follower groups: moto in server mode on
 * loopback, started by the bench, bounded in time, and killed at exit (also on Ctrl-C).
 */
import type { ChildProcess } from 'node:child_process';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startMotoServer } from '../../scripts/moto-server.js';

export const CREDENTIALS = { accessKeyId: 'graphstream-bench', secretAccessKey: 'graphstream-bench' };
export const REGION = 'us-east-1';

export interface Moto {
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

export async function startMoto(): Promise<Moto> {
  const server = await startMotoServer();
  const child = server.process;
  running.add(child);
  const endpoint = server.endpoint;
  const client = () => new S3Client({ endpoint, region: REGION, credentials: CREDENTIALS, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  return {
    endpoint,
    pid: child.pid!,
    client,
    async createBucket(name) {
      const c = client();
      try {
        await c.send(new CreateBucketCommand({ Bucket: name }));
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
