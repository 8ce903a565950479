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
import { Uploader } from '../replication/uploader.js';
import { objectName } from '../storage/names.js';
import { openStorage, type OpenStorageOptions, type SegmentStorage } from '../storage/index.js';
import { loadConfig, type DatabaseConfig, type ReplicaConfig, type SidecarConfig } from './config.js';
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

type ReplicaState = 'waiting' | 'running' | 'failed' | 'fenced' | 'stopped';

export interface ReplicaStatus {
  db: string;
  url: string;
  prefix: string;
  state: ReplicaState;
  uploaded: number;
  failedAttempts: number;
  bytes: number;
  /** the last failure, until an upload succeeds after it */
  error: { code: string; message: string } | null;
}

/** One database shipped to one replica. */
class ReplicaRunner {
  private state: ReplicaState = 'waiting';
  private error: GraphstreamError | null = null;
  private uploader: Uploader | null = null;
  private storage: SegmentStorage | null = null;
  private readonly stopping: { promise: Promise<void>; resolve: () => void };
  private readonly running: Promise<void>;

  constructor(
    readonly database: DatabaseConfig,
    readonly replica: ReplicaConfig,
    private readonly metrics: GraphstreamMetrics,
    private readonly output: Output,
  ) {
    let resolveStop = (): void => undefined;
    this.stopping = { promise: new Promise((resolveStopping) => (resolveStop = resolveStopping)), resolve: () => resolveStop() };
    this.running = this.run().catch((err: unknown) => {
      this.fail(toGraphstreamError(err));
    });
  }

  private get name(): string {
    return `${this.database.db} -> ${this.replica.url}`;
  }

  private fail(error: GraphstreamError): void {
    this.state = 'failed';
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
    const uploader = new Uploader({
      directory: database.dir,
      storage: this.storage,
      db: database.db,
      prefix: replica.prefix,
      sealIntervalMs: replica.intervalMs,
      concurrency: replica.concurrency,
      metrics: this.metrics,
      ...(database.lease === undefined ? {} : { lease: database.lease }),
      ...(replica.encryption === undefined ? {} : { encryption: { recipients: replica.encryption.ageRecipients } }),
    });
    this.uploader = uploader;
    uploader.on('uploaded', (record) => this.output.print(`uploaded ${database.db} ${record.name} -> ${objectName(this.storage!.description, record.key)} (${formatBytes(record.size)})`));
    uploader.on('error', (err) => this.output.note(`graphstream: warning [${err.code}]: ${this.name}: ${err.message}`));
    uploader.on('fenced', (err: GraphstreamError) => {
      this.state = 'fenced';
      this.error = err;
    });
    await uploader.start();
    if (this.state === 'waiting') this.state = 'running';
    this.output.print(`replicating ${database.dir} to ${this.storage.description.replace(/\/?$/, '/')}${replica.prefix}${database.db}/`);
  }

  /** Drains the uploads in flight and stops. */
  async stop(): Promise<void> {
    this.stopping.resolve();
    await this.running;
    try {
      await this.uploader?.stop();
    } finally {
      await this.storage?.close?.();
      if (this.state !== 'failed' && this.state !== 'fenced') this.state = 'stopped';
    }
  }

  status(): ReplicaStatus {
    const stats = this.uploader?.stats();
    const error = this.error ?? stats?.lastError ?? null;
    return {
      db: this.database.db,
      url: this.replica.url,
      prefix: this.replica.prefix,
      state: this.state,
      uploaded: stats?.succeeded ?? 0,
      failedAttempts: stats?.failed ?? 0,
      bytes: stats?.bytes ?? 0,
      error: error === null ? null : { code: error.code, message: error.message },
    };
  }

  /** Running, and its last upload did not fail. */
  ready(): boolean {
    return this.state === 'running' && this.uploader?.stats().lastError === null;
  }
}

export interface SidecarStatus {
  config: string;
  ready: boolean;
  replicas: ReplicaStatus[];
}

export class Sidecar {
  private runners = new Map<string, ReplicaRunner[]>();
  private readonly metrics = new Map<string, GraphstreamMetrics>();
  private server: Server | null = null;
  private registry: Registry | null = null;

  constructor(
    private config: SidecarConfig,
    private readonly output: Output,
  ) {}

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
        database.replicas.map((replica) => new ReplicaRunner(database, replica, this.metricsOf(database.db), this.output)),
      );
    }
    return added;
  }

  private metricsOf(db: string): GraphstreamMetrics {
    let metrics = this.metrics.get(db);
    if (metrics === undefined) {
      metrics = new GraphstreamMetrics({ db, registry: this.registry! });
      this.metrics.set(db, metrics);
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

  status(): SidecarStatus {
    const runners = [...this.runners.values()].flat();
    return { config: this.config.file, ready: runners.every((runner) => runner.ready()), replicas: runners.map((runner) => runner.status()) };
  }

  private async serve(address: { host: string | undefined; port: number }): Promise<Server> {
    const registry = this.registry!;
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      const json = (status: number, body: unknown) => response.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
      if (request.method !== 'GET') return void response.writeHead(405).end();
      if (path === '/healthz') return void response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      if (path === '/readyz' || path === '/status') {
        const status = this.status();
        return void json(path === '/status' || status.ready ? 200 : 503, path === '/status' ? status : { ready: status.ready, notReady: status.replicas.filter((replica) => replica.state !== 'running' || replica.error !== null) });
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
export async function runSidecar(file: string, output: Output): Promise<void> {
  const config = await loadConfig(file);
  const sidecar = new Sidecar(config, output);
  const signals = stopSignals();
  let reloading = Promise.resolve();
  const onHangup = () => {
    reloading = reloading
      .then(() => loadConfig(file))
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
    const { replicas } = sidecar.status();
    await sidecar.stop();
    const uploaded = replicas.reduce((sum, replica) => sum + replica.uploaded, 0);
    output.print(`stopped: ${replicas.length} replica(s), ${uploaded} segment(s) uploaded`);
  }
}
