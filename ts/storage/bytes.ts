/** Small helpers shared by the storage backends. */
import { GraphstreamError } from '../errors.js';

/** What a put stores must be bytes: anything else is invalid_argument naming the object. */
export function checkBody(bytes: unknown, object: string): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new GraphstreamError('invalid_argument', `put ${object}: the body must be a Uint8Array or Buffer, got ${bytes === null ? 'null' : typeof bytes}`);
  }
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Key order as S3 lists it: by UTF-8 bytes (equal to string order for ASCII keys). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** SHA-256 as lowercase hex; WebCrypto digests on the thread pool, so a segment-sized hash does not block the event loop. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Buffer.from(digest).toString('hex');
}
