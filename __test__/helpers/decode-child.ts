/**
 * Child process of __test__/decode-bounds.test.ts (bundled with esbuild, run with node): reads
 * one object through one path and prints what it cost, as one JSON line:
 * `{ "code": <error code or "ok">, "growth": <peak RSS growth in bytes> }`.
 *
 *   decode-child <native|pure> decode <file>        decodeSegment
 *   decode-child <native|pure> decode-async <file>  decodeSegmentAsync
 *   decode-child <native|pure> download <root>      downloadNewSegments from a LocalStorage root (prefix wal/, db db)
 *   decode-child native inspect <file>              the CLI's `graphstream inspect <file>`
 *   decode-child native verify <dir>                the CLI's `graphstream verify <dir>`
 *
 * The growth is the process's peak RSS after the operation less its peak before, once the core
 * has decoded a small segment (so that loading it is not counted).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import type { Core } from '../../ts/core/core.js';
import { toGraphstreamError } from '../../ts/errors.js';
import { downloadNewSegments } from '../../ts/replication/follower.js';
import { LocalStorage } from '../../ts/storage/local.js';
import { registerInspect } from '../../ts/cli/inspect.js';
import { Output } from '../../ts/cli/output.js';
import { registerVerify } from '../../ts/cli/verify.js';
import { loadCore } from './child-core.js';

const [kind, mode, target] = process.argv.slice(2) as [string, string, string];

/** A small valid sealed segment: decoding it first loads whatever the core loads lazily. */
function warmUp(core: Core): void {
  const firstSeq = 1;
  const entries = core.encodeEntries(firstSeq, Buffer.alloc(32), [Buffer.from('warm up')]).bytes;
  const sealed = core.sealSegment(Buffer.concat([core.encodeHeader({ firstSeq }), entries]), { level: 3 });
  core.decodeSegment(sealed);
}

async function cli(args: string[]): Promise<string> {
  const program = new Command('graphstream').exitOverride();
  const output = new Output();
  registerInspect(program, output);
  registerVerify(program, output);
  await program.parseAsync(['node', 'graphstream', ...args]);
  return 'ok';
}

async function operate(core: Core): Promise<string> {
  switch (mode) {
    case 'decode':
      core.decodeSegment(readFileSync(target));
      return 'ok';
    case 'decode-async':
      await core.decodeSegmentAsync(readFileSync(target));
      return 'ok';
    case 'download':
      await downloadNewSegments(new LocalStorage(target), 'wal/', 'db', await mkdtemp(join(tmpdir(), 'decode-child-')), 0, { core });
      return 'ok';
    case 'inspect':
      return cli(['inspect', target]);
    case 'verify':
      return cli(['verify', target]);
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

const core = await loadCore(kind);
warmUp(core);
const before = process.resourceUsage().maxRSS * 1024;
let code: string;
try {
  code = await operate(core);
} catch (err) {
  code = toGraphstreamError(err).code;
}
const growth = process.resourceUsage().maxRSS * 1024 - before;
process.stdout.write(`${JSON.stringify({ code, growth })}\n`);
