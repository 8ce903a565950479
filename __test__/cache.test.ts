import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MANIFEST_DIR, SegmentCache, manifestPath, type CacheConfig, type Destination } from '../ts/replication/cache.js';
import { createFormatApi, segmentFileName } from '../ts/format/format.js';
import { pureCore } from '../ts/pure/core.js';
import { cores } from './helpers/cores.js';

const format = createFormatApi(pureCore);

/**
 * Writes a journal directory's worth of segments: `sealed` sealed ones of `entriesEach` entries,
 * chained, then (optionally) a live unsealed one continuing the chain. Returns their file names.
 */
async function writeJournal(dir: string, sealed: number, entriesEach: number, withLive: boolean): Promise<{ sealed: string[]; live: string | null }> {
  let prevHash: Buffer = Buffer.alloc(32);
  let sequence = 1;
  const names: string[] = [];
  const unsealedSegment = (firstSeq: number) => {
    const payloads = Array.from({ length: entriesEach }, (_, i) => Buffer.from(`entry ${firstSeq + i} `.repeat(20)));
    const batch = pureCore.encodeEntries(firstSeq, prevHash, payloads);
    prevHash = batch.chainHashes.subarray(batch.chainHashes.length - 32);
    return Buffer.concat([format.encodeHeader({ firstSeq, createdMs: 1_700_000_000_000 }), batch.bytes]);
  };
  for (let i = 0; i < sealed; i++) {
    const name = segmentFileName(sequence);
    await writeFile(join(dir, name), format.sealSegment(unsealedSegment(sequence)));
    names.push(name);
    sequence += entriesEach;
  }
  let live: string | null = null;
  if (withLive) {
    live = segmentFileName(sequence);
    await writeFile(join(dir, live), unsealedSegment(sequence));
  }
  return { sealed: names, live };
}

async function sizeOf(dir: string, name: string): Promise<number> {
  return (await stat(join(dir, name))).size;
}

const DEST: Destination = { storage: 's3://bucket/', prefix: 'wal/', db: 'db', generation: 0 };

/** A record of segment `name` (its last sequence as given, or its first). */
function record(name: string, size: number, uploadedAt?: number, lastSeq = Number(/\d{16}/.exec(name)?.[0] ?? 1)) {
  return { name, key: `wal/db/0000/${name}`, size, sha256: 'ab'.repeat(32), uploadedAt, lastSeq, chainHash: 'cd'.repeat(32) };
}

describe.each(cores)('SegmentCache ($kind core)', (core) => {
  /** SegmentCache.open reading segment headers with this suite's core */
  const open = (directory: string, destination: Destination, config: Partial<CacheConfig> = {}, options: { now?: () => number } = {}) =>
    SegmentCache.open(directory, destination, config, { ...options, core });
  let dir: string;
  let now: number;
  const clock = () => now;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'graphstream-cache-'));
    now = 1_800_000_000_000;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists sealed segments oldest first, never the live one or files that are not segments', async () => {
    const { sealed, live } = await writeJournal(dir, 3, 4, true);
    await writeFile(join(dir, `${sealed[0]}.seal.tmp`), 'partial');
    await writeFile(join(dir, '.lock'), '');
    await writeFile(join(dir, 'journal-12.hadbj'), 'not a segment name');
    await writeFile(join(dir, segmentFileName(1000)), Buffer.alloc(20)); // a segment cut short at creation
    const cache = await open(dir, DEST);

    const pending = await cache.pending();
    expect(pending.map((segment) => segment.name)).toEqual(sealed);
    expect(pending.map((segment) => segment.firstSeq)).toEqual([1, 5, 9]);
    expect(pending[0]!.path).toBe(join(dir, sealed[0]!));
    expect(pending[0]!.size).toBe(await sizeOf(dir, sealed[0]!));
    expect(pending.some((segment) => segment.name === live)).toBe(false);
  });

  it('lists a sealed segment whose header sequence disagrees with its file name as damaged', async () => {
    const { sealed } = await writeJournal(dir, 1, 2, false);
    await writeFile(join(dir, segmentFileName(77)), await readFile(join(dir, sealed[0]!)));
    const cache = await open(dir, DEST);
    const pending = await cache.pending();
    expect(pending.map((segment) => [segment.name, segment.damaged])).toEqual([
      [sealed[0], undefined],
      [segmentFileName(77), expect.stringContaining('first_seq 1')],
    ]);
  });

  it('lists an unsealed segment followed by a sealed one as damaged (the writer seals in order), never the live one at the end', async () => {
    const { sealed, live } = await writeJournal(dir, 3, 2, true);
    const middle = join(dir, sealed[1]!);
    const bytes = await readFile(middle);
    bytes[6] = 0; // flags: no longer sealed
    await writeFile(middle, bytes);
    const pending = await (await open(dir, DEST)).pending();
    expect(pending.map((segment) => [segment.name, segment.damaged === undefined])).toEqual([
      [sealed[0], true],
      [sealed[1], false],
      [sealed[2], true],
    ]);
    expect(pending.some((segment) => segment.name === live)).toBe(false);
  });

  it('records uploads in manifest.json, atomically, and remembers them after a restart', async () => {
    const { sealed } = await writeJournal(dir, 3, 2, false);
    const cache = await open(dir, DEST, {}, { now: clock });
    const size = await sizeOf(dir, sealed[0]!);
    const marked = await cache.markUploaded(record(sealed[0]!, size));
    expect(marked.uploadedAt).toBe(now);
    expect(cache.isUploaded(sealed[0]!)).toBe(true);

    expect(await readdir(join(dir, MANIFEST_DIR))).toEqual([manifestPath(dir, DEST).slice(join(dir, MANIFEST_DIR).length + 1)]);
    const onDisk = JSON.parse(await readFile(manifestPath(dir, DEST), 'utf8'));
    const written = { ...record(sealed[0]!, size), uploadedAt: now };
    expect(onDisk).toEqual({ version: 2, destination: DEST, tip: written, segments: [written] });

    const reopened = await open(dir, DEST);
    expect(reopened.isUploaded(sealed[0]!)).toBe(true);
    expect(reopened.isUploaded(sealed[1]!)).toBe(false);
    expect(reopened.record(sealed[0]!)).toEqual(marked);
    expect((await reopened.pending()).map((segment) => segment.name)).toEqual(sealed.slice(1));
  });

  it('persists every one of many concurrent markUploaded calls', async () => {
    const { sealed } = await writeJournal(dir, 12, 1, false);
    const cache = await open(dir, DEST);
    await Promise.all(sealed.map((name) => cache.markUploaded(record(name, 1))));
    const reopened = await open(dir, DEST);
    expect(reopened.uploaded().map((r) => r.name)).toEqual(sealed);
    expect(await reopened.pending()).toEqual([]);
  });

  it('a held record is visible at once and written by the next change without a hold', async () => {
    const { sealed } = await writeJournal(dir, 2, 1, false);
    const cache = await open(dir, DEST);
    const held = cache.markUploaded(record(sealed[0]!, 1), { holdMs: 600_000 });
    expect(cache.isUploaded(sealed[0]!)).toBe(true);
    await expect(readFile(manifestPath(dir, DEST))).rejects.toMatchObject({ code: 'ENOENT' });
    await cache.markUploaded(record(sealed[1]!, 1));
    await held;
    expect((await open(dir, DEST)).uploaded().map((r) => r.name)).toEqual(sealed);
  });

  it('a held record is written when its hold ends', async () => {
    const { sealed } = await writeJournal(dir, 1, 1, false);
    const cache = await open(dir, DEST);
    await cache.markUploaded(record(sealed[0]!, 1), { holdMs: 1 });
    expect((await open(dir, DEST)).isUploaded(sealed[0]!)).toBe(true);
  });

  it('treats an unreadable manifest as empty, so its segments are shipped again', async () => {
    const { sealed } = await writeJournal(dir, 2, 1, false);
    await mkdir(join(dir, MANIFEST_DIR));
    await writeFile(manifestPath(dir, DEST), '{"version":2,"segm');
    const cache = await open(dir, DEST);
    expect((await cache.pending()).map((segment) => segment.name)).toEqual(sealed);
  });

  it('cleanup by age deletes only uploaded segments past retention, keeping the newest uploaded one', async () => {
    const { sealed, live } = await writeJournal(dir, 5, 3, true);
    const cache = await open(dir, DEST, { retentionMs: 60_000, maxBytes: Number.MAX_SAFE_INTEGER }, { now: clock });
    // 0..2 uploaded long ago, 3 uploaded just now, 4 pending (and old), plus the live one
    for (const name of sealed.slice(0, 3)) await cache.markUploaded(record(name, await sizeOf(dir, name), now - 3_600_000));
    await cache.markUploaded(record(sealed[3]!, await sizeOf(dir, sealed[3]!), now));

    const before = await cache.stats();
    const deletedBytes = (await Promise.all(sealed.slice(0, 3).map((name) => sizeOf(dir, name)))).reduce((a, b) => a + b);
    const result = await cache.cleanup();
    expect(result).toEqual({
      deletedSegments: 3,
      deletedBytes,
      deletedByAge: 3,
      deletedBySize: 0,
      remainingSegments: before.segments - 3,
      remainingBytes: before.bytes - deletedBytes,
    });
    expect((await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort()).toEqual([sealed[3], sealed[4], live].sort());
    expect(cache.uploaded().map((r) => r.name)).toEqual([sealed[3]]);

    now += 3_600_000; // sealed[3] is now past retention too, but it is the newest uploaded segment
    expect((await cache.cleanup()).deletedSegments).toBe(0);
    const reopened = await open(dir, DEST);
    expect(reopened.uploaded().map((r) => r.name)).toEqual([sealed[3]]);
    expect((await reopened.pending()).map((segment) => segment.name)).toEqual([sealed[4]]);
  });

  it('cleanup by size deletes the oldest uploaded segments until under maxBytes, never pending or live ones', async () => {
    const { sealed, live } = await writeJournal(dir, 6, 3, true);
    const sizes = await Promise.all(sealed.map((name) => sizeOf(dir, name)));
    const liveSize = await sizeOf(dir, live!);
    const total = sizes.reduce((a, b) => a + b) + liveSize;
    // uploaded: 0..3; pending: 4, 5; allowed: everything but segments 0 and 1
    const maxBytes = total - sizes[0]! - sizes[1]!;
    const cache = await open(dir, DEST, { retentionMs: Number.MAX_SAFE_INTEGER, maxBytes }, { now: clock });
    for (const [i, name] of sealed.slice(0, 4).entries()) await cache.markUploaded(record(name, sizes[i]!));

    const result = await cache.cleanup();
    expect(result).toMatchObject({ deletedSegments: 2, deletedBySize: 2, deletedByAge: 0, remainingBytes: maxBytes });
    expect((await cache.stats()).bytes).toBe(maxBytes);

    // a limit nothing but pending data could satisfy: every uploaded segment but the newest goes
    const tiny = await open(dir, DEST, { retentionMs: Number.MAX_SAFE_INTEGER, maxBytes: 1 }, { now: clock });
    const second = await tiny.cleanup();
    expect(second).toMatchObject({ deletedSegments: 1, deletedBySize: 1 });
    const left = (await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort();
    expect(left).toEqual([sealed[3], sealed[4], sealed[5], live].sort());
    expect((await tiny.pending()).map((segment) => segment.name)).toEqual([sealed[4], sealed[5]]);
  });

  it('stats add up: uploaded + pending + live = all segment files', async () => {
    const { sealed, live } = await writeJournal(dir, 4, 2, true);
    const cache = await open(dir, DEST);
    await cache.markUploaded(record(sealed[0]!, await sizeOf(dir, sealed[0]!)));
    const stats = await cache.stats();
    const pendingBytes = (await Promise.all(sealed.slice(1).map((name) => sizeOf(dir, name)))).reduce((a, b) => a + b);
    expect(stats).toEqual({
      segments: 5,
      bytes: stats.uploadedBytes + stats.pendingBytes + stats.liveBytes,
      uploadedSegments: 1,
      uploadedBytes: await sizeOf(dir, sealed[0]!),
      pendingSegments: 3,
      pendingBytes,
      liveSegments: 1,
      liveBytes: await sizeOf(dir, live!),
    });
  });

  it('drops manifest records of segments that no longer exist', async () => {
    const { sealed } = await writeJournal(dir, 3, 1, false);
    const cache = await open(dir, DEST);
    for (const name of sealed) await cache.markUploaded(record(name, 1));
    await rm(join(dir, sealed[0]!));
    await cache.cleanup();
    const reopened = await open(dir, DEST);
    expect(reopened.uploaded().map((r) => r.name)).toEqual(sealed.slice(1));
  });

  it('cleanup keeps what another destination lacks, an earlier version\'s manifest.json included', async () => {
    const { sealed, live } = await writeJournal(dir, 5, 2, true);
    const other: Destination = { ...DEST, storage: 'file:///elsewhere' };
    const cache = await open(dir, DEST, { retentionMs: 0, maxBytes: 1 }, { now: clock });
    for (const name of sealed) await cache.markUploaded(record(name, 1, now - 1));
    const elsewhere = await open(dir, other);
    for (const name of sealed.slice(0, 2)) await elsewhere.markUploaded(record(name, 1));
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ version: 1, segments: [record(sealed[0]!, 1, now)] }));

    expect((await cache.cleanup()).deletedSegments).toBe(0); // only sealed[0] is everywhere, and it is the newest such
    await rm(join(dir, 'manifest.json'));
    await cache.cleanup();
    const left = (await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort();
    expect(left).toEqual([...sealed.slice(1), live].sort());

    expect(await SegmentCache.forgetDestination(dir, other)).toBe(true);
    expect(await SegmentCache.forgetDestination(dir, other)).toBe(false);
    await cache.cleanup();
    expect((await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort()).toEqual([sealed[4], live].sort());
  });

  it('cleanup counts what any generation of the same db uploaded: successive writers of a db do not keep each other\'s segments forever', async () => {
    const { sealed, live } = await writeJournal(dir, 5, 2, true);
    const before = await open(dir, DEST, {}, { now: clock });
    for (const name of sealed.slice(0, 3)) await before.markUploaded(record(name, 1, now - 1));
    const next = await open(dir, { ...DEST, generation: DEST.generation + 1 }, { retentionMs: 0, maxBytes: 1 }, { now: clock });
    for (const name of sealed.slice(3)) await next.markUploaded(record(name, 1, now - 1));
    expect((await next.cleanup()).deletedSegments).toBe(4); // all but the newest uploaded one
    expect((await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort()).toEqual([sealed[4], live].sort());
  });

  it('the uploaded high-water mark is the highest last sequence any manifest records, and survives cleanup of its segment', async () => {
    const { sealed } = await writeJournal(dir, 3, 2, false);
    expect(await SegmentCache.uploadedHighWater(dir)).toBeNull();
    const cache = await open(dir, DEST);
    await cache.markUploaded(record(sealed[0]!, 1, undefined, 2));
    const other = await open(dir, { ...DEST, db: 'other' });
    await other.markUploaded(record(sealed[1]!, 1, undefined, 4));
    expect(await SegmentCache.uploadedHighWater(dir)).toMatchObject({ lastSeq: 4, destination: expect.stringContaining("db 'other'") });
    await rm(join(dir, sealed[1]!));
    await other.cleanup();
    expect(other.record(sealed[1]!)).toBeUndefined();
    expect(await SegmentCache.uploadedHighWater(dir)).toMatchObject({ lastSeq: 4, chainHash: 'cd'.repeat(32) });
  });

  it('refuses invalid configuration and record names', async () => {
    await expect(open(dir, DEST, { maxBytes: -1 })).rejects.toMatchObject({ code: 'invalid_argument' });
    for (const destination of [null, undefined]) {
      await expect(open(dir, destination as unknown as typeof DEST)).rejects.toMatchObject({ code: 'invalid_argument' });
    }
    const cache = await open(dir, DEST);
    await expect(cache.markUploaded(record('../etc/passwd', 1))).rejects.toMatchObject({ code: 'invalid_argument' });
  });
});
