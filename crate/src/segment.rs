//! Whole segments: decoding with every check of FORMAT.md, and sealing an unsealed
//! segment into its final form (zstd body, filled header, chain-hash trailer).

use crate::error::{Error, ErrorCode, Result};
use crate::format::{
    decode_entry, entry_hash, hash_prefix, sha256, Header, COMPRESSION_NONE, COMPRESSION_ZSTD,
    ENTRY_HEADER_SIZE, FLAG_COMPRESSED, FLAG_HAS_CHAIN_HASH, FLAG_SEALED, HEADER_SIZE,
    TRAILER_SIZE, ZERO_HASH,
};

/// Default ceiling on a segment body (stored or decompressed): 16 of the writer's default
/// 4 MiB segments. The writer never produces a body past it (entries and segments are capped
/// below it), so whatever this package writes, its readers read with the defaults.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;

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

/// Bodies from this size on are compressed on a second thread while their entries are checked.
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

/// `file_base` is where `body` starts in the segment's bytes (None for a decompressed body):
/// an error about an entry says where that entry starts there.
fn walk_entries(
    body: &[u8],
    first_seq: u64,
    file_base: Option<usize>,
    stop_at_bad_entry: bool,
) -> Result<BodyWalk> {
    // the error of the entry at `index`, which starts at body offset `at`
    let located = |err: Error, at: usize, index: usize| {
        let err = match first_seq.checked_add(index as u64) {
            Some(sequence) => err.about_entry(sequence),
            None => err,
        };
        match file_base {
            Some(base) => err.at_offset(base + at),
            None => err,
        }
    };
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
                stopped_at = Some(located(err, offset, offsets.len()));
                break;
            }
        };
        let index = offsets.len() as u64;
        let expected_seq = match first_seq.checked_add(index) {
            Some(seq) => seq,
            None => {
                stopped_at = Some(located(
                    Error::new(
                        ErrorCode::InvalidSegment,
                        format!("sequence overflows after first_seq {first_seq}"),
                    ),
                    offset,
                    offsets.len(),
                ));
                break;
            }
        };
        if entry.sequence != expected_seq {
            stopped_at = Some(located(
                Error::new(
                    ErrorCode::InvalidSegment,
                    format!(
                        "entry at body offset {offset} has sequence {}, expected {expected_seq}",
                        entry.sequence
                    ),
                ),
                offset,
                offsets.len(),
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
        let broken = Error::new(
            ErrorCode::ChainBroken,
            format!(
                "entry {} at body offset {at}: prev_hash {} does not continue the chain {}",
                first_seq + i as u64,
                crate::format::hex(&prev_hash_at(body, at)[..8]),
                crate::format::hex(&expected[..8]),
            ),
        );
        return Err(located(broken, at, i));
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

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames have the magic numbers 0x184D2A50 ..= 0x184D2A5F.
const ZSTD_SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const ZSTD_BLOCK_MAX: u64 = 128 * 1024;
/// The window zstd's streaming decoders accept by default (ZSTD_WINDOWLOG_LIMIT_DEFAULT): the
/// reference crate's refuses a frame that needs more, so both twins do.
const ZSTD_WINDOW_MAX: u64 = 1 << 27;

fn zstd_error(message: String) -> Error {
    Error::new(ErrorCode::InvalidSegment, format!("zstd body: {message}"))
}

fn le_bytes(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |value, byte| (value << 8) | *byte as u64)
}

/// One zstd frame of a stored body, as its headers describe it.
struct ZstdFrame {
    bytes: std::ops::Range<usize>,
    /// the content size its header declares
    declared: Option<u64>,
    /// the most it can decompress to: the declared size, else its raw and RLE block sizes
    /// plus the largest block per compressed block
    bound: u64,
}

/// The zstd frames of a stored body, read from their frame and block headers (RFC 8878 §3.1)
/// without decompressing. Frames follow one another (skippable ones are left out), as the
/// reference crate's decoder reads them. Declared sizes past the ceiling are `too_large`
/// before anything is allocated; a malformed header is `invalid_segment`. The pure twin scans
/// the same way (ts/pure/zstd.ts).
fn zstd_frames(stored: &[u8], max_body_bytes: usize) -> Result<Vec<ZstdFrame>> {
    let len = stored.len() as u64;
    let byte = |at: u64| stored[at as usize];
    let field = |at: u64, size: u64| le_bytes(&stored[at as usize..(at + size) as usize]);
    let mut pos = 0u64;
    let mut frames = Vec::new();
    let mut declared = 0u64;
    while pos < len {
        let frame = pos;
        if len - pos < 4 {
            return Err(zstd_error(format!(
                "{} stray bytes at byte {frame}",
                len - pos
            )));
        }
        let magic = field(pos, 4) as u32;
        if magic & !0xf == ZSTD_SKIPPABLE_MAGIC {
            if len - pos < 8 {
                return Err(zstd_error(format!(
                    "skippable frame at byte {frame} is cut short"
                )));
            }
            pos += 8 + field(pos + 4, 4);
            if pos > len {
                return Err(zstd_error(format!(
                    "skippable frame at byte {frame} runs past the body"
                )));
            }
            continue;
        }
        if magic != ZSTD_MAGIC {
            return Err(zstd_error(format!("no frame magic at byte {frame}")));
        }
        pos += 4;
        if pos >= len {
            return Err(zstd_error(format!("frame at byte {frame} is cut short")));
        }
        let descriptor = byte(pos);
        pos += 1;
        if descriptor & 0x08 != 0 {
            return Err(zstd_error(format!(
                "frame at byte {frame} sets a reserved bit"
            )));
        }
        let single_segment = descriptor & 0x20 != 0;
        let content_size_bytes = match descriptor >> 6 {
            0 => u64::from(single_segment),
            flag => 1 << flag,
        };
        let dictionary_bytes = [0, 1, 2, 4][(descriptor & 3) as usize];
        let header_rest = u64::from(!single_segment) + dictionary_bytes + content_size_bytes;
        if len - pos < header_rest {
            return Err(zstd_error(format!(
                "frame header at byte {frame} is cut short"
            )));
        }
        let mut window = 0;
        if !single_segment {
            let exponent = byte(pos) >> 3;
            let base = 1u64 << (10 + exponent);
            window = base + (base / 8) * u64::from(byte(pos) & 7);
            pos += 1;
        }
        if field(pos, dictionary_bytes) != 0 {
            return Err(zstd_error(format!(
                "frame at byte {frame} needs a dictionary"
            )));
        }
        pos += dictionary_bytes;
        let content_size = match content_size_bytes {
            0 => None,
            2 => Some(field(pos, 2) + 256),
            size => Some(field(pos, size)),
        };
        pos += content_size_bytes;
        if let Some(size) = content_size {
            declared = declared.saturating_add(size);
            if declared > max_body_bytes as u64 {
                return Err(Error::new(
                    ErrorCode::TooLarge,
                    format!(
                        "zstd frame at byte {frame} declares {size} bytes, past the {max_body_bytes}-byte ceiling"
                    ),
                ));
            }
            if single_segment {
                window = size;
            }
        }
        if window > ZSTD_WINDOW_MAX {
            return Err(zstd_error(format!(
                "frame at byte {frame} needs a {window}-byte window, over the {ZSTD_WINDOW_MAX} bytes decoders accept"
            )));
        }
        let block_max = window.min(ZSTD_BLOCK_MAX);
        let mut blocks = 0u64;
        loop {
            if len - pos < 3 {
                return Err(zstd_error(format!(
                    "block header at byte {pos} is cut short"
                )));
            }
            let header = field(pos, 3);
            let at = pos;
            pos += 3;
            let size = header >> 3;
            let (stored_size, content) = match (header >> 1) & 3 {
                0 => (size, size),
                1 => (1, size),
                2 => (size, block_max),
                _ => {
                    return Err(zstd_error(format!(
                        "block at byte {at} has the reserved type"
                    )))
                }
            };
            if size > block_max {
                return Err(zstd_error(format!(
                    "block at byte {at} holds {size} bytes, over the frame's {block_max}-byte blocks"
                )));
            }
            if len - pos < stored_size {
                return Err(zstd_error(format!("block at byte {at} is cut short")));
            }
            pos += stored_size;
            blocks = blocks.saturating_add(content);
            if header & 1 != 0 {
                break;
            }
        }
        if descriptor & 0x04 != 0 {
            if len - pos < 4 {
                return Err(zstd_error(format!(
                    "checksum of the frame at byte {frame} is cut short"
                )));
            }
            pos += 4;
        }
        frames.push(ZstdFrame {
            bytes: frame as usize..pos as usize,
            declared: content_size,
            bound: content_size.unwrap_or(blocks),
        });
    }
    Ok(frames)
}

/// Decompresses a stored zstd body: into `out` when it fits there, else into a buffer of its
/// own, never past the ceiling. A buffer is as large as the frames' bound at most (its pages
/// are touched only as output is written), so memory follows the bytes actually produced; a
/// body whose frames do not all declare their size is tried in `out` when it may fit.
fn decompress_to(stored: &[u8], max_body_bytes: usize, out: &mut [u8]) -> Result<Body> {
    let frames = zstd_frames(stored, max_body_bytes)?;
    let bound = frames
        .iter()
        .fold(0u64, |sum, frame| sum.saturating_add(frame.bound));
    let limit = bound.min(max_body_bytes as u64) as usize;
    let overflow = || {
        if limit == max_body_bytes {
            Error::new(
                ErrorCode::TooLarge,
                format!("zstd body decompresses to more than the {max_body_bytes}-byte ceiling"),
            )
        } else {
            zstd_error(format!(
                "decompresses to more than the {limit} bytes its frames allow"
            ))
        }
    };
    let all_declared = frames.iter().all(|frame| frame.declared.is_some());
    if limit <= out.len() || !all_declared {
        let room = limit.min(out.len());
        match decompress_frames(stored, &frames, &mut out[..room])? {
            Some(written) => return Ok(Body::InOutput(written)),
            None if room == limit => return Err(overflow()),
            None => {}
        }
    }
    let mut body = vec![0u8; limit];
    let written = decompress_frames(stored, &frames, &mut body)?.ok_or_else(overflow)?;
    body.truncate(written);
    Ok(Body::Owned(body))
}

/// ZSTD_decompress's error for an output buffer too small (-ZSTD_error_dstSize_tooSmall).
const ZSTD_DST_TOO_SMALL: usize = 70usize.wrapping_neg();

/// Decompresses the frames one after another into `out`, each in one shot as the pure twin
/// does (ZSTD_decompress): a frame that declares its size into exactly that many bytes, one that
/// does not into the room left. Returns the bytes written, or None when they need more room.
fn decompress_frames(stored: &[u8], frames: &[ZstdFrame], out: &mut [u8]) -> Result<Option<usize>> {
    let mut filled = 0;
    for frame in frames {
        let room = out.len() - filled;
        if frame.declared.is_some_and(|size| size > room as u64) {
            return Ok(None);
        }
        let target = &mut out[filled..filled + frame.bound.min(room as u64) as usize];
        match zstd::zstd_safe::decompress(target, &stored[frame.bytes.clone()]) {
            Ok(written) if frame.declared.is_none_or(|size| size == written as u64) => {
                filled += written
            }
            Err(ZSTD_DST_TOO_SMALL) if frame.declared.is_none() => return Ok(None),
            Ok(written) => {
                return Err(zstd_error(format!(
                    "frame at byte {} declares {} bytes but holds {written}",
                    frame.bytes.start,
                    frame.declared.unwrap_or(0)
                )))
            }
            Err(code) => {
                return Err(zstd_error(format!(
                    "frame at byte {} does not decompress: {}",
                    frame.bytes.start,
                    zstd::zstd_safe::get_error_name(code)
                )))
            }
        }
    }
    Ok(Some(filled))
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
    // The stored bytes are checked before anything is decompressed: a body that is not what
    // the writer sealed costs no decompression.
    if sha256(stored) != header.body_checksum {
        return Err(checksum_error());
    }
    let body = match (header.is_compressed(), header.compression) {
        (true, COMPRESSION_ZSTD) => decompress_to(stored, opts.max_body_bytes, out)
            .map_err(|e| e.context(format!("segment {}", header.first_seq)))?,
        (compressed, algorithm) => {
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
    let file_base = (!header.is_compressed()).then_some(HEADER_SIZE);
    let walk = walk_entries(body_bytes(&body, out), header.first_seq, file_base, false)
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
        )
        .at_offset(body_end));
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
    let walk = walk_entries(raw, header.first_seq, Some(HEADER_SIZE), true)
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
            )
            .at_offset(HEADER_SIZE + walk.consumed));
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

    const MIB: u64 = 1 << 20;

    /// A zstd frame of RLE blocks (128 KiB of zeros each, 4 bytes each) that inflates to
    /// `size` bytes, declaring that size in its header or not.
    fn rle_frame(size: u64, declare: bool) -> Vec<u8> {
        let mut frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
        frame.push(if declare { 0xc0 } else { 0x00 });
        frame.push(7 << 3); // window 2^17: one 128 KiB block
        if declare {
            frame.extend_from_slice(&size.to_le_bytes());
        }
        let blocks = size.div_ceil(128 * 1024);
        for i in 0..blocks {
            let len = (size - i * 128 * 1024).min(128 * 1024) as u32;
            let last = u32::from(i + 1 == blocks);
            frame.extend_from_slice(&((len << 3) | (1 << 1) | last).to_le_bytes()[..3]);
            frame.push(0);
        }
        frame
    }

    /// A zstd frame of raw blocks holding `data`, without a declared content size.
    fn raw_frame(data: &[u8]) -> Vec<u8> {
        let mut frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0x00, 7 << 3]);
        let chunks: Vec<&[u8]> = data.chunks(128 * 1024).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = u32::from(i + 1 == chunks.len());
            frame.extend_from_slice(&(((chunk.len() as u32) << 3) | last).to_le_bytes()[..3]);
            frame.extend_from_slice(chunk);
        }
        frame
    }

    /// A sealed zstd segment whose stored body is `stored`, claiming one entry.
    fn sealed_with_body(stored: &[u8], checksum: [u8; 32], entry_count: u64) -> Vec<u8> {
        let header = Header {
            flags: FLAG_SEALED | FLAG_HAS_CHAIN_HASH | FLAG_COMPRESSED,
            compression: COMPRESSION_ZSTD,
            first_seq: 1,
            last_seq: entry_count,
            entry_count,
            body_len: stored.len() as u64,
            body_checksum: checksum,
            prev_segment_checksum: 0,
            created_ms: 0,
        };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(stored);
        bytes.extend_from_slice(&ZERO_HASH);
        bytes
    }

    #[test]
    fn a_decompression_bomb_costs_no_more_than_the_ceiling() {
        for declare in [true, false] {
            let bomb = rle_frame(1000 * MIB, declare);
            assert!(bomb.len() < 40_000, "{} bytes", bomb.len());
            // a wrong checksum is found before anything is decompressed
            let wrong = sealed_with_body(&bomb, [7u8; 32], 1);
            let err = decode_segment(&wrong, &DecodeOptions::default()).unwrap_err();
            assert_eq!(err.code, ErrorCode::ChecksumMismatch, "{}", err.message);
            let right = sealed_with_body(&bomb, sha256(&bomb), 1);
            let err = decode_segment(&right, &DecodeOptions::default()).unwrap_err();
            assert_eq!(err.code, ErrorCode::TooLarge, "{}", err.message);
            let expected = if declare {
                "declares 1048576000 bytes"
            } else {
                "decompresses to more than the 67108864-byte ceiling"
            };
            assert!(err.message.contains(expected), "{}", err.message);
        }
        // the declared size is refused before the (huge) buffer of the caller is written to
        let right = sealed_with_body(
            &rle_frame(1000 * MIB, true),
            sha256(&rle_frame(1000 * MIB, true)),
            1,
        );
        let mut out = vec![0xaa; 1024];
        let err = decode_segment_to(&right, &DecodeOptions::default(), &mut out).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooLarge);
        assert!(out.iter().all(|b| *b == 0xaa));
    }

    #[test]
    fn the_ceiling_is_exact_for_declared_and_streamed_frames() {
        let max = 3 * 128 * 1024;
        let opts = DecodeOptions {
            allow_torn_tail: false,
            max_body_bytes: max,
        };
        for declare in [true, false] {
            // zeros are no valid entries: a body that fits gets past decompression to the walk
            let fits = rle_frame(max as u64, declare);
            let err =
                decode_segment(&sealed_with_body(&fits, sha256(&fits), 1), &opts).unwrap_err();
            assert_ne!(err.code, ErrorCode::TooLarge, "{}", err.message);
            let over = rle_frame(max as u64 + 1, declare);
            let err =
                decode_segment(&sealed_with_body(&over, sha256(&over), 1), &opts).unwrap_err();
            assert_eq!(err.code, ErrorCode::TooLarge, "{}", err.message);
        }
    }

    #[test]
    fn bodies_of_several_frames_decode_as_in_the_reference() {
        let unsealed = large_unsealed(3000);
        let raw = &unsealed[HEADER_SIZE..];
        let half = decode_segment(&unsealed, &DecodeOptions::default())
            .unwrap()
            .entry_offsets[1500] as usize;
        let mut skippable = 0x184D_2A53u32.to_le_bytes().to_vec();
        skippable.extend_from_slice(&3u32.to_le_bytes());
        skippable.extend_from_slice(b"abc");
        let bodies = [
            [
                zstd::bulk::compress(&raw[..half], 3).unwrap(),
                zstd::bulk::compress(&raw[half..], 1).unwrap(),
            ]
            .concat(),
            [raw_frame(&raw[..10]), skippable, raw_frame(&raw[10..])].concat(),
            [
                zstd::bulk::compress(&raw[..half], 3).unwrap(),
                raw_frame(&raw[half..]),
            ]
            .concat(),
        ];
        let sealed = seal_segment(&unsealed, 3, DEFAULT_MAX_BODY_BYTES).unwrap();
        let header = Header::decode(&sealed).unwrap();
        let trailer = &sealed[sealed.len() - TRAILER_SIZE..];
        for stored in bodies {
            let mut bytes = Header {
                body_len: stored.len() as u64,
                body_checksum: sha256(&stored),
                ..header.clone()
            }
            .encode()
            .to_vec();
            bytes.extend_from_slice(&stored);
            bytes.extend_from_slice(trailer);
            let ours = decode_segment(&bytes, &DecodeOptions::default()).unwrap();
            assert_eq!(ours.body, raw);
            let theirs = hadb_changeset::journal::decode(&bytes).unwrap();
            assert_eq!(theirs.entries.len(), ours.entry_offsets.len());
            let mut into = vec![0u8; raw.len()];
            let decoded = decode_segment_to(&bytes, &DecodeOptions::default(), &mut into).unwrap();
            assert_eq!(decoded.body, Body::InOutput(raw.len()));
            assert_eq!(into, raw);
        }
    }

    #[test]
    fn malformed_frames_are_invalid_before_decompression() {
        let good = zstd::bulk::compress(b"entries", 3).unwrap();
        let mut dictionary = raw_frame(b"x");
        dictionary[4] |= 1; // a one-byte dictionary id follows the window byte
        dictionary.insert(6, 9);
        let mut reserved = raw_frame(b"x");
        reserved[4] |= 0x08;
        let mut huge_window = raw_frame(b"x");
        huge_window[5] = 18 << 3; // 2^28
        let mut small_window = raw_frame(&[1u8; 200]);
        small_window[5] = 0; // a 1 KiB window
        let mut reserved_block = raw_frame(b"x");
        reserved_block[6] |= 0x06;
        for (what, stored) in [
            ("stray bytes", [good.clone(), vec![0, 0]].concat()),
            ("no frame magic", [good.clone(), vec![0; 8]].concat()),
            ("cut short", good[..good.len() - 1].to_vec()),
            ("needs a dictionary", dictionary),
            ("reserved bit", reserved),
            ("window", huge_window),
            ("reserved type", reserved_block),
        ] {
            let err = zstd_frames(&stored, DEFAULT_MAX_BODY_BYTES)
                .err()
                .unwrap_or_else(|| panic!("{what}: accepted"));
            assert_eq!(
                err.code,
                ErrorCode::InvalidSegment,
                "{what}: {}",
                err.message
            );
            assert!(err.message.contains(what), "{what}: {}", err.message);
        }
        let bounds = |stored: &[u8]| -> Vec<(Option<u64>, u64)> {
            zstd_frames(stored, DEFAULT_MAX_BODY_BYTES)
                .unwrap()
                .iter()
                .map(|frame| (frame.declared, frame.bound))
                .collect()
        };
        assert_eq!(bounds(&small_window), [(None, 200)]);
        assert_eq!(bounds(&[]), []);
        assert_eq!(
            bounds(&[good.clone(), raw_frame(b"xy")].concat()),
            [(Some(7), 7), (None, 2)]
        );
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
    fn compressed_bodies_are_checksummed_before_decompression() {
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
