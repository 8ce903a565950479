import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SegmentCache } from '../ts/replication/cache.js';
import { isGraphstreamError } from '../ts/errors.js';
import { Journal, type AppendResult } from '../ts/journal/journal.js';
import { ParamValue } from '../ts/payload/params.js';
import { decodeJournalEntry, encodeJournalEntry } from '../ts/payload/payload.js';
import { readJournal } from '../ts/journal/reader.js';
import { corePairs, cores } from './helpers/cores.js';
import { entryFor, readAll, tempDir } from './helpers/journal-fixtures.js';

const ZERO_HASH = Buffer.alloc(32);
const SEGMENT = /^journal-\d{16}\.hadbj$/;
const HEADER_BYTES = 128;

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => SEGMENT.test(name)).sort();
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isGraphstreamError(err), `expected a GraphstreamError, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
}

describe.each(cores)('Journal ($kind core)', (core) => {
  test('appends get consecutive sequences and the chain hash of their payload', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    expect(journal.sequence).toBe(0);
    expect(journal.chainHash).toEqual(ZERO_HASH);
    let prev: Buffer = ZERO_HASH;
    for (let i = 1; i <= 5; i++) {
      const timestampMs = 1_700_000_000_000 + i;
      const result = await journal.append({ ...entryFor(i), timestampMs });
      expect(result.sequence).toBe(i);
      const payload = encodeJournalEntry({ ...entryFor(i), timestampMs, sequence: i });
      expect(result.chainHash).toEqual(core.computeEntryHash(prev, payload));
      prev = result.chainHash;
    }
    expect(journal.sequence).toBe(5);
    expect(journal.chainHash).toEqual(prev);
    await journal.close();

    const records = await readAll(dir, core);
    expect(records.map((r) => r.sequence)).toEqual([1, 2, 3, 4, 5]);
    expect(records[4]!.chainHash).toEqual(prev);
    const third = records[2]!.entry;
    expect(third.sequence).toBe(3);
    expect(third.query).toBe(entryFor(3).query);
    expect(third.timestampMs).toBe(1_700_000_000_003);
    expect(third.params).toEqual([
      ['i', ParamValue.int(3n)],
      ['name', ParamValue.string('item-3')],
    ]);
  });

  test('refuses to open (corrupt) behind what an upload manifest records, or at it with another chain hash, changing nothing', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    for (let i = 1; i <= 10; i++) await journal.append(entryFor(i));
    const tipHash = Buffer.from(journal.chainHash).toString('hex');
    await journal.close();
    const name = (await readdir(dir)).filter((n) => n.endsWith('.hadbj')).sort().at(-1)!;
    const destination = { storage: 'file:///elsewhere', prefix: 'wal/', db: 'db', generation: 0 };
    const cache = await SegmentCache.open(dir, destination);
    const record = { name, key: `wal/db/0000/${name}`, size: 1, sha256: 'ab'.repeat(32) };

    await cache.markUploaded({ ...record, lastSeq: 10, chainHash: tipHash });
    await (await Journal.open(dir, { core })).close(); // level with the uploads: fine

    await cache.markUploaded({ ...record, lastSeq: 10, chainHash: 'cd'.repeat(32) });
    await expect(Journal.open(dir, { core })).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining('not the one that was shipped') });
    await cache.markUploaded({ ...record, lastSeq: 12, chainHash: 'cd'.repeat(32) });
    const before = await readdir(dir);
    await expect(Journal.open(dir, { core })).rejects.toMatchObject({
      code: 'corrupt',
      message: expect.stringContaining("sequences 11..12 are missing locally"),
    });
    expect(await readdir(dir)).toEqual(before);
    expect((await readAll(dir, core)).map((r) => r.sequence)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));

    expect(await SegmentCache.forgetDestination(dir, destination)).toBe(true);
    const reopened = await Journal.open(dir, { core });
    expect(reopened.sequence).toBe(10);
    await reopened.close();
  });

  /** A closed journal of 100 entries whose newest segment an upload manifest records as shipped, up to sequence 100. */
  async function journalWithShippedTip(): Promise<{ dir: string; name: string }> {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core, maxSegmentBytes: 4096 });
    for (let i = 1; i <= 100; i++) await journal.append(entryFor(i));
    await journal.sealForUpload();
    const tipHash = Buffer.from(journal.chainHash).toString('hex');
    await journal.close();
    const name = (await segmentFiles(dir)).at(-1)!;
    const cache = await SegmentCache.open(dir, { storage: 'file:///elsewhere', prefix: 'wal/', db: 'db', generation: 0 });
    await cache.markUploaded({ name, key: `wal/db/0000/${name}`, size: 1, sha256: 'ab'.repeat(32), lastSeq: 100, chainHash: tipHash });
    return { dir, name };
  }

  test('refuses to open (corrupt) when an upload manifest cannot be read: the sequences it recorded as shipped are unknown', async () => {
    const { dir, name } = await journalWithShippedTip();
    const [manifestName] = await readdir(join(dir, 'uploads'));
    const manifest = join(dir, 'uploads', manifestName!);
    await writeFile(manifest, (await readFile(manifest, 'utf8')).replace('{', '['));
    // the newest segment lost locally: without what the manifest recorded, sequences 1.. of it would be handed out again
    await rm(join(dir, name));
    const before = await readdir(dir);
    await expect(Journal.open(dir, { core })).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining(manifest) });
    expect(await readdir(dir)).toEqual(before);
  });

  test("repair: 'quarantine' that would drop uploaded sequences is refused (corrupt) before anything moves", async () => {
    const { dir, name } = await journalWithShippedTip();
    const damaged = await readFile(join(dir, name));
    damaged.writeUInt8(damaged[HEADER_BYTES + 60]! ^ 0x04, HEADER_BYTES + 60); // the shipped last segment fails its checksum
    await writeFile(join(dir, name), damaged);
    const before = await readdir(dir);
    await expect(Journal.open(dir, { core, repair: 'quarantine' })).rejects.toMatchObject({
      code: 'corrupt',
      message: expect.stringContaining('must not be handed out again'),
    });
    expect(await readdir(dir)).toEqual(before);
    expect(await readFile(join(dir, name))).toEqual(damaged);
  });

  test('timestampMs defaults to the time of the append', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    const before = Date.now();
    await journal.append({ query: 'RETURN 1' });
    const after = Date.now();
    await journal.close();
    const [record] = await readAll(dir, core);
    expect(record!.entry.timestampMs).toBeGreaterThanOrEqual(before);
    expect(record!.entry.timestampMs).toBeLessThanOrEqual(after);
  });

  test('concurrent appenders: call order, no gaps, and group commit shares fdatasyncs', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    const workers = 64;
    const perWorker = 16;
    const seen = await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        const sequences: number[] = [];
        for (let k = 0; k < perWorker; k++) {
          sequences.push((await journal.append(entryFor(w * perWorker + k))).sequence);
        }
        return sequences;
      }),
    );
    for (const sequences of seen) {
      for (let k = 1; k < sequences.length; k++) expect(sequences[k]).toBeGreaterThan(sequences[k - 1]!);
    }
    const total = workers * perWorker;
    expect(seen.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    const stats = journal.stats();
    expect(stats.appends).toBe(total);
    // one fdatasync per group, not per append
    expect(stats.syncs).toBeGreaterThan(0);
    expect(stats.syncs).toBeLessThanOrEqual(total / 8);
    await journal.close();

    const records = await readAll(dir, core);
    expect(records).toHaveLength(total);
    for (const record of records) {
      expect(record.entry.sequence).toBe(record.sequence);
      const i = Number((record.entry.params[0]![1] as { value: bigint }).value);
      // the entry that got sequence s is the one whose append resolved with s
      expect(seen[Math.floor(i / perWorker)]![i % perWorker]).toBe(record.sequence);
    }
  });

  test('appends made in one tick are one core call and keep their call order', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => journal.appendRaw(Buffer.from(`raw-${i}`))));
    expect(results.map((r) => r.sequence)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(journal.stats().groups).toBe(1);
    await journal.close();
    const payloads: string[] = [];
    for await (const record of readJournal(dir, { core, raw: true })) payloads.push(record.payload.toString());
    expect(payloads).toEqual(Array.from({ length: 100 }, (_, i) => `raw-${i}`));
  });

  test('sealForUpload between appends in flight: every append lands once, in order, in a segment that is sealed or live', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 60; i++) {
      pending.push(journal.appendRaw(Buffer.from(`raw-${i}`)));
      pending.push(journal.sealForUpload());
      // the append's group reaches the core while the seal before it is still retiring its segment
      await new Promise((resolve) => setImmediate(resolve));
    }
    const settled = await Promise.allSettled(pending);
    expect(settled.filter((result) => result.status === 'rejected')).toEqual([]);
    await journal.close();
    const payloads: string[] = [];
    for await (const record of readJournal(dir, { core, raw: true })) payloads.push(record.payload.toString());
    expect(payloads).toEqual(Array.from({ length: 60 }, (_, i) => `raw-${i}`));
  });

  test('a group that grows to appendBatch size goes to the core before the tick ends; call order holds across groups', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    const batch = (from: number) => Array.from({ length: 600 }, (_, i) => entryFor(from + i));
    const first = journal.appendBatch(batch(1));
    const single = journal.append(entryFor(601));
    const second = journal.appendBatch(batch(602));
    const last = journal.append(entryFor(1202));
    // the first batch, then the single append with the second batch, then the last append
    expect(journal.stats().groups).toBe(2);
    const results = [...(await first), await single, ...(await second), await last];
    expect(results.map((r) => r.sequence)).toEqual(Array.from({ length: 1202 }, (_, i) => i + 1));
    expect(journal.stats().groups).toBe(3);
    await journal.close();
    const records = await readAll(dir, core);
    expect(records.map((r) => r.entry.params[1])).toEqual(Array.from({ length: 1202 }, (_, i) => ['name', ParamValue.string(`item-${i + 1}`)]));
  });

  test('an append made from inside another one (a params getter) follows it; appendRaw and graphd entries mix in call order', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    let inner: Promise<AppendResult> | null = null;
    const params = {
      get name() {
        inner ??= journal.append({ query: 'CREATE (:Inner)', params: { n: 2 } });
        return 'outer';
      },
    };
    const raw = journal.appendRaw(Buffer.from('raw-0'));
    const outer = journal.append({ query: 'CREATE (:Outer {name: $name})', params });
    const rawAfter = journal.appendRaw(Buffer.from('raw-3'));
    expect((await raw).sequence).toBe(1);
    expect((await outer).sequence).toBe(2);
    expect((await inner!).sequence).toBe(3);
    expect((await rawAfter).sequence).toBe(4);
    await journal.close();
    const records: { sequence: number; payload: Buffer }[] = [];
    for await (const record of readJournal(dir, { core, raw: true })) records.push(record);
    expect(records.map((r) => r.sequence)).toEqual([1, 2, 3, 4]);
    expect(records[0]!.payload.toString()).toBe('raw-0');
    expect(records[3]!.payload.toString()).toBe('raw-3');
    const entries = records.slice(1, 3).map((record) => decodeJournalEntry(record.payload));
    expect(entries.map((entry) => [entry.sequence, entry.query])).toEqual([
      [2, 'CREATE (:Outer {name: $name})'],
      [3, 'CREATE (:Inner)'],
    ]);
  });

  test('the core writer groups appends queued while a write is in flight', async () => {
    const dir = await tempDir();
    const writer = await core.openWriter(dir, { sequence: 0, chainHash: ZERO_HASH, liveSegment: null }, {
      maxSegmentBytes: 1 << 20,
      level: 3,
      durability: 'fsync',
      fsyncIntervalMs: 100,
      queueCapacity: 8,
    });
    const batches = await Promise.all(Array.from({ length: 200 }, (_, i) => writer.append([Buffer.from(`p${i}`)])));
    // call order, no gaps, even with the queue (capacity 8) full and callers waiting
    expect(batches.map((b) => b.firstSequence)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(writer.stats().syncs).toBeLessThan(200);
    expect(writer.stats().syncs).toBe(writer.stats().batches);
    await writer.close();
    expect(writer.alive).toBe(false);
  });

  test('appendBatch writes consecutive entries and rejects a batch with one bad value before writing any', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    const results = await journal.appendBatch([entryFor(1), entryFor(2), entryFor(3)]);
    expect(results.map((r) => r.sequence)).toEqual([1, 2, 3]);
    await expectCode(journal.appendBatch([entryFor(4), { query: 'x', params: { f: (() => 1) as never } }]), 'invalid_argument');
    expect((await journal.append(entryFor(4))).sequence).toBe(4);
    await journal.close();
    expect((await readAll(dir, core)).map((r) => r.sequence)).toEqual([1, 2, 3, 4]);
  });

  test('values that cannot be journaled are rejected and nothing is written', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: unknown[] = [() => 1, Symbol('s'), 2n ** 64n, cyclic, undefined];
    for (const value of bad) {
      await expectCode(journal.append({ query: 'RETURN $v', params: { v: value as never } }), 'invalid_argument');
    }
    await expectCode(journal.append({ query: 42 as never }), 'invalid_argument');
    await expectCode(journal.append(null as never), 'invalid_argument');
    await expectCode(journal.appendRaw('text' as never), 'invalid_argument');
    expect(journal.sequence).toBe(0);
    await journal.close();
    expect(await segmentFiles(dir)).toEqual([]);
  });

  test('appendRaw copies the payload; payloads over maxEntryBytes are too_large', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core, maxEntryBytes: 1000 });
    const payload = Buffer.from('original');
    const pending = journal.appendRaw(payload);
    payload.write('mutated!');
    await pending;
    await expectCode(journal.appendRaw(Buffer.alloc(1001)), 'too_large');
    await expectCode(journal.append({ query: 'x'.repeat(2000) }), 'too_large');
    await journal.close();
    const records = [];
    for await (const record of readJournal(dir, { core, raw: true })) records.push(record.payload.toString());
    expect(records).toEqual(['original']);
  });

  test('close seals, is idempotent, releases the lock; appends after it are rejected with closed', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    await expectCode(Journal.open(dir, { core }), 'locked');
    await journal.append(entryFor(1));
    await Promise.all([journal.close(), journal.close()]);
    await journal.close();
    expect(journal.alive).toBe(false);
    await expectCode(journal.append(entryFor(2)), 'closed');
    await expectCode(journal.appendRaw(Buffer.from('x')), 'closed');
    await expectCode(journal.sealForUpload(), 'closed');
    const [name] = await segmentFiles(dir);
    const header = core.decodeHeader(await readFile(join(dir, name!)));
    expect(header.flags & 0x04).toBe(0x04);
    const reopened = await Journal.open(dir, { core });
    expect(reopened.sequence).toBe(1);
    await reopened.close();
  });

  test('appends pending at close are written before it', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    const appends = Array.from({ length: 10 }, (_, i) => journal.append(entryFor(i)));
    await journal.close();
    expect((await Promise.all(appends)).map((r) => r.sequence)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(await readAll(dir, core)).toHaveLength(10);
  });

  test('rotation: an entry exactly filling a segment stays, the next starts a new one; an oversized entry gets its own', async () => {
    const dir = await tempDir();
    const maxSegmentBytes = 128 + 48 + 100;
    const journal = await Journal.open(dir, { core, maxSegmentBytes, compression: 'none' });
    await journal.appendRaw(Buffer.alloc(100, 1)); // 1: fills segment 1 exactly
    await journal.appendRaw(Buffer.alloc(10, 2)); // 2: new segment
    await journal.appendRaw(Buffer.alloc(10, 3)); // 3: fits beside 2
    await journal.appendRaw(Buffer.alloc(500, 4)); // 4: larger than a segment, alone
    await journal.appendRaw(Buffer.alloc(10, 5)); // 5: new segment
    await journal.close();
    expect(journal.stats().segmentsSealed).toBe(4);
    const names = await segmentFiles(dir);
    expect(names).toEqual([1, 2, 4, 5].map((seq) => `journal-${String(seq).padStart(16, '0')}.hadbj`));
    const counts = [];
    for (const name of names) {
      const bytes = await readFile(join(dir, name));
      const segment = core.decodeSegment(bytes);
      expect(segment.header.flags).toBe(0x0c);
      counts.push(segment.entryOffsets.length);
      if (segment.entryOffsets.length > 1) expect(128 + segment.body.length).toBeLessThanOrEqual(maxSegmentBytes);
    }
    expect(counts).toEqual([1, 2, 1, 1]);
    const sequences = [];
    for await (const record of readJournal(dir, { core, raw: true })) sequences.push(record.sequence);
    expect(sequences).toEqual([1, 2, 3, 4, 5]);
  });

  test('sealForUpload seals the live segment, returns null when it is empty, and appending continues', async () => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core });
    expect(await journal.sealForUpload()).toBeNull();
    await journal.append(entryFor(1));
    await journal.append(entryFor(2));
    const sealed = await journal.sealForUpload();
    expect(sealed).toBe(join(journal.directory, 'journal-0000000000000001.hadbj'));
    const segment = core.decodeSegment(await readFile(sealed!));
    expect(segment.header.flags).toBe(0x0d);
    expect(segment.header.lastSeq).toBe(2);
    expect(segment.chainHash).toEqual(journal.chainHash);
    expect(await journal.sealForUpload()).toBeNull();
    expect((await journal.append(entryFor(3))).sequence).toBe(3);
    expect(await segmentFiles(dir)).toEqual(['journal-0000000000000001.hadbj', 'journal-0000000000000003.hadbj']);
    await journal.close();
    expect((await readAll(dir, core)).map((r) => r.sequence)).toEqual([1, 2, 3]);
  });

  test.each(['interval', 'none'] as const)('durability %s: appends made on the calling thread (appendNow) and queued ones keep call order and one chain', async (durability) => {
    const dir = await tempDir();
    // counts the appends the core made at once (native: 'none'/'interval' with nothing queued ahead)
    let now = 0;
    let queued = 0;
    const counting: typeof core = {
      ...core,
      openWriter: async (...args) => {
        const writer = await core.openWriter(...args);
        if (writer.appendNow === undefined) return writer;
        const appendNow = writer.appendNow.bind(writer);
        return Object.assign(Object.create(writer) as typeof writer, {
          appendNow: (...call: Parameters<typeof appendNow>) => {
            const result = appendNow(...call);
            if (result instanceof Promise || typeof (result as { then?: unknown }).then === 'function') queued++;
            else now++;
            return result;
          },
        });
      },
    };
    const journal = await Journal.open(dir, { core: counting, durability, fsyncIntervalMs: 5, maxSegmentBytes: 4096 });
    const results: AppendResult[] = [];
    const order: number[] = [];
    for (let round = 0; round < 40; round++) {
      // one awaited append, then a burst in one tick, now and then a seal in between
      results.push(await journal.append(entryFor(results.length)));
      const burst = Array.from({ length: round % 5 }, () => journal.appendRaw(Buffer.from(`raw-${round}`)));
      if (round % 7 === 3) void journal.sealForUpload();
      burst.forEach((append, i) => void append.then((r) => order.push(r.sequence)));
      results.push(...(await Promise.all(burst)));
      for (let i = 1; i < order.length; i++) expect(order[i]).toBeGreaterThan(order[i - 1]!);
    }
    await journal.close();
    expect(results.map((r) => r.sequence)).toEqual(Array.from({ length: results.length }, (_, i) => i + 1));
    if (core.kind === 'native') expect(now, `${now} appended at once, ${queued} queued`).toBeGreaterThan(0);
    for (const reader of cores) {
      const payloads: AppendResult[] = [];
      for await (const record of readJournal(dir, { core: reader, raw: true })) payloads.push({ sequence: record.sequence, chainHash: record.chainHash });
      expect(payloads).toEqual(results.map((r) => ({ sequence: r.sequence, chainHash: Buffer.from(r.chainHash) })));
    }
  });

  test.each(['interval', 'none'] as const)('durability %s: appends, flush and reopen', async (durability) => {
    const dir = await tempDir();
    const journal = await Journal.open(dir, { core, durability, fsyncIntervalMs: 5 });
    for (let i = 0; i < 20; i++) await journal.append(entryFor(i));
    await journal.flush();
    if (durability === 'none') expect(journal.stats().syncs).toBe(1);
    await journal.close();
    const reopened = await Journal.open(dir, { core, durability });
    expect(reopened.sequence).toBe(20);
    await reopened.close();
    expect(await readAll(dir, core)).toHaveLength(20);
  });

  test('options are validated', async () => {
    const dir = await tempDir();
    await expectCode(Journal.open(dir, { core, maxSegmentBytes: 100 }), 'invalid_argument');
    await expectCode(Journal.open(dir, { core, compression: { zstd: 23 } }), 'invalid_argument');
    await expectCode(Journal.open(dir, { core, durability: 'sometimes' as never }), 'invalid_argument');
    await expectCode(Journal.open(dir, { core, fsyncIntervalMs: 0 }), 'invalid_argument');
  });

  test('a directory that cannot be created is an io error', async () => {
    const dir = await tempDir();
    const file = join(dir, 'regular-file');
    await writeFile(file, 'not a directory');
    await expectCode(Journal.open(join(file, 'journal'), { core }), 'io');
  });

  test('one process holds many journals at once', async () => {
    const journals = await Promise.all(Array.from({ length: 8 }, async () => Journal.open(await tempDir(), { core })));
    await Promise.all(journals.map((journal, i) => Promise.all(Array.from({ length: 10 }, (_, k) => journal.append(entryFor(i * 10 + k))))));
    expect(journals.map((journal) => journal.sequence)).toEqual(Array(8).fill(10));
    await Promise.all(journals.map((journal) => journal.close()));
  });
});

describe.each(corePairs)('a journal written by one core is continued and read by the other', ({ writer: writerCore, reader: readerCore }) => {
  test.each(['fsync', 'none'] as const)(`${writerCore.kind} writes, ${readerCore.kind} continues; both read it (durability %s)`, async (durability) => {
    const dir = await tempDir();
    const first = await Journal.open(dir, { core: writerCore, maxSegmentBytes: 2048, durability });
    await Promise.all(Array.from({ length: 60 }, (_, i) => first.append(entryFor(i))));
    await first.close();
    const second = await Journal.open(dir, { core: readerCore, maxSegmentBytes: 2048, durability });
    expect(second.sequence).toBe(60);
    expect(second.chainHash).toEqual(first.chainHash);
    await Promise.all(Array.from({ length: 60 }, (_, i) => second.append(entryFor(60 + i))));
    await second.close();
    for (const core of [writerCore, readerCore]) {
      const records = await readAll(dir, core);
      expect(records.map((r) => r.sequence)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
      expect(records[119]!.chainHash).toEqual(second.chainHash);
    }
  });
});
