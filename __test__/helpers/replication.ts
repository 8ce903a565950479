/**
 * A leader for replication tests: the real Journal and Uploader shipping to a storage, plus
 * helpers to compare journals entry for entry and hash for hash.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError } from '../../ts/abort.js';
import type { Core } from '../../ts/core/core.js';
import { Journal } from '../../ts/journal/journal.js';
import { readJournal } from '../../ts/journal/reader.js';
import type { ListOptions, PutOptions, PutResult, SegmentStorage } from '../../ts/storage/types.js';
import { Uploader, type UploaderOptions } from '../../ts/replication/uploader.js';

export const T0 = 1_700_000_000_000;

/** The i-th test entry: its timestamp is T0 + i seconds. */
export function entryFor(i: number) {
  return {
    query: 'CREATE (:Person {id: $id, name: $name})',
    params: { id: i, name: `person-${i}-${'x'.repeat(i % 40)}` },
    timestampMs: T0 + i * 1000,
  };
}

export interface TestLeader {
  readonly dir: string;
  readonly journal: Journal;
  readonly uploader: Uploader;
  /** appends entries `count` more entries (ids continue) and ships every sealed segment */
  write(count: number): Promise<void>;
  close(): Promise<void>;
}

export async function openLeader(options: {
  storage: SegmentStorage;
  prefix: string;
  db: string;
  core: Core;
  maxSegmentBytes?: number;
  /** entries per append batch (and per seal when sealEvery is set) */
  batch?: number;
  lease?: UploaderOptions['lease'];
  encryption?: UploaderOptions['encryption'];
  /** seal and upload on this timer once uploader.start() is called (default: only in write()) */
  sealIntervalMs?: number;
}): Promise<TestLeader> {
  const dir = await mkdtemp(join(tmpdir(), 'graphstream-leader-'));
  const journal = await Journal.open(dir, { core: options.core, maxSegmentBytes: options.maxSegmentBytes ?? 2048, durability: 'none' });
  const uploader = new Uploader({
    journal,
    storage: options.storage,
    core: options.core,
    prefix: options.prefix,
    db: options.db,
    sealIntervalMs: options.sealIntervalMs ?? 3_600_000,
    cache: { retentionMs: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER },
    ...(options.lease === undefined ? {} : { lease: options.lease }),
    ...(options.encryption === undefined ? {} : { encryption: options.encryption }),
  });
  const batch = options.batch ?? 7;
  let next = 1;
  return {
    dir,
    journal,
    uploader,
    async write(count) {
      for (let done = 0; done < count; ) {
        const size = Math.min(batch, count - done);
        await journal.appendBatch(Array.from({ length: size }, (_, k) => entryFor(next + k)));
        next += size;
        done += size;
      }
      await uploader.sync();
    },
    async close() {
      await uploader.stop();
      await journal.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A tail's records until its signal aborts: the loop then ends quietly instead of with tail()'s AbortError. */
export async function* untilAborted<T>(records: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  try {
    yield* records;
  } catch (err) {
    if (!(err instanceof AbortError)) throw err;
  }
}

export interface ComparableRecord {
  sequence: number;
  chainHash: string;
  payload: string;
}

export async function journalRecords(dir: string, core: Core): Promise<ComparableRecord[]> {
  const records: ComparableRecord[] = [];
  for await (const record of readJournal(dir, { raw: true, core })) {
    records.push({ sequence: record.sequence, chainHash: record.chainHash.toString('hex'), payload: record.payload.toString('hex') });
  }
  return records;
}

/** Wraps a storage and records every list call and every segment get. */
export class ListRecordingStorage implements SegmentStorage {
  readonly lists: { prefix: string; startAfter: string | undefined }[] = [];
  readonly gets: string[] = [];

  constructor(readonly inner: SegmentStorage) {}

  get description(): string {
    return this.inner.description;
  }

  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    return this.inner.put(key, bytes, options);
  }

  get(key: string): Promise<Uint8Array | null> {
    if (key.endsWith('.hadbj')) this.gets.push(key); // segments only: readers also read lease.json and the generation records
    return this.inner.get(key);
  }

  list(prefix: string, options?: ListOptions): Promise<string[]> {
    this.lists.push({ prefix, startAfter: options?.startAfter });
    return this.inner.list(prefix, options);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
}
