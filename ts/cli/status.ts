/** `graphstream status`: what a running sidecar (`replicate --config` with `addr`) reports at /status. */
import { Option, type Command } from 'commander';
import { GraphstreamError } from '../errors.js';
import type { SidecarStatus } from './sidecar.js';
import { Output, formatBytes, formatTable, toJson } from './output.js';
import { addressArg } from './options.js';

interface StatusOptions {
  addr: { host: string | undefined; port: number };
  json?: boolean;
}

export function registerStatus(program: Command, output: Output): void {
  program
    .command('status')
    .summary('show what a running sidecar reports: every database and replica, and whether it is ready')
    .description(
      'Reads /status from a sidecar started with `graphstream replicate --config` whose config has an addr, ' +
        'and prints each replica: its state (waiting for its journal directory, waiting_for_lease as a standby, ' +
        'running, failed, fenced), its backlog (sealed segments not uploaded yet, and how long the oldest has ' +
        'waited), what it uploaded and its last error. Ready means every replica runs within its readiness ' +
        'bounds, holding its lease where it has one, and its last upload did not fail; a standby counts as ready.',
    )
    .addOption(new Option('--addr <host:port>', "the sidecar's addr").env('GRAPHSTREAM_ADDR').argParser(addressArg).default(addressArg('127.0.0.1:9464'), '127.0.0.1:9464'))
    .option('--json', 'print the status as JSON')
    .action(async (options: StatusOptions) => {
      const host = options.addr.host ?? '127.0.0.1';
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${options.addr.port}/status`;
      let status: SidecarStatus;
      try {
        const response = await fetch(url);
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        status = (await response.json()) as SidecarStatus;
      } catch (err) {
        throw new GraphstreamError('io', `no sidecar status at ${url}: ${(err as Error).message}`, { cause: err });
      }
      if (options.json) return output.print(toJson(status, 2));
      output.print(`${status.config}: ${status.ready ? 'ready' : 'NOT READY'}`);
      const rows = status.replicas.map((replica) => [
        replica.db,
        replica.replica,
        `${replica.url.replace(/\/?$/, '/')}${replica.prefix}`,
        replica.state,
        replica.pendingSegments === null ? '-' : `${replica.pendingSegments} (${replica.lagSeconds} s)`,
        `${replica.uploaded} (${formatBytes(replica.bytes)})`,
        replica.error === null ? '-' : `[${replica.error.code}] ${replica.error.message}`,
      ]);
      output.print(formatTable(['db', 'replica', 'url', 'state', 'pending', 'uploaded', 'last error'], rows));
      for (const replica of status.replicas.filter((replica) => replica.reasons.length > 0)) {
        output.print(`not ready: ${replica.db} (${replica.replica}): ${replica.reasons.join('; ')}`);
      }
    });
}
