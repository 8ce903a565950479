/**
 * The cores every suite runs against (`describe.each(cores)`): the native
 * addon and the pure-TypeScript twin, which must behave byte for byte alike.
 */
import { nativeCore } from '../../ts/native.js';
import { pureCore } from '../../ts/pure/index.js';

export const cores = [nativeCore, pureCore];

/** Every ordered pair of cores, for cross checks (write with one, read with the other). */
export const corePairs = cores.flatMap((writer) => cores.map((reader) => ({ writer, reader })));
