//! The `.hadbj` v1 building blocks: header, entry, CRC-32C and the SHA-256 chain
//! (FORMAT.md). Everything here is pure computation over byte slices.

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};

pub const MAGIC: [u8; 5] = *b"HADBJ";
pub const VERSION: u8 = 1;
pub const HEADER_SIZE: usize = 128;
pub const ENTRY_HEADER_SIZE: usize = 48;
pub const TRAILER_SIZE: usize = 32;

pub const FLAG_COMPRESSED: u8 = 0x01;
pub const FLAG_SEALED: u8 = 0x04;
pub const FLAG_HAS_CHAIN_HASH: u8 = 0x08;

pub const COMPRESSION_NONE: u8 = 0;
pub const COMPRESSION_ZSTD: u8 = 1;

pub const HASH_SIZE: usize = 32;
pub const ZERO_HASH: [u8; HASH_SIZE] = [0u8; HASH_SIZE];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub flags: u8,
    pub compression: u8,
    pub first_seq: u64,
    pub last_seq: u64,
    pub entry_count: u64,
    pub body_len: u64,
    pub body_checksum: [u8; 32],
    pub prev_segment_checksum: u64,
    pub created_ms: i64,
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

fn hash32(bytes: &[u8]) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(bytes);
    hash
}

impl Header {
    /// The header of a live segment: only first_seq and created_ms are set.
    pub fn unsealed(first_seq: u64, created_ms: i64) -> Header {
        Header {
            flags: 0,
            compression: COMPRESSION_NONE,
            first_seq,
            last_seq: 0,
            entry_count: 0,
            body_len: 0,
            body_checksum: ZERO_HASH,
            prev_segment_checksum: 0,
            created_ms,
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.flags & FLAG_SEALED != 0
    }

    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    pub fn has_chain_hash(&self) -> bool {
        self.flags & FLAG_HAS_CHAIN_HASH != 0
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut buf = [0u8; HEADER_SIZE];
        buf[0..5].copy_from_slice(&MAGIC);
        buf[5] = VERSION;
        buf[6] = self.flags;
        buf[7] = self.compression;
        buf[12..20].copy_from_slice(&self.first_seq.to_be_bytes());
        buf[20..28].copy_from_slice(&self.last_seq.to_be_bytes());
        buf[28..36].copy_from_slice(&self.entry_count.to_be_bytes());
        buf[36..44].copy_from_slice(&self.body_len.to_be_bytes());
        buf[44..76].copy_from_slice(&self.body_checksum);
        buf[76..84].copy_from_slice(&self.prev_segment_checksum.to_be_bytes());
        buf[84..92].copy_from_slice(&self.created_ms.to_be_bytes());
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Header> {
        if bytes.len() < HEADER_SIZE {
            return Err(Error::new(
                ErrorCode::Truncated,
                format!(
                    "segment header needs {HEADER_SIZE} bytes, only {} present",
                    bytes.len()
                ),
            ));
        }
        if bytes[0..5] != MAGIC {
            return Err(Error::new(
                ErrorCode::InvalidMagic,
                format!(
                    "bad magic at offset 0: expected HADBJ, found {}",
                    hex(&bytes[0..5])
                ),
            ));
        }
        if bytes[5] != VERSION {
            return Err(Error::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "unsupported format version {} at offset 5 (this build reads version {VERSION})",
                    bytes[5]
                ),
            ));
        }
        Ok(Header {
            flags: bytes[6],
            compression: bytes[7],
            first_seq: be_u64(bytes, 12),
            last_seq: be_u64(bytes, 20),
            entry_count: be_u64(bytes, 28),
            body_len: be_u64(bytes, 36),
            body_checksum: hash32(&bytes[44..76]),
            prev_segment_checksum: be_u64(bytes, 76),
            created_ms: be_u64(bytes, 84) as i64,
        })
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The chain hash of an entry: SHA-256(prev_hash || payload).
pub fn entry_hash(prev_hash: &[u8; 32], payload: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(payload);
    hasher.finalize().into()
}

/// The first 8 bytes of a chain hash as a big-endian u64 (`prev_segment_checksum`).
pub fn hash_prefix(hash: &[u8; 32]) -> u64 {
    be_u64(hash, 0)
}

/// Appends one encoded entry to `out`.
pub fn encode_entry_into(out: &mut Vec<u8>, sequence: u64, prev_hash: &[u8; 32], payload: &[u8]) {
    let start = out.len();
    out.reserve(ENTRY_HEADER_SIZE + payload.len());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(payload);
    let crc = crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The largest payload an entry can declare (the u32 length field).
pub const MAX_PAYLOAD_BYTES: usize = u32::MAX as usize;

/// One entry located in a buffer; its payload is `data[payload_offset..payload_offset + payload_len]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    pub sequence: u64,
    pub prev_hash: [u8; 32],
    pub payload_offset: usize,
    pub payload_len: usize,
    pub size: usize,
}

/// Decodes and CRC-checks the entry at `offset`. Lengths are checked against the bytes present.
pub fn decode_entry(data: &[u8], offset: usize) -> Result<EntryRef> {
    let available = data.len().saturating_sub(offset);
    if offset > data.len() || available < ENTRY_HEADER_SIZE {
        return Err(Error::new(
            ErrorCode::Truncated,
            format!(
                "entry at offset {offset} needs a {ENTRY_HEADER_SIZE}-byte header, only {available} bytes present"
            ),
        ));
    }
    let stored_crc = be_u32(data, offset);
    let payload_len = be_u32(data, offset + 4) as usize;
    let sequence = be_u64(data, offset + 8);
    if payload_len > available - ENTRY_HEADER_SIZE {
        return Err(Error::new(
            ErrorCode::Truncated,
            format!(
                "entry {sequence} at offset {offset} declares a {payload_len}-byte payload, only {} bytes present",
                available - ENTRY_HEADER_SIZE
            ),
        ));
    }
    let end = offset + ENTRY_HEADER_SIZE + payload_len;
    let computed_crc = crc32c(&data[offset + 4..end]);
    if computed_crc != stored_crc {
        return Err(Error::new(
            ErrorCode::ChecksumMismatch,
            format!(
                "entry {sequence} at offset {offset}: CRC-32C {computed_crc:08x} does not match stored {stored_crc:08x}"
            ),
        ));
    }
    Ok(EntryRef {
        sequence,
        prev_hash: hash32(&data[offset + 16..offset + 48]),
        payload_offset: offset + ENTRY_HEADER_SIZE,
        payload_len,
        size: ENTRY_HEADER_SIZE + payload_len,
    })
}

/// Encodes `payloads` as consecutive entries from `first_seq`, chained from `prev_hash`.
/// Returns the bytes and the chain hash after each entry (32 bytes each).
pub fn encode_entries<P: AsRef<[u8]>>(
    first_seq: u64,
    prev_hash: &[u8; 32],
    payloads: &[P],
) -> (Vec<u8>, Vec<u8>) {
    let total: usize = payloads
        .iter()
        .map(|p| ENTRY_HEADER_SIZE + p.as_ref().len())
        .sum();
    let mut bytes = Vec::with_capacity(total);
    let mut hashes = Vec::with_capacity(32 * payloads.len());
    let mut chain = *prev_hash;
    for (i, payload) in payloads.iter().enumerate() {
        let payload = payload.as_ref();
        encode_entry_into(&mut bytes, first_seq + i as u64, &chain, payload);
        chain = entry_hash(&chain, payload);
        hashes.extend_from_slice(&chain);
    }
    (bytes, hashes)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let header = Header {
            flags: FLAG_SEALED | FLAG_HAS_CHAIN_HASH | FLAG_COMPRESSED,
            compression: COMPRESSION_ZSTD,
            first_seq: 7,
            last_seq: 9,
            entry_count: 3,
            body_len: 123,
            body_checksum: [5u8; 32],
            prev_segment_checksum: 0xdead_beef_0000_0001,
            created_ms: -5,
        };
        let bytes = header.encode();
        assert_eq!(&bytes[0..6], b"HADBJ\x01");
        assert!(bytes[8..12].iter().chain(&bytes[92..]).all(|b| *b == 0));
        assert_eq!(Header::decode(&bytes).unwrap(), header);
    }

    #[test]
    fn header_errors_have_codes() {
        let good = Header::unsealed(1, 0).encode();
        assert_eq!(
            Header::decode(&good[..100]).unwrap_err().code,
            ErrorCode::Truncated
        );
        let mut bad = good;
        bad[0] = b'X';
        assert_eq!(
            Header::decode(&bad).unwrap_err().code,
            ErrorCode::InvalidMagic
        );
        let mut bad = good;
        bad[5] = 2;
        assert_eq!(
            Header::decode(&bad).unwrap_err().code,
            ErrorCode::UnsupportedVersion
        );
    }

    #[test]
    fn entry_round_trips_and_detects_corruption() {
        let mut buf = vec![1, 2, 3];
        encode_entry_into(&mut buf, 42, &[9u8; 32], b"payload");
        let entry = decode_entry(&buf, 3).unwrap();
        assert_eq!(entry.sequence, 42);
        assert_eq!(entry.prev_hash, [9u8; 32]);
        assert_eq!(
            &buf[entry.payload_offset..entry.payload_offset + entry.payload_len],
            b"payload"
        );
        assert_eq!(entry.size, 48 + 7);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(
            decode_entry(&buf, 3).unwrap_err().code,
            ErrorCode::ChecksumMismatch
        );
        assert_eq!(
            decode_entry(&buf[..40], 3).unwrap_err().code,
            ErrorCode::Truncated
        );
        assert_eq!(
            decode_entry(&buf[..buf.len() - 1], 3).unwrap_err().code,
            ErrorCode::Truncated
        );
        assert_eq!(
            decode_entry(&buf, 1000).unwrap_err().code,
            ErrorCode::Truncated
        );
    }
}
