/** Errors as the pure core throws them: `[code] message`, like the native addon's (see ts/errors.ts). */
import { GraphstreamError, type ErrorCode } from '../errors.js';

export function coreError(code: ErrorCode, message: string, cause?: unknown): Error {
  return new Error(`[${code}] ${message}`, cause === undefined ? undefined : { cause });
}

/** An fs failure as a core error: ENOSPC/EDQUOT are `disk_full`, everything else `io`. */
export function ioError(context: string, err: unknown): Error {
  if (err instanceof GraphstreamError || (err instanceof Error && /^\[[a-z_]+\] /.test(err.message))) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const code: ErrorCode = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'disk_full' : 'io';
  return coreError(code, `${context}: ${err instanceof Error ? err.message : String(err)}`, err);
}
