/**
 * One SegmentStorage contract, run against every backend: S3Storage and the native
 * ObjectStoreStorage against each real S3-compatible server (moto and versitygw, started by
 * global-setup.ts), and the local-directory and memory stores.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactOnce } from '../ts/replication/compaction.js';
import { GraphstreamError } from '../ts/errors.js';
import { Follower } from '../ts/replication/follower.js';
import { restore } from '../ts/replication/restore.js';
import { Uploader } from '../ts/replication/uploader.js';
import { LocalStorage, MemoryStorage, ObjectStoreStorage, S3Storage, openStorage } from '../ts/storage/index.js';
import { ReadBuffers } from '../ts/storage/read-buffers.js';
import { nativeStorage } from '../ts/core/native.js';
import type { SegmentStorage } from '../ts/storage/types.js';
import { bundleScripts } from './helpers/bundle.js';
import { cores } from './helpers/cores.js';
import { run } from './helpers/child-process.js';
import { FAULT_KINDS, startFaultProxy } from './helpers/fault-proxy.js';
import { TEST_CREDENTIALS, TEST_REGION, s3Servers, testS3Client, type S3TestServer } from './helpers/s3.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const segmentKey = (seq: number) => `wal/db/0000/${seq.toString(16).padStart(16, '0')}.hadbj`;

/** a bucket on each server, by server name */
const buckets = new Map<string, string>();
const bucketOn = (server: S3TestServer) => buckets.get(server.server)!;
const scratchDirs: string[] = [];
const opened: SegmentStorage[] = [];

async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'graphstream-storage-'));
  scratchDirs.push(dir);
  return dir;
}

function track<T extends SegmentStorage>(storage: T): T {
  opened.push(storage);
  return storage;
}

const s3Options = (server: S3TestServer) => ({ endpoint: server.endpoint(), region: TEST_REGION, credentials: TEST_CREDENTIALS, env: {} });

/** A fresh, empty location per test; `open()` gives another client on the same location. */
interface Location {
  open(): Promise<SegmentStorage>;
}

interface Backend {
  name: string;
  fresh(): Promise<Location>;
  /** false: a put with ifMatch is invalid_argument (object_store's local files cannot swap conditionally) */
  swaps?: false;
}

const backends: Backend[] = [
  ...s3Servers.flatMap((server): Backend[] => [
    {
      name: `S3Storage (${server.server})`,
      async fresh() {
        const url = `s3://${bucketOn(server)}/sdk-${randomBytes(4).toString('hex')}`;
        return { open: async () => track(await openStorage(url, s3Options(server))) };
      },
    },
    {
      name: `ObjectStoreStorage s3:// (${server.server})`,
      async fresh() {
        const url = `s3://${bucketOn(server)}/native-${randomBytes(4).toString('hex')}`;
        return { open: async () => track(await openStorage(url, { ...s3Options(server), backend: 'object_store' })) };
      },
    },
  ]),
  {
    name: 'LocalStorage',
    async fresh() {
      const dir = await scratchDir();
      return { open: async () => track(await openStorage(dir)) };
    },
  },
  {
    name: 'MemoryStorage',
    async fresh() {
      const storage = track(await openStorage('memory://'));
      return { open: async () => storage };
    },
  },
  {
    name: 'ObjectStoreStorage file://',
    swaps: false,
    async fresh() {
      const url = pathToFileURL(await scratchDir()).href;
      return { open: async () => track(await openStorage(url, { backend: 'object_store' })) };
    },
  },
  {
    name: 'ObjectStoreStorage memory://',
    async fresh() {
      const storage = track(await openStorage('memory://', { backend: 'object_store' }));
      return { open: async () => storage };
    },
  },
];

beforeAll(async () => {
  for (const server of s3Servers) buckets.set(server.server, await server.createBucket('storage'));
});

afterAll(async () => {
  await Promise.all(opened.map((storage) => storage.close?.()));
  await Promise.all(scratchDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function expectGraphstreamError(promise: Promise<unknown>, code: string): Promise<GraphstreamError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected a GraphstreamError ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphstreamError);
  expect((err as GraphstreamError).code).toBe(code);
  return err as GraphstreamError;
}

describe.each(backends)('SegmentStorage contract: $name', (backend) => {
  it('stores and returns bytes; a missing key is null', async () => {
    const storage = await (await backend.fresh()).open();
    const payload = randomBytes(70_000);
    expect(await storage.put(segmentKey(1), payload)).toMatchObject({ created: true });
    expect(Buffer.from((await storage.get(segmentKey(1)))!)).toEqual(payload);
    expect(await storage.get(segmentKey(2))).toBeNull();
    expect(await storage.get('wal/db')).toBeNull();
  });

  it('get reads into the buffer it is given when the object fits, and into memory of its own when not', async () => {
    const storage = await (await backend.fresh()).open();
    const payload = randomBytes(70_000);
    await storage.put(segmentKey(1), payload);
    const into = Buffer.alloc(100_000, 7);
    const got = (await storage.get(segmentKey(1), { into }))!;
    expect(Buffer.from(got)).toEqual(payload);
    expect(got.buffer).toBe(into.buffer);
    expect(got.byteOffset).toBe(into.byteOffset);
    expect(into.subarray(70_000).every((byte) => byte === 7), 'nothing written past the object').toBe(true);

    const small = Buffer.alloc(1_000, 7);
    const own = (await storage.get(segmentKey(1), { into: small }))!;
    expect(Buffer.from(own)).toEqual(payload);
    expect(own.buffer).not.toBe(small.buffer);
    expect(small.every((byte) => byte === 7), 'a buffer too small is left alone').toBe(true);
    expect(await storage.get(segmentKey(2), { into })).toBeNull();
  });

  it('a plain put replaces the object; an empty object round-trips', async () => {
    const storage = await (await backend.fresh()).open();
    await storage.put('k', bytes('first'));
    await storage.put('k', bytes('second'));
    expect(new TextDecoder().decode((await storage.get('k'))!)).toBe('second');
    await storage.put('empty', new Uint8Array(0));
    expect((await storage.get('empty'))?.byteLength).toBe(0);
  });

  it('lists keys under a prefix in key order, after startAfter', async () => {
    const storage = await (await backend.fresh()).open();
    const keys = [3, 1, 17, 2, 16].map(segmentKey);
    for (const key of keys) await storage.put(key, bytes(key));
    await storage.put('wal/other/0000/0000000000000001.hadbj', bytes('x'));
    await storage.put('wal/db/0001/0000000000000001.hadbj', bytes('x'));
    const sorted = [1, 2, 3, 16, 17].map(segmentKey);

    expect(await storage.list('wal/db/0000/')).toEqual(sorted);
    expect(await storage.list('wal/db/0000/', { startAfter: segmentKey(3) })).toEqual(sorted.slice(3));
    expect(await storage.list('wal/db/0000/', { startAfter: segmentKey(17) })).toEqual([]);
    // a prefix need not end at a '/'
    expect(await storage.list('wal/db/0000/000000000000001')).toEqual(sorted.slice(3));
    expect(await storage.list('wal/db/000')).toEqual([...sorted, 'wal/db/0001/0000000000000001.hadbj']);
    expect(await storage.list('wal/d')).toEqual([...sorted, 'wal/db/0001/0000000000000001.hadbj']);
    expect(await storage.list('wal/nothing/')).toEqual([]);
  });

  it('lists every page: more than 1000 keys', async () => {
    const storage = await (await backend.fresh()).open();
    const count = 1_005;
    const keys = Array.from({ length: count }, (_, i) => segmentKey(i + 1));
    for (let i = 0; i < count; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((key) => storage.put(key, bytes(key))));
    }
    expect(await storage.list('wal/db/0000/')).toEqual(keys);
    expect(await storage.list('wal/db/0000/', { startAfter: keys[9] })).toEqual(keys.slice(10));
  });

  it('deletes; deleting a missing key succeeds', async () => {
    const storage = await (await backend.fresh()).open();
    await storage.put(segmentKey(1), bytes('one'));
    await storage.put(segmentKey(2), bytes('two'));
    await storage.delete(segmentKey(1));
    expect(await storage.get(segmentKey(1))).toBeNull();
    expect(await storage.list('wal/')).toEqual([segmentKey(2)]);
    await storage.delete(segmentKey(1));
    await storage.delete('never/existed');
  });

  it('a conditional re-put of identical bytes is a no-op success', async () => {
    const storage = await (await backend.fresh()).open();
    const payload = randomBytes(4_096);
    expect(await storage.put(segmentKey(5), payload, { ifNoneMatch: '*' })).toMatchObject({ created: true });
    expect(await storage.put(segmentKey(5), payload, { ifNoneMatch: '*' })).toMatchObject({ created: false });
    expect(Buffer.from((await storage.get(segmentKey(5)))!)).toEqual(payload);
  });

  it('fencing: a second writer with different bytes gets conflict and the first object stays', async () => {
    const location = await backend.fresh();
    const first = await location.open();
    const second = await location.open();
    const firstBytes = bytes('leader A segment');
    expect(await first.put(segmentKey(9), firstBytes, { ifNoneMatch: '*' })).toMatchObject({ created: true });

    const err = await expectGraphstreamError(
      second.put(segmentKey(9), bytes('leader B segment'), { ifNoneMatch: '*' }),
      'conflict',
    );
    expect(err.message).toContain(segmentKey(9));
    expect(err.details?.retryable).not.toBe(true);
    expect(Buffer.from((await first.get(segmentKey(9)))!)).toEqual(Buffer.from(firstBytes));
    expect(Buffer.from((await second.get(segmentKey(9)))!)).toEqual(Buffer.from(firstBytes));
  });

  it('metadata is stored with the object and head reads it back (lowercase keys); a refused put leaves it as it was', async () => {
    const location = await backend.fresh();
    const first = await location.open();
    const second = await location.open();
    const metadata = { 'graphstream-plaintext-sha256': 'ab'.repeat(32), 'graphstream-last-seq': '42' };
    const payload = randomBytes(1_000);
    expect(await first.head!(segmentKey(3))).toBeNull();
    await first.put(segmentKey(3), payload, { ifNoneMatch: '*', metadata });
    const head = (await second.head!(segmentKey(3)))!;
    expect(head).toMatchObject({ size: 1_000, metadata });
    expect(Object.keys(head.metadata).sort()).toEqual(Object.keys(metadata).sort());
    await expectGraphstreamError(second.put(segmentKey(3), randomBytes(1_000), { ifNoneMatch: '*', metadata: { 'graphstream-last-seq': '7' } }), 'conflict');
    expect((await first.head!(segmentKey(3)))!.metadata).toEqual(metadata);
    expect(Buffer.from((await first.get(segmentKey(3)))!)).toEqual(payload);
    // a put without metadata stores none; metadata files are no keys
    await first.put(segmentKey(4), payload, { ifNoneMatch: '*' });
    expect((await first.head!(segmentKey(4)))!.metadata).toEqual({});
    expect(await second.list('wal/')).toEqual([segmentKey(3), segmentKey(4)]);
    await first.delete(segmentKey(3));
    expect(await second.head!(segmentKey(3))).toBeNull();
    await second.put(segmentKey(3), payload, { ifNoneMatch: '*' });
    expect((await first.head!(segmentKey(3)))!.metadata).toEqual({});
  });

  it('metadata a backend could not store as given is invalid_argument, and nothing is stored', async () => {
    const storage = await (await backend.fresh()).open();
    for (const metadata of [{ 'Upper-Case': 'x' } as Record<string, string>, { 'graphstream-x': 'caf\u00e9' }, { 'graphstream-x': ' padded' }, { 'graphstream-x': 'x'.repeat(2100) }]) {
      await expectGraphstreamError(storage.put(segmentKey(6), bytes('x'), { ifNoneMatch: '*', metadata }), 'invalid_argument');
    }
    expect(await storage.get(segmentKey(6))).toBeNull();
  });

  it('getWithETag gives the ETag of the version a put stored; missing is null', async () => {
    const storage = await (await backend.fresh()).open();
    expect(await storage.getWithETag!(segmentKey(1))).toBeNull();
    const created = await storage.put(segmentKey(1), bytes('one'), { ifNoneMatch: '*' });
    const read = await storage.getWithETag!(segmentKey(1));
    expect(Buffer.from(read!.bytes).toString()).toBe('one');
    expect(read!.etag).toBe(created.etag);
    const again = await storage.put(segmentKey(1), bytes('one'), { ifNoneMatch: '*' });
    expect(again).toEqual({ created: false, etag: created.etag });
    const replaced = await storage.put(segmentKey(1), bytes('two'));
    expect(replaced.etag).not.toBe(created.etag);
    expect((await storage.getWithETag!(segmentKey(1)))!.etag).toBe(replaced.etag);
  });

  it('ifMatch with ifNoneMatch, or an empty ifMatch, is invalid_argument', async () => {
    const storage = await (await backend.fresh()).open();
    await expectGraphstreamError(storage.put(segmentKey(1), bytes('x'), { ifMatch: '"a"', ifNoneMatch: '*' }), 'invalid_argument');
    await expectGraphstreamError(storage.put(segmentKey(1), bytes('x'), { ifMatch: '' }), 'invalid_argument');
    expect(await storage.get(segmentKey(1))).toBeNull();
  });

  it('a key names one object on every backend: keys with a leading or trailing slash, empty, "." or ".." segments, backslashes or control characters are invalid_argument', async () => {
    const storage = await (await backend.fresh()).open();
    for (const key of ['/x', 'wal/x/', 'wal//x', './x', 'wal/../x', '..', 'wal\\x', 'wal/x\u0000', 'wal/\nx', '']) {
      await expectGraphstreamError(storage.put(key, bytes('x')), 'invalid_argument');
      await expectGraphstreamError(storage.put(key, bytes('x'), { ifNoneMatch: '*' }), 'invalid_argument');
      await expectGraphstreamError(storage.get(key), 'invalid_argument');
      await expectGraphstreamError(storage.delete(key), 'invalid_argument');
    }
    for (const prefix of ['/', '/wal/', 'wal//', '../', 'wal/./x', 'wal\u0000']) {
      await expectGraphstreamError(storage.list(prefix), 'invalid_argument');
    }
    expect(await storage.list('')).toEqual([]);
  });

  it('a body that is not bytes is invalid_argument naming the object, and stores nothing', async () => {
    const storage = await (await backend.fresh()).open();
    for (const body of [null, undefined, 'text', 42, [1, 2, 3]]) {
      const err = await expectGraphstreamError(storage.put('wal/x', body as unknown as Uint8Array), 'invalid_argument');
      expect(err.message).toContain('wal/x');
    }
    expect(await storage.list('')).toEqual([]);
  });

  it("messages name an object as the storage's description and the key joined by one '/'", async () => {
    const location = await backend.fresh();
    const storage = await location.open();
    await storage.put(segmentKey(9), bytes('first'), { ifNoneMatch: '*' });
    const err = await expectGraphstreamError((await location.open()).put(segmentKey(9), bytes('second'), { ifNoneMatch: '*' }), 'conflict');
    expect(err.message).toContain(`${storage.description.replace(/\/$/, '')}/${segmentKey(9)}`);
  });
});

/** The backends that implement the optional stageFile (the Uploader's path to them). */
const stagingBackends = backends.filter((backend) => backend.name.startsWith('S3Storage') || backend.name.startsWith('ObjectStoreStorage'));
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

async function writeScratchFile(name: string, data: Uint8Array): Promise<string> {
  const path = join(await scratchDir(), name);
  await writeFile(path, data);
  return path;
}

/** `count` files of random bytes, `minBytes` plus up to `spreadBytes`, each with its key. */
async function scratchFiles(count: number, minBytes: number, spreadBytes: number) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const data = randomBytes(minBytes + ((i * 370_003) % spreadBytes));
      return { key: segmentKey(i + 1), data, path: await writeScratchFile(`file-${i}`, data) };
    }),
  );
}

/** Stages and puts every file, 4 at a time as the Uploader does: a file is read while the puts of others are in flight. */
async function stageAndPutFourAtATime(storage: SegmentStorage, files: { key: string; path: string }[]): Promise<string[]> {
  const hashes: string[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < files.length; i = next++) {
      const staged = await storage.stageFile!(files[i]!.path);
      try {
        await staged.put(files[i]!.key, { ifNoneMatch: '*' });
        hashes[i] = staged.sha256;
      } finally {
        staged.release();
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return hashes;
}

describe.each(backends.filter((backend) => backend.swaps !== false))('SegmentStorage compare-and-swap (ifMatch): $name', (backend) => {
  it('ifMatch replaces only the version read: a stale or missing one is conflict and nothing is written', async () => {
    const location = await backend.fresh();
    const first = await location.open();
    const second = await location.open();
    const key = 'wal/db/lease.json';
    const missing = await expectGraphstreamError(first.put(key, bytes('x'), { ifMatch: '"nothing"' }), 'conflict');
    expect(missing.details).toMatchObject({ key, retryable: false });
    expect(await first.get(key)).toBeNull();

    const v1 = await first.put(key, bytes('v1'), { ifNoneMatch: '*' });
    const read = await second.getWithETag!(key);
    const v2 = await second.put(key, bytes('v2'), { ifMatch: read!.etag });
    expect(v2.created).toBe(true);
    expect(v2.etag).not.toBe(v1.etag);
    const stale = await expectGraphstreamError(first.put(key, bytes('v3'), { ifMatch: v1.etag! }), 'conflict');
    expect(stale.message).toContain(key);
    expect(Buffer.from((await first.get(key))!).toString()).toBe('v2');
    const v3 = await first.put(key, bytes('v3'), { ifMatch: v2.etag! });
    expect((await second.getWithETag!(key))!.etag).toBe(v3.etag);
  });

  it('of writers racing to replace one version with ifMatch, exactly one succeeds', async () => {
    const location = await backend.fresh();
    const clients = await Promise.all(Array.from({ length: 6 }, () => location.open()));
    const key = 'wal/db/lease.json';
    const { etag } = await clients[0]!.put(key, bytes('base'), { ifNoneMatch: '*' });
    const results = await Promise.allSettled(clients.map((client, i) => client.put(key, bytes(`writer ${i}`), { ifMatch: etag! })));
    const won = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const result of results) {
      if (result.status === 'rejected') expect((result.reason as GraphstreamError).code).toBe('conflict');
    }
    expect(Buffer.from((await clients[0]!.get(key))!).toString()).toBe(`writer ${won[0]}`);
  });
});

describe('ObjectStoreStorage file:// cannot swap conditionally', () => {
  it('a put with ifMatch is invalid_argument saying so, and writes nothing', async () => {
    const storage = await openStorage(pathToFileURL(await scratchDir()).href, { backend: 'object_store' });
    await storage.put('k', bytes('v1'));
    const err = await expectGraphstreamError(storage.put('k', bytes('v2'), { ifMatch: (await storage.getWithETag!('k'))!.etag }), 'invalid_argument');
    expect(err.message).toContain('If-Match');
    expect(Buffer.from((await storage.get('k'))!).toString()).toBe('v1');
  });
});

describe('LocalStorage compare-and-swap across processes', () => {
  const root = dirname(dirname(fileURLToPath(import.meta.url)));
  const buildDir = join(root, '.vitest-tmp', `cas-${process.pid}`);
  afterAll(() => rm(buildDir, { recursive: true, force: true }));

  it('two processes incrementing one counter by getWithETag + ifMatch lose no increment', { timeout: 60_000 }, async () => {
    await bundleScripts({ 'cas-incrementer': join(root, '__test__/helpers/cas-incrementer.ts') }, buildDir);
    const dir = await scratchDir();
    await new LocalStorage(dir).put('counter', bytes('0'));
    const rounds = 150;
    const children = [0, 1].map(() => run(process.execPath, [join(buildDir, 'cas-incrementer.mjs'), dir, 'counter', String(rounds)]));
    for (const child of children) expect(await child.exited, child.stderr()).toEqual({ code: 0, signal: null });
    expect(Buffer.from((await new LocalStorage(dir).get('counter'))!).toString()).toBe(String(2 * rounds));
    // the two really raced: some swaps were refused
    const lost = children.map((child) => Number(/lost (\d+)/.exec(child.lines.join('\n'))![1]));
    expect(lost[0]! + lost[1]!).toBeGreaterThan(0);
    expect(await readdir(dir)).toEqual(['counter']);
  });
});

describe.each(stagingBackends)('SegmentStorage.stageFile: $name', (backend) => {
  it("a staged file has the file's size and SHA-256, and puts it as put() would, as often as asked until released", async () => {
    const location = await backend.fresh();
    const storage = await location.open();
    expect(storage.stageFile).toBeTypeOf('function');
    const first = randomBytes(300_000);
    const staged = await storage.stageFile!(await writeScratchFile('first', first));
    expect({ size: staged.size, sha256: staged.sha256 }).toEqual({ size: first.length, sha256: sha256(first) });
    expect(await staged.put(segmentKey(1), { ifNoneMatch: '*' })).toMatchObject({ created: true });
    expect(await staged.put(segmentKey(1), { ifNoneMatch: '*' })).toMatchObject({ created: false });
    expect(Buffer.from((await storage.get(segmentKey(1)))!).equals(first)).toBe(true);

    const other = await (await location.open()).stageFile!(await writeScratchFile('second', randomBytes(300_000)));
    await expectGraphstreamError(other.put(segmentKey(1), { ifNoneMatch: '*' }), 'conflict');
    expect(Buffer.from((await storage.get(segmentKey(1)))!).equals(first)).toBe(true);
    other.release();

    staged.release();
    await expectGraphstreamError(staged.put(segmentKey(2)), 'closed');
    expect(await storage.get(segmentKey(2))).toBeNull();

    const empty = await storage.stageFile!(await writeScratchFile('empty', new Uint8Array(0)));
    expect({ size: empty.size, sha256: empty.sha256 }).toEqual({ size: 0, sha256: sha256(new Uint8Array(0)) });
    expect(await empty.put(segmentKey(3))).toMatchObject({ created: true });
    expect((await storage.get(segmentKey(3)))?.byteLength).toBe(0);
    empty.release();
  });

  it('a missing file is not_found naming it', async () => {
    const storage = await (await backend.fresh()).open();
    const missing = join(await scratchDir(), 'no-such-segment');
    const err = await expectGraphstreamError(storage.stageFile!(missing), 'not_found');
    expect(err.message).toContain(missing);
  });

  it('files of different sizes, staged and put 4 at a time, are each stored intact', async () => {
    const storage = await (await backend.fresh()).open();
    const files = await scratchFiles(24, 20_000, 200_000);
    expect(await stageAndPutFourAtATime(storage, files)).toEqual(files.map((file) => sha256(file.data)));
    for (const file of files) expect(Buffer.from((await storage.get(file.key))!).equals(file.data), file.key).toBe(true);
  });
});

/** The age test key (__test__/fixtures/age/test-key.txt): what stageEncryptedFile encrypts to, and what opens it. */
const ageKeyText = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'age', 'test-key.txt'), 'utf8');
const AGE_IDENTITY = ageKeyText.split('\n').find((line) => line.startsWith('AGE-SECRET-KEY-1'))!;
const AGE_RECIPIENT = /# public key: (age1\w+)/.exec(ageKeyText)![1]!;

describe.each(backends.filter((backend) => backend.name.startsWith('ObjectStoreStorage')))('SegmentStorage.stageEncryptedFile: $name', (backend) => {
  it('stages the age file of the file: size and SHA-256 of what is stored, plaintext size and SHA-256 of the file; each core opens it', async () => {
    const storage = await (await backend.fresh()).open();
    const file = randomBytes(300_000);
    const staged = await storage.stageEncryptedFile!(await writeScratchFile('encrypted', file), { recipients: [AGE_RECIPIENT] });
    expect({ plaintextSize: staged.plaintextSize, plaintextSha256: staged.plaintextSha256 }).toEqual({ plaintextSize: file.length, plaintextSha256: sha256(file) });
    const metadata = { 'graphstream-last-seq': '7' };
    expect(await staged.put(segmentKey(1), { ifNoneMatch: '*', metadata })).toMatchObject({ created: true });
    // a retry puts the same ciphertext: a no-op
    expect(await staged.put(segmentKey(1), { ifNoneMatch: '*', metadata })).toMatchObject({ created: false });
    const stored = Buffer.from((await storage.get(segmentKey(1)))!);
    expect({ size: staged.size, sha256: staged.sha256 }).toEqual({ size: stored.length, sha256: sha256(stored) });
    expect((await storage.head!(segmentKey(1)))?.metadata).toEqual(metadata);
    for (const core of cores) expect((await core.decryptSegment(stored, { identities: [AGE_IDENTITY] })).equals(file), core.kind).toBe(true);
    staged.release();
    await expectGraphstreamError(staged.put(segmentKey(2)), 'closed');
    expect(await storage.get(segmentKey(2))).toBeNull();
  });

  it('a missing file is not_found naming it; a bad recipient is invalid_argument, no key in the message', async () => {
    const storage = await (await backend.fresh()).open();
    const missing = join(await scratchDir(), 'no-such-segment');
    const err = await expectGraphstreamError(storage.stageEncryptedFile!(missing, { recipients: [AGE_RECIPIENT] }), 'not_found');
    expect(err.message).toContain(missing);
    const path = await writeScratchFile('plain', randomBytes(1000));
    for (const recipients of [[AGE_IDENTITY], ['age1bogus']]) {
      const bad = await expectGraphstreamError(storage.stageEncryptedFile!(path, { recipients }), 'invalid_argument');
      expect(bad.message).not.toContain(AGE_IDENTITY);
      expect(bad.message).toContain(path);
    }
  });
});

/**
 * A TCP proxy to `target` that starts reading each connection's request only after a delay (`delayMs`
 * times 1, 2, 3 or 4 in turn, so that requests finish out of order): bodies wait in the client meanwhile.
 */
async function startSlowReadingProxy(target: string, delayMs: number): Promise<{ endpoint: string; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((client) => {
    const delay = delayMs * (1 + (connections++ % 4));
    client.pause();
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.pipe(client);
    setTimeout(() => client.pipe(upstream), delay);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    endpoint: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * An HTTP server on loopback that answers every GetObject with `body`: without a Content-Length
 * (chunked), or announcing `announced` bytes and closing the connection after the body. A fault
 * the S3 server does not produce.
 */
async function startBodyServer(body: Buffer, announced?: number): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const server = createHttpServer((request, response) => {
    request.resume();
    if (announced === undefined) {
      response.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      for (let at = 0; at < body.length; at += 16_384) response.write(body.subarray(at, at + 16_384));
      response.end();
      return;
    }
    response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(announced) });
    response.write(body, () => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('S3Storage.get reads a body to its end, within maxObjectBytes', () => {
  const storageAt = (endpoint: string, maxObjectBytes?: number) =>
    track(new S3Storage({ bucket: 'any', endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS, forcePathStyle: true, maxAttempts: 1, maxObjectBytes }));

  it('returns a body sent without a Content-Length whole', async () => {
    const body = randomBytes(200_000);
    const server = await startBodyServer(body);
    try {
      expect(Buffer.from((await storageAt(server.endpoint).get(segmentKey(1)))!).equals(body)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('refuses a body without a Content-Length once it passes maxObjectBytes', async () => {
    const server = await startBodyServer(randomBytes(200_000));
    try {
      const err = await expectGraphstreamError(storageAt(server.endpoint, 100_000).get(segmentKey(1)), 'too_large');
      expect(err.message).toContain('no Content-Length');
    } finally {
      await server.close();
    }
  });

  it('a body cut short of its Content-Length is a retryable storage error', async () => {
    const server = await startBodyServer(randomBytes(50_000), 200_000);
    try {
      const err = await expectGraphstreamError(storageAt(server.endpoint).get(segmentKey(1)), 'storage');
      expect(err.details).toMatchObject({ key: segmentKey(1), retryable: true });
    } finally {
      await server.close();
    }
  });
});

describe.each(s3Servers)('S3Storage.stageFile ($server)', (server) => {
  it('reuses read buffers only once released: files staged and put 4 at a time through a slow-reading server arrive intact', async () => {
    const proxy = await startSlowReadingProxy(server.endpoint(), 50);
    try {
      const storage = track(new S3Storage({ bucket: bucketOn(server), prefix: `slow-${randomBytes(4).toString('hex')}/`, endpoint: proxy.endpoint, region: TEST_REGION, credentials: TEST_CREDENTIALS, forcePathStyle: true }));
      // more than the kernel's socket buffers take: the rest of a body waits in the client's memory
      const files = await scratchFiles(8, 3_000_000, 1_000_000);
      await stageAndPutFourAtATime(storage, files);
      for (const file of files) expect(Buffer.from((await storage.get(file.key))!).equals(file.data), file.key).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  /** A client on the server that records the payload hash each PUT is signed with. */
  function clientRecordingSignedHashes() {
    const client = testS3Client(server.endpoint());
    const signed: string[] = [];
    client.middlewareStack.add(
      (next) => (args) => {
        const request = args.request as { method?: string; headers?: Record<string, string> };
        const hash = request.headers?.['x-amz-content-sha256'];
        if (request.method === 'PUT' && hash !== undefined) signed.push(hash);
        return next(args);
      },
      { step: 'deserialize', name: 'captureSignedPayloadHash' },
    );
    return { client, signed };
  }

  it('signs each request with the SHA-256 of the bytes it sends', async () => {
    const { client, signed } = clientRecordingSignedHashes();
    const storage = track(new S3Storage({ bucket: bucketOn(server), prefix: `signed-${randomBytes(4).toString('hex')}/`, client }));
    const data = [randomBytes(100_000), randomBytes(90_000)];
    for (const [i, bytes] of data.entries()) {
      const staged = await storage.stageFile(await writeScratchFile(`s${i}`, bytes));
      await staged.put(segmentKey(i + 1), { ifNoneMatch: '*' });
      await staged.put(segmentKey(i + 1), { ifNoneMatch: '*' });
      staged.release();
    }
    expect(signed).toEqual(data.flatMap((bytes) => [sha256(bytes), sha256(bytes)]));
    client.destroy();
  });

  it('put signs with the SHA-256 given in its options (what the Uploader computed for a ciphertext) instead of hashing the body', async () => {
    const { client, signed } = clientRecordingSignedHashes();
    const storage = track(new S3Storage({ bucket: bucketOn(server), prefix: `hint-${randomBytes(4).toString('hex')}/`, client }));
    const payload = randomBytes(10_000);
    await storage.put('given', payload, { ifNoneMatch: '*', sha256: sha256(payload) });
    expect(Buffer.from((await storage.get('given'))!)).toEqual(payload);
    // the given hash is what is signed, even a wrong one (which versitygw refuses and moto does not check)
    const wrong = sha256(Buffer.from('other bytes'));
    await storage.put('wrong', payload, { ifNoneMatch: '*', sha256: wrong }).catch(() => undefined);
    // a malformed one is not used: the SDK hashes the body itself
    await storage.put('not-hex', payload, { ifNoneMatch: '*', sha256: 'not a digest' });
    expect(signed).toEqual([sha256(payload), wrong, sha256(payload)]);
    client.destroy();
  });

  it('a file larger than maxObjectBytes is too_large', async () => {
    const storage = track(
      new S3Storage({ bucket: bucketOn(server), prefix: `big-${randomBytes(4).toString('hex')}/`, endpoint: server.endpoint(), region: TEST_REGION, credentials: TEST_CREDENTIALS, forcePathStyle: true, maxObjectBytes: 1000 }),
    );
    const path = await writeScratchFile('big', randomBytes(1001));
    await expectGraphstreamError(storage.stageFile(path), 'too_large');
  });
});

describe.each([
  { reader: 'the native addon', native: nativeStorage },
  { reader: 'node:fs and WebCrypto', native: null },
])('ReadBuffers through $reader', ({ native }) => {
  it('reads and hashes whole files, and reads into a released buffer again', async () => {
    const buffers = new ReadBuffers(1 << 30, native);
    const files = await scratchFiles(4, 100_000, 1_000_000);
    const held = [];
    for (const file of files) {
      const read = await buffers.read(file.path, 1 << 30);
      expect(read.bytes.equals(file.data), file.path).toBe(true);
      expect(read.sha256).toBe(sha256(file.data));
      held.push(read);
    }
    expect(new Set(held.map((read) => read.bytes.buffer)).size).toBe(files.length);
    const largest = held.reduce((a, b) => (a.bytes.length > b.bytes.length ? a : b));
    const memory = largest.bytes.buffer;
    for (const read of held) read.release();
    const again = await buffers.read(files.find((file) => file.data.length === largest.bytes.length)!.path, 1 << 30);
    expect(again.bytes.buffer).toBe(memory);
    expect(again.sha256).toBe(largest.sha256);
  });

  it('a file over the limit is too_large, a missing one not_found naming it', async () => {
    const buffers = new ReadBuffers(1 << 30, native);
    const [file] = await scratchFiles(1, 5_000, 1);
    await expectGraphstreamError(buffers.read(file!.path, 4_999), 'too_large');
    const missing = join(await scratchDir(), 'missing-segment');
    const err = await expectGraphstreamError(buffers.read(missing, 1 << 30), 'not_found');
    expect(err.message).toContain(missing);
    expect((await buffers.read(file!.path, 5_000)).bytes.equals(file!.data)).toBe(true);
  });
});

describe.each(s3Servers)('S3 backends share one layout ($server)', (server) => {
  it('what S3Storage writes under a prefix, ObjectStoreStorage reads, and the reverse', async () => {
    const url = `s3://${bucketOn(server)}/shared-${randomBytes(4).toString('hex')}/`;
    const sdk = track(await openStorage(url, s3Options(server)));
    const native = track(await openStorage(url, { ...s3Options(server), backend: 'object_store' }));
    await sdk.put(segmentKey(1), bytes('from sdk'), { ifNoneMatch: '*' });
    await native.put(segmentKey(2), bytes('from native'), { ifNoneMatch: '*' });
    expect(await native.list('wal/')).toEqual([segmentKey(1), segmentKey(2)]);
    expect(await sdk.list('wal/')).toEqual([segmentKey(1), segmentKey(2)]);
    expect(new TextDecoder().decode((await native.get(segmentKey(1)))!)).toBe('from sdk');
    await expectGraphstreamError(native.put(segmentKey(1), bytes('other'), { ifNoneMatch: '*' }), 'conflict');
    await expectGraphstreamError(sdk.put(segmentKey(2), bytes('other'), { ifNoneMatch: '*' }), 'conflict');
    // metadata one client put, the other reads
    await sdk.put(segmentKey(3), bytes('meta'), { metadata: { 'graphstream-last-seq': '3' } });
    await native.put(segmentKey(4), bytes('meta'), { metadata: { 'graphstream-last-seq': '4' } });
    expect((await native.head!(segmentKey(3)))!.metadata).toEqual({ 'graphstream-last-seq': '3' });
    expect((await sdk.head!(segmentKey(4)))!.metadata).toEqual({ 'graphstream-last-seq': '4' });
  });

  it('S3Storage follows continuation tokens with small pages', async () => {
    const storage = track(
      new S3Storage({
        bucket: bucketOn(server),
        prefix: `paged-${randomBytes(4).toString('hex')}/`,
        endpoint: server.endpoint(),
        region: TEST_REGION,
        credentials: TEST_CREDENTIALS,
        forcePathStyle: true,
        maxKeysPerPage: 3,
      }),
    );
    const keys = Array.from({ length: 11 }, (_, i) => segmentKey(i + 1));
    await Promise.all(keys.map((key) => storage.put(key, bytes(key))));
    expect(await storage.list('wal/')).toEqual(keys);
    expect(await storage.list('wal/', { startAfter: keys[4] })).toEqual(keys.slice(5));
  });
});

async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 1));
    });
  });
}

describe.each(
  s3Servers.flatMap((server) => [
    { name: 'S3Storage', backend: 'sdk' as const, server },
    { name: 'ObjectStoreStorage', backend: 'object_store' as const, server },
  ]),
)('$name failures carry retry details ($server.server)', ({ backend, server }) => {
  it('an unreachable endpoint is a retryable storage error naming the key', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const storage = track(
      await openStorage(`s3://${bucketOn(server)}/p`, { ...s3Options(server), endpoint, backend, maxAttempts: 1 }),
    );
    const err = await expectGraphstreamError(storage.put(segmentKey(1), bytes('x')), 'storage');
    expect(err.message).toContain(segmentKey(1));
    expect(err.details).toMatchObject({ retryable: true, key: segmentKey(1) });
    await expectGraphstreamError(storage.get(segmentKey(1)), 'storage');
    await expectGraphstreamError(storage.list('wal/'), 'storage');
  });

  it.each([
    { fault: 'error500' as const, status: 500 },
    { fault: 'error503' as const, status: 503 },
    { fault: 'slowDown' as const, status: 503 },
  ])('a $fault answer is a retryable storage error with status $status', async ({ fault, status }) => {
    const weights = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, kind === fault ? 1 : 0]));
    const proxy = await startFaultProxy({ target: server.endpoint(), faultRate: 1, seed: 7, weights });
    try {
      const storage = track(
        await openStorage(`s3://${bucketOn(server)}/p`, { ...s3Options(server), endpoint: proxy.endpoint, backend, maxAttempts: 1 }),
      );
      const err = await expectGraphstreamError(storage.put(segmentKey(1), bytes('x'), { ifNoneMatch: '*' }), 'storage');
      expect(err.details).toMatchObject({ retryable: true, status, key: segmentKey(1) });
      expect(proxy.injected[fault]).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  });

  it('a response lost after the server stored the object resolves on the next conditional put', async () => {
    const weights = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, kind === 'dropAfter' ? 1 : 0]));
    const proxy = await startFaultProxy({ target: server.endpoint(), faultRate: 1, weights });
    const url = `s3://${bucketOn(server)}/lost-${randomBytes(4).toString('hex')}`;
    try {
      const flaky = track(await openStorage(url, { ...s3Options(server), endpoint: proxy.endpoint, backend, maxAttempts: 1 }));
      const err = await expectGraphstreamError(flaky.put(segmentKey(1), bytes('segment'), { ifNoneMatch: '*' }), 'storage');
      expect(err.details?.retryable).toBe(true);
      expect(proxy.injected.dropAfter).toBe(1);
    } finally {
      await proxy.close();
    }
    const direct = track(await openStorage(url, s3Options(server)));
    expect(await direct.put(segmentKey(1), bytes('segment'), { ifNoneMatch: '*' })).toMatchObject({ created: false });
  });
});

describe('bad locations and keys', () => {
  it.each(['ftp://host/x', 's3://', 'gs://', 'file://remote-host/dir', ''])('openStorage(%j) is invalid_argument', async (url) => {
    await expectGraphstreamError(openStorage(url), 'invalid_argument');
  });

  it('a storage location that is not a string is invalid_argument', async () => {
    expect(() => new LocalStorage(5 as unknown as string)).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(() => new LocalStorage('')).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    await expectGraphstreamError(ObjectStoreStorage.open(5 as unknown as string), 'invalid_argument');
  });

  it('the native backend rejects unknown schemes and options', async () => {
    await expectGraphstreamError(ObjectStoreStorage.open('ftp://host/x'), 'invalid_argument');
    await expectGraphstreamError(
      ObjectStoreStorage.open('s3://any-bucket/p', { options: { no_such_option: '1' } }),
      'invalid_argument',
    );
  });

  it('LocalStorage rejects keys that would leave its directory, and hides its temp files', async () => {
    const dir = await scratchDir();
    const storage = new LocalStorage(join(dir, 'store'));
    for (const key of ['../escape', '/abs', 'a//b', 'a/./b', 'a\\b', '']) {
      await expectGraphstreamError(storage.put(key, bytes('x')), 'invalid_argument');
    }
    await storage.put('a/b', bytes('x'), { ifNoneMatch: '*' });
    await storage.put('a/b', bytes('x'), { ifNoneMatch: '*' });
    await expectGraphstreamError(storage.put('a/b', bytes('y'), { ifNoneMatch: '*' }), 'conflict');
    expect(await readdir(join(dir, 'store', 'a'))).toEqual(['b']);
    expect(await readdir(dir)).toEqual(['store']);
  });

  it('LocalStorage and ObjectStoreStorage file:// keep metadata in the same sidecars, named by the bytes they describe', async () => {
    const dir = await scratchDir();
    const local = new LocalStorage(dir);
    const native = track(await openStorage(pathToFileURL(dir).href, { backend: 'object_store' }));
    await local.put('a/one', bytes('one'), { ifNoneMatch: '*', metadata: { 'graphstream-last-seq': '1' } });
    await native.put('a/two', bytes('two'), { ifNoneMatch: '*', metadata: { 'graphstream-last-seq': '2' } });
    expect((await native.head!('a/one'))!.metadata).toEqual({ 'graphstream-last-seq': '1' });
    expect((await local.head!('a/two'))!.metadata).toEqual({ 'graphstream-last-seq': '2' });
    expect(await native.list('a/')).toEqual(['a/one', 'a/two']);
    expect(await local.list('a/')).toEqual(['a/one', 'a/two']);
    // a sidecar of other bytes (a put that crashed before its link) describes nothing here
    const sidecars = (await readdir(join(dir, 'a'))).filter((name) => name.startsWith('.graphstream-meta-'));
    expect(sidecars).toHaveLength(2);
    await local.delete('a/one');
    await native.put('a/one', bytes('ONE'), { ifNoneMatch: '*' });
    expect((await local.head!('a/one'))!.metadata).toEqual({});
    await expectGraphstreamError(local.put('.graphstream-meta-x', bytes('x')), 'invalid_argument');
  });

  it('MemoryStorage copies bytes in and out', async () => {
    const storage = new MemoryStorage();
    const payload = bytes('abc');
    await storage.put('k', payload);
    payload[0] = 0;
    const read = (await storage.get('k'))!;
    read[1] = 0;
    expect(new TextDecoder().decode((await storage.get('k'))!)).toBe('abc');
  });
});

/** A store over `root` of each local backend: LocalStorage and ObjectStoreStorage file://. */
const localBackends = [
  { name: 'LocalStorage', open: async (root: string) => track(await openStorage(root)) },
  { name: 'ObjectStoreStorage file://', open: async (root: string) => track(await openStorage(pathToFileURL(root).href, { backend: 'object_store' })) },
];

describe.each(localBackends)('$name never follows a symbolic link out of its directory', ({ open }) => {
  it('put, get, list and delete through a link leading outside are invalid_argument and touch nothing outside', async () => {
    const root = join(await scratchDir(), 'store');
    const outside = await scratchDir();
    await mkdir(root);
    await writeFile(join(outside, 'secret'), 'outside bytes');
    await symlink(outside, join(root, 'wal'));
    await symlink(join(outside, 'secret'), join(root, 'leak'));
    await symlink(join(outside, 'missing'), join(root, 'dangling'));
    const storage = await open(root);

    for (const key of ['wal/x', 'wal/db/0000/x', 'leak', 'dangling', 'dangling/x']) {
      await expectGraphstreamError(storage.put(key, bytes('written')), 'invalid_argument');
      await expectGraphstreamError(storage.put(key, bytes('written'), { ifNoneMatch: '*' }), 'invalid_argument');
    }
    for (const key of ['wal/secret', 'leak']) {
      const err = await expectGraphstreamError(storage.get(key), 'invalid_argument');
      expect(err.message).toContain('symbolic link');
      await expectGraphstreamError(storage.delete(key), 'invalid_argument');
    }
    await expectGraphstreamError(storage.list('wal/'), 'invalid_argument');
    expect(await storage.list('')).toEqual([]);
    expect((await readdir(outside)).sort()).toEqual(['secret']);
    expect(await readFile(join(outside, 'secret'), 'utf8')).toBe('outside bytes');
  });

  it('a link that stays inside the directory is followed', async () => {
    const root = join(await scratchDir(), 'store');
    await mkdir(join(root, 'real'), { recursive: true });
    await symlink(join(root, 'real'), join(root, 'alias'));
    const storage = await open(root);
    await storage.put('alias/k', bytes('inside'));
    expect(new TextDecoder().decode((await storage.get('real/k'))!)).toBe('inside');
    expect(new TextDecoder().decode((await storage.get('alias/k'))!)).toBe('inside');
  });
});

describe('a remote journal is named by a prefix and a db that stay inside the storage', () => {
  const badDbs = ['', '.', '..', 'a/b', 'a\\b', 'a\u0000b', 'a\nb', 'a\u007fb'];
  const badPrefixes = ['wal', '/', '/wal/', '../', 'a/../../b/', './', 'a/./', 'a//', 'a\u0000/', 'a\tb/'];
  const cases = [...badDbs.map((db) => ({ db, prefix: 'wal/' })), ...badPrefixes.map((prefix) => ({ db: 'graph', prefix }))];

  it.each(cases)('db $db, prefix $prefix: invalid_argument when an Uploader, Follower, restore or compaction is set up', async ({ db, prefix }) => {
    const storage = new MemoryStorage();
    const dir = join(await scratchDir(), 'journal');
    const code = expect.objectContaining({ code: 'invalid_argument' });
    expect(() => new Uploader({ directory: dir, storage, db, prefix })).toThrow(code);
    expect(() => new Follower({ dir, storage, db, prefix })).toThrow(code);
    await expectGraphstreamError(restore(storage, { dir, db, prefix }), 'invalid_argument');
    await expectGraphstreamError(compactOnce({ storage, db, prefix }), 'invalid_argument');
    expect(await readdir(join(dir, '..'))).toEqual([]);
  });
});
