/**
 * Buffers a reader decodes segment bodies into, one segment after another (DecodeOptions.into).
 *
 * A decoded body is a few MiB that lives for about two segments: long enough to outlive the
 * young generation, so a fresh one per segment is freed only at a full GC, which V8 starts
 * after some 64 MiB of external memory. A follower replaying a journal would hold that much
 * dead memory; with this pool it holds its few live bodies.
 *
 * The pool knows nothing of who still reads a body: the reader gives a buffer back only once
 * nothing handed out can point into it any more.
 */

/** Room beyond the largest body seen, so that the next, slightly larger, body still fits. */
const HEADROOM = 1.25;
const MIB = 1024 * 1024;

export class BodyPool {
  private readonly free: Buffer[] = [];
  private capacity = 0;

  /** @param maxFree buffers kept for reuse; more given back are dropped */
  constructor(private readonly maxFree: number) {}

  /** A buffer to decode the next body into; undefined until a body has been seen. */
  take(): Buffer | undefined {
    const buffer = this.free.pop();
    if (buffer !== undefined) return buffer;
    return this.capacity === 0 ? undefined : Buffer.allocUnsafeSlow(this.capacity);
  }

  /**
   * Says where a body decoded with `into` (from take()) landed. Returns the buffer that now
   * holds it and must be given back once done with, or null when it landed in a buffer of its
   * own (the pool's buffers then grow for the next ones).
   */
  landed(body: Buffer, into: Buffer | undefined): Buffer | null {
    if (into !== undefined && body.buffer === into.buffer && body.byteOffset === into.byteOffset) return into;
    if (body.length > this.capacity) this.capacity = Math.ceil((body.length * HEADROOM) / MIB) * MIB;
    if (into !== undefined) this.give(into);
    return null;
  }

  /** Gives back a buffer from take() that nothing reads any more, or that a decode never got. */
  give(buffer: Buffer): void {
    if (buffer.length < this.capacity || this.free.length >= this.maxFree) return; // too small now, or enough kept
    this.free.push(buffer);
  }
}
