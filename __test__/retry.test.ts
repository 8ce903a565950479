import { describe, expect, it } from 'vitest';
import { GraphstreamError } from '../ts/errors.js';
import { CircuitBreaker, RetryPolicy, isRetryable, resolveRetryConfig, type Clock } from '../ts/replication/retry.js';

/** A clock that never waits: sleep advances time instantly and records the delays asked for. */
class FakeClock implements Clock {
  time = 1_000_000;
  readonly sleeps: number[] = [];

  now(): number {
    return this.time;
  }

  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    this.sleeps.push(ms);
    this.time += ms;
  }

  advance(ms: number): void {
    this.time += ms;
  }
}

function httpError(status: number, name = 'Error'): Error {
  return Object.assign(new Error(`status ${status}`), { name, $metadata: { httpStatusCode: status } });
}

function errnoError(code: string): Error {
  return Object.assign(new Error(`socket: ${code}`), { code });
}

/** An operation that fails with `failures` in order, then succeeds with 'ok'. */
function scripted(failures: unknown[]): { operation: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    operation: async () => {
      const failure = failures[calls++];
      if (failure !== undefined) throw failure;
      return 'ok';
    },
    calls: () => calls,
  };
}

describe('isRetryable', () => {
  it.each([
    ['500', httpError(500, 'InternalError')],
    ['502', httpError(502)],
    ['503 SlowDown', httpError(503, 'SlowDown')],
    ['429', httpError(429, 'TooManyRequests')],
    ['408', httpError(408)],
    ['ECONNRESET', errnoError('ECONNRESET')],
    ['ECONNREFUSED', errnoError('ECONNREFUSED')],
    ['ETIMEDOUT', errnoError('ETIMEDOUT')],
    ['SDK TimeoutError', Object.assign(new Error('timed out'), { name: 'TimeoutError' })],
    ['storage error marked retryable', new GraphstreamError('storage', 'put failed', { details: { retryable: true } })],
    ['storage error with status 503', new GraphstreamError('storage', 'put failed', { details: { status: 503 } })],
    ['storage error caused by a reset', new GraphstreamError('storage', 'put failed', { cause: errnoError('ECONNRESET') })],
  ])('retries %s', (_name, err) => {
    expect(isRetryable(err)).toBe(true);
  });

  it.each([
    ['403', httpError(403, 'AccessDenied')],
    ['404', httpError(404, 'NoSuchBucket')],
    ['412', httpError(412, 'PreconditionFailed')],
    ['501', httpError(501, 'NotImplemented')],
    ['conflict', new GraphstreamError('conflict', 'different bytes at key', { details: { retryable: false } })],
    ['conflict caused by a 503', new GraphstreamError('conflict', 'x', { cause: httpError(503) })],
    ['invalid_argument', new GraphstreamError('invalid_argument', 'bad key')],
    ['not_found', new GraphstreamError('not_found', 'no bucket')],
    ['circuit_open', new GraphstreamError('circuit_open', 'open')],
    ['storage error marked not retryable', new GraphstreamError('storage', 'denied', { details: { retryable: false, status: 503 } })],
    ['storage error with status 403', new GraphstreamError('storage', 'denied', { details: { status: 403 } })],
    ['a plain error', new Error('something else')],
    ['a string', 'boom'],
    ['undefined', undefined],
  ])('does not retry %s', (_name, err) => {
    expect(isRetryable(err)).toBe(false);
  });
});

describe('RetryPolicy', () => {
  it('retries retryable failures with exponential backoff up to maxAttempts', async () => {
    const clock = new FakeClock();
    const policy = new RetryPolicy({ maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 250, jitter: false }, { clock });
    const op = scripted([httpError(503), httpError(500), errnoError('ECONNRESET')]);
    const retries: number[] = [];
    await expect(policy.run(op.operation, { onRetry: (_err, attempt) => retries.push(attempt) })).resolves.toBe('ok');
    expect(op.calls()).toBe(4);
    expect(clock.sleeps).toEqual([100, 200, 250]);
    expect(retries).toEqual([1, 2, 3]);
  });

  it('full jitter draws each delay uniformly below the exponential ceiling', async () => {
    const clock = new FakeClock();
    const draws = [0, 0.5, 0.999999];
    const policy = new RetryPolicy(
      { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 10_000, jitter: true },
      { clock, random: () => draws.shift()! },
    );
    const op = scripted([httpError(503), httpError(503), httpError(503)]);
    await policy.run(op.operation);
    expect(clock.sleeps).toEqual([0, 100, 400]);
  });

  it('gives up after maxAttempts with the last failure as a GraphstreamError', async () => {
    const clock = new FakeClock();
    const policy = new RetryPolicy({ maxAttempts: 3, baseDelayMs: 10, jitter: false, breaker: { failureThreshold: 10 } }, { clock });
    const op = scripted([httpError(503), httpError(503), httpError(500, 'InternalError'), undefined]);
    const err = await policy.run(op.operation, { description: 'put wal/db/0000/1.hadbj' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphstreamError);
    expect((err as GraphstreamError).code).toBe('storage');
    expect((err as GraphstreamError).message).toContain('put wal/db/0000/1.hadbj');
    expect((err as GraphstreamError).message).toContain('3 attempt');
    expect(((err as GraphstreamError).cause as Error).name).toBe('InternalError');
    expect(op.calls()).toBe(3);
  });

  it('does not retry a conflict, a 403 or a 404', async () => {
    for (const failure of [
      new GraphstreamError('conflict', 'different bytes'),
      httpError(403, 'AccessDenied'),
      httpError(404, 'NoSuchBucket'),
    ]) {
      const clock = new FakeClock();
      const policy = new RetryPolicy({ maxAttempts: 5 }, { clock });
      const op = scripted([failure]);
      const err = (await policy.run(op.operation).catch((e: unknown) => e)) as GraphstreamError;
      expect(err).toBeInstanceOf(GraphstreamError);
      expect(op.calls()).toBe(1);
      expect(clock.sleeps).toEqual([]);
      if (failure instanceof GraphstreamError) expect(err.code).toBe('conflict');
    }
  });

  it('stops waiting when its signal aborts', async () => {
    const clock = new FakeClock();
    const policy = new RetryPolicy({ maxAttempts: 5 }, { clock });
    const controller = new AbortController();
    controller.abort(new GraphstreamError('closed', 'stopped'));
    const op = scripted([httpError(503), httpError(503)]);
    await expect(policy.run(op.operation, { signal: controller.signal })).rejects.toMatchObject({ code: 'closed' });
    expect(op.calls()).toBe(1);
  });

  it('rejects invalid configuration', () => {
    expect(() => resolveRetryConfig({ maxAttempts: 0 })).toThrow(GraphstreamError);
    expect(() => resolveRetryConfig({ baseDelayMs: 500, maxDelayMs: 100 })).toThrow(/maxDelayMs/);
    expect(() => resolveRetryConfig({ breaker: { failureThreshold: 0 } })).toThrow(/failureThreshold/);
  });
});

describe('CircuitBreaker', () => {
  it('opens after N consecutive failures and fails fast with circuit_open while open', () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({ failureThreshold: 3, coolDownMs: 1000 }, clock);
    for (let i = 0; i < 2; i++) {
      breaker.acquire();
      breaker.recordFailure();
    }
    expect(breaker.state).toBe('closed');
    breaker.acquire();
    breaker.recordSuccess(); // a success resets the count
    for (let i = 0; i < 3; i++) {
      breaker.acquire();
      breaker.recordFailure();
    }
    expect(breaker.state).toBe('open');
    expect(breaker.timesOpened).toBe(1);
    clock.advance(999);
    expect(() => breaker.acquire()).toThrow(expect.objectContaining({ code: 'circuit_open' }));
  });

  it('lets exactly one probe through after the cool-down and closes when it succeeds', () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({ failureThreshold: 1, coolDownMs: 1000 }, clock);
    breaker.acquire();
    breaker.recordFailure();
    clock.advance(1000);
    breaker.acquire(); // the probe
    expect(breaker.state).toBe('half_open');
    expect(() => breaker.acquire()).toThrow(expect.objectContaining({ code: 'circuit_open' }));
    breaker.recordSuccess();
    expect(breaker.state).toBe('closed');
    breaker.acquire();
    breaker.acquire();
  });

  it('reopens for another cool-down when the probe fails', () => {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({ failureThreshold: 2, coolDownMs: 1000 }, clock);
    for (let i = 0; i < 2; i++) {
      breaker.acquire();
      breaker.recordFailure();
    }
    clock.advance(1000);
    breaker.acquire();
    breaker.recordFailure();
    expect(breaker.state).toBe('open');
    expect(breaker.timesOpened).toBe(2);
    clock.advance(500);
    expect(() => breaker.acquire()).toThrow(expect.objectContaining({ code: 'circuit_open' }));
    clock.advance(500);
    breaker.acquire();
    expect(breaker.state).toBe('half_open');
  });

  it('in a RetryPolicy: an open breaker ends the retries early, and a non-retryable answer closes it', async () => {
    const clock = new FakeClock();
    const policy = new RetryPolicy(
      { maxAttempts: 10, baseDelayMs: 10, jitter: false, breaker: { failureThreshold: 3, coolDownMs: 60_000 } },
      { clock },
    );
    const down = scripted(Array.from({ length: 10 }, () => httpError(503)));
    const err = (await policy.run(down.operation).catch((e: unknown) => e)) as GraphstreamError;
    expect(err.code).toBe('circuit_open');
    expect(down.calls()).toBe(3);
    expect(policy.breaker.state).toBe('open');

    const untouched = scripted([]);
    await expect(policy.run(untouched.operation)).rejects.toMatchObject({ code: 'circuit_open' });
    expect(untouched.calls()).toBe(0);

    clock.advance(60_000);
    const probe = scripted([new GraphstreamError('conflict', 'different bytes')]);
    await expect(policy.run(probe.operation)).rejects.toMatchObject({ code: 'conflict' });
    expect(policy.breaker.state).toBe('closed');
  });
});
