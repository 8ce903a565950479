//! Whole segments: decoding with every check of FORMAT.md, and sealing an unsealed
//! segment into its final form (zstd body, filled header, chain-hash trailer).

use std::io::Read;

use crate::error::{Error, ErrorCode, Result};
use crate::format::{
    decode_entry, entry_hash, hash_prefix, sha256, Header, COMPRESSION_NONE, COMPRESSION_ZSTD,
    FLAG_COMPRESSED, FLAG_HAS_CHAIN_HASH, FLAG_SEALED, HEADER_SIZE, TRAILER_SIZE, ZERO_HASH,
};

/// Default ceiling on a segment body (stored or decompressed).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 30;

#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub allow_torn_tail: bool,
    pub max_body_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            allow_torn_tail: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DecodedSegment {
    pub header: Header,
    /// raw (decompressed) entries, back to back
    pub body: Vec<u8>,
    /// where each entry starts in `body`
    pub entry_offsets: Vec<u32>,
    /// chain hash after the last entry
    pub chain_hash: [u8; 32],
    /// prev_hash of the first entry
    pub start_hash: [u8; 32],
    /// bytes of the input holding the header and whole, valid entries (or the whole sealed segment)
    pub valid_length: usize,
    pub torn_tail: bool,
}

pub fn segment_file_name(first_seq: u64) -> String {
    format!("journal-{first_seq:016}.hadbj")
}

/// The entries of a raw body, checked: CRCs, consecutive sequences from `first_seq`, one
/// unbroken chain. Returns (offsets, start hash, chain hash, bytes consumed, torn).
struct BodyWalk {
    offsets: Vec<u32>,
    start_hash: [u8; 32],
    chain_hash: [u8; 32],
    consumed: usize,
    torn: Option<Error>,
}

fn walk_entries(body: &[u8], first_seq: u64, stop_at_bad_entry: bool) -> Result<BodyWalk> {
    if body.len() > u32::MAX as usize {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("segment body of {} bytes exceeds 4 GiB", body.len()),
        ));
    }
    let mut walk = BodyWalk {
        offsets: Vec::new(),
        start_hash: ZERO_HASH,
        chain_hash: ZERO_HASH,
        consumed: 0,
        torn: None,
    };
    let mut offset = 0usize;
    while offset < body.len() {
        let entry = match decode_entry(body, offset) {
            Ok(entry) => entry,
            Err(err) if stop_at_bad_entry => {
                walk.torn = Some(err);
                break;
            }
            Err(err) => return Err(err),
        };
        let index = walk.offsets.len() as u64;
        let expected_seq = first_seq.checked_add(index).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidSegment,
                format!("sequence overflows after first_seq {first_seq}"),
            )
        })?;
        if entry.sequence != expected_seq {
            return Err(Error::new(
                ErrorCode::InvalidSegment,
                format!(
                    "entry at body offset {offset} has sequence {}, expected {expected_seq}",
                    entry.sequence
                ),
            ));
        }
        if index == 0 {
            walk.start_hash = entry.prev_hash;
        } else if entry.prev_hash != walk.chain_hash {
            return Err(Error::new(
                ErrorCode::ChainBroken,
                format!(
                    "entry {} at body offset {offset}: prev_hash {} does not continue the chain {}",
                    entry.sequence,
                    crate::format::hex(&entry.prev_hash[..8]),
                    crate::format::hex(&walk.chain_hash[..8]),
                ),
            ));
        }
        let payload = &body[entry.payload_offset..entry.payload_offset + entry.payload_len];
        walk.chain_hash = entry_hash(&entry.prev_hash, payload);
        walk.offsets.push(offset as u32);
        offset += entry.size;
        walk.consumed = offset;
    }
    Ok(walk)
}

fn decompress(stored: &[u8], max_body_bytes: usize) -> Result<Vec<u8>> {
    let declared = zstd::zstd_safe::get_frame_content_size(stored).ok().flatten();
    if let Some(size) = declared {
        if size > max_body_bytes as u64 {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!("compressed body declares {size} bytes, over the {max_body_bytes}-byte ceiling"),
            ));
        }
    }
    let decoder = zstd::stream::read::Decoder::with_buffer(stored).map_err(|e| {
        Error::new(
            ErrorCode::InvalidSegment,
            format!("zstd body cannot be read: {e}"),
        )
    })?;
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(max_body_bytes as u64) as usize);
    decoder
        .take(max_body_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Error::new(
                ErrorCode::InvalidSegment,
                format!("zstd body does not decompress: {e}"),
            )
        })?;
    if out.len() > max_body_bytes {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("decompressed body exceeds the {max_body_bytes}-byte ceiling"),
        ));
    }
    Ok(out)
}

fn decode_sealed(bytes: &[u8], header: Header, opts: &DecodeOptions) -> Result<DecodedSegment> {
    if header.body_len > opts.max_body_bytes as u64 {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!(
                "header declares a {}-byte body, over the {}-byte ceiling",
                header.body_len, opts.max_body_bytes
            ),
        ));
    }
    let body_end = HEADER_SIZE + header.body_len as usize;
    let trailer_len = if header.has_chain_hash() {
        TRAILER_SIZE
    } else {
        0
    };
    if bytes.len() < body_end + trailer_len {
        return Err(Error::new(
            ErrorCode::Truncated,
            format!(
                "sealed segment {} needs {} bytes (body {} + trailer {trailer_len}), only {} present",
                header.first_seq,
                body_end + trailer_len,
                header.body_len,
                bytes.len()
            ),
        ));
    }
    if bytes.len() > body_end + trailer_len {
        return Err(Error::new(
            ErrorCode::InvalidSegment,
            format!(
                "sealed segment {} has {} unexpected bytes after offset {}",
                header.first_seq,
                bytes.len() - body_end - trailer_len,
                body_end + trailer_len
            ),
        ));
    }
    let stored = &bytes[HEADER_SIZE..body_end];
    if sha256(stored) != header.body_checksum {
        return Err(Error::new(
            ErrorCode::ChecksumMismatch,
            format!(
                "segment {}: SHA-256 of the {}-byte body at offset {HEADER_SIZE} does not match body_checksum",
                header.first_seq, header.body_len
            ),
        ));
    }
    let body = match (header.is_compressed(), header.compression) {
        (true, COMPRESSION_ZSTD) => decompress(stored, opts.max_body_bytes)
            .map_err(|e| e.context(format!("segment {}", header.first_seq)))?,
        (false, COMPRESSION_NONE) => stored.to_vec(),
        (compressed, algorithm) => {
            return Err(Error::new(
                ErrorCode::InvalidSegment,
                format!(
                    "segment {}: compression byte {algorithm} does not fit flags {:#04x} (compressed: {compressed})",
                    header.first_seq, header.flags
                ),
            ))
        }
    };
    let walk = walk_entries(&body, header.first_seq, false)
        .map_err(|e| e.context(format!("segment {}", header.first_seq)))?;
    if walk.offsets.len() as u64 != header.entry_count {
        return Err(Error::new(
            ErrorCode::Truncated,
            format!(
                "segment {}: header declares {} entries, body holds {}",
                header.first_seq,
                header.entry_count,
                walk.offsets.len()
            ),
        ));
    }
    if walk.offsets.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidSegment,
            format!("sealed segment {} holds no entries", header.first_seq),
        ));
    }
    let last_seq = header.first_seq + header.entry_count - 1;
    if header.last_seq != last_seq {
        return Err(Error::new(
            ErrorCode::InvalidSegment,
            format!(
                "segment {}: header last_seq {} but the last entry is {last_seq}",
                header.first_seq, header.last_seq
            ),
        ));
    }
    if header.has_chain_hash() && bytes[body_end..] != walk.chain_hash {
        return Err(Error::new(
            ErrorCode::ChecksumMismatch,
            format!(
                "segment {}: trailer at offset {body_end} does not match the chain hash of entry {last_seq}",
                header.first_seq
            ),
        ));
    }
    Ok(DecodedSegment {
        header,
        body,
        entry_offsets: walk.offsets,
        chain_hash: walk.chain_hash,
        start_hash: walk.start_hash,
        valid_length: bytes.len(),
        torn_tail: false,
    })
}

fn decode_unsealed(bytes: &[u8], header: Header, opts: &DecodeOptions) -> Result<DecodedSegment> {
    if header.flags != 0 {
        return Err(Error::new(
            ErrorCode::InvalidSegment,
            format!(
                "unsealed segment {} has flags {:#04x}; only sealed segments carry flags",
                header.first_seq, header.flags
            ),
        ));
    }
    let raw = &bytes[HEADER_SIZE..];
    if raw.len() > opts.max_body_bytes {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!(
                "unsealed segment {} holds {} bytes, over the {}-byte ceiling",
                header.first_seq,
                raw.len(),
                opts.max_body_bytes
            ),
        ));
    }
    let walk = walk_entries(raw, header.first_seq, true)
        .map_err(|e| e.context(format!("unsealed segment {}", header.first_seq)))?;
    let torn_tail = walk.torn.is_some();
    if let Some(err) = walk.torn {
        if !opts.allow_torn_tail {
            let after = match walk.offsets.len() {
                0 => "before its first entry".to_string(),
                n => format!("after sequence {}", header.first_seq + n as u64 - 1),
            };
            return Err(Error::new(
                ErrorCode::TornTail,
                format!(
                    "unsealed segment {} has a torn tail at offset {} {after} ({})",
                    header.first_seq,
                    HEADER_SIZE + walk.consumed,
                    err.message
                ),
            ));
        }
    }
    Ok(DecodedSegment {
        body: raw[..walk.consumed].to_vec(),
        header,
        entry_offsets: walk.offsets,
        chain_hash: walk.chain_hash,
        start_hash: walk.start_hash,
        valid_length: HEADER_SIZE + walk.consumed,
        torn_tail,
    })
}

/// Decodes a sealed or unsealed segment, verifying every check of FORMAT.md.
pub fn decode_segment(bytes: &[u8], opts: &DecodeOptions) -> Result<DecodedSegment> {
    let header = Header::decode(bytes)?;
    if header.is_sealed() {
        decode_sealed(bytes, header, opts)
    } else {
        decode_unsealed(bytes, header, opts)
    }
}

/// Seals an unsealed segment: verifies its entries, fills the header, compresses the body
/// with zstd at `level` (0: stored raw) and appends the chain-hash trailer.
pub fn seal_segment(unsealed: &[u8], level: i32, max_body_bytes: usize) -> Result<Vec<u8>> {
    if !(0..=22).contains(&level) {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("zstd level {level} is outside 0 (none) ..= 22"),
        ));
    }
    let header = Header::decode(unsealed)?;
    if header.is_sealed() {
        return Err(Error::new(
            ErrorCode::InvalidSegment,
            format!("segment {} is already sealed", header.first_seq),
        ));
    }
    let decoded = decode_unsealed(
        unsealed,
        header,
        &DecodeOptions {
            allow_torn_tail: false,
            max_body_bytes,
        },
    )?;
    let count = decoded.entry_offsets.len() as u64;
    if count == 0 {
        return Err(Error::new(
            ErrorCode::InvalidSegment,
            format!(
                "segment {} has no entries to seal",
                decoded.header.first_seq
            ),
        ));
    }
    let raw = &unsealed[HEADER_SIZE..decoded.valid_length];
    let compressed;
    let (stored, flags, compression) = if level > 0 {
        compressed = zstd::bulk::compress(raw, level).map_err(|e| {
            Error::new(
                ErrorCode::Internal,
                format!(
                    "zstd failed on segment {}: {e}",
                    decoded.header.first_seq
                ),
            )
        })?;
        (
            compressed.as_slice(),
            FLAG_SEALED | FLAG_HAS_CHAIN_HASH | FLAG_COMPRESSED,
            COMPRESSION_ZSTD,
        )
    } else {
        (raw, FLAG_SEALED | FLAG_HAS_CHAIN_HASH, COMPRESSION_NONE)
    };
    let sealed_header = Header {
        flags,
        compression,
        first_seq: decoded.header.first_seq,
        last_seq: decoded.header.first_seq + count - 1,
        entry_count: count,
        body_len: stored.len() as u64,
        body_checksum: sha256(stored),
        prev_segment_checksum: hash_prefix(&decoded.start_hash),
        created_ms: decoded.header.created_ms,
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + stored.len() + TRAILER_SIZE);
    out.extend_from_slice(&sealed_header.encode());
    out.extend_from_slice(stored);
    out.extend_from_slice(&decoded.chain_hash);
    Ok(out)
}
