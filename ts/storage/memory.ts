/** Objects in a Map: for tests and demos. Same semantics as the real stores, nothing persisted. */
import { randomUUID } from 'node:crypto';
import { GraphstreamError } from '../errors.js';
import type { GetOptions, ListOptions, PutOptions, PutResult, SegmentStorage } from './types.js';
import { checkBody, compareKeys, sameBytes } from './bytes.js';
import { checkKey, checkListPrefix, objectName } from './names.js';

export class MemoryStorage implements SegmentStorage {
  readonly description: string;
  /** its objects live in this instance only: every instance is another destination */
  readonly identity = `memory://#${randomUUID()}`;
  private readonly objects = new Map<string, Uint8Array>();

  constructor(name = 'memory://') {
    this.description = name;
  }

  async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    checkKey(key, this.description);
    checkBody(bytes, objectName(this.description, key));
    const existing = this.objects.get(key);
    if (options?.ifNoneMatch === '*' && existing !== undefined) {
      if (sameBytes(existing, bytes)) return { created: false };
      throw new GraphstreamError(
        'conflict',
        `${objectName(this.description, key)} already holds different bytes (another writer created it); not overwritten`,
        { details: { key, retryable: false } },
      );
    }
    this.objects.set(key, Uint8Array.from(bytes));
    return { created: true };
  }

  async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    checkKey(key, this.description);
    const stored = this.objects.get(key);
    if (stored === undefined) return null;
    const into = options?.into;
    if (into === undefined || into.length < stored.length) return Uint8Array.from(stored);
    into.set(stored);
    return into.subarray(0, stored.length);
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
