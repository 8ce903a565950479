/**
 * Power loss, simulated the way LazyFS does: the journal, its Uploader's manifest and a
 * LocalStorage live on a lazy FUSE file system (helpers/lazyfs.py) that drops, at each crash,
 * every write not made durable by fsync/fdatasync and every directory change whose directory was
 * not fsynced. A child appends and uploads, with each durability mode on each core; it is
 * SIGKILLed at a random moment and the file system crashes; sometimes recovery (a Journal.open in
 * a second child) is killed and crashed too. Then:
 *   - 'fsync': no acknowledged append is lost; 'interval' and 'none': none that flush() covered;
 *   - open succeeds and continues at the next sequence, and the chain verifies end to end;
 *   - every object the upload manifest claims is in the store, with the manifest's hash.
 * Before that, two deterministic cases pin the writer's durability points in durability 'none'.
 * Seeded: GRAPHSTREAM_POWERLOSS_SEED repeats the random choices (the moments the processes reach
 * are still up to the scheduler); GRAPHSTREAM_POWERLOSS_CRASHES sets the crashes per core and mode.
 */
import { createHash, randomInt } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MANIFEST_DIR } from '../ts/replication/cache.js';
import type { Core } from '../ts/core/core.js';
import { syncDirectory } from '../ts/journal/durable-fs.js';
import { Journal } from '../ts/journal/journal.js';
import { readJournal } from '../ts/journal/reader.js';
import { LocalStorage } from '../ts/storage/local.js';
import { bundleScripts } from './helpers/bundle.js';
import { run, waitFor } from './helpers/child-process.js';
import { cores } from './helpers/cores.js';
import { withLazyFs } from './helpers/lazyfs.js';
import { seededRandom } from '../ts/cli/mutations.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const buildDir = join(root, '.vitest-tmp', `power-loss-${process.pid}`);
const script = join(buildDir, 'power-loss-writer.mjs');
const SEED = Number(process.env.GRAPHSTREAM_POWERLOSS_SEED ?? randomInt(2 ** 31));
const CRASHES = Number(process.env.GRAPHSTREAM_POWERLOSS_CRASHES ?? 5);
const SEGMENT_BYTES = 16 * 1024;
const DURABILITIES = ['fsync', 'interval', 'none'] as const;

beforeAll(async () => {
  console.log(`power loss: seed ${SEED}, ${CRASHES} crashes per core and durability mode (GRAPHSTREAM_POWERLOSS_SEED, GRAPHSTREAM_POWERLOSS_CRASHES)`);
  await bundleScripts({ 'power-loss-writer': join(root, '__test__/helpers/power-loss-writer.ts') }, buildDir);
});

afterAll(async () => {
  await rm(buildDir, { recursive: true, force: true });
});


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `round:i` of an entry the writer child appended */
function tagOf(params: [string, { value: unknown }][]): string {
  return `${params[0]![1].value}:${params[1]![1].value}`;
}

/** Reads the whole journal (the reader verifies the chain), checks each entry against `acknowledged`; returns the last sequence. */
async function verifyJournal(dir: string, core: Core, acknowledged: Map<number, string>): Promise<{ last: number; chainHash: Buffer | null }> {
  let last = 0;
  let chainHash: Buffer | null = null;
  for await (const record of readJournal(dir, { core })) {
    expect(record.sequence).toBe(last + 1);
    const tag = acknowledged.get(record.sequence);
    if (tag !== undefined) expect(tagOf(record.entry.params as [string, { value: unknown }][]), `entry ${record.sequence}`).toBe(tag);
    last = record.sequence;
    chainHash = record.chainHash;
  }
  return { last, chainHash };
}

async function listing(dir: string): Promise<string> {
  const names = (await readdir(dir)).sort();
  const sizes = await Promise.all(names.map(async (name) => `${name} (${(await stat(join(dir, name))).size} bytes)`));
  return sizes.join(', ');
}

/** Checks every object the upload manifests (one per destination) claim against the store; returns how many. */
async function verifyManifests(dir: string, storage: LocalStorage): Promise<number> {
  const manifests = (await readdir(join(dir, MANIFEST_DIR)).catch(() => [])).filter((name) => name.endsWith('.json'));
  let claimed = 0;
  for (const name of manifests) {
    const { segments, tip } = JSON.parse(await readFile(join(dir, MANIFEST_DIR, name), 'utf8')) as ManifestRecords;
    for (const { key, sha256 } of [...segments, ...(tip === null ? [] : [tip])]) {
      const object = await storage.get(key);
      expect(object, `${name} claims ${key}`).not.toBeNull();
      expect(createHash('sha256').update(object!).digest('hex'), `${key} in the store`).toBe(sha256);
      claimed++;
    }
  }
  return claimed;
}

interface ManifestRecords {
  segments: { key: string; sha256: string }[];
  tip: { key: string; sha256: string } | null;
}

describe.each(cores)("the writer's durability points on a lazy file system ($kind core)", (core) => {
  async function killAndCrash(mode: string, segmentBytes: number, ready: string, check: (dir: string, lines: string[]) => Promise<void>): Promise<void> {
    await withLazyFs(async (fs) => {
      const dir = join(fs.root, 'journal');
      await mkdir(dir);
      await syncDirectory(fs.root);
      const child = run(process.execPath, [script, core.kind, dir, String(segmentBytes), mode]);
      await waitFor(child, (lines) => lines.some((line) => line.startsWith(ready)), ready);
      child.kill();
      await child.exited;
      await fs.crash();
      await check(dir, child.lines);
    });
  }

  test("in durability 'none' a segment is durable before the next one exists: a power loss after a rotation leaves no hole", async () => {
    await killAndCrash('rotate', 256 * 1024, 'rotated', async (dir, lines) => {
      const rotated = Number(lines.find((line) => line.startsWith('rotated '))!.slice(8));
      const journal = await Journal.open(dir, { core, maxSegmentBytes: 256 * 1024 }).catch(async (err: Error) => {
        throw new Error(`${err.message}; the journal directory holds ${await listing(dir)}`, { cause: err });
      });
      expect(journal.sequence).toBe(rotated);
      await journal.close();
      expect((await verifyJournal(dir, core, new Map())).last).toBe(rotated);
    });
  });

  test("flush() in durability 'none' makes durable the entries of segments still waiting for their seal", async () => {
    await killAndCrash('flush', 256 * 1024, 'flushed', async (dir, lines) => {
      const flushed = Number(lines.find((line) => line.startsWith('flushed '))!.slice(8));
      expect(flushed).toBe(1000);
      const { last } = await verifyJournal(dir, core, new Map());
      expect(last, await listing(dir)).toBe(flushed);
    });
  });
});

describe.each(cores)('power loss ($kind core)', (core) => {
  test.each(DURABILITIES)(
    "durability '%s': the surviving journal opens, verifies and keeps what was promised",
    { timeout: 60_000 + CRASHES * 10_000 },
    async (durability) => {
      const random = seededRandom(SEED + DURABILITIES.indexOf(durability) * 2 + cores.indexOf(core));
      await withLazyFs(async (fs) => {
        const dir = join(fs.root, 'journal');
        const storage = new LocalStorage(join(fs.root, 'store'));
        await mkdir(dir);
        await mkdir(storage.root);
        await syncDirectory(fs.root);
        /** `round:i` of every acknowledged append still in the journal or promised to be */
        const acknowledged = new Map<number, string>();
        let promised = 0; // every entry up to here must survive
        let promisedChecked = 0;
        let recoveryCrashes = 0;
        let manifestClaims = 0;
        for (let round = 1; round <= CRASHES; round++) {
          const writer = run(process.execPath, [script, core.kind, dir, String(SEGMENT_BYTES), 'write', storage.root, durability, String(round)]);
          await waitFor(writer, (lines) => lines.some((line) => line.startsWith('start ')), 'start');
          await sleep(50 + random() * 750);
          writer.kill();
          expect((await writer.exited).signal, writer.stderr()).toBe('SIGKILL');
          const acks = writer.lines.filter((line) => line.startsWith('ack ')).map((line) => line.split(' ').map(Number) as [string, number, number]);
          for (const [, sequence, i] of acks) acknowledged.set(sequence, `${round}:${i}`);
          const flushed = writer.lines.filter((line) => line.startsWith('flushed ')).map((line) => Number(line.slice(8)));
          const promisedNow = durability === 'fsync' ? Math.max(0, ...acks.map(([, sequence]) => sequence)) : Math.max(0, ...flushed);
          promisedChecked += acks.filter(([, sequence]) => sequence <= promisedNow).length;
          promised = Math.max(promised, promisedNow);
          await fs.crash();

          if (random() < 0.4) {
            const recovery = run(process.execPath, [script, core.kind, dir, String(SEGMENT_BYTES), 'recover']);
            await sleep(random() * 80);
            recovery.kill();
            await recovery.exited;
            await fs.crash();
            recoveryCrashes++;
          }

          const context = `round ${round} (seed ${SEED})`;
          const journal = await Journal.open(dir, { core, maxSegmentBytes: SEGMENT_BYTES, durability }).catch(async (err: Error) => {
            throw new Error(`${context}: ${err.message}; the journal directory holds ${await listing(dir)}`, { cause: err });
          });
          const recovered = journal.sequence;
          expect(recovered, `${context}: entries that survived`).toBeGreaterThanOrEqual(promised);
          const { sequence } = await journal.append({ query: 'CREATE (:Item {round: $round, i: $i})', params: { round, i: -1 } });
          expect(sequence, context).toBe(recovered + 1);
          const chainHash = journal.chainHash;
          await journal.close();
          for (const acknowledgedSequence of acknowledged.keys()) if (acknowledgedSequence > recovered) acknowledged.delete(acknowledgedSequence);
          acknowledged.set(sequence, `${round}:-1`);
          promised = sequence;
          const read = await verifyJournal(dir, core, acknowledged);
          expect(read.last, context).toBe(sequence);
          expect(read.chainHash?.equals(chainHash), context).toBe(true);
          manifestClaims += await verifyManifests(dir, storage);
        }
        console.log(
          `power loss: ${core.kind} '${durability}': ${CRASHES} crashes (${recoveryCrashes} more during recovery), ` +
            `${promisedChecked} promised appends checked, ${promised} entries in the journal, ${manifestClaims} manifest claims checked against the store`,
        );
      });
    },
  );
});
