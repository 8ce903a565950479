/**
 * Limits shared by every Uploader (and compaction) of one process, e.g. the sidecar's many
 * databases: how many segment puts are in flight at once, how many downloads, and how many bytes
 * of segments are held for puts. Each Uploader keeps its own `concurrency` too; these bound the
 * sum over all of them.
 */
import { GraphstreamError } from '../errors.js';
import type { SegmentStorage } from '../storage/types.js';

export interface SharedLimitsOptions {
  /** segment puts in flight at once, over every uploader sharing these limits; default unlimited */
  uploadConcurrency?: number;
  /** gets in flight at once (compaction's reads of originals); default unlimited */
  downloadConcurrency?: number;
  /**
   * bytes of segments held in memory for their puts at once (a segment is counted from before it
   * is read until its put settled; an encrypted one twice: plaintext and ciphertext); a segment
   * waits for room instead of being read. One bigger than the whole budget waits until nothing
   * else is held, then takes all of it. Default unlimited
   */
  memoryBytes?: number;
}

export interface SharedLimitsStats {
  putsInFlight: number;
  getsInFlight: number;
  bytesHeld: number;
  /** the most of each at once so far */
  maxPutsInFlight: number;
  maxBytesHeld: number;
  /** requests waiting for a put slot or for bytes */
  waiting: number;
}

/** A FIFO counting semaphore over amounts: a request is granted only when all before it were. */
class Budget {
  private used = 0;
  private readonly queue: { amount: number; grant: () => void }[] = [];
  max = 0;

  constructor(readonly capacity: number) {}

  get held(): number {
    return this.used;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves once `amount` (at most the capacity) is granted, with the function that gives it back. */
  acquire(amount: number): Promise<() => void> {
    const take = Math.min(amount, this.capacity);
    return new Promise((resolve) => {
      const grant = () => {
        this.used += take;
        this.max = Math.max(this.max, this.used);
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.used -= take;
          this.pump();
        });
      };
      this.queue.push({ amount: take, grant });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && this.used + this.queue[0]!.amount <= this.capacity) this.queue.shift()!.grant();
  }
}

function checkLimit(value: number | undefined, name: string): number {
  if (value === undefined) return Number.POSITIVE_INFINITY;
  if (!Number.isSafeInteger(value) || value < 1) throw new GraphstreamError('invalid_argument', `SharedLimits: ${name} must be a positive integer, got ${String(value)}`);
  return value;
}

export class SharedLimits {
  private readonly puts: Budget;
  private readonly gets: Budget;
  private readonly bytes: Budget;

  constructor(options: SharedLimitsOptions = {}) {
    this.puts = new Budget(checkLimit(options.uploadConcurrency, 'uploadConcurrency'));
    this.gets = new Budget(checkLimit(options.downloadConcurrency, 'downloadConcurrency'));
    this.bytes = new Budget(checkLimit(options.memoryBytes, 'memoryBytes'));
  }

  /** Waits for room for `bytes` of segment data; call the result once they are freed. */
  reserveBytes(bytes: number): Promise<() => void> {
    return this.bytes.acquire(Math.max(0, bytes));
  }

  /** Runs one put once a put slot is free. */
  async put<T>(task: () => Promise<T>): Promise<T> {
    const release = await this.puts.acquire(1);
    try {
      return await task();
    } finally {
      release();
    }
  }

  /** Runs one get once a download slot is free. */
  async get<T>(task: () => Promise<T>): Promise<T> {
    const release = await this.gets.acquire(1);
    try {
      return await task();
    } finally {
      release();
    }
  }

  stats(): SharedLimitsStats {
    return {
      putsInFlight: this.puts.held,
      getsInFlight: this.gets.held,
      bytesHeld: this.bytes.held,
      maxPutsInFlight: this.puts.max,
      maxBytesHeld: this.bytes.max,
      waiting: this.puts.waiting + this.bytes.waiting,
    };
  }

  /**
   * `storage` with its puts and gets under these limits (for compaction, whose every request may
   * wait); lists, deletes and everything else pass through.
   */
  wrap(storage: SegmentStorage): SegmentStorage {
    const wrapped: SegmentStorage = {
      description: storage.description,
      put: (key, bytes, options) => this.put(() => storage.put(key, bytes, options)),
      get: (key, options) => this.get(() => storage.get(key, options)),
      list: (prefix, options) => storage.list(prefix, options),
      delete: (key) => storage.delete(key),
    };
    if (storage.identity !== undefined) Object.defineProperty(wrapped, 'identity', { value: storage.identity });
    if (storage.getWithETag) wrapped.getWithETag = (key) => storage.getWithETag!(key);
    return wrapped;
  }
}
