/**
 * `graphstream repair <dir>`: opens a journal that fails with `corrupt`, moving the damaged data
 * into `quarantine/<time>/` inside it (never deleting it), and says which sequences were dropped.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Journal } from '../journal/journal.js';
import { recoverJournalState, type RecoveredJournalState } from '../journal/recovery.js';
import { requireDirectory } from './options.js';
import { Output, formatFields, toJson } from './output.js';

interface RepairOptions {
  dryRun?: boolean;
  json?: boolean;
}

async function repairDirectory(dir: string, dryRun: boolean): Promise<RecoveredJournalState> {
  await requireDirectory(dir);
  if (dryRun) return recoverJournalState(dir, { repair: 'quarantine', dryRun: true });
  // under the journal's lock, as a writer opens it: a running writer makes this fail with `locked`
  const journal = await Journal.open(dir, { repair: 'quarantine' });
  await journal.close();
  return journal.recovery;
}

function printReport(dir: string, state: RecoveredJournalState, dryRun: boolean, output: Output): void {
  const { quarantine } = state;
  output.print(`repair ${dir}${dryRun ? ' (dry run: nothing changed)' : ''}`);
  for (const found of quarantine?.corruptions ?? []) {
    const sequence = found.sequence === null ? '' : ` sequence ${found.sequence}`;
    output.print(`CORRUPT [${found.code}] ${found.path}${sequence} at byte offset ${found.offset}: ${found.message}`);
  }
  for (const moved of quarantine?.moved ?? []) {
    const what = moved.offset === 0 ? moved.from : `${moved.from} from byte ${moved.offset}`;
    output.print(`${dryRun ? 'would move' : 'moved'} ${what} -> ${moved.to}`);
  }
  const dropped = quarantine?.dropped;
  output.print(
    formatFields([
      ['dropped', dropped ? `sequences ${dropped.first}..${dropped.last}` : 'none'],
      ['torn tail', `${state.truncatedBytes - state.zeroTailBytes} bytes`],
      ['zeros written ahead', `${state.zeroTailBytes} bytes`],
      ['removed', state.removedFiles.length === 0 ? 'none' : state.removedFiles.join(', ')],
      ['continues at', `sequence ${state.sequence + 1}`],
    ]),
  );
  output.print(quarantine === null ? 'OK: nothing was damaged' : `REPAIRED: ${quarantine.corruptions.length} problem(s) moved aside into ${quarantine.directory}`);
}

export function registerRepair(program: Command, output: Output): void {
  program
    .command('repair')
    .summary('move damaged journal data aside into quarantine/ so the journal opens again')
    .description(
      'Opens a journal directory that fails with `corrupt` (data that a crash cannot explain) as a writer would, ' +
        'moving the damaged segment and every later one, or the end of the live segment from the damage on, into ' +
        "quarantine/<time>/ inside it: nothing is deleted. The journal continues after the last entry that verifies; " +
        'the report says which sequences were dropped. Fails with `locked` while a writer has the journal open.',
    )
    .argument('<dir>', 'a journal directory')
    .option('--dry-run', 'change nothing: report what would be moved and dropped')
    .option('--json', 'print the report as JSON')
    .action(async (target: string, options: RepairOptions) => {
      const dir = resolve(target);
      const dryRun = options.dryRun === true;
      const state = await repairDirectory(dir, dryRun);
      if (!options.json) {
        printReport(dir, state, dryRun, output);
        return;
      }
      const { sequence, chainHash, truncatedBytes, zeroTailBytes, removedFiles, quarantine } = state;
      output.print(toJson({ dir, dryRun, sequence, chainHash: chainHash.toString('hex'), truncatedBytes, zeroTailBytes, removedFiles, quarantine }, 2));
    });
}
