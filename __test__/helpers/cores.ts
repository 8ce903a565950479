/**
 * The cores every suite runs against (`describe.each(cores)`): the native
 * addon and the pure-TypeScript twin, which must behave byte for byte alike.
 * A native addon that does not load fails every suite: it is never skipped.
 */
import type { Core } from '../../ts/core/core.js';
import { nativeCore, nativeLoadError } from '../../ts/core/native.js';
import { pureCore } from '../../ts/pure/core.js';

if (nativeCore === null) {
  throw new Error(`the native addon does not load (run \`npm run build:native\`): ${nativeLoadError?.message}`);
}

export const cores: readonly Core[] = [nativeCore, pureCore];

/** Every ordered pair of cores, for cross checks (write with one, read with the other). */
export const corePairs = cores.flatMap((writer) => cores.map((reader) => ({ writer, reader })));
