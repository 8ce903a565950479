//! The napi binding surface of graphstream's native core. Logic lives in the modules;
//! this file only converts between JavaScript values and Rust types, and makes sure
//! every error (and panic) reaches JavaScript as a `[code] message` Error.

mod error;
mod format;
mod sealer;
mod segment;
mod store;
mod writer;

use napi::bindgen_prelude::{AsyncTask, BigInt, Buffer, Either, Env, Task, Uint32Array};
use napi_derive::napi;

use crate::error::{guard, Error, ErrorCode};
use crate::format::Header;
use crate::segment::{
    Body, DecodeOptions as SegmentDecodeOptions, DecodedSegment, DEFAULT_MAX_BODY_BYTES,
};

const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

fn to_js_number(value: u64, what: &str) -> Result<i64, Error> {
    if value > MAX_SAFE_INTEGER {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("{what} {value} is above 2^53 and cannot be a JavaScript number"),
        ));
    }
    Ok(value as i64)
}

/// Fails when a header field JavaScript receives as a number is beyond 2^53. A segment is
/// checked for this before it is decoded or sealed, so that this failure comes right after the
/// header's own checks, as in the pure twin, whatever else is wrong with the segment.
fn check_header_fits_js(bytes: &[u8]) -> Result<(), Error> {
    let Ok(header) = Header::decode(bytes) else {
        return Ok(()); // the decode reports it
    };
    to_js_number(header.first_seq, "first_seq")?;
    to_js_number(header.last_seq, "last_seq")?;
    to_js_number(header.entry_count, "entry_count")?;
    to_js_number(header.body_len, "body_len")?;
    Ok(())
}

/// created_ms is any i64 (as in the reference crate): a number while it is a safe integer,
/// a bigint beyond.
fn created_ms_to_js(value: i64) -> Either<i64, BigInt> {
    if value.unsigned_abs() <= MAX_SAFE_INTEGER {
        Either::A(value)
    } else {
        Either::B(BigInt::from(value))
    }
}

fn created_ms_from_js(value: Option<Either<f64, BigInt>>) -> Result<i64, Error> {
    match value {
        None => Ok(0),
        Some(Either::A(n)) if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER as f64 => {
            Ok(n as i64)
        }
        Some(Either::B(big)) if big.get_i64().1 => Ok(big.get_i64().0),
        Some(_) => Err(Error::new(
            ErrorCode::InvalidArgument,
            "createdMs must be a safe integer or a signed 64-bit bigint",
        )),
    }
}

fn from_js_number(value: i64, what: &str) -> Result<u64, Error> {
    if value < 0 || value as u64 > MAX_SAFE_INTEGER {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} must be an integer in 0 ..= 2^53-1, got {value}"),
        ));
    }
    Ok(value as u64)
}

fn to_hash(bytes: &[u8], what: &str) -> Result<[u8; 32], Error> {
    bytes.try_into().map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} must be 32 bytes, got {}", bytes.len()),
        )
    })
}

fn check_payload(payload: &[u8]) -> Result<(), Error> {
    if payload.len() > format::MAX_PAYLOAD_BYTES {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!(
                "payload of {} bytes exceeds the entry limit of {} bytes",
                payload.len(),
                format::MAX_PAYLOAD_BYTES
            ),
        ));
    }
    Ok(())
}

fn ceiling(max_body_bytes: Option<f64>) -> Result<usize, Error> {
    match max_body_bytes {
        None => Ok(DEFAULT_MAX_BODY_BYTES),
        Some(v) if v.fract() == 0.0 && v >= 1.0 && v <= MAX_SAFE_INTEGER as f64 => Ok(v as usize),
        Some(v) => Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("maxBodyBytes must be a positive integer, got {v}"),
        )),
    }
}

#[napi(object)]
pub struct HeaderFields {
    pub version: u32,
    pub flags: u32,
    pub compression: u32,
    pub first_seq: i64,
    pub last_seq: i64,
    pub entry_count: i64,
    pub body_len: i64,
    pub body_checksum: Buffer,
    pub prev_segment_checksum: BigInt,
    pub created_ms: Either<i64, BigInt>,
}

impl HeaderFields {
    fn from_header(header: &Header) -> napi::Result<Self> {
        Ok(HeaderFields {
            version: format::VERSION as u32,
            flags: header.flags as u32,
            compression: header.compression as u32,
            first_seq: to_js_number(header.first_seq, "first_seq")?,
            last_seq: to_js_number(header.last_seq, "last_seq")?,
            entry_count: to_js_number(header.entry_count, "entry_count")?,
            body_len: to_js_number(header.body_len, "body_len")?,
            body_checksum: header.body_checksum.to_vec().into(),
            prev_segment_checksum: BigInt::from(header.prev_segment_checksum),
            created_ms: created_ms_to_js(header.created_ms),
        })
    }
}

#[napi(object)]
pub struct HeaderInit {
    pub flags: Option<u32>,
    pub compression: Option<u32>,
    pub first_seq: i64,
    pub last_seq: Option<i64>,
    pub entry_count: Option<i64>,
    pub body_len: Option<i64>,
    pub body_checksum: Option<Buffer>,
    pub prev_segment_checksum: Option<BigInt>,
    pub created_ms: Option<Either<f64, BigInt>>,
}

fn byte_field(value: Option<u32>, what: &str) -> Result<u8, Error> {
    u8::try_from(value.unwrap_or(0)).map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} must fit in a byte"),
        )
    })
}

impl TryFrom<HeaderInit> for Header {
    type Error = Error;

    fn try_from(init: HeaderInit) -> Result<Header, Error> {
        let prev_segment_checksum = match init.prev_segment_checksum {
            None => 0,
            Some(big) => {
                let (negative, value, lossless) = big.get_u64();
                if negative || !lossless {
                    return Err(Error::new(
                        ErrorCode::InvalidArgument,
                        "prevSegmentChecksum must be an unsigned 64-bit bigint",
                    ));
                }
                value
            }
        };
        Ok(Header {
            flags: byte_field(init.flags, "flags")?,
            compression: byte_field(init.compression, "compression")?,
            first_seq: from_js_number(init.first_seq, "firstSeq")?,
            last_seq: from_js_number(init.last_seq.unwrap_or(0), "lastSeq")?,
            entry_count: from_js_number(init.entry_count.unwrap_or(0), "entryCount")?,
            body_len: from_js_number(init.body_len.unwrap_or(0), "bodyLen")?,
            body_checksum: match init.body_checksum {
                None => format::ZERO_HASH,
                Some(bytes) => to_hash(&bytes, "bodyChecksum")?,
            },
            prev_segment_checksum,
            created_ms: created_ms_from_js(init.created_ms)?,
        })
    }
}

#[napi(object)]
pub struct RawEntry {
    pub sequence: i64,
    pub prev_hash: Buffer,
    pub payload_offset: u32,
    pub payload_length: u32,
    pub size: u32,
}

#[napi(object)]
pub struct EncodedBatch {
    pub bytes: Buffer,
    pub chain_hashes: Buffer,
}

/// A decoded segment; its body is the first `body_length` bytes of `body` (the caller's
/// `into` buffer when the body fitted it).
#[napi(object)]
pub struct RawSegment {
    pub header: HeaderFields,
    pub body: Buffer,
    pub body_length: u32,
    pub entry_offsets: Uint32Array,
    pub chain_hash: Buffer,
    pub start_hash: Buffer,
    pub valid_length: i64,
    pub torn_tail: bool,
}

impl RawSegment {
    fn from_decoded(decoded: DecodedSegment<Body>, into: Option<Buffer>) -> napi::Result<Self> {
        let (body, body_length) = match (decoded.body, into) {
            (Body::Owned(body), _) => {
                let length = body.len();
                (body.into(), length)
            }
            (Body::InOutput(length), Some(into)) => (into, length),
            (Body::InOutput(_), None) => (Buffer::default(), 0), // an empty body, decoded into no buffer
        };
        Ok(RawSegment {
            header: HeaderFields::from_header(&decoded.header)?,
            body,
            body_length: body_length as u32,
            entry_offsets: decoded.entry_offsets.into(),
            chain_hash: decoded.chain_hash.to_vec().into(),
            start_hash: decoded.start_hash.to_vec().into(),
            valid_length: decoded.valid_length as i64,
            torn_tail: decoded.torn_tail,
        })
    }
}

#[napi(object)]
pub struct DecodeOptions {
    pub allow_torn_tail: Option<bool>,
    pub max_body_bytes: Option<f64>,
    /// a buffer to decode the body into when it fits (never the input's memory)
    pub into: Option<Buffer>,
}

impl DecodeOptions {
    fn resolve(
        options: Option<DecodeOptions>,
    ) -> Result<(SegmentDecodeOptions, Option<Buffer>), Error> {
        let Some(options) = options else {
            return Ok((SegmentDecodeOptions::default(), None));
        };
        let resolved = SegmentDecodeOptions {
            allow_torn_tail: options.allow_torn_tail.unwrap_or(false),
            max_body_bytes: ceiling(options.max_body_bytes)?,
        };
        Ok((resolved, options.into))
    }
}

#[napi(object)]
pub struct SealOptions {
    pub level: Option<i32>,
    pub max_body_bytes: Option<f64>,
}

fn seal_settings(options: Option<SealOptions>) -> Result<(i32, usize), Error> {
    let options = options.unwrap_or(SealOptions {
        level: None,
        max_body_bytes: None,
    });
    Ok((options.level.unwrap_or(3), ceiling(options.max_body_bytes)?))
}

#[napi(js_name = "crc32c")]
pub fn crc32c(data: &[u8], initial: Option<u32>) -> u32 {
    match initial {
        Some(crc) => ::crc32c::crc32c_append(crc, data),
        None => format::crc32c(data),
    }
}

#[napi]
pub fn compute_entry_hash(prev_hash: &[u8], payload: &[u8]) -> napi::Result<Buffer> {
    let prev = to_hash(prev_hash, "prevHash")?;
    Ok(format::entry_hash(&prev, payload).to_vec().into())
}

#[napi]
pub fn encode_entry(sequence: i64, prev_hash: &[u8], payload: &[u8]) -> napi::Result<Buffer> {
    let prev = to_hash(prev_hash, "prevHash")?;
    let sequence = from_js_number(sequence, "sequence")?;
    check_payload(payload)?;
    let mut out = Vec::new();
    format::encode_entry_into(&mut out, sequence, &prev, payload);
    Ok(out.into())
}

/// Encodes packed payloads (payload i is the `lengths[i]` bytes after payload i-1): one
/// buffer crosses the boundary instead of one per payload.
#[napi]
pub fn encode_entries(
    first_sequence: i64,
    prev_hash: &[u8],
    payloads: &[u8],
    lengths: &[u32],
) -> napi::Result<EncodedBatch> {
    let prev = to_hash(prev_hash, "prevHash")?;
    let first = from_js_number(first_sequence, "firstSequence")?;
    let slices = writer::split_packed(payloads, lengths)?;
    let (bytes, hashes) = format::encode_entries(first, &prev, &slices);
    Ok(EncodedBatch {
        bytes: bytes.into(),
        chain_hashes: hashes.into(),
    })
}

#[napi]
pub fn decode_entry(bytes: &[u8], offset: Option<u32>) -> napi::Result<RawEntry> {
    let entry = format::decode_entry(bytes, offset.unwrap_or(0) as usize)?;
    Ok(RawEntry {
        sequence: to_js_number(entry.sequence, "sequence")?,
        prev_hash: entry.prev_hash.to_vec().into(),
        payload_offset: entry.payload_offset as u32,
        payload_length: entry.payload_len as u32,
        size: entry.size as u32,
    })
}

#[napi]
pub fn encode_header(header: HeaderInit) -> napi::Result<Buffer> {
    let header = Header::try_from(header)?;
    Ok(header.encode().to_vec().into())
}

#[napi]
pub fn decode_header(bytes: &[u8]) -> napi::Result<HeaderFields> {
    HeaderFields::from_header(&Header::decode(bytes)?)
}

#[napi]
pub fn seal_segment(unsealed: &[u8], options: Option<SealOptions>) -> napi::Result<Buffer> {
    let (level, max) = seal_settings(options)?;
    check_header_fits_js(unsealed)?;
    Ok(guard(|| segment::seal_segment(unsealed, level, max))?.into())
}

#[napi]
pub fn decode_segment(bytes: &[u8], options: Option<DecodeOptions>) -> napi::Result<RawSegment> {
    let (options, mut into) = DecodeOptions::resolve(options)?;
    check_header_fits_js(bytes)?;
    let decoded = guard(|| {
        segment::decode_segment_to(bytes, &options, into.as_deref_mut().unwrap_or_default())
    })?;
    RawSegment::from_decoded(decoded, into)
}

pub struct SealTask {
    unsealed: Buffer,
    level: i32,
    max_body_bytes: usize,
}

impl Task for SealTask {
    type Output = Vec<u8>;
    type JsValue = Buffer;

    fn compute(&mut self) -> napi::Result<Vec<u8>> {
        check_header_fits_js(&self.unsealed)?;
        Ok(guard(|| {
            segment::seal_segment(&self.unsealed, self.level, self.max_body_bytes)
        })?)
    }

    fn resolve(&mut self, _env: Env, output: Vec<u8>) -> napi::Result<Buffer> {
        Ok(output.into())
    }
}

#[napi(ts_return_type = "Promise<Buffer>")]
pub fn seal_segment_async(
    unsealed: Buffer,
    options: Option<SealOptions>,
) -> napi::Result<AsyncTask<SealTask>> {
    let (level, max_body_bytes) = seal_settings(options)?;
    Ok(AsyncTask::new(SealTask {
        unsealed,
        level,
        max_body_bytes,
    }))
}

pub struct DecodeTask {
    bytes: Buffer,
    into: Option<Buffer>,
    options: SegmentDecodeOptions,
}

impl Task for DecodeTask {
    type Output = DecodedSegment<Body>;
    type JsValue = RawSegment;

    fn compute(&mut self) -> napi::Result<DecodedSegment<Body>> {
        check_header_fits_js(&self.bytes)?;
        let out = self.into.as_deref_mut().unwrap_or_default();
        Ok(guard(|| {
            segment::decode_segment_to(&self.bytes, &self.options, out)
        })?)
    }

    fn resolve(&mut self, _env: Env, output: DecodedSegment<Body>) -> napi::Result<RawSegment> {
        RawSegment::from_decoded(output, self.into.take())
    }
}

#[napi(ts_return_type = "Promise<RawSegment>")]
pub fn decode_segment_async(
    bytes: Buffer,
    options: Option<DecodeOptions>,
) -> napi::Result<AsyncTask<DecodeTask>> {
    let (options, into) = DecodeOptions::resolve(options)?;
    Ok(AsyncTask::new(DecodeTask {
        bytes,
        into,
        options,
    }))
}
