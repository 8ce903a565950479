/** Medians with spread, percentiles, and the interleaved runner every group uses. */
import { performance } from 'node:perf_hooks';

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** half the min..max range, relative to the median, in percent */
  spreadPct: number;
  runs: number;
  samples: number[];
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summarize(samples: readonly number[]): Summary {
  const med = median(samples);
  const min = Math.min(...samples);
  const max = Math.max(...samples);
  return { median: med, min, max, spreadPct: med === 0 ? 0 : ((max - min) / 2 / Math.abs(med)) * 100, runs: samples.length, samples: [...samples] };
}

/** Ratio of two summaries' medians, with the range of the per-run ratios (runs were interleaved). */
export function ratioOf(a: Summary, b: Summary): Summary {
  const n = Math.min(a.samples.length, b.samples.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(a.samples[i]! / b.samples[i]!);
  const summary = summarize(ratios);
  return { ...summary, median: a.median / b.median };
}

export function nowMs(): number {
  return performance.now();
}

export function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/**
 * A clean start for the next variant: a GC, then a turn of the event loop,
 * where Node runs the finalizers that free native memory (the addon's buffers)
 * of what the GC collected, then a GC again. Without the turn, the buffers of
 * every variant so far stay allocated across a whole interleaved series.
 */
async function settle(): Promise<void> {
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
}

/**
 * Runs every variant `runs` times, interleaved (v1, v2, v3, v1, v2, v3, ...), after one warm-up
 * round; each call returns a figure (throughput, latency...). Interleaving puts every variant
 * under the same drift of a shared machine.
 */
export async function interleave<K extends string>(
  runs: number,
  variants: Record<K, () => number | Promise<number>>,
  options: { warmup?: boolean } = {},
): Promise<Record<K, Summary>> {
  const keys = Object.keys(variants) as K[];
  if (options.warmup !== false) {
    for (const key of keys) {
      await settle();
      await variants[key]();
    }
  }
  const samples = Object.fromEntries(keys.map((key) => [key, [] as number[]])) as Record<K, number[]>;
  for (let run = 0; run < runs; run++) {
    for (const key of keys) {
      await settle();
      samples[key].push(await variants[key]());
    }
  }
  return Object.fromEntries(keys.map((key) => [key, summarize(samples[key])])) as Record<K, Summary>;
}

/** Wall seconds of a run, and CPU seconds this process spent meanwhile (JS thread, thread pool, the addon's threads). */
export interface TimedRun {
  wall: number;
  cpu: number;
}

/** Times `run` (what a variant measures, without its setup). */
export async function timedRun(run: () => Promise<unknown>): Promise<TimedRun> {
  const cpu = process.cpuUsage();
  const start = nowMs();
  await run();
  const wall = (nowMs() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return { wall, cpu: (used.user + used.system) / 1e6 };
}

/** Wall and CPU seconds of each variant of measuredPairs, and the ratio b / a of each pair. */
export interface PairedRuns {
  wall: { a: Summary; b: Summary };
  cpu: { a: Summary; b: Summary };
  /** median: the median of the per-pair ratios */
  wallRatio: Summary;
  cpuRatio: Summary;
}

/**
 * Runs `a` and `b` in `pairs` pairs after one warm-up of each, alternating which runs first. The
 * two runs of a pair are seconds apart, so the median of the per-pair ratios holds under the drift
 * of a shared machine better than the ratio of two medians taken over minutes.
 */
export async function measuredPairs(pairs: number, a: () => Promise<TimedRun>, b: () => Promise<TimedRun>): Promise<PairedRuns> {
  const run = async (variant: () => Promise<TimedRun>) => {
    await settle();
    return variant();
  };
  await run(a);
  await run(b);
  const runs = { a: [] as TimedRun[], b: [] as TimedRun[] };
  for (let pair = 0; pair < pairs; pair++) {
    const order = pair % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
    for (const which of order) runs[which].push(await run(which === 'a' ? a : b));
  }
  const of = (what: keyof TimedRun) => ({ a: summarize(runs.a.map((r) => r[what])), b: summarize(runs.b.map((r) => r[what])) });
  const ratio = (what: keyof TimedRun) => summarize(runs.a.map((r, i) => runs.b[i]![what] / r[what]));
  return { wall: of('wall'), cpu: of('cpu'), wallRatio: ratio('wall'), cpuRatio: ratio('cpu') };
}

/** Throughput in units/s of a synchronous function repeated until at least `minMs` passed. */
export function syncThroughput(units: number, fn: () => unknown, minMs: number): number {
  let calls = 0;
  const start = nowMs();
  let elapsed = 0;
  do {
    fn();
    calls++;
    elapsed = nowMs() - start;
  } while (elapsed < minMs);
  return (units * calls) / (elapsed / 1000);
}

export async function asyncThroughput(units: number, fn: () => Promise<unknown>, minMs: number): Promise<number> {
  let calls = 0;
  const start = nowMs();
  let elapsed = 0;
  do {
    await fn();
    calls++;
    elapsed = nowMs() - start;
  } while (elapsed < minMs);
  return (units * calls) / (elapsed / 1000);
}
