/**
 * Retrying storage calls: exponential backoff with full jitter, a retryability test shared by every
 * storage backend, and a circuit breaker that stops hammering a store that keeps failing.
 */
import { GraphstreamError, isGraphstreamError } from '../errors.js';

export interface BreakerConfig {
  /** consecutive retryable failures that open the breaker */
  failureThreshold: number;
  /** how long the breaker stays open before letting one probe through */
  coolDownMs: number;
}

export interface RetryConfig {
  /** attempts per operation, the first one included (1 = no retry) */
  maxAttempts: number;
  /** backoff ceiling before the first retry; doubles with each further retry */
  baseDelayMs: number;
  /** upper bound of any single backoff */
  maxDelayMs: number;
  /** full jitter (a uniform delay in [0, backoff]) when true; the exact backoff when false */
  jitter: boolean;
  breaker: BreakerConfig;
}

export interface RetryConfigInit extends Partial<Omit<RetryConfig, 'breaker'>> {
  breaker?: Partial<BreakerConfig>;
}

export const DEFAULT_RETRY_CONFIG: Readonly<RetryConfig> = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 10_000,
  jitter: true,
  breaker: Object.freeze({ failureThreshold: 5, coolDownMs: 30_000 }),
});

/** Time as the retry machinery sees it; tests inject a fake one. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(abortReason(signal!));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

function abortReason(signal: AbortSignal): GraphstreamError {
  return isGraphstreamError(signal.reason)
    ? signal.reason
    : new GraphstreamError('closed', 'retry wait aborted', { cause: signal.reason });
}

export function resolveRetryConfig(init: RetryConfigInit = {}): RetryConfig {
  if (typeof init !== 'object' || init === null) throw new GraphstreamError('invalid_argument', 'retry config must be an object');
  const config: RetryConfig = {
    maxAttempts: init.maxAttempts ?? DEFAULT_RETRY_CONFIG.maxAttempts,
    baseDelayMs: init.baseDelayMs ?? DEFAULT_RETRY_CONFIG.baseDelayMs,
    maxDelayMs: init.maxDelayMs ?? DEFAULT_RETRY_CONFIG.maxDelayMs,
    jitter: init.jitter ?? DEFAULT_RETRY_CONFIG.jitter,
    breaker: {
      failureThreshold: init.breaker?.failureThreshold ?? DEFAULT_RETRY_CONFIG.breaker.failureThreshold,
      coolDownMs: init.breaker?.coolDownMs ?? DEFAULT_RETRY_CONFIG.breaker.coolDownMs,
    },
  };
  requireInteger('maxAttempts', config.maxAttempts, 1);
  requireInteger('baseDelayMs', config.baseDelayMs, 0);
  requireInteger('maxDelayMs', config.maxDelayMs, config.baseDelayMs);
  requireInteger('breaker.failureThreshold', config.breaker.failureThreshold, 1);
  requireInteger('breaker.coolDownMs', config.breaker.coolDownMs, 0);
  return config;
}

function requireInteger(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new GraphstreamError('invalid_argument', `retry config: ${name} must be an integer >= ${min}, got ${value}`);
  }
}

// ---------------------------------------------------------------------------------------------
// What is worth retrying

/** Transport failures (errno and undici codes) worth another attempt; storage clients classify with it too. */
export const RETRYABLE_ERRNO: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequests',
  'TooManyRequestsException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'InternalError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

/** GraphstreamError codes that describe the request or the data, never a passing condition. */
const PERMANENT_CODES = new Set([
  'conflict',
  'invalid_argument',
  'not_found',
  'circuit_open',
  'closed',
  'truncated',
  'invalid_magic',
  'unsupported_version',
  'checksum_mismatch',
  'chain_broken',
  'torn_tail',
  'invalid_segment',
  'too_large',
  'gap',
  'overlap',
  'corrupt',
  'locked',
  'disk_full',
]);

function httpStatusOf(err: object): number | undefined {
  const e = err as {
    status?: unknown;
    statusCode?: unknown;
    httpStatus?: unknown;
    $metadata?: { httpStatusCode?: unknown };
    $response?: { statusCode?: unknown };
  };
  for (const value of [e.httpStatus, e.$metadata?.httpStatusCode, e.$response?.statusCode, e.statusCode, e.status]) {
    if (typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 599) return value;
  }
  return undefined;
}

function statusIsRetryable(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/**
 * Whether `err` describes a passing condition worth retrying: a 5xx answer, throttling (429, 503
 * SlowDown), a timeout, a reset or refused connection. Not 4xx answers (403, 404, 412 `conflict`),
 * bad arguments or bad data. Looks, in order, at a GraphstreamError's `details` (`retryable`, then
 * `status`, as the storage backends set them), an explicit boolean `retryable` (or the AWS SDK's
 * `$retryable`), the HTTP status, the error's name and errno code, and the `cause` chain; a
 * GraphstreamError whose code names a permanent condition is never retryable, and an error that
 * carries none of these facts is not either.
 */
export function isRetryable(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    const e = current as {
      retryable?: unknown;
      $retryable?: unknown;
      name?: unknown;
      code?: unknown;
      cause?: unknown;
    };
    if (isGraphstreamError(current)) {
      if (PERMANENT_CODES.has(current.code)) return false;
      if (typeof current.details?.retryable === 'boolean') return current.details.retryable;
      if (current.details?.status !== undefined) return statusIsRetryable(current.details.status);
    }
    if (typeof e.retryable === 'boolean') return e.retryable;
    if (typeof e.$retryable === 'object' && e.$retryable !== null) return true;
    const status = httpStatusOf(current);
    if (status !== undefined) return statusIsRetryable(status);
    if (typeof e.code === 'string' && RETRYABLE_ERRNO.has(e.code)) return true;
    if (typeof e.name === 'string' && RETRYABLE_NAMES.has(e.name)) return true;
    if (e.cause === current) return false;
    current = e.cause;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

export type BreakerState = 'closed' | 'open' | 'half_open';

/**
 * Closed: calls pass; `failureThreshold` consecutive failures open it. Open: calls fail fast with
 * `circuit_open` until `coolDownMs` has passed; then one probe call is let through (half-open) while
 * the others still fail fast. The probe's success closes the breaker, its failure opens it again.
 */
export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private consecutiveFailures = 0;
  private openedAt = 0;
  private probeInFlight = false;
  private opens = 0;

  constructor(
    readonly config: BreakerConfig,
    private readonly clock: Pick<Clock, 'now'> = systemClock,
    private readonly description = 'storage',
  ) {}

  get state(): BreakerState {
    return this.current;
  }

  /** how many times the breaker has opened */
  get timesOpened(): number {
    return this.opens;
  }

  /**
   * Claims permission for one call: throws `circuit_open` while open (or while another half-open
   * probe is running). Every successful acquire must be followed by recordSuccess or recordFailure.
   */
  acquire(): void {
    if (this.current === 'closed') return;
    if (this.current === 'open') {
      const remaining = this.openedAt + this.config.coolDownMs - this.clock.now();
      if (remaining > 0) {
        throw new GraphstreamError(
          'circuit_open',
          `circuit breaker for ${this.description} is open after ${this.consecutiveFailures} consecutive failures; next probe in ${remaining} ms`,
        );
      }
      this.current = 'half_open';
    }
    if (this.probeInFlight) {
      throw new GraphstreamError('circuit_open', `circuit breaker for ${this.description} is half-open with a probe in flight`);
    }
    this.probeInFlight = true;
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0;
    this.probeInFlight = false;
    this.current = 'closed';
  }

  recordFailure(): void {
    this.consecutiveFailures++;
    const probeFailed = this.current === 'half_open';
    this.probeInFlight = false;
    if (probeFailed || (this.current === 'closed' && this.consecutiveFailures >= this.config.failureThreshold)) {
      this.current = 'open';
      this.openedAt = this.clock.now();
      this.opens++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Retry policy

export interface RetryRunOptions {
  /** aborts the backoff waits (not an attempt in progress); the run then rejects */
  signal?: AbortSignal;
  /** called before each backoff wait */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** names the operation in error messages, e.g. the object key */
  description?: string;
}

export interface RetryPolicyDeps {
  clock?: Clock;
  /** uniform in [0, 1); jitter source */
  random?: () => number;
  /** share one breaker between policies; by default each policy has its own */
  breaker?: CircuitBreaker;
}

/**
 * Runs an operation with retries. Each attempt passes through the circuit breaker; retryable
 * failures count against it, while non-retryable answers (403, 404, conflict) show the service is
 * reachable and count as breaker successes. Rejections are GraphstreamErrors: the final failure
 * (its code kept when it is a GraphstreamError, `storage` otherwise), or `circuit_open`.
 */
export class RetryPolicy {
  readonly config: RetryConfig;
  readonly breaker: CircuitBreaker;
  private readonly clock: Clock;
  private readonly random: () => number;

  constructor(config: RetryConfigInit = {}, deps: RetryPolicyDeps = {}) {
    this.config = resolveRetryConfig(config);
    this.clock = deps.clock ?? systemClock;
    this.random = deps.random ?? Math.random;
    this.breaker = deps.breaker ?? new CircuitBreaker(this.config.breaker, this.clock);
  }

  /** Backoff before retry number `retry` (1 = the first retry). */
  delayFor(retry: number): number {
    const ceiling = Math.min(this.config.maxDelayMs, this.config.baseDelayMs * 2 ** Math.max(0, retry - 1));
    return this.config.jitter ? Math.floor(this.random() * (ceiling + 1)) : ceiling;
  }

  async run<T>(operation: (attempt: number) => Promise<T>, options: RetryRunOptions = {}): Promise<T> {
    const what = options.description ?? 'storage operation';
    for (let attempt = 1; ; attempt++) {
      try {
        this.breaker.acquire();
      } catch (err) {
        throw attempt === 1
          ? err
          : new GraphstreamError('circuit_open', `${what}: gave up after ${attempt - 1} attempt(s): ${(err as Error).message}`, {
              cause: err,
            });
      }
      let failure: unknown;
      try {
        const result = await operation(attempt);
        this.breaker.recordSuccess();
        return result;
      } catch (err) {
        failure = err;
      }
      if (!isRetryable(failure)) {
        this.breaker.recordSuccess();
        throw asGraphstreamError(failure, what);
      }
      this.breaker.recordFailure();
      if (attempt >= this.config.maxAttempts) {
        throw asGraphstreamError(failure, `${what}: failed after ${attempt} attempt(s)`);
      }
      const delayMs = this.delayFor(attempt);
      options.onRetry?.(failure, attempt, delayMs);
      await this.clock.sleep(delayMs, options.signal);
    }
  }
}

function asGraphstreamError(err: unknown, context: string): GraphstreamError {
  if (err instanceof GraphstreamError) {
    return new GraphstreamError(err.code, `${context}: ${err.message}`, { cause: err, details: err.details });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new GraphstreamError('storage', `${context}: ${message}`, { cause: err });
}
