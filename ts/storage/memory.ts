/** Objects in a Map: for tests and demos. Same semantics as the real stores, nothing persisted. */
import { randomUUID } from 'node:crypto';
import { GraphstreamError } from '../errors.js';
import type { GetOptions, ListOptions, ObjectHead, PutOptions, PutResult, SegmentStorage, VersionedObject } from './types.js';
import { checkBody, checkPutConditions, compareKeys, preconditionFailed, sameBytes } from './bytes.js';
import { checkKey, checkListPrefix, objectName } from './names.js';

interface StoredObject {
  bytes: Uint8Array;
  etag: string;
  metadata: Record<string, string>;
}

export class MemoryStorage implements SegmentStorage {
  readonly description: string;
  /** its objects live in this instance only: every instance is another destination */
  readonly identity = `memory://#${randomUUID()}`;
  private readonly objects = new Map<string, StoredObject>();
  /** every put makes a new version: its ETag */
  private versions = 0;

  constructor(name = 'memory://') {
    this.description = name;
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    checkKey(key, this.description);
    checkBody(bytes, objectName(this.description, key));
    checkPutConditions(options, objectName(this.description, key));
    options?.signal?.throwIfAborted();
    const existing = this.objects.get(key);
    if (options?.ifNoneMatch === '*' && existing !== undefined) {
      if (sameBytes(existing.bytes, bytes)) return { created: false, etag: existing.etag };
      throw new GraphstreamError(
        'conflict',
        `${objectName(this.description, key)} already holds different bytes (another writer created it); not overwritten`,
        { details: { key, retryable: false } },
      );
    }
    if (options?.ifMatch !== undefined && existing?.etag !== options.ifMatch) {
      throw preconditionFailed(key, objectName(this.description, key), options.ifMatch, existing?.etag ?? null);
    }
    const etag = `"m${++this.versions}"`;
    this.objects.set(key, { bytes: Uint8Array.from(bytes), etag, metadata: { ...options?.metadata } });
    return { created: true, etag };
  }

  async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    checkKey(key, this.description);
    const stored = this.objects.get(key)?.bytes;
    if (stored === undefined) return null;
    const into = options?.into;
    if (into === undefined || into.length < stored.length) return Uint8Array.from(stored);
    into.set(stored);
    return into.subarray(0, stored.length);
  }

  async getWithETag(key: string): Promise<VersionedObject | null> {
    checkKey(key, this.description);
    const stored = this.objects.get(key);
    return stored === undefined ? null : { bytes: Uint8Array.from(stored.bytes), etag: stored.etag };
  }

  async head(key: string): Promise<ObjectHead | null> {
    checkKey(key, this.description);
    const stored = this.objects.get(key);
    return stored === undefined ? null : { size: stored.bytes.byteLength, etag: stored.etag, metadata: { ...stored.metadata } };
  }

  async list(prefix: string, options?: ListOptions): Promise<string[]> {
    checkListPrefix(prefix, this.description);
    const after = options?.startAfter;
    return [...this.objects.keys()]
      .filter((key) => key.startsWith(prefix) && (after === undefined || compareKeys(key, after) > 0))
      .sort(compareKeys);
  }

  async delete(key: string): Promise<void> {
    checkKey(key, this.description);
    this.objects.delete(key);
  }
}
