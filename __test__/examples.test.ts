/**
 * The examples in examples/ run as a user runs them (bundled, in their own processes, with
 * 'graphstream' resolving to this package) and do what they say: the append example's journal
 * arrives whole at the follower example's replica, and so does a journal shipped by the sidecar
 * example, which drains and exits cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Journal, ParamValue } from '../ts/index.js';
import { bundleScripts } from './helpers/bundle.js';
import { run, waitFor } from './helpers/child-process.js';
import { loadConfig } from '../ts/cli/config.js';
import packageJson from '../package.json' with { type: 'json' };
import { ROOT, buildCli, removeCliBuild, runCli } from './helpers/cli.js';

const BUILD_DIR = join(ROOT, '.vitest-tmp', `examples-${process.pid}`);
let work: string;

beforeAll(async () => {
  await bundleScripts(
    Object.fromEntries(['append-and-ship', 'follower-replay', 'sidecar'].map((name) => [name, join(ROOT, 'examples', `${name}.ts`)])),
    BUILD_DIR,
    { graphstream: join(ROOT, 'ts/index.ts') },
  );
  work = await mkdtemp(join(tmpdir(), 'gs-examples-'));
});

afterAll(async () => {
  await rm(BUILD_DIR, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

/** Runs an example to completion and parses the JSON summary it prints last. */
function runExample(name: string, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(BUILD_DIR, `${name}.mjs`), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${name} exited ${code}:\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>);
    });
  });
}

describe('examples', () => {
  it('append-and-ship ships a journal that follower-replay rebuilds entry for entry', async () => {
    const store = join(work, 'store');
    const shipped = await runExample('append-and-ship', [join(work, 'journal'), store, '300']);
    expect(shipped).toMatchObject({ appended: 300, sequence: 300 });
    expect(shipped.uploaded).toBeGreaterThanOrEqual(1);

    const replayed = await runExample('follower-replay', [store, join(work, 'replica'), '1500']);
    expect(replayed).toEqual({ people: 300, sequence: 300, chainHash: shipped.chainHash });
  });

  it('sidecar ships what another process sealed, drains on SIGTERM, exits 0, and the replica is whole', async () => {
    const journalDir = join(work, 'sidecar-journal');
    const store = join(work, 'sidecar-store');
    const journal = await Journal.open(journalDir, { maxSegmentBytes: 8 * 1024 });
    for (let id = 1; id <= 200; id++) {
      const params = { id, name: `p${id}`, born: ParamValue.date('1990-01-01') };
      await journal.append({ query: 'CREATE (:Person {id: $id, name: $name, born: $born})', params });
    }
    const chainHash = journal.chainHash.toString('hex');
    await journal.close(); // seals every segment
    const sealed = (await readdir(journalDir)).filter((name) => name.endsWith('.hadbj')).length;
    expect(sealed).toBeGreaterThan(1);

    const sidecar = run(process.execPath, [join(BUILD_DIR, 'sidecar.mjs'), journalDir, store]);
    await waitFor(sidecar, (lines) => lines.filter((line) => line.startsWith('uploaded ')).length === sealed, `${sealed} uploads`);
    sidecar.signal('SIGTERM');
    expect(await sidecar.exited).toEqual({ code: 0, signal: null });
    expect(JSON.parse(sidecar.lines.at(-1)!)).toMatchObject({ succeeded: sealed, failed: 0 });

    const replayed = await runExample('follower-replay', [store, join(work, 'sidecar-replica'), '1500']);
    expect(replayed).toEqual({ people: 200, sequence: 200, chainHash });
  });
});

describe('operator examples: graphstream.yml, the systemd unit, the Dockerfile', () => {
  beforeAll(buildCli);
  afterAll(removeCliBuild);

  const CONFIG_PATH = '/etc/graphstream/graphstream.yml';
  const env = { BUCKET: 'graph-wal', DR_BUCKET: 'graph-wal-dr', AGE_RECIPIENT: `age1${'q'.repeat(58)}`, HOSTNAME: 'graphd-a' };

  it('graphstream.yml: three databases, two replicas each for two of them, encryption placeholders and leases', async () => {
    const config = await loadConfig(join(ROOT, 'examples/graphstream.yml'), env);
    expect(config.addr).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.databases.map((database) => [database.db, database.dir, database.replicas.map((replica) => replica.url)])).toEqual([
      ['users', '/var/lib/graphd/users', ['s3://graph-wal', 's3://graph-wal-dr']],
      ['orders', '/var/lib/graphd/orders', ['s3://graph-wal', 's3://graph-wal-dr']],
      ['audit-log', '/var/lib/graphd/audit', ['s3://graph-wal']],
    ]);
    expect(config.databases[0]!.replicas.map((replica) => replica.encryption)).toEqual([{ ageRecipients: [env.AGE_RECIPIENT] }, { ageRecipients: [env.AGE_RECIPIENT] }]);
    expect(config.databases.map((database) => database.lease)).toEqual([
      { holder: 'graphd-a', ttlMs: 15000, wait: true },
      { holder: 'graphd-a', ttlMs: 15000, wait: true },
      undefined,
    ]);
    expect(config.limits).toEqual({ uploadConcurrency: 8, downloadConcurrency: 4, memoryBytes: 256 * 1024 * 1024 });
    expect(config.databases.map((database) => database.readiness)).toEqual([
      { maxLagSeconds: 30, maxPendingSegments: 20 },
      { maxLagSeconds: 60, maxPendingSegments: 100 },
      { maxLagSeconds: 60, maxPendingSegments: 100 },
    ]);
    expect(config.databases.map((database) => database.replicas.map((replica) => replica.name))).toEqual([['primary', 'dr'], ['primary', 'dr'], ['0']]);
    const day = 24 * 3_600_000;
    expect(config.databases[1]!.replicas.map((replica) => [replica.retention, replica.compaction])).toEqual([
      [{ localMs: day, localMaxBytes: 1024 ** 3, remoteMs: 7 * day, remoteKeepLast: 1 }, { intervalMs: 3_600_000, threshold: 16 }],
      [{ localMs: day, localMaxBytes: 1024 ** 3 }, undefined],
    ]);
    await expect(loadConfig(join(ROOT, 'examples/graphstream.yml'), { ...env, BUCKET: undefined })).rejects.toThrow(/graphstream\.yml:\d+: databases\[0\]\.replicas\[0\]\.url: \$\{BUCKET\} is not set/);
  });

  /** Checks that `argv` runs this package's CLI: its bin, a command it has, and only flags that command takes. */
  async function expectRealCommand(argv: string[]): Promise<void> {
    expect(Object.keys(packageJson.bin)).toContain(basename(argv[0]!));
    const [command, ...args] = argv.slice(1);
    const help = await runCli([command!, '--help']);
    expect(help.code, `${command} --help`).toBe(0);
    for (const flag of args.filter((arg) => arg.startsWith('--'))) expect(help.stdout, flag).toContain(`${flag} `);
    expect(args).toEqual(['--config', CONFIG_PATH]);
  }

  it('graphstream.service starts the sidecar with the config, reloads with SIGHUP, stops with SIGTERM', async () => {
    const unit = await readFile(join(ROOT, 'examples/graphstream.service'), 'utf8');
    const setting = (name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(unit)?.[1];
    await expectRealCommand(setting('ExecStart')!.split(/\s+/));
    expect(setting('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(setting('KillSignal')).toBe('SIGTERM');
  });

  it('the Dockerfile runs the sidecar with the config it copies in', async () => {
    const dockerfile = await readFile(join(ROOT, 'examples/Dockerfile'), 'utf8');
    const instruction = (name: string) => new RegExp(`^${name} (.*)$`, 'm').exec(dockerfile)?.[1];
    await expectRealCommand([...(JSON.parse(instruction('ENTRYPOINT')!) as string[]), ...(JSON.parse(instruction('CMD')!) as string[])]);
    expect(instruction('COPY')).toBe(`graphstream.yml ${CONFIG_PATH}`);
    expect(instruction('HEALTHCHECK')).toContain('/readyz');
  });
});
