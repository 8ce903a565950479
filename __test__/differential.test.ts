/**
 * Differential fuzzing of the two cores: every input, valid or not, decodes to the same
 * fields and bytes in the native addon and the pure twin, or fails with the same code (and the
 * same offset, where a failure names the entry or trailer it is about), and
 * every failure is a core error (an Error with one of ERROR_CODES as its `code`) that the facade maps to GraphstreamError.
 *
 * A seeded generator (xorshift) derives the inputs from the golden vectors and from segments
 * built here: sealed zstd (one frame, several frames, frames without a declared size,
 * skippable frames), sealed raw, unsealed and torn, then mutated (bit flips, byte sets,
 * header fields set to edge values, the body checksum recomputed so that decompression and
 * the entry walk see the damage), truncated, extended, or random bytes. Payloads are fuzzed
 * through encodeJournalEntry / decodeJournalEntry.
 *
 * GRAPHSTREAM_FUZZ_INPUTS scales the run (default 200,000 segment inputs), and
 * GRAPHSTREAM_FUZZ_SEED picks another sequence of inputs.
 */
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import type { Core, DecodeOptions, RawSegment } from '../ts/core/core.js';
import { ERROR_CODES, GraphstreamError, toGraphstreamError } from '../ts/errors.js';
import { nativeCore } from '../ts/core/native.js';
import { ParamValue } from '../ts/payload/params.js';
import { decodeJournalEntry, encodeJournalEntry, type JournalEntryInput } from '../ts/payload/payload.js';
import { pureCore } from '../ts/pure/core.js';
import { readVector, vectorFiles } from './helpers/vectors.js';

const INPUTS = Number(process.env.GRAPHSTREAM_FUZZ_INPUTS ?? 200_000);
const SEED = Number(process.env.GRAPHSTREAM_FUZZ_SEED ?? 0x5eed_2026);
const PAYLOAD_INPUTS = Math.max(1000, Math.round(INPUTS / 10));
/** one decode in this many is made off the JS thread (decodeSegmentAsync) */
const ASYNC_EVERY = 64;

const native = nativeCore!;
const HEADER_SIZE = 128;
const ZERO_HASH = Buffer.alloc(32);
const CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/** xorshift32: the same inputs for the same seed, on every machine. */
class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  int(below: number): number {
    return this.next() % below;
  }
  chance(p: number): boolean {
    return this.next() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest();

// ---- zstd frames built by hand (RFC 8878): what a compressor would not produce on its own --

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const BLOCK = 128 * 1024;

function blockHeader(size: number, type: number, last: boolean): Buffer {
  const value = (size << 3) | (type << 1) | (last ? 1 : 0);
  return Buffer.from([value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff]);
}

/** A frame of raw blocks holding `data`, declaring its size or not. */
function rawFrame(data: Uint8Array, declare: boolean): Buffer {
  const parts: Buffer[] = [ZSTD_MAGIC, Buffer.from(declare ? [0xc0, 7 << 3] : [0x00, 7 << 3])];
  if (declare) {
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(BigInt(data.length));
    parts.push(size);
  }
  const chunks = Math.max(1, Math.ceil(data.length / BLOCK));
  for (let i = 0; i < chunks; i++) {
    const chunk = data.subarray(i * BLOCK, (i + 1) * BLOCK);
    parts.push(blockHeader(chunk.length, 0, i === chunks - 1), Buffer.from(chunk));
  }
  return Buffer.concat(parts);
}

/** A frame of RLE blocks that inflates to `size` zero bytes (4 bytes a 128 KiB block). */
function rleFrame(size: number, declare: boolean): Buffer {
  const parts: Buffer[] = [ZSTD_MAGIC, Buffer.from(declare ? [0xc0, 7 << 3] : [0x00, 7 << 3])];
  if (declare) {
    const declared = Buffer.alloc(8);
    declared.writeBigUInt64LE(BigInt(size));
    parts.push(declared);
  }
  const blocks = Math.max(1, Math.ceil(size / BLOCK));
  for (let i = 0; i < blocks; i++) {
    parts.push(blockHeader(Math.min(BLOCK, size - i * BLOCK), 1, i === blocks - 1), Buffer.from([0]));
  }
  return Buffer.concat(parts);
}

function skippableFrame(random: Random): Buffer {
  const content = random.bytes(random.int(12));
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x184d2a50 + random.int(16), 0);
  header.writeUInt32LE(content.length, 4);
  return Buffer.concat([header, content]);
}

// ---- segments -------------------------------------------------------------

const CREATED_MS: readonly (number | bigint)[] = [
  0,
  1_764_115_200_000,
  -1,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  2n ** 53n,
  -(2n ** 53n) - 1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
];

function graphdPayload(random: Random, sequence: number): Uint8Array {
  return encodeJournalEntry({
    sequence,
    query: 'CREATE (n:N {v: $v})',
    params: { v: ParamValue.int(BigInt(random.next()) - 2n ** 31n), s: 'x'.repeat(random.int(20)) },
    timestampMs: 1_764_115_200_000 + random.int(1000),
  });
}

/** An unsealed segment of 1..5 entries. */
function unsealed(random: Random): Buffer {
  const firstSeq = random.pick([1, 1 + random.int(1_000_000), 2 ** 53 - 1 - random.int(4)]);
  const count = Math.min(1 + random.int(5), 2 ** 53 - firstSeq);
  const payloads = Array.from({ length: count }, (_, i) => (random.chance(0.3) ? graphdPayload(random, firstSeq + i) : random.bytes(random.int(40))));
  const prevHash = random.chance(0.5) ? ZERO_HASH : random.bytes(32);
  const header = native.encodeHeader({ firstSeq });
  header.writeBigInt64BE(BigInt(random.pick(CREATED_MS)), 84);
  return Buffer.concat([header, native.encodeEntries(firstSeq, prevHash, payloads).bytes]);
}

/** `sealed` with its stored body replaced (header body_len and checksum follow). */
function withBody(sealed: Buffer, body: Buffer): Buffer {
  const header = Buffer.from(sealed.subarray(0, HEADER_SIZE));
  const trailer = sealed.subarray(HEADER_SIZE + Number(header.readBigUInt64BE(36)));
  header.writeBigUInt64BE(BigInt(body.length), 36);
  sha256(body).copy(header, 44);
  return Buffer.concat([header, body, trailer]);
}

function rawBodyOf(segment: Buffer): Buffer {
  return native.decodeSegment(segment, { allowTornTail: true }).body;
}

/** The entries of an unsealed segment in zstd frames of every kind, maybe with skippable frames between. */
function framed(random: Random, live: Buffer): Buffer {
  const { body, entryOffsets } = native.decodeSegment(live, { allowTornTail: true });
  const cut = entryOffsets.length > 1 ? entryOffsets[1 + random.int(entryOffsets.length - 1)]! : body.length;
  const parts: Buffer[] = [];
  for (const piece of [body.subarray(0, cut), body.subarray(cut)]) {
    if (random.chance(0.3)) parts.push(skippableFrame(random));
    if (piece.length === 0 && random.chance(0.5)) continue;
    parts.push(random.chance(0.4) ? rawFrame(piece, random.chance(0.5)) : compressFrame(random.pick([native, pureCore]), piece));
  }
  return Buffer.concat(parts);
}

/** The zstd frame a core's sealSegment writes for `entries` (whole entries, in sequence). */
function compressFrame(core: Core, entries: Buffer): Buffer {
  if (entries.length === 0) return rawFrame(entries, true);
  const firstSeq = Number(entries.readBigUInt64BE(8));
  const sealed = core.sealSegment(Buffer.concat([core.encodeHeader({ firstSeq }), entries]), { level: 1 + random3() });
  return zstdBodyOf(sealed);
}

let levelCounter = 0;
function random3(): number {
  levelCounter = (levelCounter + 1) % 3;
  return levelCounter;
}

function zstdBodyOf(sealed: Buffer): Buffer {
  return sealed.subarray(HEADER_SIZE, HEADER_SIZE + Number(sealed.readBigUInt64BE(36)));
}

function baseSegment(random: Random): Buffer {
  const live = unsealed(random);
  switch (random.int(6)) {
    case 0:
      return live;
    case 1: // torn: cut inside the last entry, or garbage after it
      return random.chance(0.5) ? live.subarray(0, live.length - 1 - random.int(20)) : Buffer.concat([live, random.bytes(1 + random.int(60))]);
    case 2:
      return native.sealSegment(live, { level: 0 });
    case 3:
      return random.chance(0.5) ? native.sealSegment(live, { level: 1 + random.int(3) }) : pureCore.sealSegment(live, { level: 1 + random.int(3) });
    case 4: {
      const sealed = native.sealSegment(live, { level: 3 });
      return withBody(sealed, framed(random, live));
    }
    default: {
      const sealed = native.sealSegment(live, { level: 3 });
      return withBody(sealed, rawFrame(rawBodyOf(live), random.chance(0.5)));
    }
  }
}

const U64_EDGES = [0n, 1n, 2n, 5n, 2n ** 32n - 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];
const HEADER_U64_OFFSETS = [12, 20, 28, 36, 76, 84];

function mutate(random: Random, input: Buffer): Buffer {
  let bytes = Buffer.from(input);
  const ops = 1 + random.int(3);
  for (let op = 0; op < ops && bytes.length > 0; op++) {
    switch (random.int(9)) {
      case 0:
      case 1: {
        const at = random.int(bytes.length);
        bytes[at]! ^= 1 << random.int(8);
        break;
      }
      case 2:
        bytes[random.int(bytes.length)] = random.pick([0, 0xff, random.next() & 0xff]);
        break;
      case 3: // a header field set to an edge value
        if (bytes.length >= HEADER_SIZE) {
          const at = random.pick(HEADER_U64_OFFSETS);
          const value = random.chance(0.7) ? random.pick(U64_EDGES) : bytes.readBigUInt64BE(at) + BigInt(random.int(3)) - 1n;
          bytes.writeBigUInt64BE(BigInt.asUintN(64, value), at);
        }
        break;
      case 4: // flags, compression, version
        if (bytes.length >= HEADER_SIZE) {
          const at = random.pick([5, 6, 6, 7]);
          bytes[at] = at === 6 ? random.pick([0, 0x01, 0x04, 0x05, 0x08, 0x0c, 0x0d, random.next() & 0xff]) : random.pick([0, 1, 2, random.next() & 0xff]);
        }
        break;
      case 5: // inside the body, then the checksum made to match, so the damage reaches decompression and the walk
      case 6:
        if (bytes.length > HEADER_SIZE + 1 && (bytes[6]! & 0x04) !== 0) {
          const bodyLen = Number(bytes.readBigUInt64BE(36));
          if (bodyLen > 0 && HEADER_SIZE + bodyLen <= bytes.length) {
            const at = HEADER_SIZE + (random.chance(0.5) ? random.int(Math.min(bodyLen, 16)) : random.int(bodyLen));
            bytes[at] = random.chance(0.5) ? bytes[at]! ^ (1 << random.int(8)) : random.next() & 0xff;
            sha256(bytes.subarray(HEADER_SIZE, HEADER_SIZE + bodyLen)).copy(bytes, 44);
          }
        }
        break;
      case 7:
        bytes = bytes.subarray(0, random.int(bytes.length));
        break;
      default:
        bytes = Buffer.concat([bytes, random.bytes(1 + random.int(40))]);
    }
  }
  return bytes;
}

function randomSegment(random: Random): Buffer {
  const bytes = random.bytes(random.int(400));
  if (bytes.length >= 6 && random.chance(0.7)) {
    bytes.write('HADBJ', 0, 'latin1');
    bytes[5] = 1;
    if (bytes.length >= HEADER_SIZE && random.chance(0.5)) bytes.fill(0, 8, 12);
  }
  return bytes;
}

/** A sealed segment whose body inflates near the ceiling: just under, at, or over it. */
function nearCeiling(random: Random, max: number): Buffer {
  const size = max + random.pick([-1, 0, 1, 4096, -4096]);
  const body = rleFrame(Math.max(0, size), random.chance(0.5));
  const live = unsealed(random);
  return withBody(native.sealSegment(live, { level: 3 }), body);
}

// ---- outcomes --------------------------------------------------------------

type Failure = { code: string; offset?: number; sequence?: number };
type Outcome = Failure | { segment: RawSegment };

/** A core error's code, and the offset of the entry or trailer and the sequence of the entry it is about when it names them. */
function failureOf(err: unknown): Failure {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  if (typeof code !== 'string' || !CODES.has(code)) {
    return { code: `NOT A CORE ERROR: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}` };
  }
  const mapped = toGraphstreamError(err);
  if (!(mapped instanceof GraphstreamError) || mapped.code !== code) return { code: `NOT MAPPED: ${code}` };
  const { offset, sequence } = mapped.details ?? {};
  return { code, ...(offset === undefined ? {} : { offset }), ...(sequence === undefined ? {} : { sequence }) };
}

function decodeWith(core: Core, bytes: Buffer, options: DecodeOptions | undefined): Outcome {
  try {
    return { segment: core.decodeSegment(bytes, options) };
  } catch (err) {
    return failureOf(err);
  }
}

async function decodeAsyncWith(core: Core, bytes: Buffer, options: DecodeOptions | undefined): Promise<Outcome> {
  try {
    return { segment: await core.decodeSegmentAsync(bytes, options) };
  } catch (err) {
    return failureOf(err);
  }
}

/** What differs between two outcomes, or null. */
function difference(a: Outcome, b: Outcome): string | null {
  if ('code' in a || 'code' in b) {
    const describe = (failure: Failure) =>
      `${failure.code}${failure.offset === undefined ? '' : ` at ${failure.offset}`}${failure.sequence === undefined ? '' : ` (sequence ${failure.sequence})`}`;
    const failureA = 'code' in a ? describe(a) : 'ok';
    const failureB = 'code' in b ? describe(b) : 'ok';
    return failureA === failureB && !failureA.startsWith('NOT ') ? null : `native ${failureA}, pure ${failureB}`;
  }
  const [x, y] = [a.segment, b.segment];
  const fields: [string, unknown, unknown][] = [
    ['header', JSON.stringify(x.header, bigintAware), JSON.stringify(y.header, bigintAware)],
    ['body', sha256(x.body).toString('hex'), sha256(y.body).toString('hex')],
    ['entryOffsets', x.entryOffsets.join(), y.entryOffsets.join()],
    ['chainHash', x.chainHash.toString('hex'), y.chainHash.toString('hex')],
    ['startHash', x.startHash.toString('hex'), y.startHash.toString('hex')],
    ['validLength', x.validLength, y.validLength],
    ['tornTail', x.tornTail, y.tornTail],
  ];
  const differing = fields.filter(([, p, q]) => p !== q).map(([name, p, q]) => `${name}: native ${String(p)}, pure ${String(q)}`);
  return differing.length === 0 ? null : differing.join('; ');
}

function bigintAware(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Uint8Array || (typeof value === 'object' && value !== null && (value as { type?: string }).type === 'Buffer')) {
    return Buffer.from(value as Uint8Array).toString('hex');
  }
  return value;
}

function optionsFor(random: Random, bytes: Buffer): { options: DecodeOptions | undefined; withInto: boolean } {
  if (random.chance(0.5)) return { options: undefined, withInto: false };
  const options: DecodeOptions = { allowTornTail: random.chance(0.5) };
  if (random.chance(0.2)) options.maxBodyBytes = random.pick([1, 48, 64, 200, bytes.length, 4096, 256 * 1024, 0, -1, 1.5, Number.NaN, 2 ** 60]);
  const withInto = random.chance(0.2);
  return { options, withInto };
}

const inputKinds = ['vector', 'valid', 'mutated', 'mutated', 'mutated', 'mutated', 'mutated', 'mutated', 'truncated', 'extended', 'random', 'ceiling'] as const;

test(`native and pure agree on ${INPUTS.toLocaleString('en')} segments: same fields and bytes, or the same error code`, async () => {
  const random = new Random(SEED);
  const vectors = vectorFiles.map(readVector);
  const pool: Buffer[] = [...vectors];
  for (let i = 0; i < 400; i++) pool.push(baseSegment(random));
  const mismatches: string[] = [];
  let mismatched = 0;
  const codes = new Map<string, number>();
  let asyncCalls = 0;
  let located = 0;
  for (let n = 0; n < INPUTS; n++) {
    const kind = random.pick(inputKinds);
    let bytes: Buffer;
    let ceiling: number | undefined;
    switch (kind) {
      case 'vector':
        bytes = random.pick(vectors);
        break;
      case 'valid':
        bytes = random.chance(0.1) ? baseSegment(random) : random.pick(pool);
        break;
      case 'truncated': {
        const base = random.pick(pool);
        bytes = base.subarray(0, random.int(base.length));
        break;
      }
      case 'extended':
        bytes = Buffer.concat([random.pick(pool), random.chance(0.5) ? random.bytes(1 + random.int(64)) : Buffer.alloc(1 + random.int(64))]);
        break;
      case 'random':
        bytes = randomSegment(random);
        break;
      case 'ceiling':
        ceiling = random.pick([4096, 100_000, 300_000]);
        bytes = nearCeiling(random, ceiling);
        break;
      default:
        bytes = mutate(random, random.pick(pool));
    }
    const { options: drawn, withInto } = optionsFor(random, bytes);
    const options = ceiling === undefined ? drawn : { ...drawn, maxBodyBytes: ceiling };
    const intoLength = withInto ? random.int(2048) : -1;
    const optionsOf = (): DecodeOptions | undefined => (intoLength < 0 ? options : { ...options, into: Buffer.alloc(intoLength) });
    let a: Outcome;
    let b: Outcome;
    if (n % ASYNC_EVERY === 0) {
      [a, b] = await Promise.all([decodeAsyncWith(native, bytes, optionsOf()), decodeAsyncWith(pureCore, bytes, optionsOf())]);
      asyncCalls++;
    } else {
      a = decodeWith(native, bytes, optionsOf());
      b = decodeWith(pureCore, bytes, optionsOf());
    }
    const outcome = 'code' in a ? a.code : 'ok';
    codes.set(outcome, (codes.get(outcome) ?? 0) + 1);
    if ('code' in a && a.offset !== undefined) located++;
    const diff = difference(a, b);
    if (diff !== null) mismatched++;
    if (diff !== null && mismatches.length < 20) {
      mismatches.push(`#${n} ${kind} ${JSON.stringify(options ?? {}, bigintAware)}: ${diff}\n  input ${bytes.toString('hex').slice(0, 600)}`);
    }
    // the header alone decodes alike too
    if (n % 8 === 0) {
      const headerDiff = sameCall(
        () => native.decodeHeader(bytes),
        () => pureCore.decodeHeader(bytes),
      );
      if (headerDiff !== null && mismatches.length < 20) mismatches.push(`#${n} decodeHeader: ${headerDiff}\n  input ${bytes.subarray(0, 128).toString('hex')}`);
    }
  }
  expect(mismatches, `${mismatched} of ${INPUTS} inputs differ`).toEqual([]);
  expect(asyncCalls).toBeGreaterThan(INPUTS / ASYNC_EVERY - 1);
  // failures that name the entry or trailer they are about, whose offsets were compared too
  expect(located).toBeGreaterThan(INPUTS / 2000);
  // the inputs reach every check: success and each code of FORMAT.md's list
  for (const code of ['ok', 'truncated', 'invalid_magic', 'unsupported_version', 'checksum_mismatch', 'chain_broken', 'torn_tail', 'invalid_segment', 'too_large']) {
    expect(codes.get(code) ?? 0, `${code} in ${JSON.stringify([...codes])}`).toBeGreaterThan(INPUTS / 2000);
  }
}, 60_000 + INPUTS);

function sameCall(a: () => unknown, b: () => unknown): string | null {
  const run = (call: () => unknown) => {
    try {
      return JSON.stringify(call(), bigintAware);
    } catch (err) {
      return failureOf(err).code;
    }
  };
  const [x, y] = [run(a), run(b)];
  return x === y && !x.startsWith('NOT ') ? null : `native ${x}, pure ${y}`;
}

test('native and pure seal alike: the same bytes uncompressed, the same entries compressed, the same codes', () => {
  const random = new Random(SEED ^ 0xa5a5);
  const inputs = Math.max(2000, Math.round(INPUTS / 20));
  const mismatches: string[] = [];
  for (let n = 0; n < inputs; n++) {
    const live = unsealed(random);
    const bytes = random.chance(0.6) ? mutate(random, live) : live;
    const level = random.pick([0, 0, 1, 3]);
    const diff = sameCall(
      () => sealedSummary(native.sealSegment(bytes, { level }), level),
      () => sealedSummary(pureCore.sealSegment(bytes, { level }), level),
    );
    if (diff !== null && mismatches.length < 20) mismatches.push(`#${n} level ${level}: ${diff}\n  input ${bytes.toString('hex').slice(0, 600)}`);
  }
  expect(mismatches).toEqual([]);
}, 60_000 + INPUTS);

/** A sealed segment as comparable text: its bytes uncompressed, else its header fields but the body's, and its decode. */
function sealedSummary(sealed: Buffer, level: number): string {
  if (level === 0) return sealed.toString('hex');
  const decoded = native.decodeSegment(sealed);
  const { bodyLen: _len, bodyChecksum: _sum, ...header } = decoded.header;
  return JSON.stringify([header, decoded.body.toString('hex'), decoded.chainHash.toString('hex')], bigintAware);
}

test(`decodeJournalEntry reads back everything encodeJournalEntry writes, and fails on anything else with a GraphstreamError (${PAYLOAD_INPUTS.toLocaleString('en')} payloads)`, () => {
  const random = new Random(SEED ^ 0x5a5a);
  const edges = [0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 64n - 1n];
  const failures: string[] = [];
  for (let n = 0; n < PAYLOAD_INPUTS; n++) {
    const sequence = random.chance(0.5) ? random.pick(edges) : BigInt(random.int(1_000_000));
    const timestamp = random.pick([...edges.filter((v) => v < 2n ** 63n), -1n, -(2n ** 53n), -(2n ** 63n), BigInt(random.int(2 ** 31))]);
    const input: JournalEntryInput = {
      sequence: random.chance(0.5) && sequence <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(sequence) : sequence,
      query: random.chance(0.1) ? '' : `MATCH (n) WHERE n.id = $id RETURN ${random.int(100)}`,
      params: random.chance(0.5) ? { id: ParamValue.int(BigInt.asIntN(64, BigInt(random.next()) << BigInt(random.int(40)))) } : undefined,
      timestampMs: random.chance(0.5) && timestamp <= BigInt(Number.MAX_SAFE_INTEGER) && timestamp >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(timestamp) : timestamp,
    };
    const payload = encodeJournalEntry(input);
    try {
      const decoded = decodeJournalEntry(payload);
      const exact = (value: number | bigint) => (typeof value === 'bigint' ? value : BigInt(value));
      if (exact(decoded.sequence) !== sequence || exact(decoded.timestampMs) !== timestamp) {
        failures.push(`#${n}: wrote ${sequence}/${timestamp}, read ${decoded.sequence}/${decoded.timestampMs}`);
      }
      for (const value of [decoded.sequence, decoded.timestampMs]) {
        // a number exactly when a number holds the value
        if ((typeof value === 'bigint') !== (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER))) {
          failures.push(`#${n}: ${typeof value} ${value}`);
        }
      }
      if (Buffer.compare(Buffer.from(encodeJournalEntry(decoded)), Buffer.from(payload)) !== 0) failures.push(`#${n}: re-encoding differs`);
    } catch (err) {
      failures.push(`#${n}: ${String(err)} for ${Buffer.from(payload).toString('hex')}`);
    }
    const mutated = mutateBytes(random, Buffer.from(payload));
    try {
      decodeJournalEntry(mutated);
    } catch (err) {
      if (!(err instanceof GraphstreamError)) failures.push(`#${n}: mutated payload threw ${String(err)}: ${mutated.toString('hex')}`);
    }
    if (failures.length > 20) break;
  }
  expect(failures).toEqual([]);
}, 60_000 + INPUTS);

function mutateBytes(random: Random, bytes: Buffer): Buffer {
  if (bytes.length === 0 || random.chance(0.1)) return random.bytes(random.int(64));
  const at = random.int(bytes.length);
  switch (random.int(3)) {
    case 0:
      bytes[at]! ^= 1 << random.int(8);
      return bytes;
    case 1:
      return bytes.subarray(0, at);
    default:
      return Buffer.concat([bytes, random.bytes(1 + random.int(8))]);
  }
}

describe('issue 12, failure 6: what used to differ', () => {
  const random = new Random(SEED ^ 0x1234);
  const cores = [native, pureCore];

  test('a created_ms beyond ±2^53 decodes exactly, as a bigint, in both', () => {
    for (const createdMs of [2n ** 53n, -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n)]) {
      const live = unsealed(random);
      live.writeBigInt64BE(createdMs, 84);
      for (const bytes of [live, native.sealSegment(live, { level: 3 }), pureCore.sealSegment(live, { level: 0 })]) {
        for (const core of cores) {
          expect(core.decodeHeader(bytes).createdMs, core.kind).toBe(createdMs);
          expect(core.decodeSegment(bytes).header.createdMs, core.kind).toBe(createdMs);
          expect(core.decodeHeader(core.encodeHeader({ firstSeq: 1, createdMs })).createdMs).toBe(createdMs);
        }
      }
    }
    expect(native.decodeHeader(native.encodeHeader({ firstSeq: 1, createdMs: Number.MAX_SAFE_INTEGER })).createdMs).toBe(Number.MAX_SAFE_INTEGER);
  });

  test('a body of several zstd frames decodes in both, to the entries sealed', () => {
    for (let i = 0; i < 50; i++) {
      const live = unsealed(random);
      const sealed = withBody(native.sealSegment(live, { level: 3 }), framed(random, live));
      for (const core of cores) {
        const decoded = core.decodeSegment(sealed);
        expect(decoded.body.equals(rawBodyOf(live)), core.kind).toBe(true);
        expect(decoded.chainHash.equals(native.decodeSegment(live).chainHash), core.kind).toBe(true);
      }
    }
  });

  test('a header field beyond 2^53 is too_large in both, before any other check', () => {
    const sealed = native.sealSegment(unsealed(random), { level: 3 });
    for (const offset of [12, 20, 28, 36]) {
      const bytes = Buffer.from(sealed.subarray(0, sealed.length - 5)); // truncated too
      bytes.writeBigUInt64BE(2n ** 53n, offset);
      for (const core of cores) {
        expect(() => core.decodeSegment(bytes), `${core.kind} ${offset}`).toThrow(expect.objectContaining({ code: 'too_large' }));
        expect(() => core.decodeHeader(bytes), `${core.kind} ${offset}`).toThrow(expect.objectContaining({ code: 'too_large' }));
      }
    }
  });
});
