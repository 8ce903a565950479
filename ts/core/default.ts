/**
 * The core a facade function uses when none is given: the native addon, or,
 * where no binary loads on this platform, the pure twin. Imported only then.
 */
import type { Core } from './core.js';

export async function resolveCore(core: Core | undefined): Promise<Core> {
  if (core !== undefined) return core;
  const native = (await import('./native.js')).defaultNativeCore();
  if (native !== null) return native;
  const { pureCore } = await import('../pure/core.js');
  return pureCore;
}
