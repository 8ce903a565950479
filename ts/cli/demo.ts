/**
 * `graphstream demo`: the main job end to end on the embedded default. A leader journal under a
 * lease takes a stream of typed graph mutations, the Uploader ships its sealed segments to object
 * storage (a local directory unless --storage names another), then the leader hands over: it
 * releases the lease and a standby follower promotes, continuing the chain in a new generation
 * with the rest of the stream. A follower rebuilds the whole journal from storage across both
 * generations in a third directory, and it is compared with the new leader's entry for entry.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Core } from '../core/core.js';
import { GraphstreamError } from '../errors.js';
import { ZERO_HASH } from '../format/constants.js';
import { Follower } from '../replication/follower.js';
import {
  GraphstreamMetrics,
  Journal,
  LocalStorage,
  Uploader,
  activeCore,
  decodeJournalEntry,
  pureCore,
  readJournal,
  segmentFileName,
  type JournalAppendEntry,
  type RawJournalRecord,
  type SegmentStorage,
} from '../index.js';
import { graphMutations, mutationKind } from './mutations.js';
import { Output, formatBytes, formatDuration, formatFields, formatRate } from './output.js';
import { integerArg, openStorageArg, usageError, withStorageOptions, type StorageFlags } from './options.js';

interface DemoOptions extends StorageFlags {
  dir?: string;
  entries: number;
  storage?: string;
  pure?: boolean;
  kuzu?: boolean;
}

const DEFAULT_ENTRIES = 5000;
/** small segments, so even a short demo ships several of them */
const DEMO_SEGMENT_BYTES = 64 * 1024;
/** the first leader appends this share of the mutations, the standby that takes over the rest */
const HANDOVER_AT = 0.8;
/** entries per append call; CONCURRENT_APPENDS calls are in flight at once and share fsyncs */
const APPEND_BATCH = 25;
const CONCURRENT_APPENDS = 4;

interface Phase {
  name: string;
  ms: number;
}

async function timed<T>(phases: Phase[], name: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    phases.push({ name, ms: performance.now() - started });
  }
}

/** Appends `mutations`, `CONCURRENT_APPENDS` batches at a time. */
async function appendWorkload(journal: Journal, mutations: Iterable<JournalAppendEntry>, count: number, metrics: GraphstreamMetrics, output: Output): Promise<void> {
  const progress = output.progress('appending', count);
  const pending: JournalAppendEntry[] = [];
  let written = 0;
  const appendOne = async (batch: JournalAppendEntry[]) => {
    const started = performance.now();
    await journal.appendBatch(batch);
    metrics.observeAppendLatency(performance.now() - started);
    metrics.recordEntriesWritten(batch.length);
    written += batch.length;
    progress.update(written);
  };
  const flush = async () => {
    const calls: Promise<void>[] = [];
    for (let i = 0; i < pending.length; i += APPEND_BATCH) calls.push(appendOne(pending.slice(i, i + APPEND_BATCH)));
    pending.length = 0;
    await Promise.all(calls);
  };
  for (const entry of mutations) {
    pending.push(entry);
    if (pending.length === APPEND_BATCH * CONCURRENT_APPENDS) await flush();
  }
  await flush();
  progress.done();
}

interface Comparison {
  entries: number;
  firstSeq: number;
  lastSeq: number;
  chainHash: Buffer;
  kinds: Record<string, number>;
}

/**
 * Reads both journals (each verified end to end by readJournal) side by side and requires the
 * same sequences, chain hashes and payloads; replays the follower's entries by decoding them.
 */
async function compareJournals(leaderDir: string, followerDir: string, core: Core, output: Output, total: number): Promise<Comparison> {
  const leader = readJournal(leaderDir, { raw: true, core })[Symbol.asyncIterator]();
  const follower = readJournal(followerDir, { raw: true, core })[Symbol.asyncIterator]();
  const progress = output.progress('verifying', total);
  const result: Comparison = { entries: 0, firstSeq: 0, lastSeq: 0, chainHash: ZERO_HASH, kinds: {} };
  for (;;) {
    const [mine, theirs] = await Promise.all([leader.next(), follower.next()]);
    if (mine.done || theirs.done) {
      if (!(mine.done && theirs.done)) {
        const [longer, extra] = mine.done ? ['follower', theirs.value as RawJournalRecord] : ['leader', mine.value as RawJournalRecord];
        throw new GraphstreamError('chain_broken', `the ${longer} has sequence ${extra.sequence} and the other journal ends at ${result.lastSeq}`);
      }
      break;
    }
    const a = mine.value;
    const b = theirs.value;
    if (a.sequence !== b.sequence || !a.chainHash.equals(b.chainHash) || !a.payload.equals(b.payload)) {
      throw new GraphstreamError(
        'chain_broken',
        `leader sequence ${a.sequence} (chain ${a.chainHash.toString('hex')}) does not match follower sequence ${b.sequence} (chain ${b.chainHash.toString('hex')})`,
      );
    }
    const kind = mutationKind(decodeJournalEntry(b.payload).query);
    result.kinds[kind] = (result.kinds[kind] ?? 0) + 1;
    if (result.entries === 0) result.firstSeq = a.sequence;
    result.entries++;
    result.lastSeq = a.sequence;
    result.chainHash = a.chainHash;
    if (result.entries % 500 === 0) progress.update(result.entries);
  }
  progress.done();
  return result;
}

/** The graphstream_ samples of the registry, without histogram buckets. */
async function metricLines(metrics: GraphstreamMetrics): Promise<string[]> {
  const text = await metrics.toPrometheus();
  return text.split('\n').filter((line) => line.startsWith('graphstream_') && !line.includes('_bucket{'));
}

function* take<T>(items: Iterator<T>, count: number): Generator<T> {
  for (let i = 0; i < count; i++) {
    const next = items.next();
    if (next.done) return;
    yield next.value;
  }
}

async function prepareDir(command: Command, dir: string | undefined): Promise<string> {
  if (dir === undefined) return mkdtemp(join(tmpdir(), 'graphstream-demo-'));
  const absolute = resolve(dir);
  await mkdir(absolute, { recursive: true });
  const present = await readdir(absolute);
  if (present.length > 0) usageError(command, `--dir ${absolute} is not empty: the demo writes a fresh leader, store and follower there`);
  return absolute;
}

/**
 * How the user ran this CLI, to repeat in hints: `npx graphstream` under npx (from a clone or a
 * project that depends on it), `graphstream` from an installed bin, else `node <script>`.
 */
function invocation(): string {
  if (process.env.npm_command === 'exec') return 'npx graphstream';
  const script = process.argv[1] ?? '';
  if (basename(script) === 'graphstream') return 'graphstream';
  const shown = relative(process.cwd(), script);
  return `node ${shown.startsWith('..') || isAbsolute(shown) ? script : shown}`;
}

export function registerDemo(program: Command, output: Output): void {
  withStorageOptions(
    program
      .command('demo')
      .summary('run the whole replication pipeline end to end on a local store')
      .description(
        'Appends a stream of typed graph mutations to a leader journal, ships its sealed segments to object ' +
          'storage (a directory under --dir, or --storage) under a lease, hands over to a standby that promotes ' +
          'and continues the chain in a new generation, rebuilds the whole journal from storage in a follower ' +
          "directory, and checks that it matches the new leader's entry for entry. Needs no cloud account.",
      )
      .option('--dir <dir>', 'an empty directory for the leader, store and follower (default: a new temp dir)')
      .option('--entries <n>', 'mutations to append', integerArg(1, 10_000_000), DEFAULT_ENTRIES)
      .option('--storage <url>', 'ship to this storage instead (s3://bucket/prefix, file:///dir, memory://)')
      .option('--pure', 'use the pure-TypeScript core instead of the native addon')
      .option('--kuzu', 'replicate a Kuzu database instead (graphstream/kuzu; needs the kuzu package): leader, replica, promotion, follower'),
  ).action(async function (this: Command, options: DemoOptions) {
    const core = options.pure ? pureCore : activeCore;
    const dir = await prepareDir(this, options.dir);
    if (options.kuzu) {
      // each Kuzu mutation is a transaction with an fsync: a shorter stream unless --entries says otherwise
      const entries = this.getOptionValueSource('entries') === 'default' ? 1000 : options.entries;
      const { runKuzuDemo } = await import('./demo-kuzu.js');
      return runKuzuDemo({ dir, entries, output });
    }
    const leaderDir = join(dir, 'leader');
    const standbyDir = join(dir, 'standby');
    const followerDir = join(dir, 'follower');
    const storage: SegmentStorage = options.storage === undefined ? new LocalStorage(join(dir, 'store')) : await openStorageArg(this, options.storage, options);
    // A fresh db name on shared storage, so runs never collide with earlier ones.
    const db = options.storage === undefined ? 'demo' : `demo-${randomBytes(4).toString('hex')}`;
    const metrics = new GraphstreamMetrics({ db });
    const phases: Phase[] = [];

    output.print(`graphstream demo: ${options.entries} mutations, ${core.kind} core`);
    output.print(
      formatFields([
        ['leader', leaderDir],
        ['storage', `${storage.description.replace(/\/?$/, '/')}${db}/`],
        ['standby', standbyDir],
        ['follower', followerDir],
      ]),
    );

    try {
      const mutations = graphMutations(options.entries)[Symbol.iterator]();
      const first = Math.max(1, Math.floor(options.entries * HANDOVER_AT));
      const journal = await Journal.open(leaderDir, { core, maxSegmentBytes: DEMO_SEGMENT_BYTES });
      const uploader = new Uploader({ journal, storage, db, lease: { holder: 'demo-leader' }, sealIntervalMs: 200, metrics });
      try {
        await uploader.start();
        await timed(phases, 'append', () => appendWorkload(journal, take(mutations, first), first, metrics, output));
        await timed(phases, 'upload', () => uploader.release());
      } finally {
        await uploader.stop();
        await journal.close();
      }
      const journalStats = journal.stats();
      const uploads = uploader.stats();

      const standby = new Follower({ storage, db, dir: standbyDir, core, metrics });
      const promotion = await timed(phases, 'handover', () => standby.promote({ lease: { holder: 'demo-standby' }, uploader: { sealIntervalMs: 200 } }));
      const rest = options.entries - journal.sequence;
      try {
        await timed(phases, 'append after', () => appendWorkload(promotion.journal, take(mutations, rest), rest, metrics, output));
        await timed(phases, 'upload after', () => promotion.uploader.sync());
      } finally {
        await promotion.uploader.release();
        await promotion.uploader.stop();
        await promotion.journal.close();
      }
      const sealed = journalStats.segmentsSealed + promotion.journal.stats().segmentsSealed;
      for (let i = 0; i < sealed; i++) metrics.recordSegmentSealed();

      const follower = new Follower({ storage, db, dir: followerDir, core, metrics });
      const followed = await timed(phases, 'follow', () => follower.catchUp());
      const comparison = await timed(phases, 'verify', () => compareJournals(standbyDir, followerDir, core, output, options.entries));
      if (comparison.entries !== options.entries) {
        throw new GraphstreamError('gap', `the follower has ${comparison.entries} entries, the leader appended ${options.entries}`);
      }

      const appendMs = phases.find((phase) => phase.name === 'append')!.ms;
      output.print();
      output.print('leader');
      output.print(
        formatFields([
          ['entries appended', `${journalStats.appends} in ${journalStats.groups} group commits, ${journalStats.syncs} fsyncs`],
          ['append rate', `${formatRate(journalStats.appends, appendMs)} entries/s`],
          ['segments sealed', journalStats.segmentsSealed],
          ['chain hash', journal.chainHash.toString('hex')],
        ]),
      );
      output.print('handover');
      output.print(
        formatFields([
          ['released at', `sequence ${journal.sequence} (epoch ${uploader.lease!.epoch}, generation ${uploader.lease!.generation})`],
          ['promoted', `epoch ${promotion.record.epoch}, generation ${promotion.record.generation} from sequence ${promotion.record.startSeq}`],
          ['entries appended', rest],
          ['chain hash', promotion.journal.chainHash.toString('hex')],
        ]),
      );
      output.print('upload');
      output.print(
        formatFields([
          ['segments uploaded', `${uploads.succeeded} (${uploads.failed} failed, ${uploads.retries} retries)`],
          ['bytes uploaded', `${formatBytes(uploads.bytes)} (${formatBytes(Math.round(uploads.bytes / Math.max(1, uploads.succeeded)))} per segment)`],
        ]),
      );
      output.print('follower');
      output.print(
        formatFields([
          ['segments downloaded', `${followed.segments.length} (${formatBytes(followed.bytes)})`],
          ['entries replayed', Object.entries(comparison.kinds).map(([kind, count]) => `${count} ${kind}`).join(', ')],
          ['sequences', `${comparison.firstSeq}..${comparison.lastSeq}`],
          ['chain hash', comparison.chainHash.toString('hex')],
        ]),
      );
      output.print('timings');
      output.print(formatFields(phases.map((phase) => [phase.name, formatDuration(phase.ms)] as const)));
      output.print('metrics');
      for (const line of await metricLines(metrics)) output.print(`  ${line}`);
      output.print();
      output.print(`OK: leader and follower match, ${comparison.entries} entries, chain hash ${comparison.chainHash.toString('hex')}`);
      const cli = invocation();
      output.print(`next: ${cli} verify ${standbyDir}  |  ${cli} inspect ${join(followerDir, segmentFileName(comparison.firstSeq))}`);
    } finally {
      await storage.close?.();
    }
  });
}
