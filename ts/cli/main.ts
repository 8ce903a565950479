#!/usr/bin/env node
/**
 * The `graphstream` command. The only place that decides the process's exit code: 0 on success,
 * 1 for an operational failure (printed with its GraphstreamError code), 2 for bad arguments.
 */
import { Command, CommanderError } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { toGraphstreamError } from '../errors.js';
import { registerDemo } from './demo.js';
import { registerInspect } from './inspect.js';
import { USAGE_ERROR_EXIT_CODE } from './options.js';
import { Output } from './output.js';
import { registerRepair } from './repair.js';
import { registerReplicate } from './replicate.js';
import { registerRestore } from './restore.js';
import { registerTail } from './tail.js';
import { registerVerify } from './verify.js';

const FAILURE_EXIT_CODE = 1;

function buildProgram(output: Output): Command {
  const program = new Command('graphstream')
    .description('Journal replication for graph databases: write, ship, verify and replay .hadbj journals.')
    .version(packageJson.version)
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: (text) => output.out.write(text), writeErr: (text) => output.err.write(text) });
  registerDemo(program, output);
  registerInspect(program, output);
  registerVerify(program, output);
  registerRepair(program, output);
  registerRestore(program, output);
  registerTail(program, output);
  registerReplicate(program, output);
  return program;
}

export async function run(argv: readonly string[], output = new Output()): Promise<number> {
  const program = buildProgram(output);
  try {
    await program.parseAsync(argv as string[]);
    return 0;
  } catch (err) {
    // commander has printed its message (or the help) already
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : USAGE_ERROR_EXIT_CODE;
    const error = toGraphstreamError(err);
    output.note(`graphstream: error [${error.code}]: ${error.message}`);
    return FAILURE_EXIT_CODE;
  }
}

// Output piped into `head` and closed early is not a failure of the command.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

run(process.argv).then((code) => {
  process.exitCode = code;
});
