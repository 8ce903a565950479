/**
 * Every failure graphstream reports is a GraphstreamError with a stable `code`.
 * Both cores throw core errors: `Error` objects whose `code` property is one of
 * ERROR_CODES, with facts such as `retryable` and `status` as properties beside it
 * (`coreError` in ts/core/core.ts; crate/src/binding/errors.rs for the addon).
 * `toGraphstreamError` is the one place that turns them (and anything else) into
 * GraphstreamError.
 */
export const ERROR_CODES = [
  'truncated',
  'invalid_magic',
  'unsupported_version',
  'checksum_mismatch',
  'chain_broken',
  'torn_tail',
  'invalid_segment',
  'too_large',
  'invalid_argument',
  'io',
  'disk_full',
  'closed',
  'locked',
  'not_found',
  'conflict',
  'fenced',
  'gap',
  'overlap',
  'storage',
  'circuit_open',
  'corrupt',
  'decryption_failed',
  'not_encrypted',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

/** Machine-readable facts about a failure, for callers deciding what to do next (e.g. retry). */
export interface ErrorDetails {
  /** whether repeating the same operation may succeed (5xx, throttling, timeouts, connection resets) */
  retryable?: boolean;
  /** HTTP status of the failed request, when a response arrived */
  status?: number;
  /** the storage key the operation was about */
  key?: string;
  /** the file holding the data that failed its checks (`corrupt`) */
  file?: string;
  /** byte offset in `file` where the damage starts (`corrupt`), or where the entry or trailer that failed a segment's check starts */
  offset?: number;
  /** the sequence at which the damage starts, when known (`corrupt`), or the first one missing (`gap`) */
  sequence?: number;
  /** the generation of the db the failure is in (`gap`: the one missing sequences) */
  generation?: number;
}

/**
 * Marks every GraphstreamError, whichever copy of this module made it: the ESM and CommonJS
 * builds (and the `graphstream/pure` entry) each carry their own class, and one process may load
 * several of them. `Symbol.for` gives them all the same key.
 */
const BRAND = Symbol.for('graphstream.GraphstreamError');

export class GraphstreamError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: ErrorDetails }) {
    super(message, options);
    this.name = 'GraphstreamError';
    this.code = code;
    this.details = options?.details;
  }

  /** `instanceof GraphstreamError` holds for an error from any copy of the package (a subclass keeps the usual check). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== GraphstreamError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }
}

Object.defineProperty(GraphstreamError.prototype, BRAND, { value: true });

export function isGraphstreamError(err: unknown, code?: ErrorCode): err is GraphstreamError {
  return err instanceof GraphstreamError && (code === undefined || err.code === code);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && CODE_SET.has(value);
}

/** The details a core error carries as properties (`CoreErrorDetails` of ts/core/core.ts). */
function coreErrorDetails(err: Error): ErrorDetails | undefined {
  const { retryable, status, offset, sequence } = err as { retryable?: unknown; status?: unknown; offset?: unknown; sequence?: unknown };
  const details: ErrorDetails = {};
  if (typeof retryable === 'boolean') details.retryable = retryable;
  if (typeof status === 'number') details.status = status;
  if (typeof offset === 'number') details.offset = offset;
  if (typeof sequence === 'number') details.sequence = sequence;
  return Object.keys(details).length > 0 ? details : undefined;
}

const ERRNO_CODES: Record<string, ErrorCode> = {
  ENOSPC: 'disk_full',
  EDQUOT: 'disk_full',
  ENOENT: 'not_found',
};

/** Normalizes any thrown value into a GraphstreamError. */
export function toGraphstreamError(err: unknown, context?: string): GraphstreamError {
  if (err instanceof GraphstreamError) return err;
  const prefix = context ? `${context}: ` : '';
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (isErrorCode(code)) {
      return new GraphstreamError(code, prefix + err.message, { cause: err, details: coreErrorDetails(err) });
    }
    // Node's system errors carry an errno name ('ENOENT', ...) as their code
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno !== undefined) {
      return new GraphstreamError(ERRNO_CODES[errno] ?? 'io', prefix + err.message, { cause: err });
    }
    return new GraphstreamError('internal', prefix + err.message, { cause: err });
  }
  return new GraphstreamError('internal', prefix + String(err));
}

/** Runs `fn`, rethrowing whatever it throws as a GraphstreamError. */
export function normalizeErrors<T>(fn: () => T, context?: string): T {
  try {
    return fn();
  } catch (err) {
    throw toGraphstreamError(err, context);
  }
}

export async function normalizeAsyncErrors<T>(promise: Promise<T>, context?: string): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw toGraphstreamError(err, context);
  }
}
