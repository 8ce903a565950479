//! Whole segments: decoding with every check of FORMAT.md, and sealing an unsealed
//! segment into its final form (zstd body, filled header, chain-hash trailer).

use std::io::Read;

use crate::error::{Error, ErrorCode, Result};
use crate::format::{
    decode_entry, entry_hash, hash_prefix, sha256, Header, COMPRESSION_NONE, COMPRESSION_ZSTD,
    ENTRY_HEADER_SIZE, FLAG_COMPRESSED, FLAG_HAS_CHAIN_HASH, FLAG_SEALED, HEADER_SIZE,
    TRAILER_SIZE, ZERO_HASH,
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

/// Where the raw body of a segment decoded by [`decode_segment_to`] lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// in a buffer of its own (the caller's was too small)
    Owned(Vec<u8>),
    /// in the first `n` bytes of the caller's buffer
    InOutput(usize),
}

#[derive(Debug, Clone)]
pub struct DecodedSegment<B = Vec<u8>> {
    pub header: Header,
    /// raw (decompressed) entries, back to back
    pub body: B,
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
/// unbroken chain.
struct BodyWalk {
    offsets: Vec<u32>,
    start_hash: [u8; 32],
    chain_hash: [u8; 32],
    consumed: usize,
    /// the bad entry an unsealed segment stopped at (only with `stop_at_bad_entry`)
    torn: Option<Error>,
}

/// Bodies from this size on get a second thread: compressed while their entries are checked
/// (seal), checksummed while they decompress (decode).
const PARALLEL_MIN_BODY_BYTES: usize = 256 * 1024;

/// Entries below this count are chained on the calling thread; above it the work is split.
const PARALLEL_CHAIN_MIN_ENTRIES: usize = 1024;

fn prev_hash_at(body: &[u8], offset: usize) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&body[offset + 16..offset + 48]);
    hash
}

fn entry_hash_at(body: &[u8], offset: usize) -> [u8; 32] {
    let mut len = [0u8; 4];
    len.copy_from_slice(&body[offset + 4..offset + 8]);
    let payload_start = offset + ENTRY_HEADER_SIZE;
    let payload = &body[payload_start..payload_start + u32::from_be_bytes(len) as usize];
    entry_hash(&prev_hash_at(body, offset), payload)
}

/// The chain over a run of already CRC-checked entries: the index (within the run) of the
/// first entry whose prev_hash is not the hash of the entry before it, and the hash after
/// the run's last entry.
fn chain_run(body: &[u8], offsets: &[u32]) -> (Option<usize>, [u8; 32]) {
    let mut first_break = None;
    let mut hash = ZERO_HASH;
    for (i, offset) in offsets.iter().enumerate() {
        let offset = *offset as usize;
        if i > 0 && first_break.is_none() && prev_hash_at(body, offset) != hash {
            first_break = Some(i);
        }
        hash = entry_hash_at(body, offset);
    }
    (first_break, hash)
}

/// Verifies the chain of the entries at `offsets`. Each entry carries its predecessor's hash,
/// so the hashes are independent and are computed on several threads for large segments;
/// the break reported is the first in entry order, as a sequential walk would find it.
/// Returns the first broken index and the hash after the last entry.
fn verify_chain(body: &[u8], offsets: &[u32]) -> (Option<usize>, [u8; 32]) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(1);
    if threads < 2 || offsets.len() < PARALLEL_CHAIN_MIN_ENTRIES {
        return chain_run(body, offsets);
    }
    let chunk = offsets.len().div_ceil(threads);
    let runs: Vec<(Option<usize>, [u8; 32])> = std::thread::scope(|scope| {
        let mut parts = offsets.chunks(chunk);
        let first = parts.next().unwrap_or(&[]);
        let handles: Vec<_> = parts
            .map(|part| scope.spawn(move || chain_run(body, part)))
            .collect();
        let mut runs = vec![chain_run(body, first)];
        // A panicking hash thread is reported by `guard` around the whole decode.
        runs.extend(handles.into_iter().map(|handle| match handle.join() {
            Ok(run) => run,
            Err(panic) => std::panic::resume_unwind(panic),
        }));
        runs
    });
    let mut last_hash = ZERO_HASH;
    for (c, (first_break, hash)) in runs.iter().enumerate() {
        let base = c * chunk;
        if c > 0 && prev_hash_at(body, offsets[base] as usize) != last_hash {
            return (Some(base), last_hash);
        }
        if let Some(i) = first_break {
            return (Some(base + i), last_hash);
        }
        last_hash = *hash;
    }
    (None, last_hash)
}

fn walk_entries(body: &[u8], first_seq: u64, stop_at_bad_entry: bool) -> Result<BodyWalk> {
    if body.len() > u32::MAX as usize {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("segment body of {} bytes exceeds 4 GiB", body.len()),
        ));
    }
    // Pass 1, sequential and cheap: entry boundaries, CRCs and sequences, up to the first bad entry.
    let mut offsets = Vec::new();
    let mut stopped_at: Option<Error> = None;
    let mut offset = 0usize;
    while offset < body.len() {
        let entry = match decode_entry(body, offset) {
            Ok(entry) => entry,
            Err(err) => {
                stopped_at = Some(err);
                break;
            }
        };
        let index = offsets.len() as u64;
        let expected_seq = match first_seq.checked_add(index) {
            Some(seq) => seq,
            None => {
                stopped_at = Some(Error::new(
                    ErrorCode::InvalidSegment,
                    format!("sequence overflows after first_seq {first_seq}"),
                ));
                break;
            }
        };
        if entry.sequence != expected_seq {
            stopped_at = Some(Error::new(
                ErrorCode::InvalidSegment,
                format!(
                    "entry at body offset {offset} has sequence {}, expected {expected_seq}",
                    entry.sequence
                ),
            ));
            break;
        }
        offsets.push(offset as u32);
        offset += entry.size;
    }
    // Pass 2: the hash chain over the entries before the stop. A break there comes first in
    // entry order, so it is reported before whatever stopped pass 1.
    let (first_break, chain_hash) = verify_chain(body, &offsets);
    if let Some(i) = first_break {
        let at = offsets[i] as usize;
        let expected = entry_hash_at(body, offsets[i - 1] as usize);
        return Err(Error::new(
            ErrorCode::ChainBroken,
            format!(
                "entry {} at body offset {at}: prev_hash {} does not continue the chain {}",
                first_seq + i as u64,
                crate::format::hex(&prev_hash_at(body, at)[..8]),
                crate::format::hex(&expected[..8]),
            ),
        ));
    }
    let torn = match stopped_at {
        None => None,
        Some(err) if stop_at_bad_entry && err.code != ErrorCode::InvalidSegment => Some(err),
        Some(err) => return Err(err),
    };
    Ok(BodyWalk {
        start_hash: offsets
            .first()
            .map_or(ZERO_HASH, |first| prev_hash_at(body, *first as usize)),
        offsets,
        chain_hash,
        consumed: offset,
        torn,
    })
}

fn decompress(stored: &[u8], max_body_bytes: usize) -> Result<Vec<u8>> {
    let declared = zstd::zstd_safe::get_frame_content_size(stored)
        .ok()
        .flatten();
    if let Some(size) = declared {
        if size > max_body_bytes as u64 {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!(
                    "compressed body declares {size} bytes, over the {max_body_bytes}-byte ceiling"
                ),
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

/// Decompresses into `out` when the body fits it, else into a new buffer (then `out` may have
/// been written to). A body found not to fit, and any error, go to the plain path, which gives
/// the canonical result or error.
fn decompress_to(stored: &[u8], max_body_bytes: usize, out: &mut [u8]) -> Result<Body> {
    let declared = zstd::zstd_safe::get_frame_content_size(stored)
        .ok()
        .flatten();
    let room = out.len().min(max_body_bytes);
    let may_fit = declared.is_none_or(|size| size <= room as u64);
    if may_fit {
        if let Some(written) = decompress_into(stored, &mut out[..room]) {
            return Ok(Body::InOutput(written));
        }
    }
    decompress(stored, max_body_bytes).map(Body::Owned)
}

/// The whole decompressed body in `out`, or None when it does not fit or does not decompress.
fn decompress_into(stored: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(stored).ok()?;
    let mut filled = 0;
    while filled < out.len() {
        match decoder.read(&mut out[filled..]) {
            Ok(0) => return Some(filled),
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    match decoder.read(&mut [0u8; 1]) {
        Ok(0) => Some(filled),
        _ => None,
    }
}

/// `raw` copied into `out` when it fits, else into a new buffer.
fn copy_to(raw: &[u8], out: &mut [u8]) -> Body {
    match out.get_mut(..raw.len()) {
        Some(target) => {
            target.copy_from_slice(raw);
            Body::InOutput(raw.len())
        }
        None => Body::Owned(raw.to_vec()),
    }
}

fn body_bytes<'a>(body: &'a Body, out: &'a [u8]) -> &'a [u8] {
    match body {
        Body::Owned(bytes) => bytes,
        Body::InOutput(len) => &out[..*len],
    }
}

fn decode_sealed(
    bytes: &[u8],
    header: Header,
    opts: &DecodeOptions,
    out: &mut [u8],
) -> Result<DecodedSegment<Body>> {
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
    let checksum_error = || {
        Error::new(
            ErrorCode::ChecksumMismatch,
            format!(
                "segment {}: SHA-256 of the {}-byte body at offset {HEADER_SIZE} does not match body_checksum",
                header.first_seq, header.body_len
            ),
        )
    };
    let body = match (header.is_compressed(), header.compression) {
        (true, COMPRESSION_ZSTD) => {
            // The checksum of the stored body and its (bounded) decompression are independent,
            // so large bodies get both at once; a mismatch is still reported first.
            let (checksum, body) = if stored.len() >= PARALLEL_MIN_BODY_BYTES {
                std::thread::scope(|scope| {
                    let checksum = scope.spawn(|| sha256(stored));
                    let body = decompress_to(stored, opts.max_body_bytes, out);
                    match checksum.join() {
                        Ok(checksum) => (checksum, body),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                })
            } else {
                (
                    sha256(stored),
                    decompress_to(stored, opts.max_body_bytes, out),
                )
            };
            if checksum != header.body_checksum {
                return Err(checksum_error());
            }
            body.map_err(|e| e.context(format!("segment {}", header.first_seq)))?
        }
        (compressed, algorithm) => {
            if sha256(stored) != header.body_checksum {
                return Err(checksum_error());
            }
            if compressed || algorithm != COMPRESSION_NONE {
                return Err(Error::new(
                    ErrorCode::InvalidSegment,
                    format!(
                        "segment {}: compression byte {algorithm} does not fit flags {:#04x} (compressed: {compressed})",
                        header.first_seq, header.flags
                    ),
                ));
            }
            copy_to(stored, out)
        }
    };
    let walk = walk_entries(body_bytes(&body, out), header.first_seq, false)
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

/// Checks the entries of an unsealed segment in place (no copy of the body): the walk over
/// its whole, valid entries, and whether a torn tail was cut off.
fn walk_unsealed(bytes: &[u8], header: &Header, opts: &DecodeOptions) -> Result<(BodyWalk, bool)> {
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
    if let Some(err) = &walk.torn {
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
    Ok((walk, torn_tail))
}

fn decode_unsealed(
    bytes: &[u8],
    header: Header,
    opts: &DecodeOptions,
    out: &mut [u8],
) -> Result<DecodedSegment<Body>> {
    let (walk, torn_tail) = walk_unsealed(bytes, &header, opts)?;
    Ok(DecodedSegment {
        body: copy_to(&bytes[HEADER_SIZE..HEADER_SIZE + walk.consumed], out),
        header,
        entry_offsets: walk.offsets,
        chain_hash: walk.chain_hash,
        start_hash: walk.start_hash,
        valid_length: HEADER_SIZE + walk.consumed,
        torn_tail,
    })
}

/// [`decode_segment_to`] with the body always in a buffer of its own (the tests' form).
#[cfg(test)]
pub fn decode_segment(bytes: &[u8], opts: &DecodeOptions) -> Result<DecodedSegment> {
    let decoded = decode_segment_to(bytes, opts, &mut [])?;
    let body = match decoded.body {
        Body::Owned(body) => body,
        Body::InOutput(_) => Vec::new(), // only an empty body fits no room
    };
    Ok(DecodedSegment {
        header: decoded.header,
        body,
        entry_offsets: decoded.entry_offsets,
        chain_hash: decoded.chain_hash,
        start_hash: decoded.start_hash,
        valid_length: decoded.valid_length,
        torn_tail: decoded.torn_tail,
    })
}

/// Decodes a sealed or unsealed segment, verifying every check of FORMAT.md. The body goes
/// into `out` when it fits, so that a reader decoding one segment after another can reuse its
/// buffers; otherwise into a buffer of its own.
pub fn decode_segment_to(
    bytes: &[u8],
    opts: &DecodeOptions,
    out: &mut [u8],
) -> Result<DecodedSegment<Body>> {
    let header = Header::decode(bytes)?;
    if header.is_sealed() {
        decode_sealed(bytes, header, opts, out)
    } else {
        decode_unsealed(bytes, header, opts, out)
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
    // The entries are checked where they lie (no copy of the body), and a large body is
    // compressed on a second thread meanwhile: the two are independent, and the compressed
    // bytes are used only once every check has passed.
    let opts = DecodeOptions {
        allow_torn_tail: false,
        max_body_bytes,
    };
    let body = &unsealed[HEADER_SIZE..];
    let (walked, compressed_ahead) = if level > 0 && body.len() >= PARALLEL_MIN_BODY_BYTES {
        std::thread::scope(|scope| {
            let compressing = scope.spawn(|| zstd::bulk::compress(body, level));
            let walked = walk_unsealed(unsealed, &header, &opts);
            match compressing.join() {
                Ok(compressed) => (walked, compressed.ok()),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    } else {
        (walk_unsealed(unsealed, &header, &opts), None)
    };
    let (walk, _) = walked?;
    let count = walk.offsets.len() as u64;
    if count == 0 {
        return Err(Error::new(
            ErrorCode::InvalidSegment,
            format!("segment {} has no entries to seal", header.first_seq),
        ));
    }
    let raw = &unsealed[HEADER_SIZE..HEADER_SIZE + walk.consumed];
    let compressed;
    let (stored, flags, compression) = if level > 0 {
        compressed = match compressed_ahead {
            Some(ahead) if raw.len() == body.len() => ahead,
            _ => zstd::bulk::compress(raw, level).map_err(|e| {
                Error::new(
                    ErrorCode::Internal,
                    format!("zstd failed on segment {}: {e}", header.first_seq),
                )
            })?,
        };
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
        first_seq: header.first_seq,
        last_seq: header.first_seq + count - 1,
        entry_count: count,
        body_len: stored.len() as u64,
        body_checksum: sha256(stored),
        prev_segment_checksum: hash_prefix(&walk.start_hash),
        created_ms: header.created_ms,
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + stored.len() + TRAILER_SIZE);
    out.extend_from_slice(&sealed_header.encode());
    out.extend_from_slice(stored);
    out.extend_from_slice(&walk.chain_hash);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_entry_into, entry_hash, hex};
    use proptest::prelude::*;
    use serde_json::Value;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../__test__/fixtures/vectors");

    fn manifest() -> Value {
        let text = std::fs::read_to_string(format!("{VECTORS}/manifest.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn unsealed_from(first_seq: u64, prev: [u8; 32], payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = Header::unsealed(first_seq, 1_764_115_200_000)
            .encode()
            .to_vec();
        let mut chain = prev;
        for (i, payload) in payloads.iter().enumerate() {
            encode_entry_into(&mut bytes, first_seq + i as u64, &chain, payload);
            chain = entry_hash(&chain, payload);
        }
        bytes
    }

    #[test]
    fn every_vector_decodes_as_the_manifest_says() {
        let manifest = manifest();
        let expected_entries = manifest["entries"].as_array().unwrap();
        for (name, spec) in manifest["files"].as_object().unwrap() {
            let bytes = std::fs::read(format!("{VECTORS}/{name}")).unwrap();
            let expect = spec["expect"].as_str().unwrap();
            let result = decode_segment(&bytes, &DecodeOptions::default());
            if expect != "ok" {
                let err = result.expect_err(name);
                assert_eq!(err.code.as_str(), expect, "{name}: {}", err.message);
                continue;
            }
            let decoded = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                decoded.entry_offsets.len(),
                expected_entries.len(),
                "{name}"
            );
            let mut raw = Vec::new();
            for (i, want) in expected_entries.iter().enumerate() {
                let at = decoded.entry_offsets[i] as usize;
                let entry = crate::format::decode_entry(&decoded.body, at).unwrap();
                assert_eq!(entry.sequence, want["sequence"].as_u64().unwrap());
                assert_eq!(hex(&entry.prev_hash), want["prev_hash"].as_str().unwrap());
                let payload =
                    &decoded.body[entry.payload_offset..entry.payload_offset + entry.payload_len];
                assert_eq!(hex(payload), want["payload"].as_str().unwrap());
                raw.extend(unhex(want["entry_bytes"].as_str().unwrap()));
            }
            assert_eq!(decoded.body, raw, "{name}: raw entries byte for byte");
            assert_eq!(
                hex(&decoded.chain_hash),
                manifest["chain_hash"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn torn_tail_is_cut_at_the_last_whole_entry_when_allowed() {
        let bytes = std::fs::read(format!("{VECTORS}/unsealed-torn-tail.hadbj")).unwrap();
        let opts = DecodeOptions {
            allow_torn_tail: true,
            ..DecodeOptions::default()
        };
        let decoded = decode_segment(&bytes, &opts).unwrap();
        assert!(decoded.torn_tail);
        assert!(decoded.valid_length < bytes.len());
        let whole =
            decode_segment(&bytes[..decoded.valid_length], &DecodeOptions::default()).unwrap();
        assert_eq!(whole.entry_offsets, decoded.entry_offsets);
        assert!(!whole.torn_tail);
    }

    #[test]
    fn sealing_the_unsealed_vector_reproduces_the_sealed_vectors() {
        let unsealed = std::fs::read(format!("{VECTORS}/unsealed.hadbj")).unwrap();
        let raw = std::fs::read(format!("{VECTORS}/sealed-raw.hadbj")).unwrap();
        assert_eq!(
            seal_segment(&unsealed, 0, DEFAULT_MAX_BODY_BYTES).unwrap(),
            raw
        );
        let zstd = seal_segment(&unsealed, 3, DEFAULT_MAX_BODY_BYTES).unwrap();
        let ours = decode_segment(&zstd, &DecodeOptions::default()).unwrap();
        let theirs = decode_segment(
            &std::fs::read(format!("{VECTORS}/sealed-zstd.hadbj")).unwrap(),
            &DecodeOptions::default(),
        )
        .unwrap();
        assert_eq!(ours.body, theirs.body);
        assert_eq!(ours.chain_hash, theirs.chain_hash);
        assert_eq!(ours.header.prev_segment_checksum, 0);
    }

    #[test]
    fn zstd_output_is_capped() {
        let payload = vec![0u8; 1 << 20];
        let unsealed = unsealed_from(1, ZERO_HASH, &[payload]);
        let sealed = seal_segment(&unsealed, 3, DEFAULT_MAX_BODY_BYTES).unwrap();
        assert!(
            sealed.len() < 4096,
            "a megabyte of zeros compresses to little"
        );
        let err = decode_segment(
            &sealed,
            &DecodeOptions {
                allow_torn_tail: false,
                max_body_bytes: 64 * 1024,
            },
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::TooLarge);
    }

    #[test]
    fn huge_declared_lengths_are_refused_without_allocating() {
        let mut header = Header::unsealed(1, 0);
        header.flags = FLAG_SEALED;
        header.body_len = u64::MAX / 2;
        let err = decode_segment(&header.encode(), &DecodeOptions::default()).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooLarge);
        let mut bytes = Header::unsealed(1, 0).encode().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        bytes.extend_from_slice(&[0u8; 40]);
        let err = decode_segment(&bytes, &DecodeOptions::default()).unwrap_err();
        assert_eq!(err.code, ErrorCode::TornTail);
    }

    #[test]
    fn empty_and_already_sealed_segments_cannot_be_sealed() {
        let empty = Header::unsealed(1, 0).encode();
        assert_eq!(
            seal_segment(&empty, 3, DEFAULT_MAX_BODY_BYTES)
                .unwrap_err()
                .code,
            ErrorCode::InvalidSegment
        );
        let sealed = seal_segment(
            &unsealed_from(1, ZERO_HASH, &[b"x".to_vec()]),
            0,
            DEFAULT_MAX_BODY_BYTES,
        )
        .unwrap();
        assert_eq!(
            seal_segment(&sealed, 3, DEFAULT_MAX_BODY_BYTES)
                .unwrap_err()
                .code,
            ErrorCode::InvalidSegment
        );
    }

    fn large_unsealed(count: usize) -> Vec<u8> {
        let payloads: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("SET n.v = {i}").into_bytes())
            .collect();
        unsealed_from(1, [1u8; 32], &payloads)
    }

    /// Rewrites entry `index`'s prev_hash (and its CRC, so only the chain is wrong).
    fn break_chain_at(unsealed: &mut [u8], index: usize) {
        let mut at = HEADER_SIZE;
        for _ in 0..index {
            at += crate::format::decode_entry(unsealed, at).unwrap().size;
        }
        let size = crate::format::decode_entry(unsealed, at).unwrap().size;
        unsealed[at + 16] ^= 0xff;
        let crc = crate::format::crc32c(&unsealed[at + 4..at + size]);
        unsealed[at..at + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn large_segments_verify_the_chain_in_parallel_with_the_same_results() {
        let unsealed = large_unsealed(5000);
        let decoded = decode_segment(&unsealed, &DecodeOptions::default()).unwrap();
        let (sequential_break, sequential_hash) = chain_run(&decoded.body, &decoded.entry_offsets);
        assert_eq!(sequential_break, None);
        assert_eq!(decoded.chain_hash, sequential_hash);
        assert_eq!(decoded.start_hash, [1u8; 32]);
        let chunk = 5000usize.div_ceil(
            std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1),
        );
        for index in [1, 700, chunk - 1, chunk, chunk + 1, 4999] {
            let mut broken = unsealed.clone();
            break_chain_at(&mut broken, index);
            let err = decode_segment(&broken, &DecodeOptions::default()).unwrap_err();
            assert_eq!(err.code, ErrorCode::ChainBroken, "{index}: {}", err.message);
            assert!(
                err.message
                    .starts_with(&format!("unsealed segment 1: entry {} ", index + 1)),
                "{index}: {}",
                err.message
            );
        }
    }

    #[test]
    fn the_first_problem_in_entry_order_is_reported() {
        let mut unsealed = large_unsealed(3000);
        break_chain_at(&mut unsealed, 2500);
        let mut earlier_crc = unsealed.clone();
        let len = earlier_crc.len();
        earlier_crc[len - 1] ^= 1; // the last entry's payload: a CRC error after the chain break
        let err = decode_segment(&earlier_crc, &DecodeOptions::default()).unwrap_err();
        assert_eq!(err.code, ErrorCode::ChainBroken);
        let torn = decode_segment(
            &earlier_crc,
            &DecodeOptions {
                allow_torn_tail: true,
                ..DecodeOptions::default()
            },
        )
        .unwrap_err();
        assert_eq!(torn.code, ErrorCode::ChainBroken);
        let mut crc_first = large_unsealed(3000);
        break_chain_at(&mut crc_first, 2500);
        crc_first[HEADER_SIZE + 48 * 5 + 60] ^= 1; // inside an early entry
        let err = decode_segment(&crc_first, &DecodeOptions::default()).unwrap_err();
        assert_eq!(err.code, ErrorCode::TornTail);
    }

    #[test]
    fn a_body_goes_into_the_callers_buffer_when_it_fits_and_into_its_own_otherwise() {
        let unsealed = large_unsealed(6000);
        let raw = &unsealed[HEADER_SIZE..];
        let opts = DecodeOptions::default();
        for level in [3, 0] {
            let sealed = seal_segment(&unsealed, level, DEFAULT_MAX_BODY_BYTES).unwrap();
            for bytes in [&sealed, &unsealed] {
                let mut out = vec![0xaa; raw.len() + 10];
                let decoded = decode_segment_to(bytes, &opts, &mut out).unwrap();
                assert_eq!(decoded.body, Body::InOutput(raw.len()), "level {level}");
                assert_eq!(&out[..raw.len()], raw);
                assert_eq!(
                    &out[raw.len()..],
                    &[0xaa; 10],
                    "nothing written past the body"
                );

                let mut small = vec![0; raw.len() - 1];
                let decoded = decode_segment_to(bytes, &opts, &mut small).unwrap();
                assert_eq!(decoded.body, Body::Owned(raw.to_vec()), "level {level}");
            }
        }
        // the ceiling holds whatever room the buffer has, and a corrupt body is still refused
        let sealed = seal_segment(&unsealed, 3, DEFAULT_MAX_BODY_BYTES).unwrap();
        let mut out = vec![0; raw.len()];
        let tight = DecodeOptions {
            max_body_bytes: raw.len() - 1,
            ..DecodeOptions::default()
        };
        let err = decode_segment_to(&sealed, &tight, &mut out).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooLarge, "{}", err.message);
        let mut broken = unsealed.clone();
        break_chain_at(&mut broken, 5000);
        let err = decode_segment_to(&broken, &opts, &mut out).unwrap_err();
        assert_eq!(err.code, ErrorCode::ChainBroken, "{}", err.message);
    }

    #[test]
    fn large_bodies_are_compressed_beside_the_checks_and_only_used_when_they_pass() {
        let unsealed = large_unsealed(6000);
        assert!(unsealed.len() - HEADER_SIZE >= PARALLEL_MIN_BODY_BYTES);
        let sealed = seal_segment(&unsealed, 3, DEFAULT_MAX_BODY_BYTES).unwrap();
        let expected = zstd::bulk::compress(&unsealed[HEADER_SIZE..], 3).unwrap();
        assert_eq!(
            &sealed[HEADER_SIZE..sealed.len() - TRAILER_SIZE],
            &expected[..]
        );
        let decoded = decode_segment(&sealed, &DecodeOptions::default()).unwrap();
        assert_eq!(decoded.body, &unsealed[HEADER_SIZE..]);

        let mut broken = unsealed.clone();
        break_chain_at(&mut broken, 5000);
        let err = seal_segment(&broken, 3, DEFAULT_MAX_BODY_BYTES).unwrap_err();
        assert_eq!(err.code, ErrorCode::ChainBroken, "{}", err.message);
    }

    #[test]
    fn large_compressed_bodies_are_checksummed_beside_decompression() {
        let mut state = 0x9e37_79b9_u32;
        let payloads: Vec<Vec<u8>> = (0..300)
            .map(|_| {
                (0..1200)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        state as u8
                    })
                    .collect()
            })
            .collect();
        let unsealed = unsealed_from(1, ZERO_HASH, &payloads);
        let sealed = seal_segment(&unsealed, 3, DEFAULT_MAX_BODY_BYTES).unwrap();
        assert!(sealed.len() - HEADER_SIZE - TRAILER_SIZE >= PARALLEL_MIN_BODY_BYTES);
        let decoded = decode_segment(&sealed, &DecodeOptions::default()).unwrap();
        assert_eq!(decoded.body, unsealed[HEADER_SIZE..]);
        for at in [
            HEADER_SIZE,
            HEADER_SIZE + 4,
            sealed.len() / 2,
            sealed.len() - TRAILER_SIZE - 1,
        ] {
            let mut corrupt = sealed.clone();
            corrupt[at] ^= 0x40;
            let err = decode_segment(&corrupt, &DecodeOptions::default()).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::ChecksumMismatch,
                "byte {at}: {}",
                err.message
            );
        }
    }

    /// Interop with the reference implementation, `hadb-changeset` (feature `journal`).
    mod reference {
        use super::*;
        use hadb_changeset::journal as reference;

        fn payloads() -> Vec<Vec<u8>> {
            (0..200u32)
                .map(|i| {
                    format!(
                        "CREATE (n:Node {{id: {i}}}) payload {}",
                        "x".repeat((i % 37) as usize)
                    )
                    .into_bytes()
                })
                .collect()
        }

        #[test]
        fn segments_we_seal_decode_in_the_reference() {
            let prev = [7u8; 32];
            let payloads = payloads();
            for level in [0, 3, 9] {
                let sealed = seal_segment(
                    &unsealed_from(41, prev, &payloads),
                    level,
                    DEFAULT_MAX_BODY_BYTES,
                )
                .unwrap();
                let theirs = reference::decode(&sealed).unwrap();
                let ours = decode_segment(&sealed, &DecodeOptions::default()).unwrap();
                assert_eq!(theirs.entries.len(), payloads.len());
                assert_eq!(theirs.chain_hash, ours.chain_hash);
                assert_eq!(
                    theirs.header.prev_segment_checksum,
                    crate::format::hash_prefix(&prev)
                );
                for (i, entry) in theirs.entries.iter().enumerate() {
                    assert_eq!(entry.sequence, 41 + i as u64);
                    assert_eq!(entry.payload, payloads[i]);
                }
            }
        }

        #[test]
        fn segments_the_reference_seals_decode_here() {
            let prev = [3u8; 32];
            let payloads = payloads();
            let chain = reference::build_entry_chain(
                prev,
                payloads
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (10 + i as u64, p.clone()))
                    .collect(),
            );
            let segment = reference::seal(chain, reference::hash_to_u64(&prev));
            for bytes in [
                reference::encode(&segment),
                reference::encode_compressed(&segment, 3),
            ] {
                let ours = decode_segment(&bytes, &DecodeOptions::default()).unwrap();
                assert_eq!(ours.chain_hash, segment.chain_hash);
                assert_eq!(ours.start_hash, prev);
                assert_eq!(ours.entry_offsets.len(), payloads.len());
                for (i, at) in ours.entry_offsets.iter().enumerate() {
                    let entry = crate::format::decode_entry(&ours.body, *at as usize).unwrap();
                    assert_eq!(entry.sequence, 10 + i as u64);
                    assert_eq!(
                        &ours.body[entry.payload_offset..entry.payload_offset + entry.payload_len],
                        payloads[i].as_slice()
                    );
                }
            }
        }

        #[test]
        fn entries_encode_identically() {
            let entry = reference::JournalEntry {
                sequence: 5,
                prev_hash: [9u8; 32],
                payload: b"MATCH (n) RETURN n".to_vec(),
            };
            let mut ours = Vec::new();
            encode_entry_into(&mut ours, entry.sequence, &entry.prev_hash, &entry.payload);
            assert_eq!(ours, reference::encode_entry(&entry));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_entries_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..40),
            first_seq in 1u64..1_000_000,
            level in prop_oneof![Just(0), Just(1), Just(3)],
        ) {
            let sealed = seal_segment(&unsealed_from(first_seq, ZERO_HASH, &payloads), level, DEFAULT_MAX_BODY_BYTES).unwrap();
            let decoded = decode_segment(&sealed, &DecodeOptions::default()).unwrap();
            prop_assert_eq!(decoded.entry_offsets.len(), payloads.len());
            for (i, at) in decoded.entry_offsets.iter().enumerate() {
                let entry = crate::format::decode_entry(&decoded.body, *at as usize).unwrap();
                prop_assert_eq!(entry.sequence, first_seq + i as u64);
                prop_assert_eq!(&decoded.body[entry.payload_offset..entry.payload_offset + entry.payload_len], payloads[i].as_slice());
            }
        }

        #[test]
        fn any_single_byte_mutation_is_detected_or_harmless(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
            position in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            level in prop_oneof![Just(0), Just(3)],
        ) {
            let sealed = seal_segment(&unsealed_from(1, ZERO_HASH, &payloads), level, DEFAULT_MAX_BODY_BYTES).unwrap();
            let original = decode_segment(&sealed, &DecodeOptions::default()).unwrap();
            let mut mutated = sealed.clone();
            let at = position.index(mutated.len());
            mutated[at] ^= flip;
            if let Ok(decoded) = decode_segment(&mutated, &DecodeOptions::default()) {
                prop_assert_eq!(decoded.body, original.body);
                prop_assert_eq!(decoded.chain_hash, original.chain_hash);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), valid_header in any::<bool>()) {
            let mut bytes = bytes;
            if valid_header && bytes.len() >= HEADER_SIZE {
                bytes[..5].copy_from_slice(b"HADBJ");
                bytes[5] = 1;
            }
            let _ = decode_segment(&bytes, &DecodeOptions::default());
            let _ = seal_segment(&bytes, 3, DEFAULT_MAX_BODY_BYTES);
        }
    }
}
