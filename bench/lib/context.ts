/** What every group gets: the run mode, scratch space, and where its tables and target lines go. */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3ServerName } from '../../scripts/s3-servers.js';
import type { Summary } from './stats.js';
import { renderTable, type Table, type TargetLine } from './report.js';

export interface Context {
  /** the repository's root */
  root: string;
  quick: boolean;
  /** the S3-compatible server the shipping and follower groups run against */
  s3Server: S3ServerName;
  /** scratch directory on the journal's disk (next to the repository), removed at exit */
  scratch: string;
  tables: Table[];
  targets: TargetLine[];
  /** figures other groups or the targets need, by name */
  figures: Record<string, Summary | number>;
  log(message: string): void;
}

export async function createContext(root: string, quick: boolean, s3Server: S3ServerName): Promise<Context> {
  await mkdir(join(root, 'node_modules', '.cache'), { recursive: true });
  const scratch = await mkdtemp(join(root, 'node_modules', '.cache', 'graphstream-bench-scratch-'));
  return {
    root,
    quick,
    s3Server,
    scratch,
    tables: [],
    targets: [],
    figures: {},
    log: (message) => process.stderr.write(`  · ${message}\n`),
  };
}

export async function removeScratch(context: Context): Promise<void> {
  await rm(context.scratch, { recursive: true, force: true });
}

export function addTable(context: Context, table: Table): void {
  context.tables.push(table);
  process.stdout.write(`\n${renderTable(table)}\n`);
}

export function addTarget(context: Context, line: TargetLine): void {
  context.targets.push(line);
}

export const MB = 1e6;
