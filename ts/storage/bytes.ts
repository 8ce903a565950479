/** Small helpers shared by the storage backends. */
import { GraphstreamError } from '../errors.js';
import type { PutOptions } from './types.js';

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

/** Rejects PutOptions no backend can honor: ifMatch with ifNoneMatch, or an ifMatch that is no ETag. */
export function checkPutConditions(options: PutOptions | undefined, object: string): void {
  const ifMatch = options?.ifMatch;
  if (ifMatch === undefined) return;
  if (typeof ifMatch !== 'string' || ifMatch === '') {
    throw new GraphstreamError('invalid_argument', `put ${object}: ifMatch must be a non-empty ETag string, got ${JSON.stringify(ifMatch) ?? typeof ifMatch}`);
  }
  if (options?.ifNoneMatch !== undefined) {
    throw new GraphstreamError('invalid_argument', `put ${object}: ifMatch and ifNoneMatch exclude each other`);
  }
}

/** The `conflict` of a put whose ifMatch found another object (`found`: its ETag when known, null for none). */
export function preconditionFailed(key: string, object: string, expected: string, found: string | null | undefined, status?: number): GraphstreamError {
  const what = found === null ? 'there is no object' : found === undefined ? 'the object has another ETag' : `it has ETag ${found}`;
  return new GraphstreamError('conflict', `put ${object} with If-Match ${expected} refused: ${what} (another writer changed it); not overwritten`, {
    details: { key, retryable: false, ...(status === undefined ? {} : { status }) },
  });
}

/** The ETag LocalStorage gives an object: its SHA-256, quoted as S3 quotes ETags (any process can compute it from the file). */
export async function contentETag(bytes: Uint8Array): Promise<string> {
  return `"${await sha256Hex(bytes)}"`;
}
