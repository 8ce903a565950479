/** Plain S3 calls (the reference the library's storage layers are compared with) and a small worker pool. */
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** Runs `task(i)` for i in 0..count with at most `concurrency` in flight. */
export async function pool(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** `ifNoneMatch: '*'` makes it a create-only put, as the Uploader's. */
export async function putObject(client: S3Client, bucket: string, key: string, body: Uint8Array, options: { ifNoneMatch?: '*' } = {}): Promise<void> {
  await client.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.byteLength, ...(options.ifNoneMatch ? { IfNoneMatch: options.ifNoneMatch } : {}) }),
  );
}

export async function getObject(client: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return response.Body ? response.Body.transformToByteArray() : new Uint8Array(0);
}

export async function deleteObjects(client: S3Client, bucket: string, keys: string[]): Promise<void> {
  await pool(keys.length, 16, async (i) => {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keys[i]! }));
  });
}
