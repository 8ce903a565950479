/**
 * Group 2, journal appends: appends/s and p50/p99 latency per durability and concurrency (typed
 * graphd entries, 4 KiB and 64 KiB raw payloads), appendBatch throughput, the cost of a single
 * append call, plain fdatasync on the same disk, the event loop's stall while segments are
 * sealed, and recovery time for 10 vs 10,000 segments. Native vs pure, runs interleaved.
 */
import { closeSync, fdatasyncSync, openSync, writeSync, writeFileSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Journal, nativeCore, pureCore, segmentFileName, type JournalAppendEntry, type JournalOptions } from '../../ts/index.js';
import type { Core, Durability } from '../../ts/core/core.js';
import { addTable, addTarget, MB, type Context } from '../lib/context.js';
import { fmtNumber, type Cell } from '../lib/report.js';
import { gc, interleave, nowMs, percentile, ratioOf, summarize, type Summary } from '../lib/stats.js';
import { graphdEntries, graphdPayloads, rawPayloads, unsealedSegment } from '../lib/workload.js';

type CoreName = 'native' | 'pure';
type Workload = 'typed' | 'raw4k' | 'raw64k';

interface AppendRun {
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  mbPerSecond: number;
}

/** Growable list of latencies in ms. */
class Latencies {
  private values = new Float64Array(1 << 16);
  length = 0;
  push(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }
  sorted(): Float64Array {
    return this.values.slice(0, this.length).sort();
  }
}

async function freshDir(context: Context, label: string): Promise<string> {
  return mkdtemp(join(context.scratch, `${label}-`));
}

/** Plain small writes + fdatasync in a loop, on the journal's disk: the durable-append floor. */
export function fdatasyncProbe(dir: string, count: number): { perSecond: number; p50Ms: number; p99Ms: number } {
  const path = join(dir, `fdatasync-probe-${process.pid}`);
  const fd = openSync(path, 'w');
  const record = Buffer.alloc(256, 0x5a);
  const latencies = new Float64Array(count);
  try {
    const start = nowMs();
    for (let i = 0; i < count; i++) {
      const t0 = nowMs();
      writeSync(fd, record);
      fdatasyncSync(fd);
      latencies[i] = nowMs() - t0;
    }
    const elapsed = nowMs() - start;
    latencies.sort();
    return { perSecond: count / (elapsed / 1000), p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
  } finally {
    closeSync(fd);
  }
}

/** `concurrency` callers each appending one at a time for `durationMs`. */
async function appendRun(
  context: Context,
  core: Core,
  durability: Durability,
  concurrency: number,
  workload: Workload,
  pools: { typed: JournalAppendEntry[]; raw4k: Buffer[]; raw64k: Buffer[] },
  durationMs: number,
): Promise<AppendRun> {
  const dir = await freshDir(context, `append-${core.kind}-${durability}-${concurrency}-${workload}`);
  const journal = await Journal.open(dir, { core, durability, fsyncIntervalMs: 100 });
  const latencies = new Latencies();
  let bytes = 0;
  let next = 0;
  const end = nowMs() + durationMs;
  const start = nowMs();
  const caller = async () => {
    while (nowMs() < end) {
      const i = next++;
      const t0 = nowMs();
      if (workload === 'typed') {
        await journal.append(pools.typed[i % pools.typed.length]!);
      } else {
        const pool = workload === 'raw4k' ? pools.raw4k : pools.raw64k;
        const payload = pool[i % pool.length]!;
        await journal.appendRaw(payload);
        bytes += payload.length;
      }
      latencies.push(nowMs() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  const elapsed = nowMs() - start;
  await journal.close();
  await rm(dir, { recursive: true, force: true });
  const sorted = latencies.sorted();
  return {
    perSecond: latencies.length / (elapsed / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    mbPerSecond: bytes / MB / (elapsed / 1000),
  };
}

/** appendBatch of `batchSize` typed entries, `depth` batches in flight, durability 'none'. */
async function appendBatchRun(context: Context, core: Core, entries: JournalAppendEntry[], batchSize: number, depth: number, durationMs: number): Promise<number> {
  const dir = await freshDir(context, `batch-${core.kind}`);
  const journal = await Journal.open(dir, { core, durability: 'none' });
  const batches: JournalAppendEntry[][] = [];
  for (let i = 0; i + batchSize <= entries.length; i += batchSize) batches.push(entries.slice(i, i + batchSize));
  let appended = 0;
  let next = 0;
  const end = nowMs() + durationMs;
  const start = nowMs();
  const caller = async () => {
    while (nowMs() < end) {
      await journal.appendBatch(batches[next++ % batches.length]!);
      appended += batchSize;
    }
  };
  await Promise.all(Array.from({ length: depth }, caller));
  const elapsed = nowMs() - start;
  await journal.close();
  await rm(dir, { recursive: true, force: true });
  return appended / (elapsed / 1000);
}

/**
 * The cost of one `append` call: each call timed on its own (validation, protobuf encoding,
 * queueing: what the caller's turn pays), `block` calls per tick, then all awaited. Returns the
 * median per-call time and the amortized wall time per append until all were acknowledged (µs).
 */
async function singleAppendCost(context: Context, core: Core, entries: JournalAppendEntry[], total: number): Promise<{ medianUs: number; amortizedUs: number }> {
  const dir = await freshDir(context, `single-${core.kind}`);
  const journal = await Journal.open(dir, { core, durability: 'none' });
  const block = 1000;
  const times = new Float64Array(total);
  const pending: Promise<unknown>[] = new Array(block);
  const start = nowMs();
  for (let done = 0; done < total; done += block) {
    for (let i = 0; i < block; i++) {
      const entry = entries[(done + i) % entries.length]!;
      const t0 = nowMs();
      pending[i] = journal.append(entry);
      times[done + i] = nowMs() - t0;
    }
    await Promise.all(pending);
  }
  const elapsed = nowMs() - start;
  await journal.close();
  await rm(dir, { recursive: true, force: true });
  times.sort();
  return { medianUs: percentile(times, 50) * 1000, amortizedUs: (elapsed / total) * 1000 };
}

/**
 * monitorEventLoopDelay records the whole interval between the firings of its timer, so
 * an idle loop shows its resolution (p99 ~1.1 ms at resolution 1 on Node 20): the stall is
 * what lies beyond the resolution.
 */
const DELAY_RESOLUTION_MS = 1;

function stallOf(histogram: IntervalHistogram, percentile: number | 'max'): number {
  const intervalMs = (percentile === 'max' ? histogram.max : histogram.percentile(percentile)) / 1e6;
  return Math.max(0, intervalMs - DELAY_RESOLUTION_MS);
}

/** The event loop's stall on an idle loop (nothing but a timer): the floor of the stall figures. */
async function idleLoopStall(durationMs: number): Promise<{ p99Ms: number; maxMs: number; sealed: number }> {
  const histogram = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  histogram.enable();
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  histogram.disable();
  return { p99Ms: stallOf(histogram, 99), maxMs: stallOf(histogram, 'max'), sealed: 0 };
}

/**
 * The event loop's p99 and max stall (ms) under a paced load that leaves the loop mostly idle:
 * every 1 ms timer tick appends 16 × 4 KiB (about 60 MB/s), so 4 MiB segments rotate (and are
 * sealed) every ~70 ms, back to back. A saturating load would measure the load, not the sealing.
 */
async function stallRun(context: Context, core: Core, payloads: Buffer[], durationMs: number, sealing: boolean): Promise<{ p99Ms: number; maxMs: number; sealed: number; mbPerSecond: number }> {
  const dir = await freshDir(context, `stall-${core.kind}`);
  // the largest segment a journal may have (the readers' default ceiling): a 4 s run seals a few instead of ~60
  const options: JournalOptions = sealing ? { core, durability: 'none' } : { core, durability: 'none', maxSegmentBytes: 64 * 1024 * 1024 };
  const journal = await Journal.open(dir, options);
  const histogram = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  const pending = new Set<Promise<unknown>>();
  let next = 0;
  let bytes = 0;
  let failure: unknown = null;
  const start = nowMs();
  histogram.enable();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (nowMs() - start >= durationMs) {
        clearInterval(timer);
        resolve();
        return;
      }
      for (let i = 0; i < 16; i++) {
        const payload = payloads[next++ % payloads.length]!;
        bytes += payload.length;
        const append = journal.appendRaw(payload).catch((err: unknown) => {
          failure = err;
        });
        pending.add(append);
        void append.finally(() => pending.delete(append));
      }
    }, 1);
  });
  await Promise.all(pending);
  histogram.disable();
  const elapsed = nowMs() - start;
  if (failure !== null) throw failure;
  const sealed = journal.stats().segmentsSealed;
  await journal.close();
  await rm(dir, { recursive: true, force: true });
  return { p99Ms: stallOf(histogram, 99), maxMs: stallOf(histogram, 'max'), sealed, mbPerSecond: bytes / MB / (elapsed / 1000) };
}

/**
 * The same, with nothing but sealSegmentAsync of a 4 MiB segment back to back (one in flight) on an
 * idle loop; with `into`, every call seals into that one buffer (SealOptions.into) instead of a fresh one.
 */
async function sealLoopStall(core: Core, unsealed: Buffer, durationMs: number, into?: Buffer): Promise<{ p99Ms: number; maxMs: number; sealed: number }> {
  const histogram = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  let sealed = 0;
  const start = nowMs();
  histogram.enable();
  while (nowMs() - start < durationMs) {
    await core.sealSegmentAsync(unsealed, { level: 3, into });
    sealed++;
    // let timers run between seals (a synchronous seal, as in the pure core, never yields otherwise)
    await new Promise((resolve) => setImmediate(resolve));
  }
  histogram.disable();
  return { p99Ms: stallOf(histogram, 99), maxMs: stallOf(histogram, 'max'), sealed };
}

/** Writes a journal of `segments` sealed segments of `perSegment` entries straight to disk (no fsync: a fixture). */
function writeJournalFixture(dir: string, segments: number, perSegment: number, payloads: Buffer[]): void {
  const native = nativeCore!;
  mkdirSync(dir, { recursive: true });
  let chainHash: Buffer = Buffer.alloc(32);
  let sequence = 1;
  for (let s = 0; s < segments; s++) {
    const slice: Buffer[] = [];
    for (let i = 0; i < perSegment; i++) slice.push(payloads[(sequence - 1 + i) % payloads.length]!);
    const unsealed = unsealedSegment(native, sequence, chainHash, slice);
    writeFileSync(join(dir, segmentFileName(sequence)), native.sealSegment(unsealed.bytes, { level: 3 }));
    chainHash = unsealed.chainHash;
    sequence += perSegment;
  }
}

async function recoveryRun(core: Core, dir: string): Promise<number> {
  const start = nowMs();
  const journal = await Journal.open(dir, { core });
  const elapsed = nowMs() - start;
  await journal.close();
  return elapsed;
}

export async function journalGroup(context: Context): Promise<void> {
  if (nativeCore === null) throw new Error('the native addon did not load (npm run build:native)');
  const cores: Record<CoreName, Core> = { native: nativeCore, pure: pureCore };
  const quick = context.quick;
  const runs = quick ? 2 : 3;
  const durationMs = quick ? 250 : 800;
  const pools = { typed: graphdEntries(20_000, 11), raw4k: rawPayloads(512, 4096), raw64k: rawPayloads(64, 65536) };

  // plain fdatasync on this disk, sampled before the matrix and again beside every fsync run
  const syncProbe = (count: number) => fdatasyncProbe(context.scratch, count);
  const syncSamples = [syncProbe(quick ? 200 : 500)];

  const matrix: { workload: Workload; durability: Durability; concurrency: number; result: Record<string, Summary> }[] = [];
  const workloads: Workload[] = ['typed', 'raw4k', 'raw64k'];
  const durabilities: Durability[] = ['none', 'interval', 'fsync'];
  for (const workload of workloads) {
    for (const durability of durabilities) {
      for (const concurrency of [1, 16, 256]) {
        context.log(`journal: ${workload} ${durability} c=${concurrency}`);
        const last: Record<CoreName, AppendRun[]> = { native: [], pure: [] };
        const variant = (name: CoreName) => async () => {
          if (durability === 'fsync') syncSamples.push(syncProbe(100));
          const run = await appendRun(context, cores[name], durability, concurrency, workload, pools, durationMs);
          last[name].push(run);
          return run.perSecond;
        };
        const rate = await interleave(runs, { native: variant('native'), pure: variant('pure') }, { warmup: !quick && workload === 'typed' && concurrency === 1 });
        const timed = (name: CoreName) => last[name].slice(-runs);
        const result: Record<string, Summary> = {
          nativeRate: rate.native,
          pureRate: rate.pure,
          nativeP50: summarize(timed('native').map((r) => r.p50Ms)),
          nativeP99: summarize(timed('native').map((r) => r.p99Ms)),
          pureP50: summarize(timed('pure').map((r) => r.p50Ms)),
          pureP99: summarize(timed('pure').map((r) => r.p99Ms)),
          nativeMBs: summarize(timed('native').map((r) => r.mbPerSecond)),
          pureMBs: summarize(timed('pure').map((r) => r.mbPerSecond)),
        };
        matrix.push({ workload, durability, concurrency, result });
      }
    }
  }
  const sync = {
    perSecond: summarize(syncSamples.map((s) => s.perSecond)),
    p50Ms: summarize(syncSamples.map((s) => s.p50Ms)),
    p99Ms: summarize(syncSamples.map((s) => s.p99Ms)),
  };
  const label: Record<Workload, string> = { typed: 'typed graphd', raw4k: 'raw 4 KiB', raw64k: 'raw 64 KiB' };
  const rows: Cell[][] = matrix.map(({ workload, durability, concurrency, result: r }) => [
    `${label[workload]}, ${durability}, c=${concurrency}`,
    r.nativeRate,
    r.pureRate,
    ratioOf(r.nativeRate!, r.pureRate!),
    r.nativeP50,
    r.nativeP99,
    r.pureP50,
    r.pureP99,
    workload === 'typed' ? null : r.nativeMBs,
  ]);
  rows.push(['plain write(256 B) + fdatasync, same disk', sync.perSecond, null, null, sync.p50Ms, sync.p99Ms, null, null, null]);
  addTable(context, {
    group: 'journal',
    title: `2a. Journal appends — ${durationMs} ms per run, ${runs} interleaved runs; default options (4 MiB segments, zstd 3, fsyncIntervalMs 100)`,
    columns: ['workload, durability, concurrency', 'native appends/s', 'pure appends/s', 'native/pure', 'native p50 ms', 'native p99 ms', 'pure p50 ms', 'pure p99 ms', 'native MB/s'],
    rows,
    notes: [`plain fdatasync sampled ${syncSamples.length} times in this run (before the matrix and beside every fsync run)`],
  });

  // appendBatch, single append, event loop stall
  context.log('journal: appendBatch, single append cost');
  const batchEntries = graphdEntries(50_000, 5);
  const batchMs = quick ? 400 : 1000;
  const batch = await interleave(runs + 1, {
    native: () => appendBatchRun(context, cores.native, batchEntries, 1000, 4, batchMs),
    pure: () => appendBatchRun(context, cores.pure, batchEntries, 1000, 4, batchMs),
  });
  const singleTotal = quick ? 10_000 : 30_000;
  const singles: Record<CoreName, { medianUs: number; amortizedUs: number }[]> = { native: [], pure: [] };
  const single = await interleave(runs + 1, {
    native: async () => {
      const r = await singleAppendCost(context, cores.native, batchEntries, singleTotal);
      singles.native.push(r);
      return r.medianUs;
    },
    pure: async () => {
      const r = await singleAppendCost(context, cores.pure, batchEntries, singleTotal);
      singles.pure.push(r);
      return r.medianUs;
    },
  });
  const amortized = (name: CoreName) => summarize(singles[name].slice(-(runs + 1)).map((r) => r.amortizedUs));

  context.log('journal: event loop delay while sealing');
  const stallMs = quick ? 1500 : 4000;
  const stalls: Record<string, { p99Ms: number; maxMs: number; sealed: number }[]> = { native: [], pure: [], nativeNoSeal: [], sealNative: [], sealPure: [], sealNativeInto: [], idle: [] };
  const stallVariant = (key: string, core: Core, sealing: boolean) => async () => {
    gc();
    const r = await stallRun(context, core, pools.raw4k, stallMs, sealing);
    stalls[key]!.push(r);
    return r.p99Ms;
  };
  const fourMiB = unsealedSegment(cores.native, 1, Buffer.alloc(32), graphdPayloads(14_000, 1, 9)).bytes;
  const sealInto = Buffer.allocUnsafeSlow(fourMiB.length);
  const sealVariant = (key: string, core: Core, into?: Buffer) => async () => {
    gc();
    const r = await sealLoopStall(core, fourMiB, stallMs, into);
    stalls[key]!.push(r);
    return r.p99Ms;
  };
  const stall = await interleave(runs, {
    native: stallVariant('native', cores.native, true),
    pure: stallVariant('pure', cores.pure, true),
    nativeNoSeal: stallVariant('nativeNoSeal', cores.native, false),
    sealNative: sealVariant('sealNative', cores.native),
    sealPure: sealVariant('sealPure', cores.pure),
    sealNativeInto: sealVariant('sealNativeInto', cores.native, sealInto),
    idle: async () => {
      const r = await idleLoopStall(stallMs);
      stalls.idle!.push(r);
      return r.p99Ms;
    },
  }, { warmup: false });
  const stallMax = (key: string) => summarize(stalls[key]!.map((r) => r.maxMs));
  const sealedCount = (key: string) => summarize(stalls[key]!.map((r) => r.sealed));

  addTable(context, {
    group: 'journal',
    title: ' 2b. appendBatch, single append, event loop while sealing (durability none)',
    columns: ['measurement', 'native', 'pure', 'native/pure', 'unit'],
    rows: [
      ['appendBatch(1000 typed entries), 4 batches in flight', batch.native, batch.pure, ratioOf(batch.native, batch.pure), 'entries/s'],
      ['append(): median time of one call on the caller\'s turn', single.native, single.pure, ratioOf(single.pure, single.native), 'µs (ratio: pure/native)'],
      ['append(): wall time per append, 1000 per tick, until acknowledged', amortized('native'), amortized('pure'), ratioOf(amortized('pure'), amortized('native')), 'µs (ratio: pure/native)'],
      [`event loop p99 stall: 16 × 4 KiB appendRaw per 1 ms tick for ${stallMs / 1000} s, 4 MiB segments sealed as they fill`, stall.native, stall.pure, null, 'ms'],
      ['  max stall', stallMax('native'), stallMax('pure'), null, 'ms'],
      ['  segments sealed during the run', sealedCount('native'), sealedCount('pure'), null, 'segments'],
      ['  same appends, almost no sealing (64 MiB segments): p99', stall.nativeNoSeal, null, null, 'ms'],
      [`event loop p99 stall: sealSegmentAsync(4 MiB) back to back for ${stallMs / 1000} s, idle loop`, stall.sealNative, stall.sealPure, null, 'ms'],
      ['  max stall', stallMax('sealNative'), stallMax('sealPure'), null, 'ms'],
      ['  segments sealed', sealedCount('sealNative'), sealedCount('sealPure'), null, 'segments'],
      ['  the same, every call sealing into one reused buffer (SealOptions.into): p99', stall.sealNativeInto, null, null, 'ms'],
      ['  max stall; segments sealed', stallMax('sealNativeInto'), sealedCount('sealNativeInto'), null, 'ms; segments'],
      [`event loop p99 stall of an idle loop (nothing but the timer) for ${stallMs / 1000} s`, stall.idle, null, null, 'ms'],
    ],
    notes: [
      'stall = monitorEventLoopDelay({ resolution: 1 }) interval minus the 1 ms resolution (the histogram records the whole interval between its timer firings); the appending itself runs on the same loop',
    ],
  });

  // recovery time: 10 vs 10,000 segments
  context.log('journal: recovery fixtures (10 and 10,000 segments)');
  const perSegment = 16;
  const fixturePayloads = graphdPayloads(4096, 1, 3);
  const smallDir = join(context.scratch, 'recovery-10');
  const largeDir = join(context.scratch, 'recovery-10000');
  writeJournalFixture(smallDir, 10, perSegment, fixturePayloads);
  writeJournalFixture(largeDir, 10_000, perSegment, fixturePayloads);
  context.log('journal: recovery runs');
  const recoveryRuns = quick ? 5 : 15; // a few ms each: more runs, or the noise of single runs decides the ratio
  const recovery = await interleave(recoveryRuns, {
    native10: () => recoveryRun(cores.native, smallDir),
    native10k: () => recoveryRun(cores.native, largeDir),
    pure10: () => recoveryRun(cores.pure, smallDir),
    pure10k: () => recoveryRun(cores.pure, largeDir),
  });
  await rm(smallDir, { recursive: true, force: true });
  await rm(largeDir, { recursive: true, force: true });
  addTable(context, {
    group: 'journal',
    title: `2c. Recovery — Journal.open of a journal with 10 vs 10,000 sealed segments (${perSegment} entries each)`,
    columns: ['segments', 'native ms', 'pure ms', 'native/pure time'],
    rows: [
      ['10', recovery.native10, recovery.pure10, ratioOf(recovery.native10, recovery.pure10)],
      ['10,000', recovery.native10k, recovery.pure10k, ratioOf(recovery.native10k, recovery.pure10k)],
      ['10,000 / 10', ratioOf(recovery.native10k, recovery.native10), ratioOf(recovery.pure10k, recovery.pure10), null],
    ],
    notes: [`median of ${recoveryRuns} interleaved runs; page cache warm`],
  });

  // targets 3-6: the suite's 3 and 4 are replaced by issue 15's three (their figures stay in tables 2a and 2b)
  const cell = (durability: Durability, concurrency: number) => matrix.find((m) => m.workload === 'typed' && m.durability === durability && m.concurrency === concurrency)!.result;
  const none1 = cell('none', 1);
  const none1Rate = none1.nativeRate!.median;
  const none1P50Us = none1.nativeP50!.median * 1000;
  const none1VsPure = none1.nativeRate!.median / none1.pureRate!.median;
  addTarget(context, {
    id: 3.1,
    target: "issue 15, 1: typed append, 'none', c=1 (awaited one at a time)",
    measured: `${fmtNumber(none1Rate)} appends/s, p50 ${none1P50Us.toFixed(1)} µs, ${none1VsPure.toFixed(2)}× pure`,
    required: '≥ 100k appends/s; p50 ≤ 10 µs; ≥ 3× pure',
    met: none1Rate >= 100_000 && none1P50Us <= 10 && none1VsPure >= 3,
    value: none1Rate,
  });
  const fsync1 = cell('fsync', 1);
  const fsync1VsSync = fsync1.nativeRate!.median / sync.perSecond.median;
  addTarget(context, {
    id: 3.2,
    target: "issue 15, 2: typed append, 'fsync', c=1, vs plain write(256 B) + fdatasync",
    measured: `${fmtNumber(fsync1.nativeRate!.median)} appends/s against ${fmtNumber(sync.perSecond.median)}/s: ${fsync1VsSync.toFixed(2)}×`,
    required: '≥ 0.85×',
    met: fsync1VsSync >= 0.85,
    value: fsync1VsSync,
  });
  const fsync256 = cell('fsync', 256);
  const tailRatio = fsync256.nativeP99!.median / fsync256.nativeP50!.median;
  addTarget(context, {
    id: 3.3,
    target: "issue 15, 3: typed append, 'fsync', c=256: p99 against p50",
    measured: `p99 ${fsync256.nativeP99!.median.toFixed(2)} ms = ${tailRatio.toFixed(2)}× p50 ${fsync256.nativeP50!.median.toFixed(2)} ms; ${fmtNumber(fsync256.nativeRate!.median)} appends/s`,
    required: '≤ 2.5×, throughput ≥ 223.6k/s (issue 15\'s figure)',
    met: tailRatio <= 2.5 && fsync256.nativeRate!.median >= 223_600,
    value: tailRatio,
  });
  addTarget(context, {
    id: 5,
    target: 'event loop p99 stall while sealing continuously',
    measured: `${stall.native.median.toFixed(2)} ms native journal (pure ${stall.pure.median.toFixed(1)} ms); sealSegmentAsync loop ${stall.sealNative.median.toFixed(2)} ms (into one reused buffer ${stall.sealNativeInto.median.toFixed(2)} ms); idle loop ${stall.idle.median.toFixed(2)} ms (stall = interval minus the 1 ms resolution)`,
    required: '< 1 ms',
    met: stall.native.median < 1,
    value: stall.native.median,
  });
  const recoveryRatio = recovery.native10k.median / recovery.native10.median;
  addTarget(context, {
    id: 6,
    target: 'recovery 10,000 vs 10 segments',
    measured: `${recoveryRatio.toFixed(2)}× (${recovery.native10k.median.toFixed(1)} vs ${recovery.native10.median.toFixed(1)} ms)`,
    required: '≤ 2×',
    met: recoveryRatio <= 2,
    value: recoveryRatio,
  });
}
