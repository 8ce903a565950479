/**
 * The sidecar of `graphstream replicate --config`: one process shipping every database of a config
 * file to each of its replicas. Each replica runs on its own: a journal directory that does not
 * exist yet is waited for, and a replica that cannot start or whose uploads fail (a bucket that
 * does not exist) is reported in /status and /readyz while the others go on. `reload` applies a
 * new config (databases added, removed or changed); `stop` drains every uploader.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { GraphstreamMetrics } from '../metrics.js';
import { runBackgroundCompaction, type BackgroundCompaction, type CompactionConfigInit } from '../replication/compaction.js';
import type { CacheConfig } from '../replication/cache.js';
import { SharedLimits, type SharedLimitsStats } from '../replication/limits.js';
import { Uploader } from '../replication/uploader.js';
import { objectName } from '../storage/names.js';
import { openStorage, type OpenStorageOptions, type SegmentStorage } from '../storage/index.js';
import { loadConfig, type CompactionSchedule, type DatabaseConfig, type LimitsConfig, type ReplicaConfig, type SidecarConfig } from './config.js';
import { Output, formatBytes } from './output.js';
import { stopSignals } from './signals.js';

/**
 * Waits until `directory` exists (the sidecar may start before the writer has created its journal),
 * looking every `intervalMs`; false when `stop` came first.
 */
export async function waitForDirectory(directory: string, intervalMs: number, stop: Promise<unknown>, output: Output): Promise<boolean> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  for (let noted = false; ; noted = true) {
    const info = await stat(directory).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw toGraphstreamError(err, `journal directory ${directory}`);
    });
    if (info !== null) {
      if (!info.isDirectory()) throw new GraphstreamError('invalid_argument', `${directory} is not a directory`);
      return true;
    }
    if (!noted) output.note(`graphstream: waiting for ${directory} to be created`);
    await Promise.race([stop, new Promise((resolveWait) => setTimeout(resolveWait, intervalMs))]);
    if (stopped) return false;
  }
}

/**
 * - waiting: for its journal directory to be created
 * - waiting_for_lease: a standby, while another writer holds the db's lease (not an error)
 * - running: uploading (under its lease, where the db has one)
 * - failed: could not start (the error says why); fenced: it lost its lease and uploads nothing more
 */
export type ReplicaState = 'waiting' | 'waiting_for_lease' | 'running' | 'failed' | 'fenced' | 'stopped';

export interface ReplicaStatus {
  db: string;
  /** the replica's name (its `replica` metric label) */
  replica: string;
  url: string;
  prefix: string;
  state: ReplicaState;
  /** counts for /readyz: running within its bounds, and holding its lease where it has one */
  ready: boolean;
  /** why it is not ready (empty when it is, and for a standby) */
  reasons: string[];
  uploaded: number;
  failedAttempts: number;
  bytes: number;
  /** sealed segments not uploaded yet, and how long the oldest of them has waited (null until running) */
  pendingSegments: number | null;
  lagSeconds: number | null;
  lease: { holder: string; state: string; epoch: number; generation: number } | null;
  compaction: { compacted: number; deleted: number; error: { code: string; message: string } | null } | null;
  /** the last failure, until an upload succeeds after it */
  error: { code: string; message: string } | null;
}

/** One database shipped to one replica. */
class ReplicaRunner {
  private state: ReplicaState = 'waiting';
  private error: GraphstreamError | null = null;
  private uploader: Uploader | null = null;
  private storage: SegmentStorage | null = null;
  private compaction: BackgroundCompaction | null = null;
  private readonly compacted = { compacted: 0, deleted: 0, error: null as GraphstreamError | null };
  private readonly stopping: { promise: Promise<void>; resolve: () => void };
  private stopRequested = false;
  private readonly running: Promise<void>;

  constructor(
    readonly database: DatabaseConfig,
    readonly replica: ReplicaConfig,
    private readonly metrics: GraphstreamMetrics,
    private readonly limits: SharedLimits,
    private readonly output: Output,
  ) {
    let resolveStop = (): void => undefined;
    this.stopping = { promise: new Promise((resolveStopping) => (resolveStop = resolveStopping)), resolve: () => resolveStop() };
    this.running = this.run().catch((err: unknown) => {
      if (!this.stopRequested) this.fail(toGraphstreamError(err));
    });
  }

  private get name(): string {
    return `${this.database.db} -> ${this.replica.url} (${this.replica.name})`;
  }

  private fail(error: GraphstreamError): void {
    this.state = error.code === 'fenced' ? 'fenced' : 'failed';
    this.error = error;
    this.output.note(`graphstream: error [${error.code}]: ${this.name}: ${error.message}`);
  }

  private async run(): Promise<void> {
    const { database, replica } = this;
    if (!(await waitForDirectory(database.dir, replica.intervalMs, this.stopping.promise, this.output))) return;
    const options: OpenStorageOptions = {};
    if (replica.endpoint !== undefined) options.endpoint = replica.endpoint;
    if (replica.region !== undefined) options.region = replica.region;
    if (replica.pathStyle === true) options.forcePathStyle = true;
    this.storage = await openStorage(replica.url, options);
    const cache: Partial<CacheConfig> = {};
    if (replica.retention?.localMs !== undefined) cache.retentionMs = replica.retention.localMs;
    if (replica.retention?.localMaxBytes !== undefined) cache.maxBytes = replica.retention.localMaxBytes;
    const uploader = new Uploader({
      directory: database.dir,
      storage: this.storage,
      db: database.db,
      prefix: replica.prefix,
      sealIntervalMs: replica.intervalMs,
      concurrency: replica.concurrency,
      metrics: this.metrics,
      limits: this.limits,
      cache,
      ...(database.lease === undefined ? {} : { lease: database.lease }),
      ...(replica.encryption === undefined ? {} : { encryption: { recipients: replica.encryption.ageRecipients } }),
    });
    this.uploader = uploader;
    uploader.on('uploaded', (record) => this.output.print(`uploaded ${database.db} ${record.name} -> ${objectName(this.storage!.description, record.key)} (${formatBytes(record.size)})`));
    uploader.on('error', (err) => this.output.note(`graphstream: warning [${err.code}]: ${this.name}: ${err.message}`));
    uploader.on('fenced', (err: GraphstreamError) => {
      this.state = 'fenced';
      this.error = err;
      void this.compaction?.stop();
    });
    if (database.lease !== undefined) this.state = 'waiting_for_lease';
    await uploader.start();
    if (this.state === 'waiting' || this.state === 'waiting_for_lease') this.state = 'running';
    this.output.print(`replicating ${database.dir} to ${this.storage.description.replace(/\/?$/, '/')}${replica.prefix}${database.db}/ (${replica.name})`);
    if (replica.compaction !== undefined && this.state === 'running') this.startCompaction(uploader, replica.compaction);
  }

  /** Compacts what the uploader puts, in its generation (the lease's, under a lease), on the replica's schedule. */
  private startCompaction(uploader: Uploader, schedule: CompactionSchedule): void {
    const { retention } = this.replica;
    const config: CompactionConfigInit = {};
    if (schedule.threshold !== undefined) config.threshold = schedule.threshold;
    if (schedule.level !== undefined) config.level = schedule.level;
    if (schedule.maxOutputBytes !== undefined) config.maxOutputBytes = schedule.maxOutputBytes;
    if (retention?.remoteMs !== undefined || retention?.remoteKeepLast !== undefined) {
      config.retention = {};
      if (retention.remoteMs !== undefined) config.retention.minAgeMs = retention.remoteMs;
      if (retention.remoteKeepLast !== undefined) config.retention.keepLast = retention.remoteKeepLast;
    }
    this.compaction = runBackgroundCompaction({
      storage: this.limits.wrap(this.storage!),
      prefix: this.replica.prefix,
      db: this.database.db,
      generation: uploader.generation,
      config,
      intervalMs: schedule.intervalMs,
      onCompacted: (result) => {
        this.compacted.compacted += result.compacted.length;
        this.compacted.deleted += result.deleted.length;
        this.compacted.error = null;
        this.output.print(`compacted ${this.database.db} (${this.replica.name}): ${result.compacted.length} segment(s) made, ${result.deleted.length} original(s) deleted`);
      },
      onError: (err) => {
        this.compacted.error = err;
        this.output.note(`graphstream: warning [${err.code}]: ${this.name}: compaction: ${err.message}`);
      },
    });
  }

  /** Drains the uploads in flight and stops. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    this.stopping.resolve();
    await this.compaction?.stop();
    // a standby still waiting for its lease is told to stop waiting
    if (this.state === 'waiting_for_lease') await this.uploader?.stop();
    await this.running;
    try {
      await this.uploader?.stop();
    } finally {
      await this.storage?.close?.();
      if (this.state !== 'failed' && this.state !== 'fenced') this.state = 'stopped';
    }
  }

  async status(now = Date.now()): Promise<ReplicaStatus> {
    // one snapshot: the uploader can be fenced while the backlog is read
    const state = this.state;
    const uploader = this.uploader;
    const stats = uploader?.stats();
    const error = this.error ?? stats?.lastError ?? null;
    const held = uploader?.lease ?? null;
    const lease = held === null ? null : { holder: held.holder, state: held.state, epoch: held.epoch, generation: held.generation };
    const reasons: string[] = [];
    let backlog: { segments: number; oldestWrittenMs: number | null } | null = null;
    if (state === 'running' && uploader !== null) {
      backlog = await uploader.backlog().catch((err: unknown) => {
        reasons.push(`its backlog cannot be read: ${toGraphstreamError(err).message}`);
        return null;
      });
    }
    const lagSeconds = backlog === null ? null : backlog.oldestWrittenMs === null ? 0 : Math.max(0, (now - backlog.oldestWrittenMs) / 1000);
    const { maxLagSeconds, maxPendingSegments } = this.database.readiness;
    if (state !== 'running' && state !== 'waiting_for_lease') reasons.push(state === 'waiting' ? `waiting for ${this.database.dir}` : state);
    if (state === 'running') {
      if (stats?.lastError) reasons.push(`its last upload failed [${stats.lastError.code}]`);
      if (lease !== null && lease.state !== 'held') reasons.push(`its lease is ${lease.state}, not held`);
      if (backlog !== null && backlog.segments > maxPendingSegments) reasons.push(`${backlog.segments} sealed segments wait for upload (max-pending-segments ${maxPendingSegments})`);
      if (lagSeconds !== null && lagSeconds > maxLagSeconds) reasons.push(`its oldest sealed segment has waited ${Math.round(lagSeconds)} s (max-lag-seconds ${maxLagSeconds})`);
    }
    const plain = (err: GraphstreamError | null) => (err === null ? null : { code: err.code, message: err.message });
    return {
      db: this.database.db,
      replica: this.replica.name,
      url: this.replica.url,
      prefix: this.replica.prefix,
      state,
      ready: state === 'waiting_for_lease' || reasons.length === 0,
      reasons,
      uploaded: stats?.succeeded ?? 0,
      failedAttempts: stats?.failed ?? 0,
      bytes: stats?.bytes ?? 0,
      pendingSegments: backlog?.segments ?? null,
      lagSeconds: lagSeconds === null ? null : Math.round(lagSeconds * 1000) / 1000,
      lease,
      compaction: this.replica.compaction === undefined ? null : { compacted: this.compacted.compacted, deleted: this.compacted.deleted, error: plain(this.compacted.error) },
      error: plain(error),
    };
  }
}

export interface SidecarStatus {
  config: string;
  /** every replica ready (a standby waiting for its lease counts as ready) */
  ready: boolean;
  /** the limits in force (unlimited where absent) and how much of them is in use */
  limits: LimitsConfig & SharedLimitsStats;
  replicas: ReplicaStatus[];
}

export class Sidecar {
  private runners = new Map<string, ReplicaRunner[]>();
  private readonly metrics = new Map<string, GraphstreamMetrics>();
  private server: Server | null = null;
  private registry: Registry | null = null;
  /** shared by every database: set at start, from the config's limits */
  readonly limits: SharedLimits;
  private readonly limitsConfig: LimitsConfig;

  constructor(
    private config: SidecarConfig,
    private readonly output: Output,
  ) {
    this.limitsConfig = { ...config.limits };
    this.limits = new SharedLimits(config.limits);
  }

  /** Starts every database; serves HTTP on the config's addr, when it has one. Resolves with its URL. */
  async start(): Promise<string | null> {
    // one registry: the per-database series (label db) and the process and Node.js metrics
    const { Registry, collectDefaultMetrics } = await import('prom-client');
    this.registry = new Registry();
    collectDefaultMetrics({ register: this.registry });
    this.apply(this.config);
    if (this.config.addr === undefined) return null;
    this.server = await this.serve(this.config.addr);
    const { address, port } = this.server.address() as AddressInfo;
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  /** Applies a new config: databases no longer listed, or changed, stop; new ones start. */
  async reload(config: SidecarConfig): Promise<{ added: string[]; removed: string[] }> {
    const next = new Map(config.databases.map((database) => [database.db, database]));
    const removed: string[] = [];
    for (const [db, runners] of this.runners) {
      const wanted = next.get(db);
      if (wanted !== undefined && JSON.stringify(wanted) === JSON.stringify(runners[0]!.database)) continue;
      removed.push(db);
      this.runners.delete(db);
      await Promise.all(runners.map((runner) => runner.stop()));
    }
    if (JSON.stringify(config.limits) !== JSON.stringify(this.config.limits)) {
      this.output.note('graphstream: warning: limits are read at start; the new ones apply after a restart');
    }
    this.config = config;
    return { added: this.apply(config), removed };
  }

  private apply(config: SidecarConfig): string[] {
    const added: string[] = [];
    for (const database of config.databases) {
      if (this.runners.has(database.db)) continue;
      added.push(database.db);
      this.runners.set(
        database.db,
        database.replicas.map((replica) => new ReplicaRunner(database, replica, this.metricsOf(database.db, replica.name), this.limits, this.output)),
      );
    }
    return added;
  }

  /** One per db and replica: series labelled db and replica, so that two replicas of one db do not collide. */
  private metricsOf(db: string, replica: string): GraphstreamMetrics {
    const key = JSON.stringify([db, replica]);
    let metrics = this.metrics.get(key);
    if (metrics === undefined) {
      metrics = new GraphstreamMetrics({ db, replica, registry: this.registry! });
      this.metrics.set(key, metrics);
    }
    return metrics;
  }

  /** Drains every database and stops serving. */
  async stop(): Promise<void> {
    const runners = [...this.runners.values()].flat();
    this.runners.clear();
    await Promise.allSettled(runners.map((runner) => runner.stop()));
    if (this.server !== null) {
      this.server.closeAllConnections();
      this.server.close();
    }
  }

  async status(): Promise<SidecarStatus> {
    const now = Date.now();
    const replicas = await Promise.all([...this.runners.values()].flat().map((runner) => runner.status(now)));
    return { config: this.config.file, ready: replicas.every((replica) => replica.ready), limits: { ...this.limitsConfig, ...this.limits.stats() }, replicas };
  }

  private async serve(address: { host: string | undefined; port: number }): Promise<Server> {
    const registry = this.registry!;
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      const json = (status: number, body: unknown) => response.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
      if (request.method !== 'GET') return void response.writeHead(405).end();
      if (path === '/healthz') return void response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      if (path === '/readyz' || path === '/status') {
        this.status().then(
          (status) => {
            if (path === '/status') return json(200, status);
            const brief = (replica: ReplicaStatus) => ({ db: replica.db, replica: replica.replica, state: replica.state, reasons: replica.reasons });
            json(status.ready ? 200 : 503, {
              ready: status.ready,
              notReady: status.replicas.filter((replica) => !replica.ready).map(brief),
              // standbys: ready, but not leading
              standby: status.replicas.filter((replica) => replica.state === 'waiting_for_lease').map(brief),
            });
          },
          (err: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
        );
        return;
      }
      if (path === '/metrics') {
        registry.metrics().then(
          (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (err: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
        );
        return;
      }
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics, /healthz, /readyz or /status\n');
    });
    server.listen(address.port, address.host);
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([err]) => {
        throw toGraphstreamError(err, `serving on ${address.host ?? '*'}:${address.port}`);
      }),
    ]);
    return server;
  }
}

/**
 * `graphstream replicate --config <file>`: runs the sidecar until SIGTERM or SIGINT (then drains
 * every database); SIGHUP reads the file again and applies it (a file that does not parse is
 * reported and changes nothing).
 */
export async function runSidecar(file: string, output: Output, limits: LimitsConfig = {}): Promise<void> {
  const load = async () => {
    const loaded = await loadConfig(file);
    return { ...loaded, limits: { ...loaded.limits, ...limits } };
  };
  const config = await load();
  const sidecar = new Sidecar(config, output);
  const signals = stopSignals();
  let reloading = Promise.resolve();
  const onHangup = () => {
    reloading = reloading
      .then(load)
      .then((next) => sidecar.reload(next))
      .then(
        ({ added, removed }) => output.print(`reloaded ${config.file}: added [${added.join(', ')}], removed [${removed.join(', ')}]`),
        (err: unknown) => {
          const error = toGraphstreamError(err);
          output.note(`graphstream: error [${error.code}]: reload: ${error.message}`);
        },
      );
  };
  process.on('SIGHUP', onHangup);
  try {
    const url = await sidecar.start();
    if (url !== null) output.print(`serving ${url}/metrics /healthz /readyz /status`);
    output.print(`sidecar: ${config.databases.length} database(s) from ${config.file}`);
    const signal = await signals.received;
    output.note(`graphstream: ${signal}: draining uploads in flight`);
    await reloading;
  } finally {
    process.off('SIGHUP', onHangup);
    signals.dispose();
    const { replicas } = await sidecar.status();
    await sidecar.stop();
    const uploaded = replicas.reduce((sum, replica) => sum + replica.uploaded, 0);
    output.print(`stopped: ${replicas.length} replica(s), ${uploaded} segment(s) uploaded`);
  }
}
