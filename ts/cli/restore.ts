/** `graphstream restore <storage-url> --db <db> --dir <dir>`: point-in-time restore from object storage. */
import { readdir } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { GraphstreamError, isGraphstreamError, toGraphstreamError } from '../errors.js';
import { dbPrefix } from '../replication/layout.js';
import { restore, undecidedReason } from '../replication/restore.js';
import type { SegmentStorage } from '../storage/types.js';
import { Output, formatBytes, formatDuration, formatFields } from './output.js';
import { dbArg, integerArg, openStorageArg, prefixArg, readEncryptionArg, timeArg, withEncryptionOptions, withStorageOptions, type EncryptionFlags, type StorageFlags } from './options.js';

interface RestoreCommandOptions extends StorageFlags, EncryptionFlags {
  db: string;
  prefix: string;
  dir: string;
  toSequence?: number;
  toTime?: number;
  ifReplicaExists?: boolean;
  force?: boolean;
}

/** Whether storage holds anything of the db; a missing bucket or store holds nothing. */
async function replicaExists(storage: SegmentStorage, prefix: string, db: string): Promise<boolean> {
  try {
    return (await storage.list(dbPrefix(prefix, db))).length > 0;
  } catch (err) {
    if (isGraphstreamError(err, 'not_found')) return false;
    throw err;
  }
}

/** Fails unless `dir` is absent or empty. */
async function requireEmptyTarget(dir: string): Promise<void> {
  const names = await readdir(dir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw toGraphstreamError(err, `restore target ${dir}`);
  });
  if (names.length > 0) {
    throw new GraphstreamError('invalid_argument', `${dir} is not empty (${names.length} entries); restore into an empty directory, or give --force`);
  }
}

export function registerRestore(program: Command, output: Output): void {
  withStorageOptions(
    withEncryptionOptions(
      program
        .command('restore')
        .summary('rebuild a local journal from object storage, up to a sequence or a point in time')
        .description(
          'Downloads and verifies the journal of a db from object storage into an empty directory, end to end ' +
            'from its first entry, up to --to-sequence or up to the last entry written at or before --to-time ' +
            "(the leader's timestamp of each entry). The directory is then a journal that continues from there. " +
            'A db that storage does not hold is an error (not_found) unless --if-replica-exists is given.',
        )
        .argument('<storage-url>', 's3://bucket[/prefix], file:///dir, or a directory')
        .requiredOption('--db <db>', 'the db to restore', dbArg)
        .requiredOption('--dir <dir>', 'an empty directory to restore into')
        .option('--if-replica-exists', 'exit 0 without doing anything when storage holds no replica of the db')
        .option('--force', 'restore into a directory that holds other files (never over a journal)')
        .option('--prefix <prefix>', 'key prefix in front of the db name', prefixArg, '')
        .addOption(new Option('--to-sequence <n>', 'last sequence to restore').argParser(integerArg(1)).conflicts('toTime'))
        .addOption(new Option('--to-time <time>', 'restore up to this time: ISO 8601, or ms since the epoch').argParser(timeArg)),
      { read: true },
    ),
  ).action(async function (this: Command, storageUrl: string, options: RestoreCommandOptions) {
    const storage = await openStorageArg(this, storageUrl, options);
    const progress = output.progress('restoring segments');
    const started = performance.now();
    try {
      if (!(await replicaExists(storage, options.prefix, options.db))) {
        const missing = `${storage.description} holds no replica of db ${options.prefix}${options.db}`;
        if (options.ifReplicaExists !== true) throw new GraphstreamError('not_found', `restore: ${missing}`);
        output.note(`graphstream: ${missing}; nothing restored (--if-replica-exists)`);
        return;
      }
      if (options.force !== true) await requireEmptyTarget(options.dir);
      const result = await restore(storage, {
        db: options.db,
        prefix: options.prefix,
        dir: options.dir,
        encryption: await readEncryptionArg(options),
        ...(options.toSequence !== undefined ? { toSequence: options.toSequence } : {}),
        ...(options.toTime !== undefined ? { toTimestampMs: options.toTime } : {}),
        onProgress: (state) => progress.update(state.segments, state.totalSegments),
      });
      progress.done();
      output.print(`restored ${options.prefix}${options.db} from ${storage.description} into ${options.dir}`);
      output.print(
        formatFields([
          ['entries', result.entries],
          ['sequences', result.entries === 0 ? 'none' : `${result.sequence - result.entries + 1}..${result.sequence}`],
          ['segments', result.segments],
          ['bytes', formatBytes(result.bytes)],
          ['chain hash', result.chainHash.toString('hex')],
          ['time', formatDuration(performance.now() - started)],
        ]),
      );
      if (result.undecided !== undefined) output.note(`graphstream: restored what is certain, up to sequence ${result.sequence}: ${undecidedReason(result.undecided)}`);
    } finally {
      progress.done();
      await storage.close?.();
    }
  });
}
