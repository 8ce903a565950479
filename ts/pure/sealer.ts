/**
 * The pure twin of crate/src/sealer.rs: seals retired segments in the
 * background, oldest first, so that a rotation does not wait for compression.
 * A sealed segment never follows an unsealed one. A failed seal leaves the
 * unsealed file as it was and is retried when the writer next retires a
 * segment or waits for the sealer; whoever waits hears the error.
 */
import { readFile } from 'node:fs/promises';
import { replaceFileAtomically, syncDirectory } from '../journal/durable-fs.js';
import { coreError, isCoreError } from '../core/core.js';
import { ioError } from './core-errors.js';
import { FLAG_SEALED, HEADER_SIZE, SEAL_TEMP_SUFFIX } from '../format/constants.js';
import { decodeHeader, sealSegment } from './format.js';

/** Retired segments allowed to wait for sealing before rotation waits for the sealer. */
export const MAX_SEAL_BACKLOG = 4;

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class SegmentSealer {
  /** retired segments not yet sealed, oldest first; the first may be being sealed */
  private readonly backlog: string[] = [];
  /** the last attempt to seal `backlog[0]` failed; the next kick retries it */
  private failure: Error | null = null;
  private running = false;
  /** waiting for the backlog to empty (or a seal to fail) */
  private waiters: Waiter[] = [];
  /** the writer, waiting for the backlog to shrink */
  private roomWaiters: (() => void)[] = [];

  constructor(
    private readonly dir: string,
    private readonly level: number,
    private readonly onSealed: () => void,
  ) {}

  /** Hands over a complete unsealed segment the writer no longer appends to. */
  retire(path: string): void {
    this.backlog.push(path);
    this.kick();
  }

  /**
   * Whether the writer may retire another segment: waits while the backlog is
   * full and sealing makes progress; false when it is full and sealing fails
   * (the live segment then grows past its limit until a retry succeeds).
   */
  async makeRoom(): Promise<boolean> {
    while (this.backlog.length >= MAX_SEAL_BACKLOG) {
      if (this.failure !== null) {
        this.kick();
        return false;
      }
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    return true;
  }

  /** Resolves once every segment retired so far is sealed; rejects with the error that stopped it (after one more attempt). */
  whenSealed(): Promise<void> {
    if (this.backlog.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running || this.backlog.length === 0) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    while (this.backlog.length > 0) {
      try {
        await sealFile(this.backlog[0]!, this.level, this.dir);
      } catch (err) {
        this.failure = err as Error;
        this.settle(err as Error);
        break;
      }
      this.backlog.shift();
      this.failure = null;
      this.onSealed();
      if (this.backlog.length === 0) this.settle(null);
      this.wakeRoomWaiters();
    }
    this.running = false;
    this.wakeRoomWaiters();
  }

  private settle(err: Error | null): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) {
      if (err === null) waiter.resolve();
      else waiter.reject(err);
    }
  }

  private wakeRoomWaiters(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Seals the segment file at `path` in place: temp file + fsync + rename +
 * directory fsync. A file already sealed (a retry after a failed directory
 * fsync) only gets the directory fsync.
 */
async function sealFile(path: string, level: number, dir: string): Promise<void> {
  try {
    const unsealed = await readFile(path);
    if ((decodeHeader(unsealed.subarray(0, HEADER_SIZE)).flags & FLAG_SEALED) !== 0) {
      await syncDirectory(dir);
      return;
    }
    await replaceFileAtomically(path, path + SEAL_TEMP_SUFFIX, sealSegment(unsealed, { level, maxBodyBytes: unsealed.length }));
  } catch (err) {
    throw isCoreError(err) ? coreError(err.code, `sealing ${path}: ${err.message}`, { cause: err }) : ioError(`sealing ${path}`, err);
  }
}
