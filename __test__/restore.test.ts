import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Journal } from '../ts/journal/journal.js';
import { restore, type RestoreProgress } from '../ts/replication/restore.js';
import { createFormatApi } from '../ts/format/format.js';
import type { SegmentStorage } from '../ts/storage/types.js';
import { Uploader } from '../ts/replication/uploader.js';
import { ListRecordingStorage, T0, entryFor, journalRecords, openLeader, type TestLeader } from './helpers/replication.js';
import { s3BackendsAndCores } from './helpers/s3.js';

const DB = 'graph';
let testCounter = 0;

describe.each(s3BackendsAndCores)('restore from a real S3 server: $s3.name ($core.kind core)', ({ s3, core }) => {
  const format = createFormatApi(core);
  let storage: SegmentStorage;
  let prefix: string;
  let dir: string;
  let leading: TestLeader;

  beforeAll(async () => {
    storage = await s3.open(await s3.createBucket('restore'));
    return () => storage.close?.();
  });
  beforeEach(async () => {
    prefix = `t${++testCounter}/`;
    dir = await mkdtemp(join(tmpdir(), 'graphstream-restore-'));
    leading = await openLeader({ storage, prefix, db: DB, core });
    await leading.write(150);
  });
  afterEach(async () => {
    await leading.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function segmentBounds(): Promise<{ firstSeq: number; lastSeq: number }[]> {
    const bounds = [];
    for (const key of await storage.list(`${prefix}${DB}/0000/`)) {
      const { header } = format.decodeSegment((await storage.get(key))!);
      bounds.push({ firstSeq: header.firstSeq, lastSeq: header.lastSeq });
    }
    return bounds;
  }

  it('restores everything, verified, reporting progress', async () => {
    const progress: RestoreProgress[] = [];
    const result = await restore(storage, { prefix, db: DB, dir, core, onProgress: (p) => progress.push(p) });
    const expected = await journalRecords(leading.dir, core);
    expect(await journalRecords(dir, core)).toEqual(expected);
    expect(result).toMatchObject({ sequence: 150, entries: 150 });
    expect(result.chainHash.equals(leading.journal.chainHash)).toBe(true);
    const segments = (await segmentBounds()).length;
    expect(result.segments).toBe(segments);
    expect(progress.map((p) => p.segments)).toEqual(Array.from({ length: segments }, (_, i) => i + 1));
    expect(progress.at(-1)).toEqual({ segments, entries: 150, bytes: result.bytes, totalSegments: segments });
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.entries).toBeGreaterThan(progress[i - 1]!.entries);
  });

  it('restores to a sequence inside a segment, and the journal continues the chain from there', async () => {
    const bounds = await segmentBounds();
    const holder = bounds[2]!;
    const target = holder.firstSeq + 1;
    expect(target).toBeLessThan(holder.lastSeq);
    const result = await restore(storage, { prefix, db: DB, dir, core, toSequence: target });
    const expected = (await journalRecords(leading.dir, core)).slice(0, target);
    expect(await journalRecords(dir, core)).toEqual(expected);
    expect(result.sequence).toBe(target);
    expect(result.chainHash.toString('hex')).toBe(expected.at(-1)!.chainHash);

    const journal = await Journal.open(dir, { core });
    try {
      expect(journal.sequence).toBe(target);
      const appended = await journal.append({ query: 'CREATE (:After)' });
      expect(appended.sequence).toBe(target + 1);
    } finally {
      await journal.close();
    }
    const continued = await journalRecords(dir, core);
    expect(continued.slice(0, target)).toEqual(expected);
    expect(continued).toHaveLength(target + 1);
  });

  it('restores to a sequence at a segment boundary without reading further', async () => {
    const bounds = await segmentBounds();
    const target = bounds[1]!.lastSeq;
    const recording = new ListRecordingStorage(storage);
    const result = await restore(recording, { prefix, db: DB, dir, core, toSequence: target });
    expect(result).toMatchObject({ sequence: target, segments: 2, entries: target });
    expect(recording.gets).toHaveLength(2);
    expect(await journalRecords(dir, core)).toEqual((await journalRecords(leading.dir, core)).slice(0, target));
  });

  it("restores to a point in time by the leader's timestamp_ms", async () => {
    // entry i was written with timestamp T0 + i s
    const result = await restore(storage, { prefix, db: DB, dir, core, toTimestampMs: T0 + 77_500 });
    expect(result.sequence).toBe(77);
    expect(await journalRecords(dir, core)).toEqual((await journalRecords(leading.dir, core)).slice(0, 77));

    const before = await mkdtemp(join(tmpdir(), 'graphstream-restore-'));
    try {
      const nothing = await restore(storage, { prefix, db: DB, dir: before, core, toTimestampMs: T0 });
      expect(nothing).toMatchObject({ sequence: 0, segments: 0, entries: 0 });
      expect(await journalRecords(before, core)).toEqual([]);
    } finally {
      await rm(before, { recursive: true, force: true });
    }
  });

  /** Removes the segment files `which` picks (by index, oldest first) from `journalDir`; returns their names. */
  async function dropSegments(journalDir: string, which: (names: string[]) => string[]): Promise<string[]> {
    const names = (await readdir(journalDir)).filter((name) => /^journal-\d{16}\.hadbj$/.test(name)).sort();
    const dropped = which(names);
    for (const name of dropped) await rm(join(journalDir, name));
    return dropped;
  }

  function uploaderFor(journal: Journal): Uploader {
    return new Uploader({ journal, storage, core, prefix, db: DB, sealIntervalMs: 3_600_000 });
  }

  it('a journal that lost uploaded segments refuses to open (corrupt) until restored from storage; it then continues the one chain', async () => {
    const original = await journalRecords(leading.dir, core);
    await leading.uploader.stop();
    await leading.journal.close();
    await dropSegments(leading.dir, (names) => names.slice(-2));

    // recovery alone would continue from an earlier sequence and hand out 150's sequences again
    const refused = await Journal.open(leading.dir, { core }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toMatchObject({ code: 'corrupt', message: expect.stringMatching(/\.\.150 .*restore/) });
    expect((refused as Error).message).toContain(`${storage.identity} (prefix '${prefix}', db '${DB}'`);

    await dropSegments(leading.dir, (names) => names);
    await expect(restore(storage, { prefix, db: DB, dir: leading.dir, core })).resolves.toMatchObject({ sequence: 150 });
    const journal = await Journal.open(leading.dir, { core, maxSegmentBytes: 2048 });
    const uploader = uploaderFor(journal);
    try {
      expect(journal.sequence).toBe(150);
      await journal.appendBatch(Array.from({ length: 30 }, (_, i) => entryFor(151 + i)));
      await uploader.sync();
    } finally {
      await uploader.stop();
      await journal.close();
    }

    // what a follower replays from storage: one chain, 1..180, the first 150 as they were
    const follower = await mkdtemp(join(tmpdir(), 'graphstream-restore-'));
    try {
      await expect(restore(storage, { prefix, db: DB, dir: follower, core })).resolves.toMatchObject({ sequence: 180 });
      const replayed = await journalRecords(follower, core);
      expect(replayed.slice(0, 150)).toEqual(original);
      expect(replayed.map((record) => record.sequence)).toEqual(Array.from({ length: 180 }, (_, i) => i + 1));
    } finally {
      await rm(follower, { recursive: true, force: true });
    }
  });

  it('a journal restored to an earlier point cannot ship a second chain into the destination it came from', async () => {
    const bounds = await segmentBounds();
    const target = bounds[2]!.firstSeq + 1;
    await restore(storage, { prefix, db: DB, dir, core, toSequence: target });
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 2048 });
    const uploader = uploaderFor(journal);
    try {
      await journal.append(entryFor(9999));
      await expect(uploader.sync()).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining(`ends at ${target + 1}`) });
    } finally {
      await uploader.stop();
      await journal.close();
    }
    expect((await segmentBounds()).at(-1)!.lastSeq).toBe(150);
  });

  it('refuses a target storage does not hold, a non-empty directory, and a corrupted segment', async () => {
    await expect(restore(storage, { prefix, db: DB, dir, core, toSequence: 151 })).rejects.toMatchObject({ code: 'not_found' });
    await expect(restore(storage, { prefix, db: DB, dir, core })).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(restore(storage, { prefix, db: DB, dir: join(dir, 'x'), core, toSequence: 0 })).rejects.toMatchObject({
      code: 'invalid_argument',
    });

    const keys = await storage.list(`${prefix}${DB}/0000/`);
    const bytes = Buffer.from((await storage.get(keys[1]!))!);
    bytes.writeUInt32BE(bytes.readUInt32BE(140) ^ 1, 140);
    await storage.put(keys[1]!, bytes);
    const fresh = join(dir, 'fresh');
    await expect(restore(storage, { prefix, db: DB, dir: fresh, core })).rejects.toMatchObject({ code: 'checksum_mismatch' });
  });
});
