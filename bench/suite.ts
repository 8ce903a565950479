/**
 * The benchmark suite (issue 6): `npm run bench` runs every group, `npm run bench -- --quick` a
 * short version, `--only=format,journal` a subset, `--s3-server=versitygw` runs the shipping and
 * follower groups against versitygw instead of moto. One table per group on stdout, the target
 * lines at the end, and everything as JSON in bench/results/<timestamp>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { addTarget, createContext, removeScratch, type Context } from './lib/context.js';
import { S3_SERVER_NAMES, type S3ServerName } from '../scripts/s3-servers.js';
import type { Summary } from './lib/stats.js';
import { renderTargets, toJsonCell } from './lib/report.js';
import { formatGroup } from './groups/format.js';
import { journalGroup } from './groups/journal.js';
import { shippingGroup } from './groups/shipping.js';
import { followerGroup } from './groups/follower.js';
import { memoryGroup } from './groups/memory.js';
import { encryptionGroup } from './groups/encryption.js';
import { kuzuGroup } from './groups/kuzu.js';
import { crateGroup } from './groups/crate.js';

const GROUPS: Record<string, (context: Context) => Promise<void>> = {
  format: formatGroup,
  journal: journalGroup,
  crate: crateGroup,
  shipping: shippingGroup,
  follower: followerGroup,
  memory: memoryGroup,
  encryption: encryptionGroup,
  kuzu: kuzuGroup,
};

function command(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function machine(root: string) {
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    disk: command('sh', ['-c', `df -hT '${root}' | tail -1`]),
    node: process.version,
    rustc: command('rustc', ['--version']),
    zstd: command('zstd', ['--version']),
    kernel: command('uname', ['-sr']),
    loadAverage: loadavg().map((l) => l.toFixed(1)).join(' '),
    commit: command('git', ['-C', root, 'rev-parse', '--short', 'HEAD']),
  };
}

/** Target 7 joins the follower and the shipping groups. */
function addShippingTarget(context: Context): void {
  const figure = (name: string) => context.figures[name] as Summary | undefined;
  const follow = figure('follow native S3Storage');
  const followOs = figure('follow native ObjectStoreStorage');
  const uploads = Object.keys(context.figures).filter((name) => name.startsWith('upload '));
  if (follow === undefined && uploads.length === 0) return;
  const parts: string[] = [];
  let met = true;
  if (follow) {
    parts.push(`follower ${follow.median.toFixed(2)}× GetObject (S3Storage), ${followOs?.median.toFixed(2) ?? '-'}× (ObjectStoreStorage)`);
    met &&= follow.median >= 0.8 || (followOs?.median ?? 0) >= 0.8;
  }
  if (uploads.length > 0) {
    const worst = uploads.reduce((a, b) => ((figure(a)!.median <= figure(b)!.median) ? a : b));
    const best = (c: string) => Math.max(figure(`upload S3Storage ${c}`)?.median ?? 0, figure(`upload ObjectStoreStorage ${c}`)?.median ?? 0);
    const perConcurrency = ['c=1', 'c=4', 'c=16'].map((c) => `${c} ${best(c).toFixed(2)}×`).join(', ');
    parts.push(`uploads vs PutObject (best storage) ${perConcurrency}; worst ${figure(worst)!.median.toFixed(2)}× (${worst.slice(7)})`);
    met &&= ['c=1', 'c=4', 'c=16'].every((c) => best(c) >= 0.9);
  }
  addTarget(context, {
    id: 7,
    target: 'follower vs GetObject; uploads vs PutObject',
    measured: parts.join('; '),
    required: 'follower ≥ 0.8×; uploads ≥ 0.9× at equal concurrency',
    met: follow !== undefined && uploads.length > 0 ? met : null,
    value: follow?.median ?? null,
  });
}

export async function main(root: string, argv: string[]): Promise<void> {
  const quick = argv.includes('--quick');
  const only = argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length).split(',');
  const unknown = only?.filter((name) => !(name in GROUPS)) ?? [];
  if (unknown.length > 0) throw new Error(`unknown group(s) ${unknown.join(', ')}; groups: ${Object.keys(GROUPS).join(', ')}`);
  const s3Server = (argv.find((arg) => arg.startsWith('--s3-server='))?.slice('--s3-server='.length) ?? 'moto') as S3ServerName;
  if (!S3_SERVER_NAMES.includes(s3Server)) throw new Error(`unknown --s3-server ${s3Server}; servers: ${S3_SERVER_NAMES.join(', ')}`);
  const context = await createContext(root, quick, s3Server);
  const info = machine(root);
  const started = Date.now();
  process.stdout.write(
    `graphstream bench (${quick ? 'quick' : 'full'}) — ${info.nproc}× ${info.cpu}, Node ${info.node}, ${info.rustc}, commit ${info.commit}, S3 server ${s3Server}\n`,
  );
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') process.stderr.write('note: run with --expose-gc for steadier figures\n');
  try {
    for (const [name, group] of Object.entries(GROUPS)) {
      if (only && !only.includes(name)) continue;
      const groupStart = Date.now();
      process.stderr.write(`\n== ${name}\n`);
      await group(context);
      context.log(`${name} took ${((Date.now() - groupStart) / 1000).toFixed(0)} s`);
    }
  } finally {
    await removeScratch(context);
  }
  addShippingTarget(context);
  context.targets.sort((a, b) => a.id - b.id);
  process.stdout.write(`\n${renderTargets(context.targets)}\n`);
  const elapsedS = Math.round((Date.now() - started) / 1000);
  const loadAtEnd = loadavg().map((l) => l.toFixed(1)).join(' ');
  process.stdout.write(`\ntotal ${elapsedS} s; load average at start ${info.loadAverage}, at end ${loadAtEnd} (other work on the machine widens the spreads)\n`);

  const resultsDir = join(root, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const file = join(resultsDir, `${new Date(started).toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}${s3Server === 'moto' ? '' : `-${s3Server}`}.json`);
  const json = {
    startedAt: new Date(started).toISOString(),
    mode: quick ? 'quick' : 'full',
    s3Server,
    elapsedS,
    loadAverageAtEnd: loadAtEnd,
    machine: info,
    tables: context.tables.map((table) => ({ ...table, rows: table.rows.map((row) => row.map(toJsonCell)) })),
    targets: context.targets,
  };
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
}
