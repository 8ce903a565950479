/**
 * Whole files read and hashed into reusable buffers, for S3Storage.stageFile. Every fresh
 * segment-sized Buffer counts toward V8's external-memory limit, and with the small heap of a
 * replication process that brings a full mark-compact every few MiB read (measured: ~2 ms of CPU
 * per MiB uploaded through the AWS SDK); a buffer given back after its upload is read into again
 * instead. With the native addon, reading and hashing are one task off the JavaScript thread.
 */
import { open } from 'node:fs/promises';
import { GraphstreamError, toGraphstreamError } from '../errors.js';
import type { NativeStorage } from '../core/native.js';
import { sha256Hex } from './bytes.js';

export interface PooledFile {
  /** the file's bytes, a view of a pooled buffer: valid until release() */
  readonly bytes: Buffer;
  /** SHA-256 of `bytes`, lowercase hex */
  readonly sha256: string;
  /** gives the buffer back to the pool; call it once nothing reads `bytes` any more */
  release(): void;
}

/** Capacity for a file of `size` bytes: rounded up to an eighth of its power of two (min 64 KiB), so files of similar sizes share buffers. */
function capacityFor(size: number): number {
  const step = Math.max(64 * 1024, 2 ** Math.floor(Math.log2(Math.max(size, 1))) / 8);
  return Math.ceil(Math.max(size, 1) / step) * step;
}

function tooLarge(path: string, size: number, maxBytes: number): GraphstreamError {
  return new GraphstreamError('too_large', `reading ${path} for upload: the file is ${size} bytes, more than the ${maxBytes} bytes allowed (maxObjectBytes)`);
}

export class ReadBuffers {
  private readonly idle: Buffer[] = [];
  private idleBytes = 0;
  /** size of the last file read: the next one is probably about as large (segments of one journal are) */
  private lastSize = 0;

  /**
   * At most `maxIdleBytes` of buffers are kept while unused; the rest are left to the GC. Without
   * the native addon (`native` null), files are read and hashed through node:fs and WebCrypto. By
   * default the addon is the one ts/core/native.ts loads, imported by the first read (not before:
   * graphstream/pure loads no addon until a file is read for upload).
   */
  constructor(
    private readonly maxIdleBytes: number,
    private native?: NativeStorage | null,
  ) {}

  /** Reads all of `path` (at most `maxBytes`, else a `too_large` error) into a pooled buffer and hashes it. */
  async read(path: string, maxBytes: number): Promise<PooledFile> {
    if (this.native === undefined) this.native = (await import('../core/native.js')).nativeStorage;
    return this.native ? this.readNatively(this.native, path, maxBytes) : this.readHere(path, maxBytes);
  }

  private async readNatively(native: NativeStorage, path: string, maxBytes: number): Promise<PooledFile> {
    // an eighth more than the last file: segments a little larger than it fit at the first attempt
    let buffer: Buffer | null = this.take(Math.ceil(this.lastSize * 1.125));
    try {
      // A file larger than the buffer is not read; its size says which buffer to take (a sealed
      // segment does not change, so the second attempt fits).
      for (let attempt = 1; ; attempt++) {
        const read = await native.readFileForUpload(path, buffer);
        if (read.size > maxBytes) throw tooLarge(path, read.size, maxBytes);
        if (typeof read.sha256 === 'string') {
          this.lastSize = read.size;
          return this.lend(buffer, read.size, read.sha256);
        }
        if (attempt === 3) throw new GraphstreamError('io', `reading ${path} for upload: the file kept growing while it was read`);
        this.give(buffer);
        buffer = null;
        buffer = this.take(read.size);
      }
    } catch (err) {
      if (buffer) this.give(buffer);
      throw toGraphstreamError(err);
    }
  }

  private async readHere(path: string, maxBytes: number): Promise<PooledFile> {
    const context = `reading ${path} for upload`;
    let buffer: Buffer | null = null;
    try {
      const handle = await open(path, 'r');
      let length = 0;
      try {
        const { size } = await handle.stat();
        if (size > maxBytes) throw tooLarge(path, size, maxBytes);
        buffer = this.take(size);
        while (length < size) {
          const { bytesRead } = await handle.read(buffer, length, size - length, length);
          if (bytesRead === 0) break;
          length += bytesRead;
        }
      } finally {
        await handle.close();
      }
      return this.lend(buffer, length, await sha256Hex(buffer.subarray(0, length)));
    } catch (err) {
      if (buffer) this.give(buffer);
      throw toGraphstreamError(err, context);
    }
  }

  private lend(buffer: Buffer, length: number, sha256: string): PooledFile {
    let released = false;
    return {
      bytes: buffer.subarray(0, length),
      sha256,
      release: () => {
        if (released) return;
        released = true;
        this.give(buffer);
      },
    };
  }

  /** The smallest idle buffer that holds `size` bytes, or a new one. */
  private take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.idle.length; i++) {
      const length = this.idle[i]!.length;
      if (length >= size && (best < 0 || length < this.idle[best]!.length)) best = i;
    }
    if (best < 0) return Buffer.allocUnsafeSlow(capacityFor(size));
    const [buffer] = this.idle.splice(best, 1);
    this.idleBytes -= buffer!.length;
    return buffer!;
  }

  private give(buffer: Buffer): void {
    if (this.idleBytes + buffer.length > this.maxIdleBytes) return;
    this.idle.push(buffer);
    this.idleBytes += buffer.length;
  }
}
