/**
 * `graphstream tail <storage-url> --db <db>`: prints a db's entries from object storage, verified,
 * as they appear, until SIGTERM or SIGINT.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Follower } from '../replication/follower.js';
import type { JournalRecord } from '../journal/reader.js';
import { Output, hashPrefix, paramToJson, summarizeParams, toJson } from './output.js';
import { dbArg, integerArg, openStorageArg, prefixArg, readEncryptionArg, withEncryptionOptions, withStorageOptions, type EncryptionFlags, type StorageFlags } from './options.js';
import { readerGone, stopSignals } from './signals.js';

interface TailCommandOptions extends StorageFlags, EncryptionFlags {
  db: string;
  prefix: string;
  fromSeq?: number;
  dir?: string;
  poll: number;
  json?: boolean;
}

function recordLine(record: JournalRecord, json: boolean): string {
  const { entry } = record;
  if (json) {
    return toJson({
      sequence: record.sequence,
      chainHash: record.chainHash.toString('hex'),
      timestampMs: entry.timestampMs,
      query: entry.query,
      params: entry.params.map(([name, value]) => [name, paramToJson(value)]),
    });
  }
  const date = new Date(typeof entry.timestampMs === 'bigint' ? Number.NaN : entry.timestampMs);
  const at = Number.isNaN(date.getTime()) ? `${entry.timestampMs}ms` : date.toISOString();
  return `${record.sequence} ${hashPrefix(record.chainHash)} ${at} ${entry.query} ${summarizeParams(entry.params)}`.trimEnd();
}

export function registerTail(program: Command, output: Output): void {
  withStorageOptions(
    withEncryptionOptions(
      program
        .command('tail')
        .summary("follow a db's journal in object storage and print its entries")
        .description(
          'Follows the journal of a db in object storage: every segment is verified (checksums, CRCs, the hash ' +
            'chain) before its entries are printed, one per line, oldest first, then new ones as they are ' +
            'uploaded, until SIGTERM or SIGINT, or until the reader of its output goes away.',
        )
        .argument('<storage-url>', 's3://bucket[/prefix], file:///dir, or a directory')
        .requiredOption('--db <db>', 'the db to follow', dbArg)
        .option('--prefix <prefix>', 'key prefix in front of the db name', prefixArg, '')
        .option('--from-seq <n>', 'first sequence to print (default: the start, or where --dir left off)', integerArg(1))
        .option('--dir <dir>', "the follower's directory, kept to resume from (default: a temporary one)")
        .option('--poll <ms>', 'wait between polls while nothing is new (doubles while idle)', integerArg(1, 3_600_000), 1000)
        .option('--json', 'one JSON object per entry (parameters typed)'),
      { read: true },
    ),
  ).action(async function (this: Command, storageUrl: string, options: TailCommandOptions) {
    const storage = await openStorageArg(this, storageUrl, options);
    const dir = options.dir === undefined ? await mkdtemp(join(tmpdir(), 'graphstream-tail-')) : resolve(options.dir);
    const signals = stopSignals();
    const reader = readerGone(output.out);
    try {
      const follower = new Follower({ storage, prefix: options.prefix, db: options.db, dir, encryption: await readEncryptionArg(options) });
      // the tail ends, its position persisted
      void Promise.race([signals.received, reader.gone]).then(() => follower.close());
      const records = follower.tail({
        pollIntervalMs: options.poll,
        ...(options.fromSeq !== undefined ? { fromSeq: options.fromSeq } : {}),
      });
      for await (const record of records) {
        if (reader.closed) break;
        output.print(recordLine(record, options.json === true));
      }
    } finally {
      signals.dispose();
      reader.dispose();
      await storage.close?.();
      if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
    }
  });
}
