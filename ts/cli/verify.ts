/**
 * `graphstream verify <dir | storage URL>`: checks a whole journal, CRCs and the hash chain end to
 * end, and reports every problem with where it is (file or key, sequence, error code). In storage,
 * the segments of each generation are checked up to where the next generation starts; those past
 * it (left by a writer that had lost the lease) are listed as stale, not read.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { GraphstreamError } from '../errors.js';
import { verifyJournal } from '../index.js';
import { emptyReport, verifyStore, type VerifyReport } from '../replication/verify-store.js';
import { Output, formatBytes, formatFields, toJson } from './output.js';
import {
  dbArg,
  isStorageUrl,
  openStorageArg,
  prefixArg,
  requireDirectory,
  splitDbUrl,
  usageError,
  withStorageOptions,
  readEncryptionArg,
  withEncryptionOptions,
  type EncryptionFlags,
  type StorageFlags,
} from './options.js';
export type { VerifyProblem, VerifyReport } from '../replication/verify-store.js';

interface VerifyOptions extends StorageFlags, EncryptionFlags {
  db?: string;
  prefix: string;
  json?: boolean;
}

async function verifyDirectory(dir: string, output: Output): Promise<VerifyReport> {
  const report = emptyReport(dir);
  await requireDirectory(dir);
  const progress = output.progress('verifying', undefined);
  let verified;
  try {
    verified = await verifyJournal(dir, { onSegment: (done) => progress.update(done) });
  } finally {
    progress.done();
  }
  report.segments = verified.segments;
  report.bytes = verified.bytes;
  report.entries = verified.entries;
  report.firstSeq = verified.firstSeq;
  report.lastSeq = verified.lastSeq;
  report.chainHash = verified.chainHash?.toString('hex') ?? null;
  for (const { path, offset, sequence, code, message } of verified.problems) {
    report.problems.push({ where: path, sequence, code, message: `at byte offset ${offset}: ${message}` });
  }
  if (verified.segments === 0) {
    report.problems.push({ where: dir, sequence: null, code: 'not_found', message: `${dir} holds no journal segments` });
  }
  report.ok = report.problems.length === 0;
  return report;
}

function printReport(report: VerifyReport, output: Output): void {
  const range = report.firstSeq === null ? 'none' : `${report.firstSeq}..${report.lastSeq}`;
  output.print(`verify ${report.target}`);
  output.print(
    formatFields([
      ['segments', report.segments],
      ['entries', report.entries],
      ['sequences', range],
      ['bytes', formatBytes(report.bytes)],
      ['chain hash', report.chainHash ?? '-'],
    ]),
  );
  if (report.staleKeys.length > 0) {
    output.print(
      `  stale: ${report.staleKeys.length} segment(s) past the end of their generation, left by a writer that had lost ` +
        `the lease; no reader reads them: ${report.staleKeys.join(', ')}`,
    );
  }
  if (report.undecided !== null) {
    const { generation, leaseGeneration, holder, epoch } = report.undecided;
    output.print(
      `  undecided: the lease names generation ${leaseGeneration} (${holder}, epoch ${epoch}), which has no record yet; where ` +
        `generation ${generation} ends is not decided, and readers wait before its newest segments`,
    );
  }
  if (report.ignoredKeys.length > 0) {
    output.print(`  ignored ${report.ignoredKeys.length} key(s) that are not segments, e.g. ${report.ignoredKeys[0]}`);
  }
  for (const problem of report.problems) {
    const sequence = problem.sequence === null ? '' : ` sequence ${problem.sequence}`;
    output.print(`PROBLEM [${problem.code}] ${problem.where}${sequence}: ${problem.message}`);
  }
  output.print(report.ok ? 'OK: the chain verifies end to end' : `FAILED: ${report.problems.length} problem(s)`);
}

export function registerVerify(program: Command, output: Output): void {
  withStorageOptions(
    withEncryptionOptions(
      program
        .command('verify')
        .summary('check a whole journal: CRCs, hash chain, gaps and overlaps')
        .description(
          'Checks every segment of a journal, the CRC of every entry and the hash chain end to end, and reports ' +
            'every problem with where it is. In a journal directory, a torn tail (the end of the last write, and ' +
            'trailing segments holding no entry) is what a crash leaves, not a problem; anything else is, as ' +
            '`Journal.open` sees it. Exit code 0 when everything verifies, 1 otherwise.',
        )
        .argument('<target>', 'a journal directory, or s3://bucket/prefix/db, file:///root/prefix/db, memory://')
        .option('--db <db>', 'the db name, when the URL names the storage root rather than the db', dbArg)
        .option('--prefix <prefix>', 'key prefix in front of the db name (with --db)', prefixArg, '')
        .option('--json', 'print the report as JSON'),
      { read: true },
    ),
  ).action(async function (this: Command, target: string, options: VerifyOptions) {
    let report: VerifyReport;
    if (!isStorageUrl(target)) {
      if (options.db !== undefined) usageError(this, '--db is for storage URLs; a directory is one journal');
      report = await verifyDirectory(resolve(target), output);
    } else {
      let storageUrl = target;
      let db = options.db;
      if (db === undefined) {
        const split = splitDbUrl(target);
        if (split === null) usageError(this, `${target} does not name a db: use s3://bucket/prefix/db or give --db`);
        ({ storageUrl, db } = split);
      }
      const storage = await openStorageArg(this, storageUrl, options);
      try {
        const progress = output.progress('verifying', undefined);
        try {
          report = await verifyStore(storage, {
            prefix: options.prefix,
            db,
            encryption: await readEncryptionArg(options),
            onSegment: (done) => progress.update(done),
          });
        } finally {
          progress.done();
        }
      } finally {
        await storage.close?.();
      }
    }
    if (options.json) output.print(toJson(report, 2));
    else printReport(report, output);
    const first = report.problems[0];
    if (first !== undefined) {
      throw new GraphstreamError(first.code, `${report.target} does not verify: ${report.problems.length} problem(s), the first at ${first.where}`);
    }
  });
}
