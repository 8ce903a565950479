/**
 * A focused probe of the crate group's writer runs (issue 15, target 4), outside the suite: this
 * package's side of table 2d (the same 200,000 shared entries, 4 MiB segments, zstd 3, durability
 * 'none', every entry appended, then close) with the CPU each thread of the process spent
 * (/proc/self/task/<tid>/stat, by thread name) and the GC's pauses beside the rate, so that the
 * wall time can be split into the JS thread's, the writer thread's and the sealer's shares.
 *
 *   npx esbuild bench/probes/crate-writer.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=.bench-cache/crate-writer.mjs
 *   node --expose-gc .bench-cache/crate-writer.mjs batch,single 3
 *
 * Arguments: modes (`batch`: appendBatch(1000), 4 in flight; `single`: append(), 1000 in flight;
 * `encode`: only the JS side's encoding, encodeJournalEntry of every entry), rounds. CRATE=path to
 * bench/crate-ref's runner adds its writer run each round. SCRATCH: the directory (default the OS
 * temp dir, which should be on the disk under test).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { encodeJournalEntry, Journal, nativeCore, type JournalAppendEntry } from '../../ts/index.js';
import { sharedEntries, writeSharedEntries } from '../lib/crate-ref.js';

const ENTRIES = 200_000;
const SEGMENT_BYTES = 4 * 1024 * 1024;
const scratch = process.env.SCRATCH ?? tmpdir();
const TICKS_PER_MS = 100 / 1000; // USER_HZ 100

/** CPU ms per thread name (threads of the same name summed), from /proc/self/task. */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_MS;
      const key = tid === String(process.pid) ? 'js' : name;
      out.set(key, (out.get(key) ?? 0) + ms);
    } catch {
      // the thread exited
    }
  }
  return out;
}

function diff(after: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ms] of after) {
    const d = ms - (before.get(name) ?? 0);
    if (d > 0) out[name] = Math.round(d);
  }
  return out;
}

let gcMs = 0;
let gcCount = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcMs += entry.duration;
    gcCount++;
  }
}).observe({ entryTypes: ['gc'] });

async function journalRun(entries: JournalAppendEntry[], mode: 'batch' | 'single'): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(scratch, `crate-writer-${mode}-`));
  const journal = await Journal.open(dir, { core: nativeCore!, durability: 'none', maxSegmentBytes: SEGMENT_BYTES, compression: { zstd: 3 } });
  const batch = 1000;
  const depth = mode === 'batch' ? 4 : 1000;
  let next = 0;
  (globalThis as { gc?: () => void }).gc?.();
  const gcBefore = [gcMs, gcCount];
  const cpuBefore = threadCpu();
  const processBefore = process.cpuUsage();
  const start = performance.now();
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
  const appended = performance.now() - start;
  await journal.close();
  const elapsed = performance.now() - start;
  const cpu = diff(threadCpu(), cpuBefore);
  const processCpu = process.cpuUsage(processBefore);
  // threads that exited during the run (the writer's, the sealer's) are only in the process's total
  cpu.all = Math.round((processCpu.user + processCpu.system) / 1000);
  await rm(dir, { recursive: true, force: true });
  return {
    perSecond: Math.round(entries.length / (elapsed / 1000)),
    wallMs: Math.round(elapsed),
    appendedMs: Math.round(appended),
    closeMs: Math.round(elapsed - appended),
    gcMs: Math.round(gcMs - gcBefore[0]!),
    gcs: gcCount - gcBefore[1]!,
    cpuMs: cpu,
  };
}

function encodeRun(entries: JournalAppendEntry[]): Record<string, unknown> {
  const now = Date.now();
  const start = performance.now();
  for (let i = 0; i < entries.length; i++) encodeJournalEntry({ ...entries[i]!, sequence: i + 1, timestampMs: now });
  const elapsed = performance.now() - start;
  return { perSecond: Math.round(entries.length / (elapsed / 1000)), wallMs: Math.round(elapsed) };
}

const modes = (process.argv[2] ?? 'batch,single').split(',');
const rounds = Number(process.argv[3] ?? 3);
const { entries, jsonLines } = sharedEntries(ENTRIES, 21);
const entriesFile = join(scratch, `crate-writer-entries-${process.pid}.jsonl`);
if (process.env.CRATE) writeSharedEntries(entriesFile, jsonLines);
for (let round = 0; round < rounds; round++) {
  for (const mode of modes) {
    if (mode === 'encode') console.log(mode, JSON.stringify(encodeRun(entries)));
    else console.log(mode, JSON.stringify(await journalRun(entries, mode as 'batch' | 'single')));
  }
  if (process.env.CRATE) {
    const dir = await mkdtemp(join(scratch, 'crate-writer-crate-'));
    const result = spawnSync(process.env.CRATE, ['writer', entriesFile, dir, String(SEGMENT_BYTES)], { encoding: 'utf8' });
    await rm(dir, { recursive: true, force: true });
    console.log('crate', result.stdout.trim());
  }
}
if (process.env.CRATE) await rm(entriesFile, { force: true });
