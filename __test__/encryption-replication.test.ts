/**
 * An encrypted store on moto, end to end: the Uploader puts every segment as an age file
 * (`age -d` opens it into the sealed segment), followers, restore and compaction read through the
 * identities and keep plaintext locally; an object `age -r` wrote is read like the package's own;
 * recipients changed mid-way take effect at the next segment; readers without the key, or meeting
 * plaintext where encryption is required, fail with a typed error.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Core } from '../ts/core/core.js';
import { Journal } from '../ts/journal/journal.js';
import { SegmentCache } from '../ts/replication/cache.js';
import { Uploader } from '../ts/replication/uploader.js';
import { compactOnce } from '../ts/replication/compaction.js';
import { Follower } from '../ts/replication/follower.js';
import { restore } from '../ts/replication/restore.js';
import { claimsMetadata } from '../ts/replication/encryption.js';
import { sha256Hex } from '../ts/storage/bytes.js';
import { verifyStore } from '../ts/replication/verify-store.js';
import { LocalStorage } from '../ts/storage/local.js';
import type { SegmentStorage } from '../ts/storage/types.js';
import { bundleScripts } from './helpers/bundle.js';
import { run, waitFor } from './helpers/child-process.js';
import { buildCli, removeCliBuild, runCli } from './helpers/cli.js';
import { cores } from './helpers/cores.js';
import { journalRecords, openLeader, type TestLeader } from './helpers/replication.js';
import { createTestBucket, s3Backends } from './helpers/s3.js';

const keyFile = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'age', 'test-key.txt');
const keyText = await readFile(keyFile, 'utf8');
const IDENTITY = keyText.split('\n').find((line) => line.startsWith('AGE-SECRET-KEY-1'))!;
const RECIPIENT = /# public key: (age1\w+)/.exec(keyText)![1]!;
const OTHER_IDENTITY = execFileSync('age-keygen', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  .split('\n')
  .find((line) => line.startsWith('AGE-SECRET-KEY-1'))!;
const OTHER_RECIPIENT = execFileSync('age-keygen', ['-y'], { input: OTHER_IDENTITY, encoding: 'utf8' }).trim();
const root = dirname(dirname(fileURLToPath(import.meta.url)));
const DB = 'secret';
const AGE = 'age-encryption.org/v1\n';

// S3Storage with the native core, the native ObjectStoreStorage with the pure core
const runs = [
  { s3: s3Backends.find((b) => b.name === 'S3Storage on moto')!, core: cores[0]! },
  { s3: s3Backends.find((b) => b.name === 'ObjectStoreStorage on moto')!, core: cores[1]! },
];

describe.each(runs)('an encrypted store: $s3.name ($core.kind core)', ({ s3, core }: { s3: (typeof runs)[number]['s3']; core: Core }) => {
  let storage: SegmentStorage;
  let prefix: string;
  let leader: TestLeader;
  let counter = 0;
  const dirs: string[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-age-e2e-'));
    dirs.push(dir);
    return dir;
  };
  const objects = async (under: string) => Promise.all((await storage.list(`${prefix}${DB}/${under}/`)).map(async (key) => (await storage.get(key))!));

  beforeAll(async () => {
    storage = await s3.open(await createTestBucket('age'));
    return () => storage.close?.();
  });
  beforeEach(async () => {
    prefix = `t${++counter}/`;
    leader = await openLeader({ storage, prefix, db: DB, core, maxSegmentBytes: 1500, encryption: { recipients: [RECIPIENT] } });
  });
  afterEach(async () => {
    await leader.close();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it('uploads age files that `age -d` opens; a follower, a restore and a compaction read them and keep plaintext', async () => {
    await leader.write(60);
    const uploaded = await objects('0000');
    expect(uploaded.length).toBeGreaterThan(2);
    for (const object of uploaded) expect(Buffer.from(object.subarray(0, AGE.length)).toString('latin1')).toBe(AGE);
    const file = join(await tempDir(), 'first.age');
    await writeFile(file, uploaded[0]!);
    const opened = execFileSync('age', ['-d', '-i', keyFile, file]);
    expect((await core.decodeSegmentAsync(opened)).header.firstSeq).toBe(1);

    const expected = await journalRecords(leader.dir, core);
    const encryption = { identities: [OTHER_IDENTITY, IDENTITY] };
    const followerDir = await tempDir();
    const follower = new Follower({ storage, prefix, db: DB, dir: followerDir, core, encryption });
    expect((await follower.catchUp()).sequence).toBe(60);
    expect(await journalRecords(followerDir, core)).toEqual(expected);
    for (const name of await readdir(followerDir)) {
      if (name.endsWith('.hadbj')) expect((await readFile(join(followerDir, name))).subarray(0, 5).toString('latin1')).toBe('HADBJ');
    }

    const restored = await tempDir();
    expect((await restore(storage, { prefix, db: DB, dir: restored, core, encryption })).sequence).toBe(60);
    expect(await journalRecords(restored, core)).toEqual(expected);

    const result = await compactOnce({
      storage,
      prefix,
      db: DB,
      core,
      encryption: { ...encryption, recipients: [RECIPIENT] },
      config: { threshold: 2, maxOutputBytes: 8_000, retention: { minAgeMs: 0, keepLast: 1 } },
    });
    expect(result.compacted.length).toBeGreaterThan(0);
    for (const object of await objects('8000')) expect(Buffer.from(object.subarray(0, AGE.length)).toString('latin1')).toBe(AGE);
    // compaction's encrypted output names its plaintext segment in its metadata, as the Uploader's objects do
    for (const key of await storage.list(`${prefix}${DB}/8000/`)) {
      const compacted = await core.decryptSegment((await storage.get(key))!, { identities: [IDENTITY] });
      const decoded = await core.decodeSegmentAsync(compacted);
      expect((await storage.head!(key))!.metadata).toEqual(
        claimsMetadata({ plaintextSha256: await sha256Hex(compacted), lastSeq: decoded.header.lastSeq, chainHash: Buffer.from(decoded.chainHash).toString('hex') }),
      );
    }
    const fresh = await tempDir();
    expect((await new Follower({ storage, prefix, db: DB, dir: fresh, core, encryption }).catchUp()).sequence).toBe(60);
    expect(await journalRecords(fresh, core)).toEqual(expected);
  });

  it('without the key a reader fails with decryption_failed; plaintext where encryption is required is not_encrypted unless allowed', async () => {
    await leader.write(20);
    await expect(new Follower({ storage, prefix, db: DB, dir: await tempDir(), core }).catchUp()).rejects.toMatchObject({ code: 'decryption_failed' });
    await expect(
      new Follower({ storage, prefix, db: DB, dir: await tempDir(), core, encryption: { identities: [OTHER_IDENTITY] } }).catchUp(),
    ).rejects.toMatchObject({ code: 'decryption_failed' });

    leader.uploader.setEncryption(undefined);
    await leader.write(20);
    const strict = new Follower({ storage, prefix, db: DB, dir: await tempDir(), core, encryption: { identities: [IDENTITY] } });
    await expect(strict.catchUp()).rejects.toMatchObject({ code: 'not_encrypted' });
    const migrating = new Follower({ storage, prefix, db: DB, dir: await tempDir(), core, encryption: { identities: [IDENTITY], allowPlaintext: true } });
    expect((await migrating.catchUp()).sequence).toBe(40);
  });

  it('verifyStore opens the objects with the identities; without them each is decryption_failed, plaintext is not_encrypted unless allowed', async () => {
    await leader.write(30);
    const stored = (await storage.list(`${prefix}${DB}/0000/`)).length;
    const opened = await verifyStore(storage, { prefix, db: DB, core, encryption: { identities: [OTHER_IDENTITY, IDENTITY] } });
    expect(opened).toMatchObject({ ok: true, segments: stored, entries: 30, firstSeq: 1, lastSeq: 30, problems: [] });
    const closed = await verifyStore(storage, { prefix, db: DB, core });
    expect(closed.ok).toBe(false);
    expect(closed.problems.map((problem) => problem.code)).toEqual(Array(stored).fill('decryption_failed'));
    const wrongKey = await verifyStore(storage, { prefix, db: DB, core, encryption: { identities: [OTHER_IDENTITY] } });
    expect(wrongKey.problems.map((problem) => problem.code)).toEqual(Array(stored).fill('decryption_failed'));
    expect(JSON.stringify([closed, wrongKey])).not.toContain(OTHER_IDENTITY);

    leader.uploader.setEncryption(undefined);
    await leader.write(10);
    const plaintext = (await storage.list(`${prefix}${DB}/0000/`)).length - stored;
    expect(plaintext).toBeGreaterThan(0);
    const strict = await verifyStore(storage, { prefix, db: DB, core, encryption: { identities: [IDENTITY] } });
    expect(strict.problems.map((problem) => problem.code)).toEqual(Array(plaintext).fill('not_encrypted'));
    const migrating = await verifyStore(storage, { prefix, db: DB, core, encryption: { identities: [IDENTITY], allowPlaintext: true } });
    expect(migrating).toMatchObject({ ok: true, entries: 40, lastSeq: 40 });
  });

  it('each object carries metadata naming its plaintext segment (SHA-256, last sequence, chain hash), lowercase keys, no key material', async () => {
    await leader.write(20);
    const cache = await SegmentCache.open(leader.dir, leader.uploader.destination, {}, { core });
    const records = cache.uploaded();
    expect(records.length).toBeGreaterThan(1);
    for (const record of records) {
      const head = (await storage.head!(record.key))!;
      expect(head.size).toBe(record.size);
      const plaintext = await readFile(join(leader.dir, record.name));
      expect(head.metadata).toEqual(claimsMetadata({ plaintextSha256: await sha256Hex(plaintext), lastSeq: record.lastSeq, chainHash: record.chainHash }));
      expect(JSON.stringify(head.metadata)).not.toMatch(/AGE-SECRET-KEY|age1/i);
    }
  });

  it.each([
    { what: 'no metadata', metadata: undefined },
    { what: "another segment's metadata", metadata: claimsMetadata({ plaintextSha256: 'ab'.repeat(32), lastSeq: 3, chainHash: 'cd'.repeat(32) }) },
  ])('an encrypted object already at a segment\'s key with $what is a conflict: never taken as uploaded, never overwritten', async ({ metadata }) => {
    const key = `${prefix}${DB}/0000/0000000000000001.hadbj`;
    const foreign = await core.encryptSegment(Buffer.from('not this segment'), { recipients: [RECIPIENT] });
    await storage.put(key, foreign, { ifNoneMatch: '*', ...(metadata ? { metadata } : {}) });
    await expect(leader.write(20)).rejects.toMatchObject({ code: 'conflict' });
    expect(Buffer.from((await storage.get(key))!).equals(Buffer.from(foreign))).toBe(true);
    const cache = await SegmentCache.open(leader.dir, leader.uploader.destination, {}, { core });
    expect(cache.uploaded().map((record) => record.key)).not.toContain(key);
    expect(leader.uploader.stats().lastError?.code).toBe('conflict');
  });

  it('recipients changed mid-way take effect at the next segment; a segment `age -r` encrypted is read like the others', async () => {
    await leader.write(20);
    const before = (await storage.list(`${prefix}${DB}/0000/`)).length;
    leader.uploader.setEncryption({ recipients: [OTHER_RECIPIENT] });
    await leader.write(20);
    const keys = await storage.list(`${prefix}${DB}/0000/`);
    // re-encrypt the newest object with the age tool, to the first key again
    const last = keys[keys.length - 1]!;
    const dir = await tempDir();
    await writeFile(join(dir, 'new.age'), (await storage.get(last))!);
    const plain = execFileSync('age', ['-d', '-i', '-', join(dir, 'new.age')], { input: OTHER_IDENTITY });
    await writeFile(join(dir, 'plain.hadbj'), plain);
    await storage.delete(last);
    await storage.put(last, execFileSync('age', ['-r', RECIPIENT, join(dir, 'plain.hadbj')]));

    const onlyFirst = new Follower({ storage, prefix, db: DB, dir: await tempDir(), core, encryption: { identities: [IDENTITY] } });
    await expect(onlyFirst.catchUp()).rejects.toMatchObject({ code: 'decryption_failed' });
    const both = new Follower({ storage, prefix, db: DB, dir: await tempDir(), core, encryption: { identities: [IDENTITY, OTHER_IDENTITY] } });
    expect((await both.catchUp()).sequence).toBe(40);
    expect(keys.length).toBeGreaterThan(before + 1);
  });
});

describe.each(runs)('a leader killed between a put and its manifest write: $s3.name ($core.kind core)', ({ s3, core }) => {
  const buildDir = join(root, '.vitest-tmp', `age-crash-${process.pid}-${core.kind}`);
  const script = join(buildDir, 'encrypted-uploader.mjs');
  const backend = s3.name.startsWith('S3Storage') ? 'S3Storage' : 'ObjectStoreStorage';
  let bucket: string;
  let storage: SegmentStorage;
  let counter = 0;
  const dirs: string[] = [];

  beforeAll(async () => {
    await bundleScripts({ 'encrypted-uploader': join(root, '__test__/helpers/encrypted-uploader.ts') }, buildDir);
    bucket = await createTestBucket('age-crash');
    storage = await s3.open(bucket);
    return async () => {
      await storage.close?.();
      await rm(buildDir, { recursive: true, force: true });
    };
  });
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  /** A leader process killed once the put of its third segment landed; what it left: its directory, the key and the stored object. */
  async function crashedLeader(prefix: string, leaseTtlMs: number) {
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-age-crash-'));
    dirs.push(dir);
    const child = run(process.execPath, [script, core.kind, backend, s3.endpoint(), bucket, prefix, DB, dir, RECIPIENT, String(leaseTtlMs), '60', '3']);
    await waitFor(child, (lines) => lines.some((line) => line.startsWith('landed ')), 'landed', 30_000);
    child.kill();
    expect((await child.exited).signal, child.stderr()).toBe('SIGKILL');
    const key = child.lines.find((line) => line.startsWith('landed '))!.slice('landed '.length);
    const landed = Buffer.from((await storage.get(key))!);
    expect(landed.subarray(0, AGE.length).toString('latin1')).toBe(AGE);
    // the crash point: the object is stored with its metadata, no manifest records it, and nothing else was written for it
    // (a manifest's .tmp is an earlier segment's manifest write the kill interrupted: the put of this one can land meanwhile)
    const uploads = await readdir(join(dir, 'uploads'));
    expect(uploads.filter((name) => !name.endsWith('.json') && !name.endsWith('.json.tmp'))).toEqual([]);
    for (const name of uploads) expect(await readFile(join(dir, 'uploads', name), 'utf8')).not.toContain(key);
    expect(Object.keys((await storage.head!(key))!.metadata).sort()).toEqual(['graphstream-chain-hash', 'graphstream-last-seq', 'graphstream-plaintext-sha256']);
    return { dir, key, landed };
  }

  /** Nothing but manifests in the journal's uploads folder. */
  async function onlyManifests(dir: string): Promise<void> {
    expect((await readdir(join(dir, 'uploads'))).filter((name) => !name.endsWith('.json'))).toEqual([]);
  }

  async function expectFollowerHasAll(prefix: string, dir: string, sequence: number, allowPlaintext = false) {
    const followerDir = await mkdtemp(join(tmpdir(), 'graphstream-age-crash-follower-'));
    dirs.push(followerDir);
    const follower = new Follower({ storage, prefix, db: DB, dir: followerDir, core, encryption: { identities: [IDENTITY], allowPlaintext } });
    expect((await follower.catchUp()).sequence).toBe(sequence);
    expect(await journalRecords(followerDir, core)).toEqual(await journalRecords(dir, core));
  }

  it.each([
    { restart: 'encrypting', encryption: { recipients: [RECIPIENT] } },
    { restart: 'with encryption turned off', encryption: undefined },
  ])('without a lease, the restarted uploader ($restart) recognises its object by its metadata: the segment counts as uploaded, nothing stays pending', async ({ encryption }) => {
    const prefix = `nolease${++counter}/`;
    const { dir, key, landed } = await crashedLeader(prefix, 0);
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1500 });
    const uploader = new Uploader({ journal, storage, core, prefix, db: DB, sealIntervalMs: 3_600_000, ...(encryption ? { encryption } : {}) });
    try {
      await uploader.sync();
      expect(uploader.stats()).toMatchObject({ failed: 0, corrupt: 0, lastError: null });
      expect(Buffer.from((await storage.get(key))!).equals(landed)).toBe(true);
      const cache = await SegmentCache.open(dir, uploader.destination, {}, { core });
      expect(await cache.pending()).toEqual([]);
      const record = cache.uploaded().find((r) => r.key === key)!;
      expect(record).toMatchObject({ size: landed.byteLength, sha256: await sha256Hex(landed) });
      await onlyManifests(dir);
      await expectFollowerHasAll(prefix, dir, 60, encryption === undefined);
    } finally {
      await uploader.stop();
      await journal.close();
    }
  });

  it('a plaintext put that no manifest records (a crash before the manifest write) is its own object to an uploader restarted with encryption on: recognised by its bytes, never put again encrypted', async () => {
    const prefix = `plainfirst${++counter}/`;
    const dir = await mkdtemp(join(tmpdir(), 'graphstream-age-plain-first-'));
    dirs.push(dir);
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1500 });
    const plain = new Uploader({ journal, storage, core, prefix, db: DB, sealIntervalMs: 3_600_000 });
    for (let i = 1; i <= 40; i += 10) await journal.appendBatch(Array.from({ length: 10 }, (_, k) => ({ query: `CREATE (:N {i: ${i + k}})`, params: {} })));
    await plain.sync();
    await plain.stop();
    const stored = new Map<string, Buffer>();
    for (const key of await storage.list(prefix)) stored.set(key, Buffer.from((await storage.get(key))!));
    expect(stored.size).toBeGreaterThan(1);
    // the state a crash between the puts and the manifest write leaves: the objects, no manifest
    for (const name of await readdir(join(dir, 'uploads'))) await rm(join(dir, 'uploads', name), { recursive: true });
    const encrypting = new Uploader({ journal, storage, core, prefix, db: DB, sealIntervalMs: 3_600_000, encryption: { recipients: [RECIPIENT] } });
    try {
      await encrypting.sync();
      expect(encrypting.stats()).toMatchObject({ failed: 0, corrupt: 0, lastError: null });
      const after = await storage.list(prefix);
      expect(after).toEqual([...stored.keys()]);
      for (const key of after) expect(Buffer.from((await storage.get(key))!).equals(stored.get(key)!), key).toBe(true);
      const cache = await SegmentCache.open(dir, encrypting.destination, {}, { core });
      expect(await cache.pending()).toEqual([]);
      await expectFollowerHasAll(prefix, dir, 40, true);
    } finally {
      await encrypting.stop();
      await journal.close();
    }
  });

  it('under a lease, the restarted uploader learns from the object\'s metadata where the stored chain ends, and continues it in a new generation; so does a clean restart from its manifest', async () => {
    const prefix = `lease${++counter}/`;
    const { dir } = await crashedLeader(prefix, 3_000);
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1500 });
    const open = (holder: string) =>
      new Uploader({ journal, storage, core, prefix, db: DB, sealIntervalMs: 3_600_000, encryption: { recipients: [RECIPIENT] }, lease: { holder, ttlMs: 5_000, wait: true } });
    try {
      const restarted = open('restarted');
      await restarted.sync();
      expect(restarted.generation).toBe(1);
      expect(restarted.stats()).toMatchObject({ failed: 0, corrupt: 0, lastError: null });
      await restarted.runCycle();
      await onlyManifests(dir);
      await expectFollowerHasAll(prefix, dir, 60);

      await journal.appendBatch(Array.from({ length: 10 }, (_, k) => ({ query: 'CREATE (:After {k: $k})', params: { k } })));
      await restarted.release();
      const again = open('again');
      await again.sync();
      expect(again.generation).toBe(2);
      expect(again.stats()).toMatchObject({ failed: 0, lastError: null });
      await again.release();
      await expectFollowerHasAll(prefix, dir, 70);
    } finally {
      await journal.close();
    }
  });

  it('under a lease, a restart that lost its manifests learns from the metadata where the stored chain ends (no manifest, no kept copy)', async () => {
    const prefix = `nomanifest${++counter}/`;
    const { dir } = await crashedLeader(prefix, 3_000);
    for (const name of await readdir(join(dir, 'uploads'))) await rm(join(dir, 'uploads', name));
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 1500 });
    const uploader = new Uploader({ journal, storage, core, prefix, db: DB, sealIntervalMs: 3_600_000, encryption: { recipients: [RECIPIENT] }, lease: { holder: 'after', ttlMs: 5_000, wait: true } });
    try {
      await uploader.sync();
      expect(uploader.generation).toBe(1);
      expect(uploader.stats()).toMatchObject({ failed: 0, corrupt: 0, lastError: null });
      await uploader.release();
      await expectFollowerHasAll(prefix, dir, 60);
    } finally {
      await uploader.stop();
      await journal.close();
    }
  });
});

describe('the CLI over an encrypted store', () => {
  beforeAll(buildCli);
  afterAll(removeCliBuild);

  it('restore and verify open it with --age-identity-file or GRAPHSTREAM_AGE_IDENTITY_FILE; without, decryption_failed', async () => {
    const store = await mkdtemp(join(tmpdir(), 'graphstream-age-cli-'));
    try {
      const leader = await openLeader({ storage: new LocalStorage(store), prefix: '', db: DB, core: cores[0]!, encryption: { recipients: [RECIPIENT] } });
      await leader.write(30);
      await leader.close();
      const restoreInto = (dir: string, ...flags: string[]) => ['restore', `file://${store}`, '--db', DB, '--dir', join(store, dir), ...flags];
      const withFlag = await runCli(restoreInto('a', '--age-identity-file', keyFile));
      expect(withFlag.code, withFlag.stderr).toBe(0);
      const withEnv = await runCli(restoreInto('b'), { env: { GRAPHSTREAM_AGE_IDENTITY_FILE: keyFile } });
      expect(withEnv.code, withEnv.stderr).toBe(0);
      expect(await journalRecords(join(store, 'b'), cores[0]!)).toEqual(await journalRecords(join(store, 'a'), cores[0]!));
      const without = await runCli(restoreInto('c'), { env: { GRAPHSTREAM_AGE_IDENTITY_FILE: undefined } });
      expect(without.code).not.toBe(0);
      expect(without.stderr).toContain('decryption_failed');
      expect(without.stderr + withFlag.stdout).not.toContain(IDENTITY);

      const verified = await runCli(['verify', `file://${store}/${DB}`, '--age-identity-file', keyFile]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      expect(verified.stdout).toContain('OK');
      const unverified = await runCli(['verify', `file://${store}/${DB}`], { env: { GRAPHSTREAM_AGE_IDENTITY_FILE: undefined } });
      expect(unverified.code).toBe(1);
      expect(unverified.stdout).toContain('[decryption_failed]');
    } finally {
      await rm(store, { recursive: true, force: true });
    }
  });
});
