/**
 * Group 5, memory: peak RSS (getrusage maxRSS of a fresh child process) while writing a journal
 * of 1 GiB (--quick: 128 MiB) and while a Follower replays it from storage, native vs pure.
 */
import { spawn } from 'node:child_process';
import { link, mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { segmentKey } from '../../ts/index.js';
import { addTable, addTarget, type Context } from '../lib/context.js';
import type { Cell } from '../lib/report.js';

const MIB = 1024 * 1024;
const CHILD_TIMEOUT_MS = 10 * 60 * 1000;

/** Runs a bundled child script (next to this bundle) and parses its one JSON line. */
async function runChild(script: string, args: string[]): Promise<Record<string, number>> {
  const path = join(dirname(fileURLToPath(import.meta.url)), script);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${script} ${args.join(' ')} exited with ${code ?? signal}:\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>);
      } catch (err) {
        reject(new Error(`${script}: no result line in ${JSON.stringify(stdout)} (${String(err)})`));
      }
    });
  });
}

export async function memoryGroup(context: Context): Promise<void> {
  const bytes = context.quick ? 128 * MIB : 1024 * MIB;
  const rows: Cell[][] = [];
  const peaks: Record<string, number> = {};
  for (const core of ['native', 'pure'] as const) {
    const journalDir = join(context.scratch, `memory-journal-${core}`);
    context.log(`memory: ${core} writer, ${bytes / MIB} MiB`);
    const writer = await runChild('memory-writer.mjs', [journalDir, String(bytes), core]);
    // the sealed segments as objects of a LocalStorage root (hard links: no copy)
    const root = join(context.scratch, `memory-storage-${core}`);
    for (const name of await readdir(journalDir)) {
      const match = /^journal-(\d{16})\.hadbj$/.exec(name);
      if (!match) continue;
      const target = join(root, segmentKey('', 'bench', 0, Number(match[1])));
      await mkdir(dirname(target), { recursive: true });
      await link(join(journalDir, name), target);
    }
    context.log(`memory: ${core} follower replay`);
    const follower = await runChild('memory-follower.mjs', [root, join(context.scratch, `memory-follower-${core}`), String(writer.sequence), core]);
    await rm(journalDir, { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
    await rm(join(context.scratch, `memory-follower-${core}`), { recursive: true, force: true });
    peaks[`writer ${core}`] = writer.peakKiB! / 1024;
    peaks[`follower ${core}`] = follower.peakKiB! / 1024;
    rows.push(
      [`${core}: write ${bytes / MIB} MiB (4 KiB appendRaw × 64 callers, 'none')`, writer.peakKiB! / 1024, writer.baselineKiB! / 1024, (writer.bytes! / MIB) / writer.seconds!, writer.seconds!],
      [`${core}: Follower replays it (tail, raw)`, follower.peakKiB! / 1024, follower.baselineKiB! / 1024, (follower.payloadBytes! / MIB) / follower.seconds!, follower.seconds!],
    );
  }
  const bare = await new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', "process.stdout.write(/^VmHWM:\\s+(\\d+)/m.exec(require('fs').readFileSync('/proc/self/status','utf8'))[1])"], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', () => resolve(Number(out) / 1024));
  });
  rows.push(['bare `node -e` (for scale)', bare, null, null, null]);
  addTable(context, {
    group: 'memory',
    title: `5. Memory — peak RSS of a fresh process (VmHWM of /proc/self/status)`,
    columns: ['process', 'peak RSS MiB', 'RSS after imports MiB', 'MiB/s', 'seconds'],
    rows,
    notes: ['replay reads the sealed segments from a LocalStorage directory (same process work as S3 minus the HTTP client)'],
  });
  const writerPeak = peaks['writer native']!;
  const followerPeak = peaks['follower native']!;
  addTarget(context, {
    id: 8,
    target: `peak RSS writing ${bytes / MIB} MiB / replaying it`,
    measured: `writer ${writerPeak.toFixed(0)} MiB, follower ${followerPeak.toFixed(0)} MiB (pure: ${peaks['writer pure']!.toFixed(0)} / ${peaks['follower pure']!.toFixed(0)} MiB)`,
    required: '< 100 MiB each',
    met: writerPeak < 100 && followerPeak < 100,
    value: Math.max(writerPeak, followerPeak),
  });
}
