/**
 * `graphstream promote <storage-url> --db <db> --dir <dir>`: failover from the command line. The
 * standby follows the db into <dir>, waits until the leader's lease is released or expires, takes
 * it with the next epoch and starts a new generation that continues the chain (Follower.promote).
 * It then holds the lease and ships, as the `replicate` sidecar does, what the application that
 * now writes <dir> appends (it opens <dir> with Journal.open), until SIGTERM or SIGINT: then it
 * ships what is sealed and releases the lease, so that the next standby takes over at once.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Follower } from '../replication/follower.js';
import { Uploader } from '../replication/uploader.js';
import { Output, formatBytes, formatFields } from './output.js';
import { dbArg, integerArg, openStorageArg, prefixArg, withStorageOptions, type StorageFlags } from './options.js';
import { stopSignals } from './signals.js';

/** how often the standby looks for newly sealed segments once it leads */
const SEAL_CHECK_MS = 200;

const DESCRIPTION =
  'Follows the db into --dir, waits until the leader releases its lease or the lease expires (TTL + margin after its ' +
  'last renewal), takes it with the next epoch and writes the new generation record, continuing the chain. Then holds ' +
  'the lease and ships every segment sealed in --dir into the new generation (open --dir with Journal.open to write), ' +
  'until SIGTERM or SIGINT: it releases the lease then.';

interface PromoteOptions extends StorageFlags {
  db: string;
  prefix: string;
  dir: string;
  ttl: number;
  holder?: string;
}

export function registerPromote(program: Command, output: Output): void {
  withStorageOptions(
    program
      .command('promote')
      .summary('standby: take over a db once its leader is gone, and ship the new generation')
      .description(DESCRIPTION)
      .argument('<storage-url>', 's3://bucket[/prefix], file:///dir, or a directory')
      .requiredOption('--dir <dir>', "the standby's journal directory (created if needed)")
      .requiredOption('--db <db>', 'the db to take over', dbArg)
      .option('--prefix <prefix>', 'key prefix in front of the db name', prefixArg, '')
      .option('--ttl <ms>', 'TTL of the lease it takes', integerArg(3000, 3_600_000), 10_000)
      .option('--holder <name>', 'who holds the lease (default host/pid/random)'),
  ).action(async function (this: Command, storageUrl: string, options: PromoteOptions) {
    const dir = resolve(options.dir);
    const storage = await openStorageArg(this, storageUrl, options);
    const signals = stopSignals();
    const waiting = new AbortController();
    void signals.received.then(() => waiting.abort());
    let uploader: Uploader | null = null;
    try {
      output.print(`following ${storage.description.replace(/\/?$/, '/')}${options.prefix}${options.db}/ into ${dir}; waiting for the lease`);
      const started = performance.now();
      const follower = new Follower({ storage, prefix: options.prefix, db: options.db, dir });
      const taken = await follower
        .takeOver({ lease: { ttlMs: options.ttl, ...(options.holder !== undefined ? { holder: options.holder } : {}) }, signal: waiting.signal })
        .catch((err: unknown) => {
          if (waiting.signal.aborted) return null; // a stop signal while waiting: nothing was taken
          throw err;
        });
      if (taken === null) return;
      const { record, lease } = taken;
      // The journal is the application's to write: this process ships what it seals.
      uploader = new Uploader({ directory: dir, storage, prefix: options.prefix, db: options.db, lease, sealIntervalMs: SEAL_CHECK_MS });
      uploader.on('uploaded', (uploaded) => output.print(`uploaded ${uploaded.name} -> ${uploaded.key} (${formatBytes(uploaded.size)})`));
      uploader.on('error', (err) => output.note(`graphstream: warning [${err.code}]: ${err.message}`));
      await uploader.start();
      output.print(`promoted in ${Math.round(performance.now() - started)} ms`);
      output.print(
        formatFields([
          ['holder', record.holder],
          ['epoch', record.epoch],
          ['generation', record.generation],
          ['start sequence', record.startSeq],
          ['prev hash', record.prevHash.toString('hex')],
        ]),
      );
      const signal = await Promise.race([signals.received, new Promise<string>((done) => lease.signal.addEventListener('abort', () => done('lease lost'), { once: true }))]);
      output.note(`graphstream: ${signal}: shipping what is sealed, then releasing the lease`);
      await uploader.release();
      output.print('released the lease');
    } finally {
      signals.dispose();
      await uploader?.stop();
      await storage.close?.();
    }
  });
}
