/** What the child processes of the crash, power-loss and memory suites share: their core, and how they report. */
import type { Core } from '../../ts/core/core.js';

/** The core named on the child's command line; the native addon is loaded only when asked for. */
export async function loadCore(kind: string | undefined): Promise<Core> {
  if (kind === 'pure') return (await import('../../ts/pure/core.js')).pureCore;
  const { nativeCore, nativeLoadError } = await import('../../ts/core/native.js');
  if (nativeCore === null) throw nativeLoadError ?? new Error('native core not loaded');
  return nativeCore;
}

/** Prints one line for the parent. stdout is a pipe: writes are synchronous, so a printed line survives SIGKILL. */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}
