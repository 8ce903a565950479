/**
 * Cancelling long operations, as Node's own APIs do it: an operation given an aborted
 * `AbortSignal` rejects with an `AbortError` (name 'AbortError', code 'ABORT_ERR', the signal's
 * reason as its cause). An abort is the caller's decision, not a failure, so it is not a
 * GraphstreamError.
 */
import { GraphstreamError } from './errors.js';

export class AbortError extends Error {
  readonly code = 'ABORT_ERR';

  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** `signal` as an AbortSignal or undefined; anything else is `invalid_argument`. */
export function checkSignal(signal: unknown, what: string): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw new GraphstreamError('invalid_argument', `${what}: signal must be an AbortSignal`);
}

export function abortError(signal: AbortSignal, what: string): AbortError {
  return new AbortError(`${what} was aborted`, { cause: signal.reason });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}

/**
 * Settles as `work` does, or rejects with an AbortError as soon as `signal` aborts. The work
 * itself is not stopped by this: callers pass the signal on to whatever can stop early.
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(abortError(signal, what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => undefined);
      reject(abortError(signal, what));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** A signal that aborts when either does (the caller's, and one the object aborts itself on close). */
export function anySignal(signal: AbortSignal | undefined, own: AbortSignal): AbortSignal {
  return signal === undefined ? own : AbortSignal.any([signal, own]);
}
