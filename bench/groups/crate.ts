/**
 * Group "crate": this package's writer against the published `graphstream` 0.3 crate's
 * (`spawn_journal_writer`), same run, interleaved, on the same 200,000 entries: 4 MiB segments,
 * zstd 3 on both sides, no fsync of any append (each sealed segment is fsynced on both sides).
 * Each run writes every entry into a fresh directory and ends when the writer is closed with its
 * last segment sealed (the crate: `Shutdown`, until its writer thread has exited; this package:
 * `Journal.close()`). The sealing comparison of a 4 MiB segment is in the format group's table 1.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeJournalEntry, Journal, nativeCore, type JournalAppendEntry } from '../../ts/index.js';
import type { Core } from '../../ts/core/core.js';
import { addTable, addTarget, type Context } from '../lib/context.js';
import { crateRef, runCrateRef, sharedEntries, writeSharedEntries } from '../lib/crate-ref.js';
import { fmtNumber } from '../lib/report.js';
import { interleave, nowMs, ratioOf, summarize } from '../lib/stats.js';

const ENTRIES = 200_000;
const SEGMENT_BYTES = 4 * 1024 * 1024;

interface CrateWriterRun {
  entries: number;
  seconds: number;
  entriesPerSecond: number;
  payloadBytes: number;
  segments: number;
  /** CPU of every thread of the runner during the timed part */
  cpuSeconds: number;
}

/** One run of this package's writer: its rate, and the CPU of every thread of this process meanwhile (ms). */
interface JournalRun {
  entriesPerSecond: number;
  cpuMs: number;
}

/** Every entry appended (appendBatch of `batch`, `depth` batches in flight; or single appends, `depth` in flight), then close. */
async function journalRun(context: Context, core: Core, entries: JournalAppendEntry[], mode: 'batch' | 'single', depth: number): Promise<JournalRun> {
  const dir = await mkdtemp(join(context.scratch, `crate-cmp-${mode}-`));
  const journal = await Journal.open(dir, { core, durability: 'none', maxSegmentBytes: SEGMENT_BYTES, compression: { zstd: 3 } });
  const batch = 1000;
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const start = nowMs();
  const caller = async () => {
    if (mode === 'batch') {
      while (next < entries.length) {
        const from = next;
        next += batch;
        await journal.appendBatch(entries.slice(from, from + batch));
      }
    } else {
      while (next < entries.length) await journal.append(entries[next++]!);
    }
  };
  await Promise.all(Array.from({ length: depth }, caller));
  await journal.close();
  const elapsed = nowMs() - start;
  const cpu = process.cpuUsage(cpuBefore);
  await rm(dir, { recursive: true, force: true });
  return { entriesPerSecond: entries.length / (elapsed / 1000), cpuMs: (cpu.user + cpu.system) / 1000 };
}

export async function crateGroup(context: Context): Promise<void> {
  if (nativeCore === null) throw new Error('the native addon did not load (npm run build:native)');
  const native = nativeCore;
  const ref = crateRef(context, context.root);
  const requirement = 'writer ≥ 2× the crate; seal ≥ 1.5× faster';
  if (ref.binary === null) {
    context.log(`crate: the graphstream 0.3 crate could not be built: ${ref.failure}`);
    addTarget(context, { id: 9, target: 'vs the graphstream 0.3 crate', measured: `not measured: ${ref.failure}`, required: requirement, met: null, value: null });
    return;
  }
  const binary = ref.binary;
  const runs = context.quick ? 3 : 5;
  context.log(`crate: ${ENTRIES} shared entries`);
  const { entries, jsonLines } = sharedEntries(ENTRIES, 21);
  const entriesFile = join(context.scratch, 'crate-entries.jsonl');
  writeSharedEntries(entriesFile, jsonLines);
  // same entries: the protobuf payloads both writers make must be as long, entry for entry in sum
  const now = Date.now();
  const ourPayloadBytes = entries.reduce((sum, entry, i) => sum + encodeJournalEntry({ ...entry, sequence: i + 1, timestampMs: now }).length, 0);
  const crateRuns: CrateWriterRun[] = [];
  const crateRun = async () => {
    const dir = await mkdtemp(join(context.scratch, 'crate-writer-'));
    const run = runCrateRef<CrateWriterRun>(binary, ['writer', entriesFile, dir, String(SEGMENT_BYTES)]);
    await rm(dir, { recursive: true, force: true });
    crateRuns.push(run);
    return run.entriesPerSecond;
  };
  context.log(`crate: writer runs (${runs} interleaved)`);
  const cpuMs: Record<'crate' | 'batch' | 'single', number[]> = { crate: [], batch: [], single: [] };
  const ours = (key: 'batch' | 'single', depth: number) => async () => {
    const run = await journalRun(context, native, entries, key, depth);
    cpuMs[key].push(run.cpuMs);
    return run.entriesPerSecond;
  };
  const writer = await interleave(runs, {
    crate: async () => {
      const rate = await crateRun();
      cpuMs.crate.push(crateRuns[crateRuns.length - 1]!.cpuSeconds * 1000);
      return rate;
    },
    batch: ours('batch', 4),
    single: ours('single', 1000),
  });
  // the timed runs only (interleave's warm-up round is the first of each)
  const cpu = (key: 'crate' | 'batch' | 'single') => summarize(cpuMs[key].slice(-runs));
  const crateFirst = crateRuns[0]!;
  if (crateFirst.payloadBytes !== ourPayloadBytes) {
    throw new Error(`not the same entries: the crate's payloads total ${crateFirst.payloadBytes} B, this package's ${ourPayloadBytes} B`);
  }
  const avgPayload = ourPayloadBytes / ENTRIES;
  addTable(context, {
    group: 'journal',
    title: `2d. Against the graphstream 0.3 crate — ${ENTRIES.toLocaleString('en')} graphd entries (${avgPayload.toFixed(0)} B payloads), 4 MiB segments, zstd 3, no per-append fsync, written then closed`,
    columns: ['writer', 'entries/s', 'vs crate', 'CPU ms per run, all threads', 'CPU vs crate'],
    rows: [
      ['graphstream 0.3 crate: spawn_journal_writer, one Write command per entry, then Shutdown', writer.crate, null, cpu('crate'), null],
      ['Journal (native): appendBatch(1000), 4 batches in flight, then close()', writer.batch, ratioOf(writer.batch, writer.crate), cpu('batch'), ratioOf(cpu('batch'), cpu('crate'))],
      ['Journal (native): append(), 1000 in flight, then close()', writer.single, ratioOf(writer.single, writer.crate), cpu('single'), ratioOf(cpu('single'), cpu('crate'))],
    ],
    notes: [
      `median of ${runs} interleaved runs ±half their range; each run writes all entries into a fresh directory (${crateFirst.segments} segments) and ends when every segment is sealed (the crate seals on its writer thread at rotation and at Shutdown, this package on its sealer thread; each fsyncs every sealed segment)`,
      'CPU: utime + stime of the whole process over the timed part (this package: process.cpuUsage around the run; the crate: its runner\'s /proc/self/stat around the writer); the crate does everything on its writer thread, this package on three (JS thread, writer, sealer) and the GC\'s helpers. On 2 cores a writer that costs c× the crate\'s CPU is at most 2/c× the crate\'s rate',
      `same entries: the crate's ParamValue has no temporal or point values, so dates are strings and points [srid, x, y] lists on both sides; the protobuf payloads both make total ${ourPayloadBytes.toLocaleString('en')} B (checked)`,
    ],
  });
  const seal = context.figures['seal vs crate'] as number | undefined;
  const best = Math.max(writer.batch.median, writer.single.median) / writer.crate.median;
  const sealPart = seal === undefined ? 'seal: run the format group' : `seal ${seal.toFixed(2)}× faster (format table 1)`;
  addTarget(context, {
    id: 9,
    target: 'vs the graphstream 0.3 crate, same entries',
    measured: `writer ${best.toFixed(2)}× the crate (appendBatch ${fmtNumber(writer.batch.median)}, append ${fmtNumber(writer.single.median)}, crate ${fmtNumber(writer.crate.median)} entries/s); ${sealPart}`,
    required: requirement,
    met: seal === undefined ? (best >= 2 ? null : false) : best >= 2 && seal >= 1.5,
    value: best,
  });
}
