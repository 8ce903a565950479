#!/usr/bin/env node
/**
 * The `graphstream` command. The only place that decides the process's exit code: 0 on success,
 * 1 for an operational failure (printed with its GraphstreamError code), 2 for bad arguments.
 */
import { Command, CommanderError, type Option } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { toGraphstreamError } from '../errors.js';
import { registerDemo } from './demo.js';
import { registerInspect } from './inspect.js';
import { registerListing } from './listing.js';
import { USAGE_ERROR_EXIT_CODE } from './options.js';
import { Output } from './output.js';
import { registerPromote } from './promote.js';
import { registerRepair } from './repair.js';
import { registerReplicate } from './replicate.js';
import { registerRestore } from './restore.js';
import { registerStatus } from './status.js';
import { registerTail } from './tail.js';
import { registerVerify } from './verify.js';

const FAILURE_EXIT_CODE = 1;

/** Every error the CLI prints, its own and commander's: `graphstream: error [code]: message`. */
export function errorLine(code: string, message: string): string {
  return `graphstream: error [${code}]: ${message}`;
}

/** A command whose every flag may also come from the environment: `--metrics-addr` from GRAPHSTREAM_METRICS_ADDR. */
class GraphstreamCommand extends Command {
  override createCommand(name?: string): Command {
    return new GraphstreamCommand(name);
  }

  override addOption(option: Option): this {
    // the commands' flags, not the program's own (--version)
    if (this.parent !== null) option.envVar ??= `GRAPHSTREAM_${option.attributeName().replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase()}`;
    return super.addOption(option);
  }
}

function buildProgram(output: Output): Command {
  const program = new GraphstreamCommand('graphstream')
    .description('Journal replication for graph databases: write, ship, verify and replay .hadbj journals.')
    .version(packageJson.version)
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({
      writeOut: (text) => output.out.write(text),
      writeErr: (text) => output.err.write(text),
      // commander's messages start with `error: `; bad arguments are invalid_argument (exit code 2)
      outputError: (text, write) => write(errorLine('invalid_argument', text.replace(/^error: /, ''))),
    });
  registerDemo(program, output);
  registerInspect(program, output);
  registerVerify(program, output);
  registerRepair(program, output);
  registerRestore(program, output);
  registerTail(program, output);
  registerReplicate(program, output);
  registerListing(program, output);
  registerStatus(program, output);
  registerPromote(program, output);
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
    output.note(errorLine(error.code, error.message));
    return FAILURE_EXIT_CODE;
  }
}

// Output piped into `head` and closed early is not a failure of the command (tail stops on it).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
});

// The AWS SDK prints a 9-line notice about its future Node.js support on every run under Node < 22;
// this is the switch the SDK reads (@aws-sdk/core emitWarningIfUnsupportedVersion). A user's own
// setting wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

run(process.argv).then((code) => {
  process.exitCode = code;
});
