/**
 * A protobuf wire writer specialised for the append hot path: it writes into
 * one growing Buffer and sizes length-delimited fields after the fact (one
 * byte is reserved for the length; the rare field of 128 bytes or more is
 * moved up to make room for a longer varint). Output is byte for byte what
 * @bufbuild/protobuf's `toBinary` writes for the same fields in the same order.
 */

const TWO_POW_32 = 2 ** 32;
const INITIAL_CAPACITY = 4096;
/** strings up to this many UTF-16 code units are encoded in JavaScript, longer ones by Buffer#write */
const INLINE_UTF8_LIMIT = 256;
/** copies are carved out of slabs of this size, as Buffer.allocUnsafe does with its pool */
const SLAB_BYTES = 64 * 1024;
/** `repeatedString` keeps the encoding of strings up to this many UTF-16 code units... */
const REPEATED_STRING_LIMIT = 2048;
/** ...and of this many of them (all are dropped when it is full: parameterized queries are few) */
const REPEATED_STRING_ENTRIES = 1024;

/** string -> its length-delimited encoding, for `repeatedString` */
const repeatedStrings = new Map<string, Uint8Array>();

// String.prototype.isWellFormed (Node 20+) is missing from the ES2023 lib typings.
type WellFormedCheck = { isWellFormed(): boolean };

/** False when `value` holds a lone UTF-16 surrogate, which UTF-8 encoding would replace by U+FFFD. */
export function isWellFormedString(value: string): boolean {
  return (value as unknown as WellFormedCheck).isWellFormed();
}

let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

/** An exactly sized Uint8Array: small ones share a slab (a fresh ArrayBuffer each costs more than the encoding). */
function allocateBytes(length: number): Uint8Array {
  if (length > SLAB_BYTES / 8) return new Uint8Array(length);
  if (slabUsed + length > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const bytes = new Uint8Array(slab, slabUsed, length);
  // keep views 8-byte aligned, like Buffer's pool
  slabUsed = (slabUsed + length + 7) & ~7;
  return bytes;
}

/** Wire types (the low 3 bits of a tag). */
export const VARINT = 0;
export const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

const MIN_SAFE_BIGINT = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

export class WireWriter {
  private buf: Buffer;
  /** bytes written so far */
  pos = 0;

  constructor(capacity = INITIAL_CAPACITY) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  /** Forgets what was written; the buffer is kept for the next message. */
  reset(): void {
    this.pos = 0;
  }

  /** A copy of bytes [start, pos), as a plain Uint8Array (what `toBinary` returns). */
  copy(start = 0): Uint8Array {
    const out = allocateBytes(this.pos - start);
    out.set(this.buf.subarray(start, this.pos));
    return out;
  }

  /** A view of bytes [start, end), valid until the next write or reset. */
  view(start: number, end: number): Buffer {
    return this.buf.subarray(start, end);
  }

  /** Makes room for `bytes` more bytes. */
  reserve(bytes: number): void {
    const needed = this.pos + bytes;
    if (needed <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buf[this.pos++] = value;
  }

  tag(field: number, wireType: number): void {
    this.uint((field << 3) | wireType);
  }

  /** A varint of a non-negative integer up to 2^53. */
  uint(value: number): void {
    this.reserve(8);
    const buf = this.buf;
    let pos = this.pos;
    while (value >= 0x80) {
      buf[pos++] = (value & 0x7f) | 0x80;
      value = value >= TWO_POW_32 ? Math.floor(value / 0x80) : value >>> 7;
    }
    buf[pos++] = value;
    this.pos = pos;
  }

  /** A varint of a 64-bit value given as its low and high 32 bits (unsigned). */
  private varint64(lo: number, hi: number): void {
    this.reserve(10);
    const buf = this.buf;
    let pos = this.pos;
    while (hi !== 0 || lo >= 0x80) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  /** An int64 varint (two's complement: negatives take 10 bytes) of an integral number in [-2^63, 2^63). */
  int64Number(value: number): void {
    if (value >= 0 && value < TWO_POW_32) {
      this.uint(value);
      return;
    }
    // exact for every integral double: both halves are integers below 2^32
    const hi = Math.floor(value / TWO_POW_32);
    this.varint64(value - hi * TWO_POW_32, hi >>> 0);
  }

  /** A varint of a bigint in [-2^63, 2^64) (int64 or uint64). */
  int64Bigint(value: bigint): void {
    // a safe integer goes the number way: no intermediate bigints to allocate
    if (value >= MIN_SAFE_BIGINT && value <= MAX_SAFE_BIGINT) {
      this.int64Number(Number(value));
      return;
    }
    const bits = BigInt.asUintN(64, value);
    this.varint64(Number(bits & 0xffff_ffffn), Number(bits >> 32n));
  }

  double(value: number): void {
    this.reserve(8);
    this.pos = this.buf.writeDoubleLE(value, this.pos);
  }

  /** Starts a length-delimited field's content; pass the result to `endDelimited`. */
  beginDelimited(): number {
    this.reserve(1);
    return ++this.pos;
  }

  /** Writes the length of the content started at `start` in front of it. */
  endDelimited(start: number): void {
    const length = this.pos - start;
    if (length < 0x80) {
      this.buf[start - 1] = length;
      return;
    }
    const extra = varintSize(length) - 1;
    this.reserve(extra);
    this.buf.copy(this.buf, start + extra, start, this.pos);
    const end = this.pos + extra;
    this.pos = start - 1;
    this.uint(length);
    this.pos = end;
  }

  /**
   * A length-delimited UTF-8 string. Returns false, having written something
   * meaningless, when `value` holds a lone UTF-16 surrogate (which UTF-8
   * cannot carry): the caller throws.
   */
  string(value: string): boolean {
    const length = value.length;
    // UTF-8 needs at most 3 bytes per UTF-16 code unit
    this.reserve(length * 3 + 1);
    const start = this.beginDelimited();
    if (length > INLINE_UTF8_LIMIT) {
      if (!isWellFormedString(value)) return false;
      this.pos += this.buf.write(value, start);
    } else if (!this.utf8(value, length)) {
      return false;
    }
    this.endDelimited(start);
    return true;
  }

  /**
   * `string`, through a cache of the encodings of strings written before: for
   * values that repeat, such as Cypher queries (which carry their values as
   * parameters). A hit costs a map lookup and a copy instead of UTF-8 encoding.
   */
  repeatedString(value: string): boolean {
    const cached = repeatedStrings.get(value);
    if (cached !== undefined) {
      this.raw(cached);
      return true;
    }
    const start = this.pos;
    if (!this.string(value)) return false;
    if (value.length <= REPEATED_STRING_LIMIT) {
      if (repeatedStrings.size >= REPEATED_STRING_ENTRIES) repeatedStrings.clear();
      repeatedStrings.set(value, this.copy(start));
    }
    return true;
  }

  /** UTF-8 of a short string, in JavaScript: cheaper than a call into C++ at these lengths. */
  private utf8(value: string, length: number): boolean {
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < length; i++) {
      let code = value.charCodeAt(i);
      if (code < 0x80) {
        buf[pos++] = code;
      } else if (code < 0x800) {
        buf[pos++] = 0xc0 | (code >> 6);
        buf[pos++] = 0x80 | (code & 0x3f);
      } else if (code < 0xd800 || code > 0xdfff) {
        buf[pos++] = 0xe0 | (code >> 12);
        buf[pos++] = 0x80 | ((code >> 6) & 0x3f);
        buf[pos++] = 0x80 | (code & 0x3f);
      } else {
        const low = code <= 0xdbff && i + 1 < length ? value.charCodeAt(i + 1) : 0;
        if (low < 0xdc00 || low > 0xdfff) return false;
        i++;
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        buf[pos++] = 0xf0 | (code >> 18);
        buf[pos++] = 0x80 | ((code >> 12) & 0x3f);
        buf[pos++] = 0x80 | ((code >> 6) & 0x3f);
        buf[pos++] = 0x80 | (code & 0x3f);
      }
    }
    this.pos = pos;
    return true;
  }

  /** Bytes as they are (no length prefix). */
  raw(value: Uint8Array): void {
    this.reserve(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  bytes(value: Uint8Array): void {
    this.uint(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }
}
