/**
 * A focused probe of the journal's append path (issue 15), outside the suite: `concurrency` callers
 * each awaiting one typed append at a time for `ms`, per durability and core, with what the
 * process paid per append (context switches from getrusage, CPU of all threads) beside the rate and
 * latency. The per-append figures stay readable on a loaded machine, where appends/s do not.
 *
 *   npx esbuild bench/probes/append-loop.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=.bench-cache/append-loop.mjs
 *   node .bench-cache/append-loop.mjs none1,fsync1,fsync256 800 3
 *
 * Arguments: workloads (`<durability><concurrency>`, comma-separated), ms per run, rounds.
 * CORES=native,pure picks the cores; SCRATCH the directory (default: the OS temp dir, which
 * should be on the disk under test). Each fsync workload is followed by a plain write(256 B) +
 * fdatasync probe on the same directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Core, Durability } from '../../ts/core/core.js';
import { Journal, nativeCore, pureCore } from '../../ts/index.js';
import { fdatasyncProbe } from '../groups/journal.js';
import { percentile } from '../lib/stats.js';
import { graphdEntries } from '../lib/workload.js';

const pool = graphdEntries(20_000, 11);
const scratch = process.env.SCRATCH ?? tmpdir();

async function run(core: Core, durability: Durability, concurrency: number, ms: number): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(scratch, 'append-loop-'));
  const journal = await Journal.open(dir, { core, durability });
  const latencies: number[] = [];
  let next = 0;
  const end = performance.now() + ms;
  const start = performance.now();
  const cpuBefore = process.cpuUsage();
  const usageBefore = process.resourceUsage();
  const caller = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await journal.append(pool[next++ % pool.length]!);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  const usage = process.resourceUsage();
  await journal.close();
  await rm(dir, { recursive: true, force: true });
  const sorted = Float64Array.from(latencies).sort();
  const switches = usage.voluntaryContextSwitches - usageBefore.voluntaryContextSwitches + usage.involuntaryContextSwitches - usageBefore.involuntaryContextSwitches;
  return {
    perSecond: Math.round(latencies.length / (elapsed / 1000)),
    p50Us: +(percentile(sorted, 50) * 1000).toFixed(1),
    p99Us: +(percentile(sorted, 99) * 1000).toFixed(1),
    switchesPerAppend: +(switches / latencies.length).toFixed(3),
    cpuUsPerAppend: +((cpu.user + cpu.system) / latencies.length).toFixed(2),
    /** CPU time over wall time: below 1 the process waited for a CPU (or for I/O) */
    cpuShare: +((cpu.user + cpu.system) / 1000 / elapsed).toFixed(2),
  };
}

const workloads = (process.argv[2] ?? 'none1,fsync1,fsync256').split(',');
const ms = Number(process.argv[3] ?? 800);
const rounds = Number(process.argv[4] ?? 3);
const cores: Record<string, Core | null> = { native: nativeCore, pure: pureCore };
for (let round = 0; round < rounds; round++) {
  for (const workload of workloads) {
    const match = /^(none|interval|fsync)(\d+)$/.exec(workload);
    if (match === null) throw new Error(`workload ${workload} is not <none|interval|fsync><concurrency>`);
    for (const name of (process.env.CORES ?? 'native,pure').split(',')) {
      const core = cores[name];
      if (!core) throw new Error(`core ${name} is not available`);
      console.log(workload, name, JSON.stringify(await run(core, match[1] as Durability, Number(match[2]), ms)));
    }
    if (match[1] === 'fsync') {
      const plain = fdatasyncProbe(scratch, 300);
      console.log(workload, 'write+fdatasync', JSON.stringify({ perSecond: Math.round(plain.perSecond), p50Us: +(plain.p50Ms * 1000).toFixed(1), p99Us: +(plain.p99Ms * 1000).toFixed(1) }));
    }
  }
}
