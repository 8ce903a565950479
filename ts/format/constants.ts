/**
 * The numbers of the `.hadbj` v1 format (docs/FORMAT.md), defined once: the native core
 * (crate/src/format.rs) has its own copy, and every TypeScript module, the pure twin included,
 * imports these.
 */

/** ASCII `HADBJ` at offset 0 of a segment header. */
export const MAGIC: Buffer = Buffer.from('HADBJ', 'latin1');
export const FORMAT_VERSION = 1;
/** What an encrypted object starts with instead (FORMAT.md, "Encrypted objects"): an age v1 file's first line. */
export const AGE_MAGIC: Buffer = Buffer.from('age-encryption.org/v1\n', 'latin1');

export const HEADER_SIZE = 128;
/** Where each header field starts (FORMAT.md's header table). */
export const HEADER_OFFSET = {
  version: 5,
  flags: 6,
  compression: 7,
  firstSeq: 12,
  lastSeq: 20,
  entryCount: 28,
  bodyLen: 36,
  bodyChecksum: 44,
  prevSegmentChecksum: 76,
  createdMs: 84,
} as const;
/** The header's reserved bytes, [start, end): zero in every header. */
export const HEADER_RESERVED_RANGES = [
  [8, 12],
  [92, HEADER_SIZE],
] as const;
/** The fixed part of an entry: crc32c, payload_len, sequence, prev_hash. */
export const ENTRY_HEADER_SIZE = 48;
/** Offsets inside an entry's fixed part. */
export const ENTRY_PAYLOAD_LEN_OFFSET = 4;
export const ENTRY_SEQUENCE_OFFSET = 8;
export const ENTRY_PREV_HASH_OFFSET = 16;
/** A chain hash or body checksum: SHA-256. */
export const HASH_SIZE = 32;
/** A sealed segment's trailer: the chain hash after its last entry. */
export const TRAILER_SIZE = HASH_SIZE;
/** The chain hash before the first entry ever written. */
export const ZERO_HASH: Buffer = Buffer.alloc(HASH_SIZE);

export const FLAG_COMPRESSED = 0x01;
export const FLAG_SEALED = 0x04;
export const FLAG_HAS_CHAIN_HASH = 0x08;
export const COMPRESSION_NONE = 0;
export const COMPRESSION_ZSTD = 1;
export const DEFAULT_ZSTD_LEVEL = 3;

/** A local segment file's name, `journal-{first_seq:016}.hadbj` (decimal); group 1 is first_seq. */
export const SEGMENT_FILE_NAME = /^journal-(\d{16})\.hadbj$/;
/** Suffix of the temporary file a segment is sealed into before it replaces the segment. */
export const SEAL_TEMP_SUFFIX = '.seal.tmp';
/** The next segment the native writer prepares (zeros, fsynced) under 'fsync' (crate/src/writer/spare.rs): a crash's leftover, removed by recovery. */
export const SPARE_SEGMENT_FILE = '.spare-segment';

/**
 * Default ceiling on a segment body, stored or decompressed (the native core's is the same):
 * 16 of the writer's default 4 MiB segments. The journal caps its segments and entries below
 * it, so whatever this package writes, its readers read with the defaults.
 */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
/** The largest sealed segment the readers accept by default: what decryption stops at (the native core's is the same). */
export const DEFAULT_MAX_SEALED_BYTES = HEADER_SIZE + DEFAULT_MAX_BODY_BYTES + TRAILER_SIZE;
/** The largest payload one entry may carry: a segment holding it alone still decodes under the default ceiling. */
export const MAX_ENTRY_PAYLOAD_BYTES = DEFAULT_MAX_BODY_BYTES - ENTRY_HEADER_SIZE;
/** The smallest segment that holds an entry with a payload: its header and one entry of one byte. */
export const MIN_SEGMENT_BYTES = HEADER_SIZE + ENTRY_HEADER_SIZE + 1;
