/**
 * The public `.hadbj` format API, written once over a Core: ts/index.ts binds
 * it to the native core and ts/pure/index.ts to the pure one, so both entry
 * points export the same functions. Every failure is a GraphstreamError.
 */
import type { Core, DecodeOptions, HeaderFields, HeaderInit, RawSegment, SealOptions } from '../core/core.js';
import { GraphstreamError, normalizeAsyncErrors, normalizeErrors } from '../errors.js';
import { SEGMENT_FILE_NAME } from './constants.js';
import { chainHashBefore, payloadOf } from './raw-entries.js';
import { segmentKey } from '../replication/layout.js';
import { checkNameNumber } from '../storage/names.js';

/** The format half of a Core: everything but the journal writer. */
export type FormatCore = Omit<Core, 'openWriter'>;

export interface Entry {
  sequence: number;
  /** chain hash of the entry before (32 bytes) */
  prevHash: Buffer;
  payload: Buffer;
}

export interface DecodedEntry {
  entry: Entry;
  /** bytes the entry occupies (48 + payload length) */
  size: number;
}

export interface DecodedSegment {
  header: HeaderFields;
  /** payloads and hashes are views into one decoded body, not copies */
  entries: Entry[];
  /** chain hash after the last entry (32 zero bytes for an empty unsealed segment) */
  chainHash: Buffer;
  /** prev_hash of the first entry: the chain hash this segment continues from */
  startHash: Buffer;
  /** bytes of the input holding the header and whole, valid entries */
  validLength: number;
  /** an unsealed segment ended in a cut-short entry (only with `allowTornTail`) */
  tornTail: boolean;
}

export interface FormatApi {
  /** CRC-32C (Castagnoli); `initial` continues a previous CRC. */
  crc32c(data: Uint8Array, initial?: number): number;
  /** Chain hash of an entry: SHA-256(prevHash || payload). */
  computeEntryHash(prevHash: Uint8Array, payload: Uint8Array): Buffer;
  encodeEntry(entry: { sequence: number; prevHash: Uint8Array; payload: Uint8Array }): Buffer;
  /** Decodes (and CRC-checks) the entry at `offset`; its payload is a view into `bytes`. */
  decodeEntry(bytes: Uint8Array, offset?: number): DecodedEntry;
  encodeHeader(header: HeaderInit): Buffer;
  decodeHeader(bytes: Uint8Array): HeaderFields;
  /** Seals an unsealed segment: verifies every entry, compresses (zstd level 3 unless `level`), adds the trailer. */
  sealSegment(unsealed: Uint8Array, options?: SealOptions): Buffer;
  /**
   * sealSegment off the JS thread (native core). The native core compresses in Linux's idle
   * scheduling class while cores are free, so that it never keeps the event loop from a core;
   * on a machine whose cores are all busy it seals in the normal class after a short wait
   * (about 50 ms for a 4 MiB segment).
   */
  sealSegmentAsync(unsealed: Uint8Array, options?: SealOptions): Promise<Buffer>;
  /** Decodes and verifies a sealed or unsealed segment. */
  decodeSegment(bytes: Uint8Array, options?: DecodeOptions): DecodedSegment;
  /** decodeSegment off the JS thread (native core). */
  decodeSegmentAsync(bytes: Uint8Array, options?: DecodeOptions): Promise<DecodedSegment>;
  /** Local file name of a segment: `journal-{firstSeq:016}.hadbj`. */
  segmentFileName(firstSeq: number): string;
  /** Object-storage key of a segment: `{prefix}{db}/{generation:04x}/{firstSeq:016x}.hadbj`. */
  segmentKey(prefix: string, db: string, generation: number, firstSeq: number): string;
}

export function segmentFileName(firstSeq: number): string {
  checkNameNumber(firstSeq, 'firstSeq');
  return `journal-${String(firstSeq).padStart(16, '0')}.hadbj`;
}

/** The first sequence a local segment file's name gives, or NaN when the name is not one. */
export function firstSeqOfFileName(name: string): number {
  return Number(SEGMENT_FILE_NAME.exec(name)?.[1] ?? NaN);
}

const ZEROS = Buffer.alloc(64 * 1024);

/** The index of the last byte of `bytes` from `from` on that is not zero, or `from - 1` when there is none. */
export function lastNonZero(bytes: Buffer, from: number): number {
  let end = bytes.length;
  while (end > from) {
    const start = Math.max(from, end - ZEROS.length);
    if (!bytes.subarray(start, end).equals(ZEROS.subarray(0, end - start))) break;
    end = start;
  }
  let at = end - 1;
  while (at >= from && bytes[at] === 0) at--;
  return at;
}

/**
 * How many zero bytes end `bytes` after `from`: in a live segment, the zeros a native writer under
 * 'fsync' writes ahead of its entries (recovery cuts them with the torn tail).
 */
export function zeroTailLength(bytes: Buffer, from: number): number {
  return bytes.length - 1 - lastNonZero(bytes, from);
}

/** Runs an async core call so that a synchronous throw also becomes a GraphstreamError rejection. */
function callAsync<T>(call: () => Promise<T>): Promise<T> {
  return normalizeAsyncErrors(new Promise<T>((resolve) => resolve(call())));
}

/** Views each entry of a decoded body (already verified by the core). */
function toDecodedSegment(raw: RawSegment): DecodedSegment {
  const entries: Entry[] = new Array(raw.entryOffsets.length);
  for (let i = 0; i < entries.length; i++) {
    entries[i] = { sequence: raw.header.firstSeq + i, prevHash: chainHashBefore(raw, i), payload: payloadOf(raw, i) };
  }
  return {
    header: raw.header,
    entries,
    chainHash: raw.chainHash,
    startHash: raw.startHash,
    validLength: raw.validLength,
    tornTail: raw.tornTail,
  };
}

export function createFormatApi(core: FormatCore): FormatApi {
  return {
    crc32c: (data, initial) => normalizeErrors(() => core.crc32c(data, initial)),
    computeEntryHash: (prevHash, payload) => normalizeErrors(() => core.computeEntryHash(prevHash, payload)),
    encodeEntry: (entry) =>
      normalizeErrors(() => {
        if (typeof entry !== 'object' || entry === null) {
          throw new GraphstreamError('invalid_argument', 'encodeEntry takes { sequence, prevHash, payload }');
        }
        return core.encodeEntry(entry.sequence, entry.prevHash, entry.payload);
      }),
    decodeEntry: (bytes, offset = 0) =>
      normalizeErrors(() => {
        const raw = core.decodeEntry(bytes, offset);
        const payload = Buffer.from(bytes.buffer, bytes.byteOffset + raw.payloadOffset, raw.payloadLength);
        return { entry: { sequence: raw.sequence, prevHash: raw.prevHash, payload }, size: raw.size };
      }),
    encodeHeader: (header) => normalizeErrors(() => core.encodeHeader(header)),
    decodeHeader: (bytes) => normalizeErrors(() => core.decodeHeader(bytes)),
    sealSegment: (unsealed, options) => normalizeErrors(() => core.sealSegment(unsealed, options)),
    sealSegmentAsync: (unsealed, options) => callAsync(() => core.sealSegmentAsync(unsealed, options)),
    decodeSegment: (bytes, options) => normalizeErrors(() => toDecodedSegment(core.decodeSegment(bytes, options))),
    decodeSegmentAsync: async (bytes, options) =>
      toDecodedSegment(await callAsync(() => core.decodeSegmentAsync(bytes, options))),
    segmentFileName,
    segmentKey,
  };
}
