/**
 * Buffers a reader fills one segment after another: stored objects (SegmentStorage.get's `into`)
 * and decoded bodies (DecodeOptions.into), one pool for each.
 *
 * A stored object or a decoded body is a few MiB that lives for a segment or more (fetched ahead,
 * decoded ahead, then applied): long enough to outlive the young generation, so a fresh one per
 * segment is freed only at a full GC, which V8 starts after some 64 MiB of external memory. A
 * follower replaying a journal would hold that much dead memory; with these pools it holds its
 * few live buffers.
 *
 * A pool knows nothing of who still reads a buffer: the reader gives it back only once nothing
 * handed out can point into it any more.
 */

/** Room beyond the largest body seen, so that the next, slightly larger, body still fits. */
const HEADROOM = 1.25;
const MIB = 1024 * 1024;

export class SegmentBuffers {
  private readonly free: Buffer[] = [];
  private capacity = 0;

  /** @param maxFree buffers kept for reuse; more given back are dropped */
  constructor(private readonly maxFree: number) {}

  /** A buffer to fill next; undefined until a first one has been filled. */
  take(): Buffer | undefined {
    const buffer = this.free.pop();
    if (buffer !== undefined) return buffer;
    return this.capacity === 0 ? undefined : Buffer.allocUnsafeSlow(this.capacity);
  }

  /**
   * Says where bytes read or decoded with `into` (from take()) landed. Returns the buffer that
   * now holds them and must be given back once done with, or null when they landed in a buffer
   * of their own (the pool's buffers then grow for the next ones).
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
