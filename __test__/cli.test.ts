/**
 * The `graphstream` CLI run as a user runs it: a spawned process, its output and its exit code
 * (0 success, 1 operational failure with the error code, 2 bad arguments).
 */
import { cp, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { PassThrough } from 'node:stream';
import { basename, join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Journal } from '../ts/journal/journal.js';
import { ParamValue } from '../ts/payload/params.js';
import { decodeHeader, decodeSegment } from '../ts/pure/index.js';
import { readJournal } from '../ts/journal/reader.js';
import { compactOnce } from '../ts/replication/compaction.js';
import { generationRecordKey, leaseKey, segmentKey } from '../ts/replication/layout.js';
import { serializeGenerationRecord, serializeLeaseRecord } from '../ts/replication/ownership.js';
import { LocalStorage } from '../ts/storage/local.js';
import { Follower } from '../ts/replication/follower.js';
import { Lease } from '../ts/replication/lease.js';
import { S3Storage } from '../ts/storage/s3.js';
import { Uploader } from '../ts/replication/uploader.js';
import { Output } from '../ts/cli/output.js';
import { parseConfig } from '../ts/cli/config.js';
import { ROOT, buildCli, removeCliBuild, runCli, runCliPiped, startCli, startWriter, type CliResult } from './helpers/cli.js';
import { cores } from './helpers/cores.js';
import { tempDir } from './helpers/journal-fixtures.js';
import { TEST_CREDENTIALS, TEST_REGION, createTestBucket, s3Endpoint, testS3Client } from './helpers/s3.js';
import { VECTORS_DIR, manifest } from './helpers/vectors.js';

const FLAG_SEALED = 0x04;
const HEADER_SIZE = 128;
const HEX_HASH = /[0-9a-f]{64}/;

beforeAll(buildCli);
afterAll(removeCliBuild);

/** Environment of a user pointing the CLI at the test's S3-compatible server. */
function s3Env(): Record<string, string | undefined> {
  return {
    AWS_ENDPOINT_URL: s3Endpoint(),
    AWS_ENDPOINT_URL_S3: undefined,
    AWS_REGION: TEST_REGION,
    AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined,
  };
}

/** Resolves once `running` has written `text` to stderr; rejects if it exits first. */
async function untilStderr(running: ReturnType<typeof startCli>, text: string): Promise<void> {
  let exited: CliResult | undefined;
  void running.exited.then((result) => (exited = result));
  while (!running.stderr.includes(text)) {
    if (exited !== undefined) throw new Error(`exited (${exited.code}) before writing ${text}:\n${exited.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The value printed after `label:` on each line that has it. */
function fieldValues(output: string, label: string): string[] {
  return [...output.matchAll(new RegExp(`^\\s*${label}:\\s+(.+)$`, 'gm'))].map((match) => match[1]!.trim());
}

/** Entry i of a test journal; another `salt` gives entries of the same sizes but another chain. */
function entry(i: number, salt = 0) {
  return {
    query: 'MERGE (n:Node {id: $id}) SET n.at = $at',
    params: { id: i, at: ParamValue.float(i * 1.5 + salt) },
    timestampMs: 1_700_000_000_000 + i,
  };
}

/** A closed journal of `count` entries in several small segments; its segment files, oldest first. */
async function writeJournal(dir: string, count: number, salt = 0): Promise<{ chainHash: string; files: string[] }> {
  const journal = await Journal.open(dir, { maxSegmentBytes: 2048 });
  for (let i = 1; i <= count; i += 10) {
    await journal.appendBatch(Array.from({ length: Math.min(10, count - i + 1) }, (_, k) => entry(i + k, salt)));
  }
  await journal.close();
  const files = (await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort();
  return { chainHash: journal.chainHash.toString('hex'), files };
}

/** segmentStates once the writer's background sealer has sealed every segment but the live one. */
async function settledSegmentStates(dir: string): Promise<{ sealed: string[]; live: string[] }> {
  for (;;) {
    const states = await segmentStates(dir);
    if (states.live.length <= 1) return states;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function segmentStates(dir: string): Promise<{ sealed: string[]; live: string[] }> {
  const sealed: string[] = [];
  const live: string[] = [];
  for (const name of (await readdir(dir)).filter((file) => /^journal-\d{16}\.hadbj$/.test(file)).sort()) {
    const header = decodeHeader(await readFile(join(dir, name)));
    ((header.flags & FLAG_SEALED) !== 0 ? sealed : live).push(name);
  }
  return { sealed, live };
}

describe('usage', () => {
  test('every command has --help', async () => {
    const commands = [[], ['demo'], ['inspect'], ['verify'], ['repair'], ['restore'], ['tail'], ['replicate'], ['generations'], ['segments'], ['promote']];
    const results = await Promise.all(commands.map((command) => runCli([...command, '--help'])));
    results.forEach((result, index) => {
      expect(result.code, `${commands[index]!.join(' ')} --help`).toBe(0);
      expect(result.stdout).toMatch(/^Usage: graphstream/);
    });
    expect(results[0]!.stdout).toMatch(/demo[\s\S]*inspect[\s\S]*verify[\s\S]*repair[\s\S]*restore[\s\S]*tail[\s\S]*replicate[\s\S]*generations[\s\S]*segments[\s\S]*promote/);
  });

  test('bad arguments exit with code 2 and say what is wrong', async () => {
    const dir = await tempDir('cli-args');
    const cases: [string[], RegExp][] = [
      [['inspect'], /missing required argument 'segment'/],
      [['demo', '--entries', 'many'], /--entries.*expected an integer/],
      [['demo', '--entries', '0'], /expected an integer in 1\.\./],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['verify', 's3://only-a-bucket'], /does not name a db/],
      [['verify', 'ftp://host/db'], /unsupported scheme "ftp:"/],
      [['restore', `file://${dir}`, '--dir', join(dir, 'out')], /required option '--db <db>'/],
      [['restore', `file://${dir}`, '--db', 'x', '--dir', dir, '--to-sequence', '3', '--to-time', '0'], /cannot be used with/],
      [['restore', `file://${dir}`, '--db', 'x', '--dir', dir, '--to-time', 'yesterday'], /ISO 8601/],
      [['replicate', dir, `file://${dir}`, '--metrics-addr', 'nowhere'], /host:port/],
      [['replicate', dir], /missing required argument 'storage-url'/],
      [['replicate', dir, `file://${dir}`, '--memory-bytes', '64MiB'], /--memory-bytes applies to --config only/],
      [['replicate', '--config', join(dir, 'gs.yml'), '--memory-bytes', '12 parsecs'], /--memory-bytes.*expected a size in bytes/],
      [['replicate', '--config', join(dir, 'gs.yml'), '--upload-concurrency', '0'], /--upload-concurrency.*expected an integer in 1\.\./],
      [['tail', `file://${dir}`, '--db', 'a/b'], /no '\/'/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((result, index) => {
      const [args, message] = cases[index]!;
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr, args.join(' ')).toMatch(/^graphstream: error \[invalid_argument\]: /);
      expect(result.stdout, args.join(' ')).toBe('');
    });
  });

  test('help text is wrapped once, by commander: description lines fill the width', async () => {
    for (const command of ['demo', 'inspect', 'verify', 'repair', 'restore', 'tail', 'replicate', 'generations', 'segments', 'status']) {
      const result = await runCli([command, '--help']);
      expect(result.code).toBe(0);
      const lines = result.stdout.split('\n');
      const description = lines.slice(lines.findIndex((line) => line.startsWith('Usage:')) + 2, lines.findIndex((line) => /^(Arguments|Options):/.test(line)) - 1);
      expect(description.length, command).toBeGreaterThan(1);
      for (const line of description.slice(0, -1)) expect(line.length, `${command}: ${line}`).toBeGreaterThan(60);
      for (const line of lines) expect(line.length, `${command}: ${line}`).toBeLessThanOrEqual(80);
    }
  });
});

describe('output', () => {
  function capture(isTTY: boolean) {
    const err = Object.assign(new PassThrough(), { isTTY, columns: 80 });
    let written = '';
    err.on('data', (chunk: Buffer) => (written += chunk.toString('utf8')));
    return { output: new Output(new PassThrough(), err, {}), written: () => written };
  }

  test('progress bars are drawn on a terminal and erased when done', async () => {
    const { output, written } = capture(true);
    const bar = output.progress('uploading', 4);
    bar.update(4);
    bar.done();
    await new Promise((resolve) => setImmediate(resolve));
    expect(written()).toContain('\ruploading [############################] 4/4');
    expect(written().endsWith('\r\x1b[K')).toBe(true);
  });

  test('nothing is drawn when stderr is piped', async () => {
    const { output, written } = capture(false);
    const bar = output.progress('uploading', 4);
    bar.update(4);
    bar.done();
    await new Promise((resolve) => setImmediate(resolve));
    expect(written()).toBe('');
  });
});

describe('demo', () => {
  const ENTRIES = 800;
  let demoDir: string;
  let demo: CliResult;
  let demoChainHash: string;

  // One demo run; the tests after the first one use what it left in its directory.
  beforeAll(async () => {
    demoDir = await mkdtemp(join(tmpdir(), 'graphstream-cli-demo-'));
    demo = await runCli(['demo', '--dir', demoDir, '--entries', String(ENTRIES)], { env: { npm_command: undefined } }); // not under npx
  });
  afterAll(() => rm(demoDir, { recursive: true, force: true }));

  test('replicates a journal through a local store, hands over to a standby, and a follower reads one chain', async () => {
    expect(demo.stderr).toBe(''); // piped: no progress bars
    expect(demo.code).toBe(0);
    const [handedOverHash, leaderHash, followerHash] = fieldValues(demo.stdout, 'chain hash');
    expect(handedOverHash).toMatch(HEX_HASH);
    expect(leaderHash).toMatch(HEX_HASH);
    expect(followerHash).toBe(leaderHash);
    const released = Number(/released at:\s+sequence (\d+)/.exec(demo.stdout)![1]);
    expect(fieldValues(demo.stdout, 'promoted')).toEqual([`epoch 2, generation 1 from sequence ${released + 1}`]);
    expect(fieldValues(demo.stdout, 'sequences')).toEqual([`1..${ENTRIES}`]);
    expect(demo.stdout).toContain(`OK: leader and follower match, ${ENTRIES} entries, chain hash ${leaderHash}`);
    expect(demo.stdout).toMatch(new RegExp(`graphstream_entries_written_total\\{db="demo"\\} ${ENTRIES}`));
    expect(demo.stdout).toMatch(/graphstream_segments_downloaded_total\{db="demo"\} [1-9]/);
    demoChainHash = leaderHash!;

    // What it left behind verifies with the CLI too: the new leader's directory and the store.
    const [leader, store] = await Promise.all([
      runCli(['verify', join(demoDir, 'standby')]),
      runCli(['verify', `file://${join(demoDir, 'store')}/demo`]),
    ]);
    for (const verified of [leader, store]) {
      expect(verified.code).toBe(0);
      expect(fieldValues(verified.stdout, 'chain hash')).toEqual([demoChainHash]);
      expect(fieldValues(verified.stdout, 'entries')).toEqual([String(ENTRIES)]);
    }
  });

  test('the pure core writes the same journal: same chain hash', async () => {
    const result = await runCli(['demo', '--entries', String(ENTRIES), '--pure', '--dir', await tempDir('cli-demo-pure')]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('pure core');
    const [, nativeHash] = fieldValues(demo.stdout, 'chain hash');
    expect(result.stdout).toContain(`OK: leader and follower match, ${ENTRIES} entries, chain hash ${nativeHash}`);
  });

  test('ships to an S3-compatible server given with --storage', async () => {
    const bucket = await createTestBucket('cli-demo');
    const result = await runCli(['demo', '--entries', '400', '--dir', await tempDir('cli-demo-s3'), '--storage', `s3://${bucket}/demos`], {
      env: s3Env(),
    });
    expect(result.stderr).not.toMatch(/\r|\x1b\[/); // piped: no progress bars
    expect(result.code).toBe(0);
    const [storage] = fieldValues(result.stdout, 'storage');
    expect(storage).toMatch(new RegExp(`^s3://${bucket}/demos/demo-[0-9a-f]+/$`));
    const verified = await runCli(['verify', storage!], { env: s3Env() });
    expect(verified.code).toBe(0);
    expect(fieldValues(verified.stdout, 'entries')).toEqual(['400']);
    // no AWS SDK notices on stderr (its Node.js support notice fires on Node < 22)
    expect(result.stderr).toBe('');
    expect(verified.stderr).toBe('');
  });

  test('restore rebuilds the journal up to a sequence and up to a time', async () => {
    const store = `file://${join(demoDir, 'store')}`;
    const bySequence = join(await tempDir('cli-restore'), 'db');
    const restored = await runCli(['restore', store, '--db', 'demo', '--dir', bySequence, '--to-sequence', '321']);
    expect(restored.code).toBe(0);
    expect(fieldValues(restored.stdout, 'sequences')).toEqual(['1..321']);
    const verified = await runCli(['verify', bySequence]);
    expect(verified.code).toBe(0);
    expect(fieldValues(verified.stdout, 'sequences')).toEqual(['1..321']);

    // Up to a time: every entry the leader stamped at or before it, and none after.
    const leader: { sequence: number; timestampMs: number }[] = [];
    for await (const record of readJournal(join(demoDir, 'standby'))) leader.push({ sequence: record.sequence, timestampMs: Number(record.entry.timestampMs) });
    const cutoff = leader[199]!.timestampMs;
    const expected = leader.filter((record) => record.timestampMs <= cutoff).length;
    const byTime = join(await tempDir('cli-restore-time'), 'db');
    const restoredByTime = await runCli(['restore', store, '--db', 'demo', '--dir', byTime, '--to-time', new Date(cutoff).toISOString()]);
    expect(restoredByTime.code).toBe(0);
    expect(fieldValues(restoredByTime.stdout, 'sequences')).toEqual([`1..${expected}`]);

    const beyond = await runCli(['restore', store, '--db', 'demo', '--dir', join(await tempDir('cli-restore-beyond'), 'db'), '--to-sequence', '99999']);
    expect(beyond.code).toBe(1);
    expect(beyond.stderr).toMatch(/graphstream: error \[not_found\]: .*99999/);
  });

  test('restore of a db or store that does not exist fails with not_found, or does nothing with --if-replica-exists', async () => {
    const store = `file://${join(demoDir, 'store')}`;
    const bucket = await createTestBucket('cli-restore-missing');
    const missing: string[][] = [
      [store, '--db', 'nosuchdb'],
      [`file://${join(demoDir, 'no-such-store')}`, '--db', 'demo'],
      [`s3://${bucket}`, '--db', 'demo'],
      [`s3://${bucket}-absent`, '--db', 'demo'],
    ];
    for (const target of missing) {
      const dir = join(await tempDir('cli-restore-missing'), 'db');
      const failed = await runCli(['restore', ...target, '--dir', dir], { env: s3Env() });
      expect(failed.code, target.join(' ')).toBe(1);
      expect(failed.stderr, target.join(' ')).toMatch(/^graphstream: error \[not_found\]: restore: .* holds no replica of db /);
      expect(failed.stdout).toBe('');
      await expect(readdir(dir)).rejects.toThrow(/ENOENT/);

      const skipped = await runCli(['restore', ...target, '--dir', dir, '--if-replica-exists'], { env: s3Env() });
      expect(skipped.code, target.join(' ')).toBe(0);
      expect(skipped.stderr).toMatch(/nothing restored/);
      expect(skipped.stdout).toBe('');
      await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
    }
    // an existing replica is restored as usual with --if-replica-exists
    const present = join(await tempDir('cli-restore-present'), 'db');
    const restored = await runCli(['restore', store, '--db', 'demo', '--dir', present, '--if-replica-exists', '--to-sequence', '10']);
    expect(restored.code).toBe(0);
    expect(fieldValues(restored.stdout, 'sequences')).toEqual(['1..10']);
  });

  test('restore refuses a non-empty directory unless --force, and never restores over a journal', async () => {
    const store = `file://${join(demoDir, 'store')}`;
    const dir = await tempDir('cli-restore-nonempty');
    await writeFile(join(dir, 'notes.txt'), 'kept\n');
    const refused = await runCli(['restore', store, '--db', 'demo', '--dir', dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^graphstream: error \[invalid_argument\]: .*is not empty.*--force/);
    expect(await readdir(dir)).toEqual(['notes.txt']);

    const forced = await runCli(['restore', store, '--db', 'demo', '--dir', dir, '--force', '--to-sequence', '50']);
    expect(forced.code).toBe(0);
    expect(fieldValues(forced.stdout, 'sequences')).toEqual(['1..50']);
    expect(await readFile(join(dir, 'notes.txt'), 'utf8')).toBe('kept\n');

    const overJournal = await runCli(['restore', store, '--db', 'demo', '--dir', dir, '--force']);
    expect(overJournal.code).toBe(1);
    expect(overJournal.stderr).toMatch(/error \[invalid_argument\]: .*already holds a journal/);
  });

  test('tail piped into head exits 0 once head has its lines', async () => {
    const result = await runCliPiped(['tail', `file://${join(demoDir, 'store')}`, '--db', 'demo', '--json', '--poll', '50'], 'head -2');
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { sequence: number }).sequence)).toEqual([1, 2]);
  });

  test('an idle tail (nothing new to print) exits 0 as soon as the reader of its pipe goes away', async () => {
    // the last entry, then nothing new for an hour: only the pipe's reader going away ends it
    const result = await runCliPiped(
      ['tail', `file://${join(demoDir, 'store')}`, '--db', 'demo', '--json', '--from-seq', String(ENTRIES), '--poll', '3600000'],
      'head -1',
    );
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect((JSON.parse(result.stdout) as { sequence: number }).sequence).toBe(ENTRIES);
  });

  test('the closing hint repeats the command as it was run', async () => {
    const hint = (result: CliResult) => /^next: (.*) verify /m.exec(result.stdout)?.[1];
    expect(hint(demo)).toMatch(/^node \S+graphstream\.mjs$/);
    const viaNpx = await runCli(['demo', '--entries', '20', '--dir', await tempDir('cli-demo-npx')], { env: { npm_command: 'exec' } });
    expect(viaNpx.code).toBe(0);
    expect(hint(viaNpx)).toBe('npx graphstream');
  });

  test('tail prints verified entries from storage until SIGTERM', async () => {
    const tail = startCli(['tail', `file://${join(demoDir, 'store')}`, '--db', 'demo', '--from-seq', String(ENTRIES - 5), '--json', '--poll', '50']);
    await tail.waitFor(new RegExp(`"sequence":${ENTRIES},`));
    tail.kill('SIGTERM');
    const result = await tail.exited;
    expect(result.code).toBe(0);
    const records = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { sequence: number; chainHash: string; query: string });
    expect(records.map((record) => record.sequence)).toEqual([795, 796, 797, 798, 799, 800]);
    expect(records.at(-1)!.chainHash).toBe(demoChainHash);
    expect(records[0]!.query).toMatch(/^(CREATE|MERGE|MATCH)/);
  });
});

describe('inspect', () => {
  const fixture = join(VECTORS_DIR, 'sealed-zstd.hadbj');

  test('prints the header and a table of the entries', async () => {
    const result = await runCli(['inspect', fixture]);
    expect(result.code).toBe(0);
    expect(fieldValues(result.stdout, 'first sequence')).toEqual(['1']);
    expect(fieldValues(result.stdout, 'last sequence')).toEqual([String(manifest.entries.length)]);
    expect(fieldValues(result.stdout, 'compression')).toEqual(['zstd']);
    expect(fieldValues(result.stdout, 'chain hash')).toEqual([manifest.chain_hash]);
    const rows = result.stdout.split('\n').filter((line) => /^\d+\s/.test(line));
    expect(rows).toHaveLength(manifest.entries.length);
    manifest.entries.forEach((expected, index) => {
      const [sequence, prev, hash] = rows[index]!.split(/\s+/);
      expect(Number(sequence)).toBe(expected.sequence);
      expect(expected.prev_hash.startsWith(prev!)).toBe(true);
      expect(expected.hash.startsWith(hash!)).toBe(true);
    });
    expect(rows[0]).toContain('CREATE (p:Person {id: $id, name: $name})');
    expect(rows[0]).toContain('id=1 name="Alice"');
  });

  test('--json gives the full decode with typed parameters', async () => {
    const result = await runCli(['inspect', fixture, '--json']);
    expect(result.code).toBe(0);
    const decoded = JSON.parse(result.stdout);
    expect(decoded.header).toMatchObject({ firstSeq: 1, lastSeq: manifest.entries.length, sealed: true, compression: 1 });
    expect(decoded.chainHash).toBe(manifest.chain_hash);
    expect(decoded.entries).toHaveLength(manifest.entries.length);
    manifest.entries.forEach((expected, index) => {
      const actual = decoded.entries[index];
      expect(actual).toMatchObject({ sequence: expected.sequence, prevHash: expected.prev_hash, chainHash: expected.hash });
      expect(actual.entry).toEqual({
        sequence: expected.decoded.sequence,
        query: expected.decoded.query,
        timestampMs: expected.decoded.timestamp_ms,
        params: expected.decoded.params,
      });
    });
  });

  test('shows the torn tail of an unsealed segment', async () => {
    const result = await runCli(['inspect', join(VECTORS_DIR, 'unsealed-torn-tail.hadbj')]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('unsealed');
    expect(fieldValues(result.stdout, 'torn tail')).toHaveLength(1);
  });

  test("shows the zeros a writer under 'fsync' keeps ahead in its live segment as such, not as a torn tail", async () => {
    const dir = await tempDir('cli-inspect-live');
    const journal = await Journal.open(dir, { durability: 'fsync', core: cores[0] });
    await journal.appendBatch(Array.from({ length: 3 }, (_, k) => entry(k + 1)));
    const [live] = (await settledSegmentStates(dir)).live;
    // the file as a crash would leave it (closing cuts the zeros)
    const bytes = await readFile(join(dir, live!));
    await journal.close();
    const copy = join(await tempDir('cli-inspect-live-copy'), live!);
    await writeFile(copy, bytes);
    const result = await runCli(['inspect', copy, '--json']);
    expect(result.code).toBe(0);
    const decoded = JSON.parse(result.stdout);
    expect(decoded.entries).toHaveLength(3);
    const zeros = bytes.length - decoded.validLength;
    expect(zeros).toBeGreaterThan(0);
    expect(decoded).toMatchObject({ tornBytes: 0, zeroTailBytes: zeros });
    expect(bytes.subarray(decoded.validLength).every((b) => b === 0)).toBe(true);
    const table = await runCli(['inspect', copy]);
    expect(fieldValues(table.stdout, 'torn tail')).toEqual([]);
    expect(fieldValues(table.stdout, 'zeros written ahead')).toEqual([`${zeros} bytes (a live segment under 'fsync')`]);
  });

  test('a damaged segment exits 1 with its error code and file', async () => {
    const damaged = Object.entries(manifest.files).filter(([name, file]) => file.expect !== 'ok' && name !== 'unsealed-torn-tail.hadbj');
    expect(damaged.length).toBeGreaterThan(5);
    const results = await Promise.all(damaged.map(([name]) => runCli(['inspect', join(VECTORS_DIR, name)])));
    results.forEach((result, index) => {
      const [name, file] = damaged[index]!;
      expect(result.code, name).toBe(1);
      expect(result.stderr, name).toContain(`graphstream: error [${file.expect}]`);
      expect(result.stderr, name).toContain(name);
    });
    const missing = await runCli(['inspect', join(VECTORS_DIR, 'no-such.hadbj')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/error \[not_found\].*no-such\.hadbj/);
  });
});

/**
 * A store whose db `graph` (150 entries) is in two generations: generation 1 starts at `boundary`
 * (its record written by epoch 2), and generation 0 also holds a stale segment at `boundary`,
 * from another chain (what a writer that lost the lease went on with).
 */
async function twoGenerationStore() {
  const store = await tempDir('cli-verify-generations-store');
  const storage = new LocalStorage(store);
  const ship = async (db: string, salt: number) => {
    const journal = await Journal.open(await tempDir('cli-verify-generations'), { maxSegmentBytes: 2048 });
    const uploader = new Uploader({ journal, storage, db });
    for (let i = 1; i <= 150; i += 10) await journal.appendBatch(Array.from({ length: 10 }, (_, k) => entry(i + k, salt)));
    await uploader.sync();
    await uploader.stop();
    await journal.close();
    return journal.chainHash.toString('hex');
  };
  const chainHash = await ship('graph', 0);
  await ship('other', 7); // the same segment sizes, another chain: what a writer that lost the lease went on with
  const keys = await storage.list('graph/0000/');
  const firstSeqOf = (key: string) => Number.parseInt(key.slice(-22, -6), 16);
  const boundary = firstSeqOf(keys[Math.floor(keys.length / 2)]!);
  const before = decodeSegment((await storage.get(keys[Math.floor(keys.length / 2) - 1]!))!);
  for (const key of keys.filter((key) => firstSeqOf(key) >= boundary)) {
    await storage.put(segmentKey('', 'graph', 1, firstSeqOf(key)), (await storage.get(key))!);
    await storage.delete(key);
  }
  const record = { generation: 1, epoch: 2, holder: 'test/1', startSeq: boundary, prevHash: Buffer.from(before.chainHash), writtenMs: Date.now() };
  await storage.put(generationRecordKey('', 'graph', 1), serializeGenerationRecord(record));
  const staleKey = segmentKey('', 'graph', 0, boundary);
  await storage.put(staleKey, (await storage.get(segmentKey('', 'other', 0, boundary)))!);
  return { store, storage, chainHash, firstSeqs: keys.map(firstSeqOf), boundary, record, staleKey };
}

describe('verify', () => {
  test('a good journal directory verifies end to end', async () => {
    const dir = await tempDir('cli-verify');
    const { chainHash, files } = await writeJournal(dir, 150);
    expect(files.length).toBeGreaterThan(3);
    const result = await runCli(['verify', dir]);
    expect(result.code).toBe(0);
    expect(fieldValues(result.stdout, 'segments')).toEqual([String(files.length)]);
    expect(fieldValues(result.stdout, 'sequences')).toEqual(['1..150']);
    expect(fieldValues(result.stdout, 'chain hash')).toEqual([chainHash]);
    expect(result.stdout).toContain('OK');

    const json = await runCli(['verify', dir, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, entries: 150, lastSeq: 150, chainHash, problems: [] });
  });

  test('a corrupted or incomplete directory exits 1 naming the code, file and sequence', async () => {
    const dir = await tempDir('cli-verify-bad');
    const { files } = await writeJournal(dir, 150);
    const victim = files[2]!;

    const flipped = await tempDir('cli-verify-flip');
    await cp(dir, flipped, { recursive: true });
    const bytes = await readFile(join(flipped, victim));
    bytes[bytes.length - 40]! ^= 0x01; // inside the body, before the trailer
    await writeFile(join(flipped, victim), bytes);
    const corrupt = await runCli(['verify', flipped]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stdout).toMatch(new RegExp(`PROBLEM \\[checksum_mismatch\\] ${join(flipped, victim)} sequence ${Number(victim.slice(8, 24))}`));
    expect(corrupt.stderr).toMatch(/graphstream: error \[checksum_mismatch\]/);

    const gapped = await tempDir('cli-verify-gap');
    await cp(dir, gapped, { recursive: true });
    await unlink(join(gapped, victim));
    const gap = await runCli(['verify', gapped]);
    expect(gap.code).toBe(1);
    expect(gap.stdout).toMatch(new RegExp(`PROBLEM \\[gap\\] ${join(gapped, files[3]!)}`));

    const empty = await runCli(['verify', await tempDir('cli-verify-empty')]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/error \[not_found\]/);
  });

  test('a compacted store verifies to the same chain; a damaged compacted segment is reported', async () => {
    const dir = await tempDir('cli-verify-compacted');
    const store = await tempDir('cli-verify-compacted-store');
    const journal = await Journal.open(dir, { maxSegmentBytes: 2048 });
    const storage = new LocalStorage(store);
    const uploader = new Uploader({ journal, storage, db: 'graph' });
    for (let i = 1; i <= 150; i += 10) await journal.appendBatch(Array.from({ length: 10 }, (_, k) => entry(i + k)));
    await uploader.sync();
    await uploader.stop();
    await journal.close();
    const result = await compactOnce({ storage, db: 'graph', config: { threshold: 2, retention: { minAgeMs: 0, keepLast: 1 } } });
    expect(result.compacted.length).toBeGreaterThan(0);
    expect(result.deleted.length).toBeGreaterThan(0);

    const verified = await runCli(['verify', `file://${store}/graph`]);
    expect(verified.code).toBe(0);
    expect(fieldValues(verified.stdout, 'sequences')).toEqual(['1..150']);
    expect(fieldValues(verified.stdout, 'chain hash')).toEqual([journal.chainHash.toString('hex')]);

    const compactedKey = result.compacted[0]!.key;
    const path = join(store, ...compactedKey.split('/'));
    const bytes = await readFile(path);
    bytes[bytes.length - 40]! ^= 0x01;
    await writeFile(path, bytes);
    const damaged = await runCli(['verify', `file://${store}/graph`]);
    expect(damaged.code).toBe(1);
    expect(damaged.stdout).toContain(`PROBLEM [checksum_mismatch] file://${store}/${compactedKey} sequence`);
  });

  test('a store with two generations verifies as one chain; a segment past the end of its generation is reported as stale, not read', async () => {
    const { store, storage, chainHash, boundary, record, staleKey } = await twoGenerationStore();

    const verified = await runCli(['verify', `file://${store}/graph`]);
    expect(verified.code).toBe(0);
    expect(fieldValues(verified.stdout, 'sequences')).toEqual(['1..150']);
    expect(fieldValues(verified.stdout, 'chain hash')).toEqual([chainHash]);
    expect(verified.stdout).toContain(`stale: 1 segment(s) past the end of their generation`);
    const json = JSON.parse((await runCli(['verify', `file://${store}/graph`, '--json'])).stdout) as { ok: boolean; staleKeys: string[] };
    expect(json).toMatchObject({ ok: true, staleKeys: [`file://${store}/${staleKey}`] });

    // A record that does not continue the chain where the generation before it ends.
    await storage.put(generationRecordKey('', 'graph', 1), serializeGenerationRecord({ ...record, prevHash: Buffer.alloc(32, 7) }));
    const broken = await runCli(['verify', `file://${store}/graph`]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`PROBLEM [chain_broken] file://${store}/graph/generations/0001.json sequence ${boundary}: prev_hash of generation 1`);
  });

  test('a bucket on an S3-compatible server: ok, then a missing and a foreign segment', async () => {
    const bucket = await createTestBucket('cli-verify');
    const dir = await tempDir('cli-verify-s3');
    const journal = await Journal.open(dir, { maxSegmentBytes: 2048 });
    const storage = new S3Storage({ bucket, endpoint: s3Endpoint(), region: TEST_REGION, credentials: TEST_CREDENTIALS, forcePathStyle: true });
    const uploader = new Uploader({ journal, storage, db: 'graph', prefix: 'wal/' });
    const uploaded: string[] = [];
    uploader.on('uploaded', (record) => uploaded.push(record.key));
    for (let i = 1; i <= 120; i += 10) await journal.appendBatch(Array.from({ length: 10 }, (_, k) => entry(i + k)));
    await uploader.sync();
    await uploader.stop();
    await journal.close();
    await storage.close?.();
    uploaded.sort();
    expect(uploaded.length).toBeGreaterThan(3);
    const chainHash = journal.chainHash.toString('hex');

    const ok = await runCli(['verify', `s3://${bucket}/wal/graph`], { env: s3Env() });
    expect(ok.code).toBe(0);
    expect(fieldValues(ok.stdout, 'segments')).toEqual([String(uploaded.length)]);
    expect(fieldValues(ok.stdout, 'chain hash')).toEqual([chainHash]);
    const byFlags = await runCli(['verify', `s3://${bucket}`, '--prefix', 'wal', '--db', 'graph', '--endpoint', s3Endpoint()], {
      env: { ...s3Env(), AWS_ENDPOINT_URL: undefined },
    });
    expect(byFlags.code).toBe(0);
    expect(fieldValues(byFlags.stdout, 'chain hash')).toEqual([chainHash]);

    const client = testS3Client();
    try {
      const victim = uploaded[1]!;
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: victim }));
      const gap = await runCli(['verify', `s3://${bucket}/wal/graph`], { env: s3Env() });
      expect(gap.code).toBe(1);
      expect(gap.stdout).toContain(`PROBLEM [gap] s3://${bucket}/${uploaded[2]} sequence`);
      expect(gap.stderr).toMatch(/graphstream: error \[gap\]/);

      // A segment of another journal under the missing key: it decodes, but its chain is not this one.
      const other = await tempDir('cli-verify-foreign');
      const { files } = await writeJournal(other, 120, 0.25);
      const foreignName = files.find((name) => Number(name.slice(8, 24)) === Number.parseInt(victim.slice(-22, -6), 16));
      expect(foreignName).toBeDefined();
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: victim, Body: await readFile(join(other, foreignName!)) }));
      const foreign = await runCli(['verify', `s3://${bucket}/wal/graph`], { env: s3Env() });
      expect(foreign.code).toBe(1);
      expect(foreign.stdout).toContain(`PROBLEM [chain_broken] s3://${bucket}/${victim} sequence`);
    } finally {
      client.destroy();
    }
  });
});

describe('generations and segments', () => {
  test('list the generations, their records and segments, the lease, and the stale segment, as text and JSON', async () => {
    const { store, storage, firstSeqs, boundary, record, staleKey } = await twoGenerationStore();
    const lease = { holder: 'host-b', epoch: 2, generation: 1, ttlMs: 10_000, renewals: 4, released: false, writtenMs: Date.now() };
    await storage.put(leaseKey('', 'graph'), serializeLeaseRecord(lease));
    const inZero = firstSeqs.filter((seq) => seq < boundary);
    const inOne = firstSeqs.filter((seq) => seq >= boundary);

    const text = await runCli(['generations', `file://${store}`, '--db', 'graph']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('lease: host-b, epoch 2, generation 1, ttl 10000 ms');
    const rows = text.stdout.split('\n').filter((line) => /^\d+\s/.test(line)).map((line) => line.split(/\s+/));
    expect(rows.map((row) => row.slice(0, 8))).toEqual([
      ['0', '1', String(boundary - 1), String(inZero.length), '0', '1', '-', '-'],
      ['1', String(boundary), '-', String(inOne.length), '0', '0', '2', 'test/1'],
    ]);
    const json = JSON.parse((await runCli(['generations', `file://${store}`, '--db', 'graph', '--json'])).stdout);
    expect(json).toMatchObject({
      db: 'graph',
      lease: { holder: 'host-b', epoch: 2, generation: 1, released: false },
      generations: [
        { generation: 0, startSeq: 1, lastSeq: boundary - 1, record: null, segments: inZero.length, staleSegments: 1 },
        { generation: 1, startSeq: boundary, lastSeq: null, record: { epoch: 2, holder: 'test/1' }, prevHash: record.prevHash.toString('hex'), segments: inOne.length },
      ],
    });

    const segments = await runCli(['segments', `file://${store}`, '--db', 'graph']);
    expect(segments.code).toBe(0);
    const listed = segments.stdout.split('\n').filter((line) => /^\d+\s/.test(line)).map((line) => line.split(/\s+/));
    expect(listed.map(([generation, first, , state]) => [generation, first, state])).toEqual([
      ...inZero.map((seq) => ['0', String(seq), 'current']),
      ['0', String(boundary), 'stale'],
      ...inOne.map((seq) => ['1', String(seq), 'current']),
    ]);
    expect(listed[0]![2]).toBe(String(inZero[1]! - 1));
    const one = JSON.parse((await runCli(['segments', `file://${store}`, '--db', 'graph', '--generation', '1', '--json'])).stdout);
    expect(one.segments.map((segment: { firstSeq: number }) => segment.firstSeq)).toEqual(inOne);
    expect(one.segments.at(-1)).toMatchObject({ generation: 1, lastSeqBefore: null, state: 'current', key: segmentKey('', 'graph', 1, inOne.at(-1)!) });
    const stale = JSON.parse((await runCli(['segments', `file://${store}`, '--db', 'graph', '--generation', '0', '--json'])).stdout);
    expect(stale.segments.filter((segment: { state: string }) => segment.state === 'stale').map((segment: { key: string }) => segment.key)).toEqual([staleKey]);

    // every flag also from the environment: GRAPHSTREAM_DB, GRAPHSTREAM_GENERATION, GRAPHSTREAM_JSON
    const fromEnv = await runCli(['segments', `file://${store}`], { env: { GRAPHSTREAM_DB: 'graph', GRAPHSTREAM_GENERATION: '1', GRAPHSTREAM_JSON: '1' } });
    expect(fromEnv.stderr).toBe('');
    expect(fromEnv.code).toBe(0);
    expect(JSON.parse(fromEnv.stdout)).toEqual(one);

    for (const command of ['generations', 'segments']) {
      const missing = await runCli([command, `file://${store}`, '--db', 'nothing']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^graphstream: error \[not_found\]: .* holds no replica of db nothing/);
    }
  });
});

describe('repair', () => {
  test('verify names the damage, repair moves it into quarantine/ and says which sequences were dropped', async () => {
    const dir = await tempDir('cli-repair');
    const { files } = await writeJournal(dir, 150);
    const victim = files.at(-1)!;
    const firstSeq = Number(victim.slice(8, 24));
    const bytes = await readFile(join(dir, victim));
    bytes[bytes.length - 1]! ^= 0x01; // the trailer of the last sealed segment
    await writeFile(join(dir, victim), bytes);

    const verified = await runCli(['verify', dir]);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toMatch(new RegExp(`PROBLEM \\[checksum_mismatch\\] ${join(dir, victim)} sequence ${firstSeq}: at byte offset ${bytes.length - 32}`));

    const dry = await runCli(['repair', dir, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout).quarantine.dropped).toEqual({ first: firstSeq, last: 150 });
    expect(await readdir(dir)).toContain(victim);

    const repaired = await runCli(['repair', dir]);
    expect(repaired.code).toBe(0);
    expect(fieldValues(repaired.stdout, 'dropped')).toEqual([`sequences ${firstSeq}..150`]);
    expect(fieldValues(repaired.stdout, 'continues at')).toEqual([`sequence ${firstSeq}`]);
    const [moved] = [...repaired.stdout.matchAll(/^moved (\S+) -> (\S+)$/gm)];
    expect(moved![1]).toBe(join(dir, victim));
    expect(await readFile(moved![2]!)).toEqual(bytes); // moved, not deleted
    expect(moved![2]).toMatch(new RegExp(`^${dir}/quarantine/[^/]+/${victim}$`));

    const after = await runCli(['verify', dir]);
    expect(after.code).toBe(0);
    expect(fieldValues(after.stdout, 'sequences')).toEqual([`1..${firstSeq - 1}`]);
    const again = await runCli(['repair', dir, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ sequence: firstSeq - 1, quarantine: null });

    const missing = await runCli(['repair', join(dir, 'absent')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/error \[not_found\]/);
  });

  test('repair reports the zeros a writer wrote ahead apart from the torn tail before them, and cuts both', async () => {
    const writing = await tempDir('cli-repair-zeros-writer');
    const journal = await Journal.open(writing, { maxSegmentBytes: 2048, durability: 'none' });
    await journal.appendBatch(Array.from({ length: 45 }, (_, k) => entry(k + 1)));
    // the directory as a crash would leave it: sealed segments and the live one, copied while the writer has it open
    const [live] = (await settledSegmentStates(writing)).live;
    const dir = await tempDir('cli-repair-zeros');
    await cp(writing, dir, { recursive: true, filter: (source) => !source.endsWith('.lock') });
    await journal.close();
    const path = join(dir, live!);
    const whole = await readFile(path);
    // a torn entry (its first 20 bytes: a crash mid-append), then the zeros a writer under 'fsync' keeps ahead
    const torn = Buffer.concat([whole, whole.subarray(HEADER_SIZE, HEADER_SIZE + 20), Buffer.alloc(4096)]);
    await writeFile(path, torn);
    const inspected = await runCli(['inspect', path]);
    expect(inspected.code).toBe(0);
    expect(fieldValues(inspected.stdout, 'torn tail')).toEqual([`20 bytes after byte ${whole.length}`]);
    expect(fieldValues(inspected.stdout, 'zeros written ahead')).toEqual(["4096 bytes (a live segment under 'fsync')"]);
    const dry = await runCli(['repair', dir, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ sequence: 45, truncatedBytes: 20 + 4096, zeroTailBytes: 4096, quarantine: null });
    const repaired = await runCli(['repair', dir]);
    expect(fieldValues(repaired.stdout, 'torn tail')).toEqual(['20 bytes']);
    expect(fieldValues(repaired.stdout, 'zeros written ahead')).toEqual(['4096 bytes']);
    const after = await runCli(['verify', dir]);
    expect(after.code).toBe(0);
    expect(fieldValues(after.stdout, 'sequences')).toEqual(['1..45']);
  });

  test('verify reports every problem of a directory, not only the first', async () => {
    const dir = await tempDir('cli-verify-many');
    const { files } = await writeJournal(dir, 150);
    for (const victim of [files[1]!, files[3]!]) {
      const bytes = await readFile(join(dir, victim));
      bytes[bytes.length - 40]! ^= 0x01;
      await writeFile(join(dir, victim), bytes);
    }
    const result = await runCli(['verify', dir, '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).problems.map((p: { where: string; code: string }) => [p.where, p.code])).toEqual([
      [join(dir, files[1]!), 'checksum_mismatch'],
      [join(dir, files[3]!), 'checksum_mismatch'],
    ]);
  });
});

describe('replicate', () => {
  test('waits for a journal directory that does not exist yet, then ships it', async () => {
    const dir = join(await tempDir('cli-sidecar-later'), 'graph');
    const store = await tempDir('cli-sidecar-later-store');
    const sidecar = startCli(['replicate', dir, `file://${store}`, '--interval', '50']);
    let writer: ReturnType<typeof startWriter> | undefined;
    try {
      await untilStderr(sidecar, `waiting for ${dir} to be created`);
      writer = startWriter(dir, 2048);
      await writer.waitFor(/^at 0$/m);
      writer.send('append 60');
      await writer.waitFor(/^at 60$/m);
      const { sealed } = await settledSegmentStates(dir);
      await sidecar.waitFor(/^uploaded journal-/m, (matches) => matches.length >= sealed.length);
      sidecar.kill('SIGTERM');
      const stopped = await sidecar.exited;
      expect(stopped.code).toBe(0);
      expect(stopped.stdout).toContain(`replicating ${dir} to`);
    } finally {
      writer?.kill('SIGKILL');
      await writer?.exited;
      sidecar.kill('SIGKILL');
      await sidecar.exited;
    }
  });

  test('a stop signal while waiting for the journal directory exits 0', async () => {
    const dir = join(await tempDir('cli-sidecar-never'), 'graph');
    const sidecar = startCli(['replicate', dir, `file://${await tempDir('cli-sidecar-never-store')}`, '--interval', '50']);
    await untilStderr(sidecar, 'waiting for');
    sidecar.kill('SIGTERM');
    const stopped = await sidecar.exited;
    expect(stopped.code).toBe(0);
  });

  test('ships the segments another process seals, serves metrics, and drains on SIGTERM', async () => {
    const dir = await tempDir('cli-sidecar');
    const store = await tempDir('cli-sidecar-store');
    const writer = startWriter(dir, 2048);
    try {
      await writer.waitFor(/^at 0$/m);
      writer.send('append 60');
      await writer.waitFor(/^at 60$/m);

      const sidecar = startCli(['replicate', dir, `file://${store}`, '--db', 'sidecar', '--prefix', 'wal', '--interval', '50', '--metrics-addr', '127.0.0.1:0']);
      const metricsUrl = (await sidecar.waitFor(/^metrics on (http:\/\/\S+)$/m))[0]![1]!;
      const first = await settledSegmentStates(dir);
      expect(first.sealed.length).toBeGreaterThan(1);
      expect(first.live).toHaveLength(1);
      await sidecar.waitFor(/^uploaded journal-/m, (matches) => matches.length >= first.sealed.length);

      // The writer keeps going: the sidecar ships what it seals next, while running.
      writer.send('append 60');
      await writer.waitFor(/^at 120$/m);
      const second = await settledSegmentStates(dir);
      expect(second.sealed.length).toBeGreaterThan(first.sealed.length);
      const uploads = await sidecar.waitFor(/^uploaded (journal-\S+) -> (\S+)/m, (matches) => matches.length >= second.sealed.length);
      expect(uploads.map((match) => match[1]).sort()).toEqual(second.sealed);
      expect(uploads.every((match) => match[2]!.startsWith('wal/sidecar/0000/'))).toBe(true);

      const metrics = await fetch(metricsUrl);
      expect(metrics.status).toBe(200);
      const text = await metrics.text();
      expect(text).toContain(`graphstream_segments_uploaded_total{db="sidecar"} ${second.sealed.length}`);
      expect(text).toMatch(/graphstream_upload_bytes_total\{db="sidecar"\} [1-9]\d*/);
      expect((await fetch(new URL('/nothing', metricsUrl))).status).toBe(404);

      sidecar.kill('SIGTERM');
      const stopped = await sidecar.exited;
      expect(stopped.code).toBe(0);
      expect(stopped.stdout).toMatch(new RegExp(`stopped: ${second.sealed.length} segment\\(s\\) uploaded`));

      // The live segment was left alone: still unsealed, and not in storage.
      const after = await segmentStates(dir);
      expect(after.live).toEqual(second.live);
      const verified = await runCli(['verify', `file://${store}/wal/sidecar`]);
      expect(verified.code).toBe(0);
      const [range] = fieldValues(verified.stdout, 'sequences');
      const liveFirst = Number(second.live[0]!.slice(8, 24));
      expect(range).toBe(`1..${liveFirst - 1}`);
    } finally {
      writer.kill('SIGKILL');
      await writer.exited;
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('promote', () => {
  test('takes over once the leader released its lease, ships what the new writer seals into the new generation, and releases on SIGTERM', async () => {
    const store = await tempDir('cli-promote-store');
    const storage = new LocalStorage(store);
    // a TTL of a minute: only the release lets the standby in within the test's time
    const leader = await Journal.open(await tempDir('cli-promote-leader'), { maxSegmentBytes: 2048 });
    const uploader = new Uploader({ journal: leader, storage, db: 'graph', lease: { ttlMs: 60_000 } });
    for (let i = 1; i <= 50; i += 10) await leader.appendBatch(Array.from({ length: 10 }, (_, k) => entry(i + k)));
    await uploader.release();
    await leader.close();

    const dir = await tempDir('cli-promote-standby');
    const standby = startCli(['promote', `file://${store}`, '--db', 'graph', '--dir', dir, '--holder', 'standby-b']);
    await standby.waitFor(/^promoted in \d+ ms$/m);
    await standby.waitFor(/^\s*prev hash:/m);
    expect(fieldValues(standby.stdout, 'holder')).toEqual(['standby-b']);
    expect(fieldValues(standby.stdout, 'generation')).toEqual(['1']);
    expect(fieldValues(standby.stdout, 'start sequence')).toEqual(['51']);

    // The application now writes the directory; the standby ships what it seals into generation 1.
    const writer = await Journal.open(dir, { maxSegmentBytes: 2048 });
    expect(writer.sequence).toBe(50);
    await writer.appendBatch(Array.from({ length: 20 }, (_, k) => entry(1000 + k)));
    const sealed = basename((await writer.sealForUpload())!);
    await writer.close();
    await standby.waitFor(new RegExp(`^uploaded ${sealed} -> graph/0001/`, 'm'));
    standby.kill('SIGTERM');
    const stopped = await standby.exited;
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toContain('released the lease');
    const taken = new Lease({ storage, db: 'graph', ttlMs: 60_000 });
    await taken.acquire({ wait: false }); // released: taken at once
    await taken.release(); // held, a lease naming a generation without a record holds readers back (FORMAT.md)

    const reader = new Follower({ storage, db: 'graph', dir: await tempDir('cli-promote-reader') });
    const caughtUp = await reader.catchUp();
    expect(caughtUp.sequence).toBe(70);
    expect(caughtUp.chainHash.equals(writer.chainHash)).toBe(true);
  });
});

describe('replicate --config (the sidecar)', () => {
  function configYaml(databases: { db: string; bucket: string }[]): string {
    const lines = ['addr: 127.0.0.1:0', 'databases:'];
    for (const { db, bucket } of databases) {
      lines.push(`  - dir: \${JOURNALS}/${db}`, '    replicas:', `      - url: s3://${bucket}`, '        prefix: wal/', '        endpoint: ${S3_ENDPOINT}', '        path-style: true', '        interval: 50');
    }
    return `${lines.join('\n')}\n`;
  }

  test('a replica with age recipients uploads only encrypted objects, which verify reads with the identity', async () => {
    const journals = await tempDir('cli-sidecar-age');
    const store = await tempDir('cli-sidecar-age-store');
    const keyFile = join(ROOT, '__test__/fixtures/age/test-key.txt');
    const recipient = /^# public key: (age1\w+)$/m.exec(await readFile(keyFile, 'utf8'))![1]!;
    await writeJournal(join(journals, 'secret'), 60);
    const sealed = (await segmentStates(join(journals, 'secret'))).sealed.length;
    const file = join(journals, 'graphstream.yml');
    const yaml = ['databases:', '  - dir: ${JOURNALS}/secret', '    replicas:', `      - url: file://${store}`, '        interval: 50', '        encryption:', `          age-recipients: [${recipient}]`];
    await writeFile(file, `${yaml.join('\n')}\n`);
    const sidecar = startCli(['replicate', '--config', file], { env: { JOURNALS: journals } });
    try {
      await sidecar.waitFor(/^uploaded (\w+) journal-/m, (matches) => matches.length >= sealed);
      sidecar.kill('SIGTERM');
      expect((await sidecar.exited).code).toBe(0);
    } finally {
      sidecar.kill('SIGKILL');
      await sidecar.exited;
    }
    const storage = new LocalStorage(store);
    const keys = await storage.list('secret/');
    expect(keys).toHaveLength(sealed);
    for (const key of keys) expect(Buffer.from((await storage.get(key))!).subarray(0, 22).toString('latin1')).toBe('age-encryption.org/v1\n');
    expect((await runCli(['verify', `file://${store}/secret`])).code).toBe(1);
    expect((await runCli(['verify', `file://${store}/secret`, '--age-identity-file', keyFile])).code).toBe(0);
  });

  test('three databases, one with a bucket that does not exist: the others ship; SIGHUP adds a fourth; SIGTERM drains all and exits 0', async () => {
    const journals = await tempDir('cli-sidecar-config');
    const [good, other] = await Promise.all([createTestBucket('cli-sidecar-a'), createTestBucket('cli-sidecar-b')]);
    const missing = `${good}-absent`;
    const dbs = ['alpha', 'beta', 'gamma', 'delta'];
    const sealed = new Map<string, number>();
    for (const db of dbs) {
      await writeJournal(join(journals, db), 60);
      sealed.set(db, (await segmentStates(join(journals, db))).sealed.length);
    }
    const file = join(journals, 'graphstream.yml');
    await writeFile(file, configYaml([{ db: 'alpha', bucket: good }, { db: 'beta', bucket: other }, { db: 'gamma', bucket: missing }]));
    const env = { ...s3Env(), AWS_ENDPOINT_URL: undefined, JOURNALS: journals, S3_ENDPOINT: s3Endpoint(), GRAPHSTREAM_UPLOAD_CONCURRENCY: '3' };
    const sidecar = startCli(['replicate', '--config', file, '--memory-bytes', '64MiB'], { env });
    try {
      const base = (await sidecar.waitFor(/^serving (http:\/\/\S+)\/metrics/m))[0]![1]!;
      const uploadsOf = (db: string) => (matches: RegExpMatchArray[]) => matches.filter((match) => match[1] === db).length >= sealed.get(db)!;
      await sidecar.waitFor(/^uploaded (\w+) journal-/m, uploadsOf('alpha'));
      await sidecar.waitFor(/^uploaded (\w+) journal-/m, uploadsOf('beta'));
      type Status = {
        ready: boolean;
        limits: Record<string, number>;
        replicas: { db: string; state: string; uploaded: number; error: { code: string; message: string } | null }[];
      };
      let status: Status;
      do status = (await (await fetch(`${base}/status`)).json()) as Status;
      while (status.replicas.find((replica) => replica.db === 'gamma')!.error === null);
      expect(status.ready).toBe(false);
      // the limits' flag and variable win over the file's (which has none)
      expect(status.limits).toMatchObject({ uploadConcurrency: 3, memoryBytes: 64 * 1024 * 1024, maxPutsInFlight: expect.any(Number) });
      expect(status.limits.downloadConcurrency).toBeUndefined();
      const byDb = new Map(status.replicas.map((replica) => [replica.db, replica]));
      expect(byDb.get('alpha')).toMatchObject({ state: 'running', uploaded: sealed.get('alpha'), error: null });
      expect(byDb.get('beta')).toMatchObject({ state: 'running', uploaded: sealed.get('beta'), error: null });
      expect(byDb.get('gamma')!.uploaded).toBe(0);
      expect(byDb.get('gamma')!.error).toMatchObject({ code: 'not_found', message: expect.stringContaining(missing) });
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toContain(`graphstream_segments_uploaded_total{db="alpha",replica="0"} ${sealed.get('alpha')}`);
      expect(metrics).toContain(`graphstream_segments_uploaded_total{db="beta",replica="0"} ${sealed.get('beta')}`);
      expect(metrics).toMatch(/^process_cpu_user_seconds_total \d/m);
      expect(metrics).toMatch(/^nodejs_heap_size_total_bytes \d/m);

      const addr = new URL(base).host;
      const shown = await runCli(['status', '--addr', addr]);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/: NOT READY\n/);
      expect(shown.stdout).toMatch(/^gamma\s+0\s+s3:\/\/\S+-absent\/wal\/\s+running\s+\d+ \([\d.]+ s\)\s+0 \(0 B\)\s+\[not_found\]/m);
      expect(shown.stdout).toMatch(/^not ready: gamma \(0\): its last upload failed \[not_found\]/m);
      const shownJson = JSON.parse((await runCli(['status', '--json'], { env: { GRAPHSTREAM_ADDR: addr } })).stdout) as Status;
      expect(shownJson.replicas.map((replica) => replica.db).sort()).toEqual(['alpha', 'beta', 'gamma']);

      // SIGHUP: gamma goes, delta comes
      await writeFile(file, configYaml([{ db: 'alpha', bucket: good }, { db: 'beta', bucket: other }, { db: 'delta', bucket: other }]));
      sidecar.kill('SIGHUP');
      await sidecar.waitFor(/^reloaded .*: added \[delta\], removed \[gamma\]$/m);
      await sidecar.waitFor(/^uploaded (\w+) journal-/m, uploadsOf('delta'));
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);

      sidecar.kill('SIGTERM');
      const stopped = await sidecar.exited;
      expect(stopped.code).toBe(0);
      expect(stopped.stdout).toMatch(/^stopped: 3 replica\(s\)/m);
      // alpha and beta were shipped once each: no re-upload after the reload
      expect([...stopped.stdout.matchAll(/^uploaded alpha journal-/gm)]).toHaveLength(sealed.get('alpha')!);
      for (const [db, bucket] of [['alpha', good], ['beta', other], ['delta', other]] as const) {
        const verified = await runCli(['verify', `s3://${bucket}/wal/${db}`], { env: s3Env() });
        expect(verified.code, db).toBe(0);
        expect(fieldValues(verified.stdout, 'segments'), db).toEqual([String(sealed.get(db))]);
      }
    } finally {
      sidecar.kill('SIGKILL');
      await sidecar.exited;
    }
  });

  test('config errors name the file, the line and the field', async () => {
    const cases: [string, RegExp][] = [
      ['databases:\n  - dir: /x\n    replicas:\n      - url: s3://b\n        interval: soon\n', /^\/etc\/gs\.yml:5: databases\[0\]\.replicas\[0\]\.interval: expected an integer/],
      ['databases:\n  - dir: /x\n    replicas: []\n', /^\/etc\/gs\.yml:3: databases\[0\]\.replicas: expected at least one replica/],
      ['databases:\n  - dir: /x\n    replica: []\n', /^\/etc\/gs\.yml:3: databases\[0\]\.replica: unknown field/],
      ['databases:\n  - dir: ${NOPE}\n', /^\/etc\/gs\.yml:2: databases\[0\]\.dir: \$\{NOPE\} is not set/],
      ['databases:\n  - dir: /x\n    lease: { holder: a, ttl: 10 }\n    replicas: [{ url: "s3://b" }]\n', /^\/etc\/gs\.yml:3: databases\[0\]\.lease\.ttl: expected an integer in 3000\.\./],
      ['databases:\n  - dir: /x\n    replicas:\n      - url: s3://b\n        encryption: { age-recipients: [nope] }\n', /^\/etc\/gs\.yml:5: .*age-recipients\[0\]: expected an age recipient/],
      ['databases: [\n', /^\/etc\/gs\.yml:\d+: yaml: /],
      // limits, readiness, retention and compaction
      ['limits: { upload-concurrency: 0 }\ndatabases: []\n', /^\/etc\/gs\.yml:1: limits\.upload-concurrency: expected an integer in 1\.\./],
      ['limits: { memory-bytes: 12 parsecs }\ndatabases: []\n', /^\/etc\/gs\.yml:1: limits\.memory-bytes: expected a size in bytes/],
      ['databases:\n  - dir: /x\n    readiness: { max-lag-seconds: soon }\n    replicas: [{ url: "s3://b" }]\n', /^\/etc\/gs\.yml:3: databases\[0\]\.readiness\.max-lag-seconds: expected an integer/],
      ['databases:\n  - dir: /x\n    replicas:\n      - url: s3://b\n        retention: { remote: 24h }\n', /^\/etc\/gs\.yml:5: databases\[0\]\.replicas\[0\]\.retention\.remote: needs compaction on this replica/],
      ['databases:\n  - dir: /x\n    replicas:\n      - url: s3://b\n        retention: { local: 3 fortnights }\n', /^\/etc\/gs\.yml:5: databases\[0\]\.replicas\[0\]\.retention\.local: expected a duration/],
      ['databases:\n  - dir: /x\n    replicas:\n      - url: s3://b\n        retention: { keep: 1 }\n', /^\/etc\/gs\.yml:5: databases\[0\]\.replicas\[0\]\.retention\.keep: unknown field \(known: local, local-max-bytes, remote, remote-keep-last\)/],
      ['databases:\n  - dir: /x\n    replicas:\n      - url: s3://b\n        compaction: { threshold: 1 }\n', /^\/etc\/gs\.yml:5: databases\[0\]\.replicas\[0\]\.compaction\.threshold: expected an integer in 2\.\./],
      ['databases:\n  - dir: /x\n    replicas:\n      - url: s3://b\n        compaction: { max-output-bytes: 1GiB }\n', /^\/etc\/gs\.yml:5: databases\[0\]\.replicas\[0\]\.compaction\.max-output-bytes: expected a size in bytes in 1\.\.67108864/],
      [
        'databases:\n  - dir: /x\n    replicas:\n      - url: s3://b\n        encryption: { age-recipients: [age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq] }\n        compaction: { interval: 1h }\n',
        /^\/etc\/gs\.yml:6: databases\[0\]\.replicas\[0\]\.compaction: cannot compact an encrypted replica/,
      ],
      [
        'databases:\n  - dir: /x\n    replicas:\n      - { url: "s3://a", retention: { local: 1h } }\n      - { url: "s3://b", retention: { local: 2h } }\n',
        /^\/etc\/gs\.yml:5: databases\[0\]\.replicas\[1\]\.retention: local and local-max-bytes are the journal directory's/,
      ],
      ['databases:\n  - dir: /x\n    replicas:\n      - { url: "s3://a", name: dr }\n      - { url: "s3://b", name: dr }\n', /^\/etc\/gs\.yml:5: databases\[0\]\.replicas\[1\]\.name: replica name dr is also replicas\[0\]'s/],
    ];
    for (const [text, message] of cases) {
      expect(() => parseConfig(text, '/etc/gs.yml', {}), text).toThrow(message);
    }
    // expanded in values, after parsing: a comment's ${VAR} is left alone, a value cannot add structure
    const config = parseConfig('# ${NOT_SET}\ndatabases:\n  - dir: ${D:-/srv/users}\n    replicas: [{ url: "s3://b/${P}" }]\n', '/etc/gs.yml', { P: 'p\nevil: [' });
    expect(config.databases).toEqual([
      { db: 'users', dir: '/srv/users', readiness: { maxLagSeconds: 60, maxPendingSegments: 100 }, replicas: [{ name: '0', url: 's3://b/p\nevil: [', prefix: '', intervalMs: 1000, concurrency: 4 }] },
    ]);

    const full = parseConfig(
      [
        'limits: { upload-concurrency: 2, download-concurrency: 3, memory-bytes: 64MiB }',
        'databases:',
        '  - dir: /srv/users',
        '    readiness: { max-lag-seconds: 30, max-pending-segments: 5 }',
        '    replicas:',
        '      - url: s3://b',
        '        name: primary',
        '        retention: { local: 2h, local-max-bytes: 512MiB, remote: 7d, remote-keep-last: 3 }',
        '        compaction: { interval: 90s, threshold: 8, level: 0, max-output-bytes: 4MiB }',
      ].join('\n'),
      '/etc/gs.yml',
      {},
    );
    expect(full.limits).toEqual({ uploadConcurrency: 2, downloadConcurrency: 3, memoryBytes: 64 * 1024 * 1024 });
    expect(full.databases[0]!.readiness).toEqual({ maxLagSeconds: 30, maxPendingSegments: 5 });
    expect(full.databases[0]!.replicas[0]).toMatchObject({
      name: 'primary',
      retention: { localMs: 2 * 3_600_000, localMaxBytes: 512 * 1024 * 1024, remoteMs: 7 * 86_400_000, remoteKeepLast: 3 },
      compaction: { intervalMs: 90_000, threshold: 8, level: 0, maxOutputBytes: 4 * 1024 * 1024 },
    });

    const bad = await runCli(['replicate', '--config', join(await tempDir('cli-config-missing'), 'no-such.yml')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^graphstream: error \[not_found\]: config file /);
  });
});
