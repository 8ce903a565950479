/**
 * `graphstream replicate <journal-dir> <storage-url>`: the sidecar. Ships the sealed segments of a
 * journal that another process writes (it never seals or touches the live segment), until SIGTERM
 * or SIGINT, which drain the uploads in flight. Serves Prometheus metrics with --metrics-addr.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { basename, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import { GraphstreamMetrics, Uploader } from '../index.js';
import type { UploaderLeaseOptions } from '../replication/uploader.js';
import { MIN_LEASE_TTL_MS } from '../replication/ownership.js';
import { Output, formatBytes } from './output.js';
import {
  addressArg,
  dbArg,
  integerArg,
  openStorageArg,
  prefixArg,
  sizeArg,
  usageError,
  withStorageOptions,
  withEncryptionOptions,
  uploadEncryptionArg,
  type EncryptionFlags,
  type StorageFlags,
} from './options.js';
import type { LimitsConfig } from './config.js';
import { runSidecar, waitForDirectory } from './sidecar.js';
import { stopSignals } from './signals.js';

interface ReplicateOptions extends StorageFlags, EncryptionFlags {
  config?: string;
  db?: string;
  prefix: string;
  interval: number;
  concurrency: number;
  metricsAddr?: { host: string | undefined; port: number };
  uploadConcurrency?: number;
  downloadConcurrency?: number;
  memoryBytes?: number;
  lease?: boolean;
  leaseHolder?: string;
  leaseTtl: number;
  leaseNoWait?: boolean;
}

/** The Uploader's lease option from the flags (the config file's `lease:`); undefined without --lease. */
function leaseOption(options: ReplicateOptions): UploaderLeaseOptions | undefined {
  if (options.lease !== true && options.leaseHolder === undefined && options.leaseNoWait !== true) return undefined;
  return { ttlMs: options.leaseTtl, wait: options.leaseNoWait !== true, ...(options.leaseHolder === undefined ? {} : { holder: options.leaseHolder }) };
}

function holderArg(value: string): string {
  if (value.length < 1 || value.length > 256) throw new InvalidArgumentError('a holder is 1..256 characters');
  return value;
}

async function serveMetrics(metrics: GraphstreamMetrics, address: { host: string | undefined; port: number }): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    metrics.toPrometheus().then(
      (text) => response.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  server.listen(address.port, address.host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => {
      throw toGraphstreamError(err, `serving metrics on ${address.host ?? '*'}:${address.port}`);
    }),
  ]);
  return server;
}

export function registerReplicate(program: Command, output: Output): void {
  withStorageOptions(
    withEncryptionOptions(
      program
        .command('replicate')
        .summary('sidecar: ship the sealed segments of a journal another process writes')
        .description(
          'Watches a journal directory that another process writes and uploads every sealed segment to object ' +
            'storage, oldest first, with retries; it never seals or touches the live segment. Runs until SIGTERM or ' +
            'SIGINT, then waits for the uploads in flight and exits 0. A journal directory that does not exist yet is waited for.',
        )
        .argument('[journal-dir]', 'the journal directory')
        .argument('[storage-url]', 's3://bucket[/prefix], file:///dir, or a directory')
        .addOption(new Option('--config <file>', 'run every database of a YAML config file instead (SIGHUP reloads it)').env('GRAPHSTREAM_CONFIG'))
        .option('--db <db>', 'db name in the keys (default: the journal directory name)', dbArg)
        .option('--prefix <prefix>', 'key prefix in front of the db name', prefixArg, '')
        .option('--interval <ms>', 'how often to look for newly sealed segments', integerArg(1, 3_600_000), 1000)
        .option('--concurrency <n>', 'uploads in flight at once', integerArg(1, 256), 4)
        .option('--metrics-addr <host:port>', 'serve Prometheus metrics at http://host:port/metrics', addressArg)
        .option('--upload-concurrency <n>', "with --config: segment puts in flight at once over every database (the file's limits.upload-concurrency)", integerArg(1, 4096))
        .option('--download-concurrency <n>', "with --config: compaction's reads in flight at once over every database", integerArg(1, 4096))
        .option('--memory-bytes <size>', 'with --config: bytes of segments held for puts at once over every database (e.g. 256MiB)', sizeArg)
        .option('--lease', "upload only while holding the db's lease (one writer per db; see \"Running a leader with standbys\")")
        .option('--lease-holder <name>', 'who holds the lease (implies --lease; default host/pid/random)', holderArg)
        .option('--lease-ttl <ms>', 'TTL of the lease', integerArg(MIN_LEASE_TTL_MS, 3_600_000), 15_000)
        .option('--lease-no-wait', 'exit with `fenced` while another writer holds the lease, instead of waiting until it is released or expires (implies --lease)'),
      { upload: true },
    ),
  ).action(async function (this: Command, journalDir: string | undefined, storageUrl: string | undefined, options: ReplicateOptions) {
    if (options.config !== undefined) {
      if (journalDir !== undefined) usageError(this, '--config replaces <journal-dir> and <storage-url>');
      if (leaseOption(options) !== undefined) usageError(this, "with --config, each database's lease comes from the file (lease:)");
      const limits: LimitsConfig = {};
      if (options.uploadConcurrency !== undefined) limits.uploadConcurrency = options.uploadConcurrency;
      if (options.downloadConcurrency !== undefined) limits.downloadConcurrency = options.downloadConcurrency;
      if (options.memoryBytes !== undefined) limits.memoryBytes = options.memoryBytes;
      return runSidecar(options.config, output, limits);
    }
    for (const flag of ['uploadConcurrency', 'downloadConcurrency', 'memoryBytes'] as const) {
      if (options[flag] !== undefined) usageError(this, `--${flag.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)} applies to --config only (one journal: --concurrency)`);
    }
    if (journalDir === undefined) usageError(this, "missing required argument 'journal-dir'");
    if (storageUrl === undefined) usageError(this, "missing required argument 'storage-url'");
    const directory = resolve(journalDir);
    const db = options.db ?? basename(directory);
    try {
      dbArg(db);
    } catch {
      usageError(this, `cannot name the db after ${directory}: give --db`);
    }
    const lease = leaseOption(options);
    const storage = await openStorageArg(this, storageUrl, options);
    const metrics = new GraphstreamMetrics({ db });
    const uploader = new Uploader({
      directory,
      storage,
      db,
      prefix: options.prefix,
      sealIntervalMs: options.interval,
      concurrency: options.concurrency,
      metrics,
      encryption: uploadEncryptionArg(options),
      ...(lease === undefined ? {} : { lease }),
    });
    let fenced: ((err: GraphstreamError) => void) | null = null;
    const lost = new Promise<GraphstreamError>((resolve) => (fenced = resolve));
    uploader.on('fenced', (err) => fenced!(err));
    uploader.on('uploaded', (record) => output.print(`uploaded ${record.name} -> ${record.key} (${formatBytes(record.size)})`));
    uploader.on('error', (err) => output.note(`graphstream: warning [${err.code}]: ${err.message}`));
    let server: Server | null = null;
    const signals = stopSignals();
    try {
      if (options.metricsAddr !== undefined) {
        server = await serveMetrics(metrics, options.metricsAddr);
        const { address, port } = server.address() as AddressInfo;
        output.print(`metrics on http://${address.includes(':') ? `[${address}]` : address}:${port}/metrics`);
      }
      if (!(await waitForDirectory(directory, options.interval, signals.received, output))) return;
      await uploader.start();
      output.print(
        `replicating ${directory} to ${storage.description.replace(/\/?$/, '/')}${options.prefix}${db}/ (every ${options.interval} ms)` +
          (uploader.lease === null ? '' : `, holding the lease as ${uploader.lease.holder} (epoch ${uploader.lease.epoch}, generation ${uploader.lease.generation})`),
      );
      const ended = await Promise.race([signals.received, lost]);
      if (ended instanceof GraphstreamError) throw ended; // fenced: another writer took the db over; nothing more is uploaded
      const signal = ended;
      output.note(`graphstream: ${signal}: draining uploads in flight`);
      await uploader.stop();
      const stats = uploader.stats();
      output.print(`stopped: ${stats.succeeded} segment(s) uploaded (${formatBytes(stats.bytes)}), ${stats.failed} failed attempt(s)`);
    } finally {
      signals.dispose();
      await uploader.stop();
      if (server !== null) {
        server.closeAllConnections();
        server.close();
      }
      await storage.close?.();
    }
  });
}
