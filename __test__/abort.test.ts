/**
 * Ending long operations: `await using` on Journal, Uploader and Follower, `Follower.close()`, and
 * an AbortSignal on tail, catchUp, downloadNewSegments, restore and Uploader.sync, which reject
 * with an AbortError as Node's own APIs do, keep what was done before the abort, and lose nothing.
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AbortError } from '../ts/abort.js';
import type { Core } from '../ts/core/core.js';
import { Journal } from '../ts/journal/journal.js';
import { Follower, downloadNewSegments } from '../ts/replication/follower.js';
import { restore } from '../ts/replication/restore.js';
import { Uploader } from '../ts/replication/uploader.js';
import { MemoryStorage } from '../ts/storage/memory.js';
import type { GetOptions, PutOptions, PutResult } from '../ts/storage/types.js';
import { cores } from './helpers/cores.js';
import { entryFor, journalRecords, openLeader, type TestLeader } from './helpers/replication.js';

const DB = 'graph';
const made: string[] = [];
const leaders: TestLeader[] = [];

async function freshDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `graphstream-abort-${label}-`));
  made.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(leaders.splice(0).map((leader) => leader.close()));
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Memory storage that calls `onGet` before each get answers. */
class GetHookStorage extends MemoryStorage {
  constructor(private readonly onGet: () => void) {
    super();
  }

  override async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    this.onGet();
    return super.get(key, options);
  }
}

/** Memory storage whose puts wait until `release()` (a put that hangs on a slow network). */
class HeldPutStorage extends MemoryStorage {
  private released!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.released = resolve));
  held = 0;

  override async put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutResult> {
    this.held++;
    await this.gate;
    const result = await super.put(key, bytes, options);
    this.landed?.();
    return result;
  }

  /** called as each put lands, before its caller goes on */
  landed: (() => void) | undefined;

  release(): void {
    this.released();
  }
}

function expectAbortError(err: unknown, reason: unknown): void {
  expect(err).toBeInstanceOf(AbortError);
  expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: reason });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe.each(cores)('ending long operations ($kind core)', (core: Core) => {
  async function shipped(storage: MemoryStorage, entries: number): Promise<TestLeader> {
    const leader = await openLeader({ storage, prefix: '', db: DB, core, maxSegmentBytes: 2048 });
    leaders.push(leader);
    await leader.write(entries);
    return leader;
  }

  it('await using closes a Journal, stops an Uploader and closes a Follower at the end of the scope', async () => {
    const dir = await freshDir('journal');
    const storage = new MemoryStorage();
    let journal!: Journal;
    let uploader!: Uploader;
    let follower!: Follower;
    {
      await using scopedJournal = await Journal.open(dir, { core });
      await using scopedUploader = new Uploader({ journal: scopedJournal, storage, db: DB, core });
      await using scopedFollower = new Follower({ storage, db: DB, dir: await freshDir('replica'), core });
      [journal, uploader, follower] = [scopedJournal, scopedUploader, scopedFollower];
      await uploader.start();
      await journal.append(entryFor(1));
      await uploader.sync();
      expect((await follower.catchUp()).sequence).toBe(1);
    }
    await expect(journal.append(entryFor(2))).rejects.toMatchObject({ code: 'closed' });
    await expect(uploader.sync()).rejects.toMatchObject({ code: 'closed' });
    await expect(follower.catchUp()).rejects.toMatchObject({ code: 'closed' });
    const reopened = await Journal.open(dir, { core }); // the lock was released
    expect(reopened.sequence).toBe(1);
    await reopened.close();
  });

  it('tail: an abort ends the loop with an AbortError after persisting the position; close() ends it quietly', async () => {
    const storage = new MemoryStorage();
    await shipped(storage, 60);
    const dir = await freshDir('tail');
    const controller = new AbortController();
    const reason = new Error('enough');
    const taken: number[] = [];
    const aborted = await rejection(
      (async () => {
        for await (const record of new Follower({ storage, db: DB, dir, core }).tail({ pollIntervalMs: 5, signal: controller.signal })) {
          taken.push(record.sequence);
          if (record.sequence === 20) controller.abort(reason);
        }
      })(),
    );
    expectAbortError(aborted, reason);
    expect(taken).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));

    const resumed = new Follower({ storage, db: DB, dir, core });
    const after: number[] = [];
    for await (const record of resumed.tail({ pollIntervalMs: 5 })) {
      after.push(record.sequence);
      if (record.sequence === 40) void resumed.close();
    }
    expect(after).toEqual(Array.from({ length: 20 }, (_, i) => i + 21));
    expect(resumed.position.sequence).toBe(40);
    await expect(resumed.catchUp()).rejects.toMatchObject({ code: 'closed' });
    const third = new Follower({ storage, db: DB, dir, core });
    const rest: number[] = [];
    for await (const record of third.tail({ pollIntervalMs: 5 })) {
      rest.push(record.sequence);
      if (record.sequence === 60) break;
    }
    expect(rest[0]).toBe(41);
  });

  it('an already aborted signal rejects at once and does nothing', async () => {
    const storage = new MemoryStorage();
    await shipped(storage, 30);
    const reason = new Error('not now');
    const signal = AbortSignal.abort(reason);
    const dir = await freshDir('pre');
    expectAbortError(await rejection(new Follower({ storage, db: DB, dir, core }).catchUp({ signal })), reason);
    expectAbortError(await rejection(downloadNewSegments(storage, '', DB, dir, 0, { core, signal })), reason);
    expectAbortError(await rejection(restore(storage, { db: DB, dir: await freshDir('restore'), core, signal })), reason);
    const tail = new Follower({ storage, db: DB, dir, core }).tail({ signal });
    expectAbortError(await rejection(tail[Symbol.asyncIterator]().next()), reason);
    expect((await readdir(dir)).filter((name) => name.endsWith('.hadbj'))).toEqual([]);
  });

  it('catchUp, downloadNewSegments and restore stop between segments; what they stored stays, and the next call completes it', async () => {
    const leaderStorage = new MemoryStorage();
    const leader = await shipped(leaderStorage, 200);
    const expected = await journalRecords(leader.dir, core);

    for (const operation of ['catchUp', 'downloadNewSegments', 'restore'] as const) {
      const controller = new AbortController();
      const dir = await freshDir(operation);
      // aborts once two segments are in the directory, at the next get
      const storage = new GetHookStorage(() => {
        if (readdirSync(dir).filter((name) => name.endsWith('.hadbj')).length >= 2) controller.abort();
      });
      const keys = await leaderStorage.list('');
      expect(keys.length).toBeGreaterThan(6);
      for (const key of keys) await storage.put(key, (await leaderStorage.get(key))!);
      const { signal } = controller;
      const run = {
        catchUp: () => new Follower({ storage, db: DB, dir, core }).catchUp({ signal }),
        downloadNewSegments: () => downloadNewSegments(storage, '', DB, dir, 0, { core, signal, prefetch: 0 }),
        restore: () => restore(storage, { db: DB, dir, core, signal }),
      }[operation];
      expect(await rejection(run())).toBeInstanceOf(AbortError);
      const kept = await journalRecords(dir, core);
      expect(kept.length).toBeGreaterThan(0);
      expect(kept.length).toBeLessThan(expected.length);
      expect(kept).toEqual(expected.slice(0, kept.length)); // a verified prefix

      if (operation !== 'restore') {
        const finish =
          operation === 'catchUp'
            ? new Follower({ storage, db: DB, dir, core }).catchUp().then((result) => result.sequence)
            : downloadNewSegments(storage, '', DB, dir, kept.length, { core }).then((segments) => segments.at(-1)!.lastSeq);
        expect(await finish).toBe(200);
        expect(await journalRecords(dir, core)).toEqual(expected);
      }
    }
  });

  it('Uploader.sync: resolves only once an upload already under way is recorded, even one whose put has landed', async () => {
    const dir = await freshDir('sync-recorded');
    const storage = new HeldPutStorage();
    const journal = await Journal.open(dir, { core });
    const uploader = new Uploader({ journal, storage, db: DB, core, sealIntervalMs: 3_600_000 });
    const recorded: string[] = [];
    uploader.on('uploaded', (record: { name: string }) => recorded.push(record.name));
    try {
      await uploader.start();
      for (let i = 1; i <= 10; i++) await journal.append(entryFor(i));
      const first = uploader.sync();
      while (storage.held === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      // a sync() asked for as the put lands, while the manifest write that records it is still to come
      const second = new Promise<void>((resolve, reject) => (storage.landed = () => uploader.sync().then(resolve, reject)));
      storage.release();
      await second;
      const sealed = (await readdir(dir)).filter((name) => name.endsWith('.hadbj'));
      expect(recorded).toEqual(sealed);
      expect(uploader.stats()).toMatchObject({ succeeded: sealed.length, failed: 0 });
      await first;
    } finally {
      await uploader.stop();
      await journal.close();
    }
  });

  it('Uploader.sync: an abort rejects it at once, and the uploads under way still land', async () => {
    const dir = await freshDir('sync');
    const storage = new HeldPutStorage();
    const journal = await Journal.open(dir, { core });
    const uploader = new Uploader({ journal, storage, db: DB, core, sealIntervalMs: 3_600_000 });
    try {
      await uploader.start();
      for (let i = 1; i <= 10; i++) await journal.append(entryFor(i));
      const controller = new AbortController();
      const syncing = uploader.sync({ signal: controller.signal });
      while (storage.held === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const reason = new Error('shutting down');
      controller.abort(reason);
      expectAbortError(await rejection(syncing), reason);
      expect(await storage.list('')).toEqual([]); // the put is still held
      storage.release();
      await uploader.sync();
      // everything sealed is in storage: what the aborted sync started landed, and nothing was put twice
      const sealed = (await readdir(dir)).filter((name) => name.endsWith('.hadbj'));
      expect(sealed.length).toBeGreaterThan(0);
      expect(await storage.list('')).toHaveLength(sealed.length);
      expect(uploader.stats()).toMatchObject({ succeeded: sealed.length, failed: 0 });
    } finally {
      await uploader.stop();
      await journal.close();
    }
  });
});
