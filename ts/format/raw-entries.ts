/**
 * The entries of a decoded segment (a RawSegment: one body and the offset of each entry in it),
 * read in place. The core has verified them; these are views into the body unless they say copy.
 */
import type { RawSegment } from '../core/core.js';
import { ENTRY_HEADER_SIZE, ENTRY_PAYLOAD_LEN_OFFSET, ENTRY_PREV_HASH_OFFSET, HASH_SIZE } from './constants.js';

/** The payload of entry `index`. */
export function payloadOf(decoded: RawSegment, index: number): Buffer {
  const offset = decoded.entryOffsets[index]!;
  const start = offset + ENTRY_HEADER_SIZE;
  return decoded.body.subarray(start, start + decoded.body.readUInt32BE(offset + ENTRY_PAYLOAD_LEN_OFFSET));
}

/** The chain hash before entry `index`: its prev_hash. */
export function chainHashBefore(decoded: RawSegment, index: number): Buffer {
  const offset = decoded.entryOffsets[index]!;
  return decoded.body.subarray(offset + ENTRY_PREV_HASH_OFFSET, offset + ENTRY_HEADER_SIZE);
}

/** The chain hash after entry `index`: the next entry's prev_hash, or the segment's chain hash after its last. */
export function chainHashAfter(decoded: RawSegment, index: number): Buffer {
  return index + 1 < decoded.entryOffsets.length ? chainHashBefore(decoded, index + 1) : decoded.chainHash;
}

/** chainHashAfter, copied out of the body (which a reader may reuse for the next segment). */
export function copyChainHashAfter(decoded: RawSegment, index: number): Buffer {
  const hash = Buffer.allocUnsafe(HASH_SIZE);
  const next = decoded.entryOffsets[index + 1];
  if (next === undefined) decoded.chainHash.copy(hash);
  else decoded.body.copy(hash, 0, next + ENTRY_PREV_HASH_OFFSET, next + ENTRY_HEADER_SIZE);
  return hash;
}
