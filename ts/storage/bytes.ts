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

/** S3's limit on the user metadata of an object (keys and values, in bytes). */
export const MAX_METADATA_BYTES = 2048;
const METADATA_KEY = /^[a-z0-9][a-z0-9-]*$/;
const METADATA_VALUE = /^[\x20-\x7e]*$/;

/** Rejects metadata some backend could not store as given (see PutOptions.metadata). */
function checkMetadata(metadata: unknown, object: string): void {
  if (metadata === undefined) return;
  const invalid = (why: string) => new GraphstreamError('invalid_argument', `put ${object}: metadata ${why}`);
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw invalid('must be an object of strings');
  let bytes = 0;
  for (const [key, value] of Object.entries(metadata)) {
    if (!METADATA_KEY.test(key)) throw invalid(`key ${JSON.stringify(key)} is not lowercase [a-z0-9-] (S3 folds metadata keys to lowercase)`);
    if (typeof value !== 'string' || !METADATA_VALUE.test(value) || value.trim() !== value) {
      throw invalid(`value of ${key} must be printable ASCII without surrounding spaces`);
    }
    bytes += key.length + value.length;
  }
  if (bytes > MAX_METADATA_BYTES) throw invalid(`is ${bytes} bytes, more than the ${MAX_METADATA_BYTES} allowed`);
}

/** Rejects PutOptions no backend can honor: ifMatch with ifNoneMatch, an ifMatch that is no ETag, metadata it could not store. */
export function checkPutConditions(options: PutOptions | undefined, object: string): void {
  checkMetadata(options?.metadata, object);
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
