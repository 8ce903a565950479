/**
 * The `.hadbj` v1 format (FORMAT.md) in TypeScript: the pure twin of
 * crate/src/{format,segment}.rs, byte for byte. Failures are thrown as core
 * errors (`coreError` of ts/core/core.ts: code and what and where), exactly
 * like the native core, so the facade normalizes both the same way.
 */
import { createHash } from 'node:crypto';
import CRC32C from 'crc-32/crc32c.js';
import {
  checkDecodeTarget,
  checkSealTarget,
  coreError,
  type DecodeOptions,
  type EncodedBatch,
  type HeaderFields,
  type HeaderInit,
  type Payloads,
  type RawEntry,
  type RawSegment,
  type SealOptions,
} from '../core/core.js';
import type { ErrorCode } from '../errors.js';
import { unpackPayloads } from '../core/packed.js';
import {
  COMPRESSION_NONE,
  COMPRESSION_ZSTD,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_ZSTD_LEVEL,
  ENTRY_HEADER_SIZE,
  ENTRY_PAYLOAD_LEN_OFFSET,
  ENTRY_PREV_HASH_OFFSET,
  ENTRY_SEQUENCE_OFFSET,
  FLAG_COMPRESSED,
  FLAG_HAS_CHAIN_HASH,
  FLAG_SEALED,
  FORMAT_VERSION,
  HASH_SIZE,
  HEADER_OFFSET,
  HEADER_SIZE,
  MAGIC,
  TRAILER_SIZE,
  ZERO_HASH,
} from '../format/constants.js';
import { zstdCompress, zstdDecompress } from './zstd.js';

const MAX_PAYLOAD_LEN = 0xffff_ffff;
const TWO_POW_32 = 2 ** 32;
const MAX_U64 = 2n ** 64n - 1n;
const MIN_I64 = -(2n ** 63n);
const MAX_I64 = 2n ** 63n - 1n;

function fail(code: ErrorCode, message: string, offset?: number, sequence?: number): never {
  const details = { ...(offset === undefined ? {} : { offset }), ...(sequence === undefined ? {} : { sequence }) };
  throw coreError(code, message, { details });
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) fail('invalid_argument', `${what} must be a Uint8Array`);
}

function checkHash(value: unknown, what: string): asserts value is Uint8Array {
  checkBytes(value, what);
  if (value.length !== HASH_SIZE) {
    fail('invalid_argument', `${what} must be ${HASH_SIZE} bytes, got ${value.length}`);
  }
}

function checkU53(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail('invalid_argument', `${what} must be a non-negative integer below 2^53, got ${String(value)}`);
  }
}

/** Writes a u64 given as a safe integer, big-endian. */
function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO_POW_32), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

/** Reads a big-endian u64 that must fit a safe integer (`too_large` otherwise, as in the native binding). */
function readU64(buf: Buffer, offset: number, what: string): number {
  const high = buf.readUInt32BE(offset);
  if (high > 0x1f_ffff) {
    fail('too_large', `${what} ${buf.readBigUInt64BE(offset)} at byte ${offset} is above 2^53 and cannot be a JavaScript number`);
  }
  return high * TWO_POW_32 + buf.readUInt32BE(offset + 4);
}

/** Whether the u64 at `offset` is `first + index`, exactly (also past 2^53, where numbers are not). */
function u64Equals(buf: Buffer, offset: number, first: number, index: number): boolean {
  const high = buf.readUInt32BE(offset);
  if (high <= 0x1f_ffff && first + index <= Number.MAX_SAFE_INTEGER) {
    return high * TWO_POW_32 + buf.readUInt32BE(offset + 4) === first + index;
  }
  return buf.readBigUInt64BE(offset) === BigInt(first) + BigInt(index);
}

function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

// ---- primitives -----------------------------------------------------------

export function crc32c(data: Uint8Array, initial = 0): number {
  checkBytes(data, 'data');
  if (!Number.isInteger(initial) || initial < 0 || initial > 0xffff_ffff) {
    fail('invalid_argument', `initial crc must be a u32, got ${initial}`);
  }
  return CRC32C.buf(data, initial | 0) >>> 0;
}

export function computeEntryHash(prevHash: Uint8Array, payload: Uint8Array): Buffer {
  checkHash(prevHash, 'prevHash');
  checkBytes(payload, 'payload');
  return sha256(prevHash, payload);
}

function checkPayload(payload: unknown, sequence: number): asserts payload is Uint8Array {
  checkBytes(payload, `payload of sequence ${sequence}`);
  if (payload.length > MAX_PAYLOAD_LEN) {
    fail('too_large', `payload of sequence ${sequence} is ${payload.length} bytes, over the u32 limit`);
  }
}

/** Writes one entry at `offset` of `out` (which has room for it). */
function writeEntry(out: Buffer, offset: number, sequence: number, prevHash: Uint8Array, payload: Uint8Array): void {
  out.writeUInt32BE(payload.length, offset + ENTRY_PAYLOAD_LEN_OFFSET);
  writeU64(out, sequence, offset + ENTRY_SEQUENCE_OFFSET);
  out.set(prevHash, offset + ENTRY_PREV_HASH_OFFSET);
  out.set(payload, offset + ENTRY_HEADER_SIZE);
  const end = offset + ENTRY_HEADER_SIZE + payload.length;
  out.writeUInt32BE(CRC32C.buf(out.subarray(offset + ENTRY_PAYLOAD_LEN_OFFSET, end), 0) >>> 0, offset);
}

export function encodeEntry(sequence: number, prevHash: Uint8Array, payload: Uint8Array): Buffer {
  checkU53(sequence, 'sequence');
  checkHash(prevHash, 'prevHash');
  checkPayload(payload, sequence);
  const out = Buffer.allocUnsafe(ENTRY_HEADER_SIZE + payload.length);
  writeEntry(out, 0, sequence, prevHash, payload);
  return out;
}

export function encodeEntries(firstSequence: number, prevHash: Uint8Array, packedOrList: Payloads): EncodedBatch {
  checkU53(firstSequence, 'firstSequence');
  checkHash(prevHash, 'prevHash');
  const payloads = unpackPayloads(packedOrList);
  checkU53(firstSequence + Math.max(payloads.length - 1, 0), 'last sequence');
  let total = 0;
  for (let i = 0; i < payloads.length; i++) {
    checkPayload(payloads[i], firstSequence + i);
    total += ENTRY_HEADER_SIZE + payloads[i]!.length;
  }
  const bytes = Buffer.allocUnsafe(total);
  const chainHashes = Buffer.allocUnsafe(HASH_SIZE * payloads.length);
  let prev: Uint8Array = prevHash;
  let offset = 0;
  for (let i = 0; i < payloads.length; i++) {
    const payload = payloads[i]!;
    writeEntry(bytes, offset, firstSequence + i, prev, payload);
    offset += ENTRY_HEADER_SIZE + payload.length;
    const hash = sha256(prev, payload);
    hash.copy(chainHashes, i * HASH_SIZE);
    prev = hash;
  }
  return { bytes, chainHashes };
}

/** An entry located and CRC-checked in a buffer; its sequence is the u64 at `offset + ENTRY_SEQUENCE_OFFSET`. */
type CheckedEntry = Omit<RawEntry, 'sequence'>;

/** Decodes and CRC-checks the entry at `offset`; `base` is added to offsets in messages. */
function readEntry(data: Buffer, offset: number, base: number): CheckedEntry {
  const at = base + offset;
  if (data.length - offset < ENTRY_HEADER_SIZE) {
    fail('truncated', `entry header at offset ${at}: need ${ENTRY_HEADER_SIZE} bytes, ${data.length - offset} present`);
  }
  const payloadLength = data.readUInt32BE(offset + ENTRY_PAYLOAD_LEN_OFFSET);
  const size = ENTRY_HEADER_SIZE + payloadLength;
  if (data.length - offset < size) {
    fail('truncated', `entry at offset ${at}: declares ${payloadLength} payload bytes, ${data.length - offset - ENTRY_HEADER_SIZE} present`);
  }
  const stored = data.readUInt32BE(offset);
  const actual = CRC32C.buf(data.subarray(offset + ENTRY_PAYLOAD_LEN_OFFSET, offset + size), 0) >>> 0;
  if (stored !== actual) {
    fail('checksum_mismatch', `entry at offset ${at}: crc32c ${hex32(stored)} stored, ${hex32(actual)} computed`);
  }
  return {
    prevHash: data.subarray(offset + ENTRY_PREV_HASH_OFFSET, offset + ENTRY_HEADER_SIZE),
    payloadOffset: offset + ENTRY_HEADER_SIZE,
    payloadLength,
    size,
  };
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

export function decodeEntry(bytes: Uint8Array, offset = 0): RawEntry {
  checkBytes(bytes, 'bytes');
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > bytes.length) {
    fail('invalid_argument', `offset ${offset} is outside the ${bytes.length} bytes given`);
  }
  const buf = asBuffer(bytes);
  const entry = readEntry(buf, offset, 0);
  const sequence = readU64(buf, offset + ENTRY_SEQUENCE_OFFSET, `entry at offset ${offset}: sequence`);
  return { ...entry, sequence, prevHash: Buffer.from(entry.prevHash) };
}

// ---- header ---------------------------------------------------------------

function checkByte(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    fail('invalid_argument', `${what} must be a byte, got ${value}`);
  }
}

export function encodeHeader(init: HeaderInit): Buffer {
  if (typeof init !== 'object' || init === null) fail('invalid_argument', 'header must be an object');
  const flags = init.flags ?? 0;
  const compression = init.compression ?? COMPRESSION_NONE;
  checkByte(flags, 'flags');
  checkByte(compression, 'compression');
  const u64Fields = {
    firstSeq: init.firstSeq,
    lastSeq: init.lastSeq ?? 0,
    entryCount: init.entryCount ?? 0,
    bodyLen: init.bodyLen ?? 0,
  };
  for (const [name, value] of Object.entries(u64Fields)) checkU53(value, name);
  const prevSegmentChecksum = init.prevSegmentChecksum ?? 0n;
  if (typeof prevSegmentChecksum !== 'bigint' || prevSegmentChecksum < 0n || prevSegmentChecksum > MAX_U64) {
    fail('invalid_argument', `prevSegmentChecksum must be a u64 bigint, got ${String(prevSegmentChecksum)}`);
  }
  const createdMs = init.createdMs ?? 0;
  const createdMsIsI64 = typeof createdMs === 'bigint' ? createdMs >= MIN_I64 && createdMs <= MAX_I64 : Number.isSafeInteger(createdMs);
  if (!createdMsIsI64) fail('invalid_argument', `createdMs must be a safe integer or a signed 64-bit bigint, got ${String(createdMs)}`);
  if (init.bodyChecksum !== undefined) checkHash(init.bodyChecksum, 'bodyChecksum');

  const out = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(out, 0);
  out[HEADER_OFFSET.version] = FORMAT_VERSION;
  out[HEADER_OFFSET.flags] = flags;
  out[HEADER_OFFSET.compression] = compression;
  writeU64(out, u64Fields.firstSeq, HEADER_OFFSET.firstSeq);
  writeU64(out, u64Fields.lastSeq, HEADER_OFFSET.lastSeq);
  writeU64(out, u64Fields.entryCount, HEADER_OFFSET.entryCount);
  writeU64(out, u64Fields.bodyLen, HEADER_OFFSET.bodyLen);
  if (init.bodyChecksum !== undefined) out.set(init.bodyChecksum, HEADER_OFFSET.bodyChecksum);
  out.writeBigUInt64BE(prevSegmentChecksum, HEADER_OFFSET.prevSegmentChecksum);
  out.writeBigInt64BE(BigInt(createdMs), HEADER_OFFSET.createdMs);
  return out;
}

function readHeader(buf: Buffer): HeaderFields {
  if (buf.length < HEADER_SIZE) {
    fail('truncated', `header: need ${HEADER_SIZE} bytes, ${buf.length} present`);
  }
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    fail('invalid_magic', `header: magic ${buf.subarray(0, MAGIC.length).toString('hex')} is not HADBJ`);
  }
  const version = buf[HEADER_OFFSET.version];
  if (version !== FORMAT_VERSION) fail('unsupported_version', `header: version ${version}, only 1 is supported`);
  // created_ms is any i64 (as in the reference crate): a number while it is a safe integer, a bigint beyond.
  const createdMs = buf.readBigInt64BE(HEADER_OFFSET.createdMs);
  const createdMsIsSafe = createdMs <= BigInt(Number.MAX_SAFE_INTEGER) && createdMs >= BigInt(Number.MIN_SAFE_INTEGER);
  return {
    version: FORMAT_VERSION,
    flags: buf[HEADER_OFFSET.flags]!,
    compression: buf[HEADER_OFFSET.compression]!,
    firstSeq: readU64(buf, HEADER_OFFSET.firstSeq, 'header: first_seq'),
    lastSeq: readU64(buf, HEADER_OFFSET.lastSeq, 'header: last_seq'),
    entryCount: readU64(buf, HEADER_OFFSET.entryCount, 'header: entry_count'),
    bodyLen: readU64(buf, HEADER_OFFSET.bodyLen, 'header: body_len'),
    bodyChecksum: Buffer.from(buf.subarray(HEADER_OFFSET.bodyChecksum, HEADER_OFFSET.bodyChecksum + HASH_SIZE)),
    prevSegmentChecksum: buf.readBigUInt64BE(HEADER_OFFSET.prevSegmentChecksum),
    createdMs: createdMsIsSafe ? Number(createdMs) : createdMs,
  };
}

export function decodeHeader(bytes: Uint8Array): HeaderFields {
  checkBytes(bytes, 'bytes');
  return readHeader(asBuffer(bytes));
}

// ---- segments -------------------------------------------------------------

function maxBodyBytesOf(options: { maxBodyBytes?: number } | undefined): number {
  const max = options?.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(max) || max <= 0) {
    fail('invalid_argument', `maxBodyBytes must be a positive integer, got ${String(max)}`);
  }
  return max;
}

interface WalkedEntries {
  entryOffsets: Uint32Array;
  chainHash: Buffer;
  startHash: Buffer;
  /** bytes of `body` holding whole, valid entries */
  validLength: number;
  /** why the walk stopped before the end of `body`, when `stopAtBadEntry` is set */
  tornReason: string | null;
}

/**
 * Walks the raw entries of `body`: checks CRCs, that sequences run on from
 * `firstSeq`, and the hash chain. With `stopAtBadEntry` (unsealed segments),
 * a cut-short or CRC-invalid entry ends the walk instead of throwing.
 * `fileBase` is where `body` starts in the segment's bytes (null for a
 * decompressed body): an error about an entry says where that entry starts there.
 */
function walkEntries(body: Buffer, firstSeq: number, fileBase: number | null, stopAtBadEntry: boolean): WalkedEntries {
  const bodyBase = fileBase ?? 0;
  const at = (offset: number): number | undefined => (fileBase === null ? undefined : fileBase + offset);
  // the sequence of the entry at `index`, as a detail of its error (left out beyond 2^53, as the native core does)
  const entrySequence = (index: number): { sequence?: number } => (Number.isSafeInteger(firstSeq + index) ? { sequence: firstSeq + index } : {});
  const offsets: number[] = [];
  let startHash: Buffer = ZERO_HASH;
  let chainHash: Buffer = ZERO_HASH;
  let offset = 0;
  let tornReason: string | null = null;
  if (body.length > 0xffff_ffff) fail('too_large', `segment body of ${body.length} bytes exceeds the u32 entry offset range`);
  while (offset < body.length) {
    let entry: CheckedEntry;
    try {
      entry = readEntry(body, offset, bodyBase);
    } catch (err) {
      if (!stopAtBadEntry) {
        const entryAt = at(offset);
        throw Object.assign(err as Error, entrySequence(offsets.length), entryAt === undefined ? {} : { offset: entryAt });
      }
      tornReason = (err as Error).message;
      break;
    }
    if (!u64Equals(body, offset + ENTRY_SEQUENCE_OFFSET, firstSeq, offsets.length)) {
      const expected = BigInt(firstSeq) + BigInt(offsets.length);
      fail('invalid_segment', `entry at offset ${bodyBase + offset}: sequence ${body.readBigUInt64BE(offset + ENTRY_SEQUENCE_OFFSET)}, expected ${expected}`, at(offset), entrySequence(offsets.length).sequence);
    }
    if (offsets.length === 0) {
      startHash = Buffer.from(entry.prevHash);
    } else if (!entry.prevHash.equals(chainHash)) {
      fail('chain_broken', `entry at offset ${bodyBase + offset} (sequence ${firstSeq + offsets.length}): prev_hash does not match the chain hash of sequence ${firstSeq + offsets.length - 1}`, at(offset), entrySequence(offsets.length).sequence);
    }
    chainHash = sha256(entry.prevHash, body.subarray(entry.payloadOffset, entry.payloadOffset + entry.payloadLength));
    offsets.push(offset);
    offset += entry.size;
  }
  return { entryOffsets: Uint32Array.from(offsets), chainHash, startHash, validLength: offset, tornReason };
}

function decodeUnsealed(buf: Buffer, header: HeaderFields, options: DecodeOptions | undefined, max: number): RawSegment {
  if (header.flags !== 0) {
    fail('invalid_segment', `unsealed segment ${header.firstSeq}: flags ${hex8(header.flags)}, only sealed segments carry flags`);
  }
  const body = buf.subarray(HEADER_SIZE);
  if (body.length > max) fail('too_large', `unsealed segment body of ${body.length} bytes exceeds the limit of ${max}`);
  const walked = walkEntries(body, header.firstSeq, HEADER_SIZE, true);
  const tornTail = walked.tornReason !== null;
  if (tornTail && options?.allowTornTail !== true) {
    const lastSeq = header.firstSeq + walked.entryOffsets.length - 1;
    fail('torn_tail', `unsealed segment: torn tail after sequence ${lastSeq} at offset ${HEADER_SIZE + walked.validLength} of ${buf.length} (${walked.tornReason})`, HEADER_SIZE + walked.validLength);
  }
  return {
    header,
    body: body.subarray(0, walked.validLength),
    entryOffsets: walked.entryOffsets,
    chainHash: walked.chainHash,
    startHash: walked.startHash,
    validLength: HEADER_SIZE + walked.validLength,
    tornTail,
  };
}

function hex8(value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`;
}

function decodeSealed(buf: Buffer, header: HeaderFields, max: number): RawSegment {
  const compressed = (header.flags & FLAG_COMPRESSED) !== 0;
  const hasTrailer = (header.flags & FLAG_HAS_CHAIN_HASH) !== 0;
  if (header.bodyLen > max) {
    fail('too_large', `sealed segment: body_len ${header.bodyLen} exceeds the limit of ${max}`);
  }
  const expectedLength = HEADER_SIZE + header.bodyLen + (hasTrailer ? TRAILER_SIZE : 0);
  if (buf.length < expectedLength) {
    fail('truncated', `sealed segment: header declares ${expectedLength} bytes (body_len ${header.bodyLen}), ${buf.length} present`);
  }
  if (buf.length > expectedLength) {
    fail('invalid_segment', `sealed segment: ${buf.length - expectedLength} bytes after the declared end at offset ${expectedLength}`);
  }
  const stored = buf.subarray(HEADER_SIZE, HEADER_SIZE + header.bodyLen);
  if (!sha256(stored).equals(header.bodyChecksum)) {
    fail('checksum_mismatch', `sealed segment: SHA-256 of the ${header.bodyLen}-byte body does not match body_checksum`);
  }
  if (header.compression !== (compressed ? COMPRESSION_ZSTD : COMPRESSION_NONE)) {
    fail('invalid_segment', `sealed segment: compression ${header.compression} does not fit flags ${hex8(header.flags)}`);
  }
  const body = compressed ? zstdDecompress(stored, max) : stored;
  // Offsets in messages are into the file for raw bodies, into the decompressed body otherwise.
  const walked = walkEntries(body, header.firstSeq, compressed ? null : HEADER_SIZE, false);
  const count = walked.entryOffsets.length;
  if (count !== header.entryCount) {
    fail('truncated', `sealed segment: entry_count ${header.entryCount}, body holds ${count} entries`);
  }
  if (count === 0) fail('invalid_segment', 'sealed segment holds no entries');
  const lastSeq = header.firstSeq + count - 1;
  if (header.lastSeq !== lastSeq) {
    fail('invalid_segment', `sealed segment: last_seq ${header.lastSeq}, entries end at sequence ${lastSeq}`);
  }
  if (hasTrailer && !buf.subarray(expectedLength - TRAILER_SIZE).equals(walked.chainHash)) {
    fail('checksum_mismatch', `sealed segment: trailer at offset ${expectedLength - TRAILER_SIZE} does not match the chain hash after sequence ${lastSeq}`, expectedLength - TRAILER_SIZE);
  }
  return {
    header,
    body,
    entryOffsets: walked.entryOffsets,
    chainHash: walked.chainHash,
    startHash: walked.startHash,
    validLength: buf.length,
    tornTail: false,
  };
}

export function decodeSegment(bytes: Uint8Array, options?: DecodeOptions): RawSegment {
  checkBytes(bytes, 'bytes');
  checkDecodeTarget(bytes, options?.into);
  const max = maxBodyBytesOf(options);
  const buf = asBuffer(bytes);
  const header = readHeader(buf);
  const segment = (header.flags & FLAG_SEALED) !== 0 ? decodeSealed(buf, header, max) : decodeUnsealed(buf, header, options, max);
  const into = options?.into;
  if (into !== undefined && segment.body.length <= into.length) {
    segment.body.copy(into);
    segment.body = into.subarray(0, segment.body.length);
  }
  return segment;
}

export function sealSegment(unsealed: Uint8Array, options?: SealOptions): Buffer {
  checkBytes(unsealed, 'unsealed');
  checkSealTarget(unsealed, options?.into);
  const level = options?.level ?? DEFAULT_ZSTD_LEVEL;
  if (!Number.isInteger(level) || level < 0 || level > 22) {
    fail('invalid_argument', `zstd level must be 0..22, got ${String(level)}`);
  }
  const max = maxBodyBytesOf(options);
  const buf = asBuffer(unsealed);
  const header = readHeader(buf);
  if ((header.flags & FLAG_SEALED) !== 0) fail('invalid_segment', 'seal: the segment is already sealed');
  const decoded = decodeUnsealed(buf, header, undefined, max);
  const count = decoded.entryOffsets.length;
  if (count === 0) fail('invalid_segment', `seal: unsealed segment starting at sequence ${header.firstSeq} has no entries`);
  const stored = level > 0 ? zstdCompress(decoded.body, level) : decoded.body;
  const sealedHeader = encodeHeader({
    flags: FLAG_SEALED | FLAG_HAS_CHAIN_HASH | (level > 0 ? FLAG_COMPRESSED : 0),
    compression: level > 0 ? COMPRESSION_ZSTD : COMPRESSION_NONE,
    firstSeq: header.firstSeq,
    lastSeq: header.firstSeq + count - 1,
    entryCount: count,
    bodyLen: stored.length,
    bodyChecksum: sha256(stored),
    prevSegmentChecksum: decoded.startHash.readBigUInt64BE(0),
    createdMs: header.createdMs,
  });
  const length = HEADER_SIZE + stored.length + TRAILER_SIZE;
  const into = options?.into;
  if (into === undefined || length > into.length) return Buffer.concat([sealedHeader, stored, decoded.chainHash], length);
  sealedHeader.copy(into, 0);
  asBuffer(stored).copy(into, HEADER_SIZE);
  decoded.chainHash.copy(into, HEADER_SIZE + stored.length);
  return into.subarray(0, length);
}
