/**
 * A focused probe of the journal group's `sealSegmentAsync` loop (issue 15, target 5), outside the
 * suite: `await sealSegmentAsync(4 MiB, { level: 3 })` back to back (then `setImmediate`) for `ms`,
 * the event loop's p99 and max stall as the suite measures it (monitorEventLoopDelay at resolution
 * 1, minus the resolution), and beside it what the JS thread paid per seal: its CPU and its wait in
 * the run queue (/proc/thread-self/schedstat), the GC's pauses by kind (PerformanceObserver), and
 * the variants' idle loop for the floor.
 *
 *   npx esbuild bench/probes/seal-loop.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=.tools/seal-loop.mjs
 *   node --expose-gc .tools/seal-loop.mjs plain,idle 1500 3
 *
 * Variants: `sync` (sealSegment on the JS thread, for the CPU a seal costs), `plain` (a fresh output Buffer each call), `into` (SealOptions.into: one reused output
 * buffer), `idle` (nothing but the timer). The bundle must live inside the checkout (.tools/ is
 * gitignored), not under node_modules/ (a symlink to another checkout in a worktree): the native
 * core is loaded from the checkout the bundle's real path is in.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { nativeCore } from '../../ts/index.js';
import { graphdPayloads, unsealedSegment } from '../lib/workload.js';

const RESOLUTION_MS = 1;
const native = nativeCore!;
const unsealed = unsealedSegment(native, 1, Buffer.alloc(32), graphdPayloads(14_000, 1, 9)).bytes;
const into = Buffer.allocUnsafeSlow(unsealed.length);

const gcPauses: Record<string, number[]> = {};
const kinds: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = kinds[(entry as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
    (gcPauses[kind] ??= []).push(entry.duration);
  }
}).observe({ entryTypes: ['gc'] });

/** [cpu ns, run-queue wait ns] of the JS thread */
function schedstat(): [number, number] {
  const [cpu, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
  return [cpu!, wait!];
}

async function run(variant: string, ms: number): Promise<Record<string, unknown>> {
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((resolve) => setImmediate(resolve));
  (globalThis as { gc?: () => void }).gc?.();
  for (const key of Object.keys(gcPauses)) delete gcPauses[key];
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  let seals = 0;
  const [cpu0, wait0] = schedstat();
  const processCpu0 = process.cpuUsage();
  const start = performance.now();
  histogram.enable();
  if (variant === 'idle') {
    await new Promise((resolve) => setTimeout(resolve, ms));
  } else if (variant === 'sync') {
    while (performance.now() - start < ms) {
      native.sealSegment(unsealed, { level: 3 });
      seals++;
    }
  } else {
    const options = variant === 'into' ? { level: 3, into } : { level: 3 };
    while (performance.now() - start < ms) {
      await native.sealSegmentAsync(unsealed, options);
      seals++;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  histogram.disable();
  const [cpu1, wait1] = schedstat();
  const processCpu = process.cpuUsage(processCpu0);
  const stall = (v: number) => +Math.max(0, v / 1e6 - RESOLUTION_MS).toFixed(2);
  const gc = Object.fromEntries(Object.entries(gcPauses).map(([kind, pauses]) => [kind, `${pauses.length}× max ${Math.max(...pauses).toFixed(1)} ms`]));
  return {
    p99Ms: stall(histogram.percentile(99)),
    maxMs: stall(histogram.max),
    seals,
    jsCpuUsPerSeal: seals ? Math.round((cpu1 - cpu0) / 1000 / seals) : null,
    jsWaitUsPerSeal: seals ? Math.round((wait1 - wait0) / 1000 / seals) : null,
    /** every thread's CPU (the seal's two threads, the libuv thread, the JS thread) */
    processCpuUsPerSeal: seals ? Math.round((processCpu.user + processCpu.system) / seals) : null,
    gc,
  };
}

const variants = (process.argv[2] ?? 'plain,idle').split(',');
const ms = Number(process.argv[3] ?? 1500);
const rounds = Number(process.argv[4] ?? 3);
for (let round = 0; round < rounds; round++) {
  for (const variant of variants) console.log(variant, JSON.stringify(await run(variant, ms)));
}
