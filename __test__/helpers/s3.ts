/** Access to the moto S3 server started by global-setup.ts: endpoint, client, fresh buckets. */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { inject } from 'vitest';

/** moto accepts any credentials; these are explicit so no test depends on the host's AWS setup. */
export const TEST_CREDENTIALS = { accessKeyId: 'graphstream-test', secretAccessKey: 'graphstream-test' };
export const TEST_REGION = 'us-east-1';

export function s3Endpoint(): string {
  return inject('s3Endpoint');
}

export function testS3Client(endpoint: string = s3Endpoint()): S3Client {
  return new S3Client({ endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS, forcePathStyle: true });
}

/** Creates a bucket with a unique name (call once per test file, or per test for isolation). */
export async function createTestBucket(label = 'test'): Promise<string> {
  const name = `gs-${label}-${randomBytes(6).toString('hex')}`.toLowerCase().slice(0, 63);
  const client = testS3Client();
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    client.destroy();
  }
  return name;
}
