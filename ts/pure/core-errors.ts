/** fs failures as the pure core throws them: core errors (`coreError` of ts/core/core.ts), like the native addon's. */
import { GraphstreamError } from '../errors.js';
import { coreError, isCoreError } from '../core/core.js';

/** An fs failure as a core error: ENOSPC/EDQUOT are `disk_full`, everything else `io`. */
export function ioError(context: string, err: unknown): Error {
  if (err instanceof GraphstreamError || isCoreError(err)) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  return coreError(errno === 'ENOSPC' || errno === 'EDQUOT' ? 'disk_full' : 'io', `${context}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
