/**
 * The sidecar (`graphstream replicate --config`) in this process, against moto: limits shared by
 * every database, retention and compaction from the config, /readyz's bounds and lease states,
 * and a replica label on every series.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readdir, stat, utimes } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Journal } from '../ts/journal/journal.js';
import { ParamValue } from '../ts/payload/params.js';
import { Follower } from '../ts/replication/follower.js';
import { Lease } from '../ts/replication/lease.js';
import { leaseKey } from '../ts/replication/layout.js';
import { SharedLimits } from '../ts/replication/limits.js';
import { S3Storage } from '../ts/storage/s3.js';
import { parseConfig } from '../ts/cli/config.js';
import { Output } from '../ts/cli/output.js';
import { Sidecar, type ReplicaStatus, type SidecarStatus } from '../ts/cli/sidecar.js';
import { tempDir } from './helpers/journal-fixtures.js';
import { TEST_CREDENTIALS, TEST_REGION, createTestBucket, s3Endpoint } from './helpers/s3.js';

const saved: Record<string, string | undefined> = {};
beforeAll(() => {
  // the sidecar opens s3:// URLs as a user's would: credentials from the environment
  for (const [name, value] of Object.entries({ AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: TEST_REGION })) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
});
afterAll(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

/**
 * A proxy in front of the S3 server that counts segment puts (PUT …/*.hadbj) in flight at once,
 * holds each one `delayMs`, and holds them all while `gate` is closed.
 */
class PutWatch {
  inFlight = 0;
  maxInFlight = 0;
  puts = 0;
  delayMs = 0;
  private closedGate: { opened: Promise<void>; open(): void } | null = null;
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  endpoint = '';

  async start(target: string): Promise<this> {
    const url = new URL(target);
    this.server = createServer((req, res) => {
      const segmentPut = req.method === 'PUT' && /\.hadbj(\?|$)/.test(req.url ?? '');
      const forward = () => {
        const upstream = httpRequest({ host: url.hostname, port: url.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          answer.on('end', () => {
            if (segmentPut) this.inFlight--;
          });
        });
        upstream.on('error', () => req.socket.destroy());
        req.pipe(upstream);
      };
      if (!segmentPut) return forward();
      this.puts++;
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      const gate = this.closedGate?.opened ?? Promise.resolve();
      void gate.then(() => setTimeout(forward, this.delayMs));
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  closeGate(): void {
    let open = (): void => undefined;
    const opened = new Promise<void>((resolve) => (open = resolve));
    this.closedGate = { opened, open };
  }

  openGate(): void {
    this.closedGate?.open();
    this.closedGate = null;
  }

  async stop(): Promise<void> {
    this.openGate();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function entry(i: number) {
  return { query: 'MERGE (n:Node {id: $id}) SET n.at = $at', params: { id: i, at: ParamValue.float(i * 1.5) }, timestampMs: 1_700_000_000_000 + i };
}

/** A closed journal of `count` entries in small segments: its sealed segment files and chain hash. */
async function writeJournal(dir: string, count: number): Promise<{ files: string[]; sizes: number[]; chainHash: string }> {
  const journal = await Journal.open(dir, { maxSegmentBytes: 2048 });
  for (let i = 1; i <= count; i += 10) await journal.appendBatch(Array.from({ length: Math.min(10, count - i + 1) }, (_, k) => entry(i + k)));
  await journal.close();
  const files = (await readdir(dir)).filter((name) => name.endsWith('.hadbj')).sort();
  const sizes = await Promise.all(files.map(async (name) => (await stat(join(dir, name))).size));
  return { files, sizes, chainHash: journal.chainHash.toString('hex') };
}

function storageOf(bucket: string): S3Storage {
  return new S3Storage({ bucket, endpoint: s3Endpoint(), region: TEST_REGION, credentials: TEST_CREDENTIALS, forcePathStyle: true });
}

function quietOutput(): Output {
  const sink = new PassThrough();
  sink.resume();
  return new Output(sink, Object.assign(new PassThrough(), { isTTY: false }).resume() as PassThrough, {});
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A config of `databases`, each `{ dir, replicas: [...] }`, as YAML lines. */
function yaml(lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

function replicaOf(status: SidecarStatus, db: string, replica = '0'): ReplicaStatus {
  return status.replicas.find((candidate) => candidate.db === db && candidate.replica === replica)!;
}

describe('shared limits', () => {
  let watch: PutWatch;
  beforeAll(async () => {
    watch = await new PutWatch().start(s3Endpoint());
    watch.delayMs = 20;
  });
  afterAll(() => watch.stop());

  /** Ships three databases through the watch with `limits`; the most segment puts seen in flight at once. */
  async function shipThree(label: string, limits: string): Promise<number> {
    const journals = await tempDir(`sidecar-limits-${label}`);
    const bucket = await createTestBucket(`sidecar-limits-${label}`);
    const dbs = ['one', 'two', 'three'];
    const sealed = new Map<string, number>();
    for (const db of dbs) sealed.set(db, (await writeJournal(join(journals, db), 80)).files.length);
    const lines = [limits, 'databases:'];
    for (const db of dbs) lines.push(`  - dir: ${join(journals, db)}`, '    replicas:', `      - { url: "s3://${bucket}", prefix: wal/, endpoint: "${watch.endpoint}", path-style: true, interval: 20, concurrency: 4 }`);
    watch.maxInFlight = 0;
    const sidecar = new Sidecar(parseConfig(yaml(lines), join(journals, 'graphstream.yml'), {}), quietOutput());
    try {
      await sidecar.start();
      await until('every segment uploaded', async () => {
        const status = await sidecar.status();
        return dbs.every((db) => replicaOf(status, db).uploaded === sealed.get(db)) ? status : undefined;
      });
    } finally {
      await sidecar.stop();
    }
    // all data shipped: every sealed segment of every db is in the bucket
    const storage = storageOf(bucket);
    for (const db of dbs) expect((await storage.list(`wal/${db}/`)).filter((key) => key.endsWith('.hadbj')), db).toHaveLength(sealed.get(db)!);
    await storage.close?.();
    return watch.maxInFlight;
  }

  test('without limits, the databases put several segments at once (what the limits below prevent)', async () => {
    expect(await shipThree('none', '# no limits')).toBeGreaterThan(1);
  });

  test('limits.upload-concurrency 1: never more than one segment put in flight over all databases, and everything ships', async () => {
    expect(await shipThree('puts', 'limits: { upload-concurrency: 1 }')).toBe(1);
  });

  test('limits.memory-bytes with room for one segment only: one put at a time, everything ships', async () => {
    const probe = await writeJournal(await tempDir('sidecar-limits-probe'), 80);
    const budget = 2 * Math.min(...probe.sizes) - 1; // no two segments fit; a bigger one takes it all
    expect(await shipThree('memory', `limits: { memory-bytes: ${budget} }`)).toBe(1);
  });

  test('SharedLimits: a request waits for room, in order; one bigger than the budget takes all of it', async () => {
    const limits = new SharedLimits({ memoryBytes: 100 });
    const first = await limits.reserveBytes(60);
    const order: string[] = [];
    const big = limits.reserveBytes(500).then((free) => (order.push('big'), free));
    const small = limits.reserveBytes(10).then((free) => (order.push('small'), free));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(order).toEqual([]); // small waits behind big, though it would fit
    first();
    (await big)();
    (await small)();
    expect(order).toEqual(['big', 'small']);
    expect(limits.stats()).toMatchObject({ bytesHeld: 0, maxBytesHeld: 100 });
    expect(() => new SharedLimits({ uploadConcurrency: 0 })).toThrow(/uploadConcurrency must be a positive integer/);
  });
});

describe('readiness', () => {
  test('a replica is not ready while more sealed segments wait than max-pending-segments, or the oldest waited past max-lag-seconds; ready once shipped', async () => {
    const watch = await new PutWatch().start(s3Endpoint());
    const journals = await tempDir('sidecar-ready-lag');
    const bucket = await createTestBucket('sidecar-ready-lag');
    const { files } = await writeJournal(join(journals, 'lagging'), 60);
    expect(files.length).toBeGreaterThan(2);
    // the oldest sealed segment was written an hour ago
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(join(journals, 'lagging', files[0]!), hourAgo, hourAgo);
    watch.closeGate();
    const config = parseConfig(
      yaml([
        'addr: 127.0.0.1:0',
        'databases:',
        `  - dir: ${join(journals, 'lagging')}`,
        '    readiness: { max-lag-seconds: 60, max-pending-segments: 1 }',
        '    replicas:',
        `      - { url: "s3://${bucket}", endpoint: "${watch.endpoint}", path-style: true, interval: 20, concurrency: 1 }`,
      ]),
      join(journals, 'graphstream.yml'),
      {},
    );
    const sidecar = new Sidecar(config, quietOutput());
    try {
      const base = (await sidecar.start())!;
      const held = await until('the replica running with its puts held', async () => {
        const replica = replicaOf(await sidecar.status(), 'lagging');
        return replica.state === 'running' && replica.pendingSegments === files.length ? replica : undefined;
      });
      expect(held.ready).toBe(false);
      expect(held.lagSeconds).toBeGreaterThan(3000);
      expect(held.reasons).toEqual([
        `${files.length} sealed segments wait for upload (max-pending-segments 1)`,
        expect.stringMatching(/^its oldest sealed segment has waited \d+ s \(max-lag-seconds 60\)$/),
      ]);
      const notReady = await fetch(`${base}/readyz`);
      expect(notReady.status).toBe(503);
      expect(((await notReady.json()) as { notReady: { db: string; reasons: string[] }[] }).notReady).toEqual([
        { db: 'lagging', replica: '0', state: 'running', reasons: held.reasons },
      ]);

      watch.openGate();
      const shipped = await until('the backlog shipped', async () => {
        const replica = replicaOf(await sidecar.status(), 'lagging');
        return replica.pendingSegments === 0 && replica.uploaded === files.length ? replica : undefined;
      });
      expect(shipped).toMatchObject({ ready: true, reasons: [], lagSeconds: 0, uploaded: files.length });
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
    } finally {
      await sidecar.stop();
      await watch.stop();
    }
  });

  test('a standby waits for its lease (waiting_for_lease: ready, listed apart), then leads holding it, and is fenced once its lease is taken; a db whose lease is taken and does not wait is fenced', async () => {
    const journals = await tempDir('sidecar-ready-lease');
    const bucket = await createTestBucket('sidecar-ready-lease');
    await writeJournal(join(journals, 'standby'), 30);
    await writeJournal(join(journals, 'taken'), 30);
    await writeJournal(join(journals, 'waits'), 30);
    const storage = storageOf(bucket);
    const other = new Lease({ holder: 'host-b', ttlMs: 3000, storage, db: 'standby' });
    const taken = new Lease({ holder: 'host-b', ttlMs: 3000, storage, db: 'taken' });
    const kept = new Lease({ holder: 'host-b', ttlMs: 3000, storage, db: 'waits' });
    await Promise.all([other.acquire(), taken.acquire(), kept.acquire()]);
    const replica = `      - { url: "s3://${bucket}", endpoint: "${s3Endpoint()}", path-style: true, interval: 20 }`;
    const config = parseConfig(
      yaml([
        'addr: 127.0.0.1:0',
        'databases:',
        `  - dir: ${join(journals, 'standby')}`,
        '    lease: { holder: host-a, ttl: 3000, wait: true }',
        '    replicas:',
        replica,
        `  - dir: ${join(journals, 'taken')}`,
        '    lease: { holder: host-a, ttl: 3000, wait: false }',
        '    replicas:',
        replica,
        `  - dir: ${join(journals, 'waits')}`,
        '    lease: { holder: host-a, ttl: 3000, wait: true }',
        '    replicas:',
        replica,
      ]),
      join(journals, 'graphstream.yml'),
      {},
    );
    const sidecar = new Sidecar(config, quietOutput());
    try {
      const base = (await sidecar.start())!;
      const status = await until('the standby waiting and the other fenced', async () => {
        const current = await sidecar.status();
        return replicaOf(current, 'standby').state === 'waiting_for_lease' && replicaOf(current, 'taken').state === 'fenced' ? current : undefined;
      });
      expect(replicaOf(status, 'standby')).toMatchObject({ ready: true, reasons: [], uploaded: 0, error: null });
      expect(replicaOf(status, 'taken')).toMatchObject({ ready: false, reasons: ['fenced'], error: { code: 'fenced' } });
      const readyz = await fetch(`${base}/readyz`);
      expect(readyz.status).toBe(503); // the fenced one
      const body = (await readyz.json()) as { notReady: { db: string; state: string }[]; standby: { db: string; state: string }[] };
      expect(body.notReady.map((entry) => [entry.db, entry.state])).toEqual([['taken', 'fenced']]);
      expect(body.standby.map((entry) => [entry.db, entry.state])).toEqual([
        ['standby', 'waiting_for_lease'],
        ['waits', 'waiting_for_lease'],
      ]);

      await other.release();
      const leading = await until('the standby leading', async () => {
        const current = replicaOf(await sidecar.status(), 'standby');
        return current.state === 'running' && current.pendingSegments === 0 ? current : undefined;
      });
      expect(leading).toMatchObject({ ready: true, lease: { holder: 'host-a', state: 'held' } });
      // the lease taken from under the leader (its record deleted, another holder takes it): its next renewal finds out
      await storage.delete(leaseKey('', 'standby'));
      const thief = new Lease({ holder: 'host-c', ttlMs: 3000, storage, db: 'standby' });
      await thief.acquire();
      const fenced = await until('the leader fenced', async () => {
        const current = replicaOf(await sidecar.status(), 'standby');
        return current.state === 'fenced' ? current : undefined;
      });
      thief.stop();
      expect(fenced).toMatchObject({ ready: false, reasons: ['fenced'], lease: { holder: 'host-a', state: 'fenced' }, error: { code: 'fenced' } });
      // stopping does not wait for the lease a standby still waits for
      await sidecar.stop();
      expect(replicaOf(await sidecar.status(), 'waits')).toBeUndefined();
      expect((await storage.list('waits/')).filter((key) => key.endsWith('.hadbj'))).toEqual([]);
    } finally {
      await sidecar.stop();
      taken.stop();
      kept.stop();
      await storage.close?.();
    }
  });
});

describe('metrics', () => {
  test('two replicas of one db give two series, told apart by the replica label', async () => {
    const journals = await tempDir('sidecar-metrics');
    const [first, second] = await Promise.all([createTestBucket('sidecar-metrics-a'), createTestBucket('sidecar-metrics-b')]);
    const { files } = await writeJournal(join(journals, 'users'), 40);
    const config = parseConfig(
      yaml([
        'addr: 127.0.0.1:0',
        'databases:',
        `  - dir: ${join(journals, 'users')}`,
        '    replicas:',
        `      - { name: primary, url: "s3://${first}", endpoint: "${s3Endpoint()}", path-style: true, interval: 20 }`,
        `      - { url: "s3://${second}", endpoint: "${s3Endpoint()}", path-style: true, interval: 20 }`,
      ]),
      join(journals, 'graphstream.yml'),
      {},
    );
    const sidecar = new Sidecar(config, quietOutput());
    try {
      const base = (await sidecar.start())!;
      await until('both replicas shipped', async () => {
        const status = await sidecar.status();
        return status.replicas.every((replica) => replica.uploaded === files.length) ? status : undefined;
      });
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text).toContain(`graphstream_segments_uploaded_total{db="users",replica="primary"} ${files.length}`);
      expect(text).toContain(`graphstream_segments_uploaded_total{db="users",replica="1"} ${files.length}`);
      expect(text).not.toMatch(/graphstream_segments_uploaded_total\{db="users"\}/);
    } finally {
      await sidecar.stop();
    }
  });
});

describe('retention and compaction', () => {
  test('compaction runs on its interval and deletes superseded originals (retention.remote), local retention deletes uploaded segments; the chain stays whole', async () => {
    const journals = await tempDir('sidecar-compaction');
    const bucket = await createTestBucket('sidecar-compaction');
    const { files, chainHash } = await writeJournal(join(journals, 'graph'), 120);
    expect(files.length).toBeGreaterThan(4);
    const config = parseConfig(
      yaml([
        'databases:',
        `  - dir: ${join(journals, 'graph')}`,
        '    replicas:',
        `      - url: s3://${bucket}`,
        `        endpoint: ${s3Endpoint()}`,
        '        path-style: true',
        '        prefix: wal/',
        '        interval: 20',
        '        retention: { local: 0, remote: 0, remote-keep-last: 1 }',
        '        compaction: { interval: 50ms, threshold: 2 }',
      ]),
      join(journals, 'graphstream.yml'),
      {},
    );
    const storage = storageOf(bucket);
    const sidecar = new Sidecar(config, quietOutput());
    try {
      await sidecar.start();
      const keys = await until('compacted, and all originals but the newest deleted', async () => {
        const status = replicaOf(await sidecar.status(), 'graph');
        if (status.uploaded !== files.length) return undefined;
        const listed = await storage.list('wal/graph/');
        const originals = listed.filter((key) => key.startsWith('wal/graph/0000/'));
        const compacted = listed.filter((key) => key.startsWith('wal/graph/8000/'));
        // the pass reports once its retention is done, after its objects appeared
        const reported = status.compaction!.deleted === files.length - 1;
        return originals.length === 1 && compacted.length > 0 && reported ? { originals, compacted, status } : undefined;
      });
      expect(keys.status.compaction).toMatchObject({ error: null });
      expect(keys.status.compaction!.compacted).toBe(keys.compacted.length);
      expect(keys.status.compaction!.deleted).toBe(files.length - 1);
      // local retention 0: every uploaded segment but the newest (recovery reads the chain tip from it) leaves the directory
      const local = await until('local cleanup', async () => {
        const left = (await readdir(join(journals, 'graph'))).filter((name) => name.endsWith('.hadbj'));
        return left.length === 1 ? left : undefined;
      });
      expect(local).toEqual([files.at(-1)]);
    } finally {
      await sidecar.stop();
    }
    // what is left in storage is the whole chain
    const follower = new Follower({ storage, prefix: 'wal/', db: 'graph', dir: await tempDir('sidecar-compaction-follower') });
    const caughtUp = await follower.catchUp();
    await follower.close();
    expect(caughtUp.sequence).toBe(120);
    expect(caughtUp.chainHash.toString('hex')).toBe(chainHash);
    await storage.close?.();
  });

  test("under a lease, compaction works in the generation the replica's uploader writes (a later leader's), and leaves the earlier one alone", async () => {
    const journals = await tempDir('sidecar-compaction-lease');
    const bucket = await createTestBucket('sidecar-compaction-lease');
    const dir = join(journals, 'graph');
    const first = await writeJournal(dir, 60);
    const replica = [`      - url: s3://${bucket}`, `        endpoint: ${s3Endpoint()}`, '        path-style: true', '        prefix: wal/', '        interval: 20'];
    const configFor = (holder: string, extra: string[]) =>
      parseConfig(yaml(['databases:', `  - dir: ${dir}`, `    lease: { holder: ${holder}, ttl: 3000, wait: true }`, '    replicas:', ...replica, ...extra]), join(journals, 'graphstream.yml'), {});
    const storage = storageOf(bucket);
    // generation 0: an earlier leader ships the first 60 entries, then goes away (its lease expires)
    const earlier = new Sidecar(configFor('host-x', []), quietOutput());
    await earlier.start();
    await until('the earlier leader shipped', async () => (replicaOf(await earlier.status(), 'graph').uploaded === first.files.length ? true : undefined));
    await earlier.stop();
    const journal = await Journal.open(dir, { maxSegmentBytes: 2048 });
    for (let i = 61; i <= 120; i += 10) await journal.appendBatch(Array.from({ length: 10 }, (_, k) => entry(i + k)));
    await journal.close();
    const chainHash = journal.chainHash.toString('hex');
    const sealedAfter = (await readdir(dir)).filter((name) => name.endsWith('.hadbj') && !first.files.includes(name)).length;
    expect(sealedAfter).toBeGreaterThan(3);

    const later = new Sidecar(configFor('host-a', ['        retention: { remote: 0 }', '        compaction: { interval: 50ms, threshold: 2 }']), quietOutput());
    try {
      await later.start();
      const done = await until('the later leader compacted its generation', async () => {
        const status = replicaOf(await later.status(), 'graph');
        if (status.uploaded !== sealedAfter || status.compaction!.deleted !== sealedAfter - 1) return undefined;
        return { status, listed: await storage.list('wal/graph/') };
      });
      expect(done.status.lease).toMatchObject({ holder: 'host-a', generation: 1 });
      const inFolder = (folder: string) => done.listed.filter((key) => key.startsWith(`wal/graph/${folder}/`));
      expect(inFolder('0000')).toHaveLength(first.files.length); // the earlier generation: not compacted, nothing deleted
      expect(inFolder('8000')).toEqual([]);
      expect(inFolder('0001')).toHaveLength(1);
      expect(inFolder('8001').length).toBeGreaterThan(0);
    } finally {
      await later.stop();
    }
    const follower = new Follower({ storage, prefix: 'wal/', db: 'graph', dir: await tempDir('sidecar-compaction-lease-follower') });
    const caughtUp = await follower.catchUp();
    await follower.close();
    expect(caughtUp.sequence).toBe(120);
    expect(caughtUp.chainHash.toString('hex')).toBe(chainHash);
    await storage.close?.();
  });
});
