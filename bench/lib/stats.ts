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
