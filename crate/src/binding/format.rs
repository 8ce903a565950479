//! The format's functions (`FormatApi` of ts/core/core.ts): entries, hashes and headers.

use napi::bindgen_prelude::{BigInt, Buffer, Either, Env};
use napi_derive::napi;

use super::errors::throwing;
use super::{from_js_number, to_hash, to_js_number, MAX_SAFE_INTEGER};
use crate::error::{Error, ErrorCode};
use crate::format::{self, Header};
use crate::writer;

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
    pub(super) fn from_header(header: &Header) -> Result<Self, Error> {
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

#[napi(js_name = "crc32c")]
pub fn crc32c(data: &[u8], initial: Option<u32>) -> u32 {
    match initial {
        Some(crc) => ::crc32c::crc32c_append(crc, data),
        None => format::crc32c(data),
    }
}

#[napi]
pub fn compute_entry_hash(env: &Env, prev_hash: &[u8], payload: &[u8]) -> napi::Result<Buffer> {
    throwing(env, || {
        let prev = to_hash(prev_hash, "prevHash")?;
        Ok(format::entry_hash(&prev, payload).to_vec().into())
    })
}

#[napi]
pub fn encode_entry(
    env: &Env,
    sequence: i64,
    prev_hash: &[u8],
    payload: &[u8],
) -> napi::Result<Buffer> {
    throwing(env, || {
        let prev = to_hash(prev_hash, "prevHash")?;
        let sequence = from_js_number(sequence, "sequence")?;
        check_payload(payload)?;
        let mut out = Vec::new();
        format::encode_entry_into(&mut out, sequence, &prev, payload);
        Ok(out.into())
    })
}

/// Encodes packed payloads (payload i is the `lengths[i]` bytes after payload i-1): one
/// buffer crosses the boundary instead of one per payload.
#[napi]
pub fn encode_entries(
    env: &Env,
    first_sequence: i64,
    prev_hash: &[u8],
    payloads: &[u8],
    lengths: &[u32],
) -> napi::Result<EncodedBatch> {
    throwing(env, || {
        let prev = to_hash(prev_hash, "prevHash")?;
        let first = from_js_number(first_sequence, "firstSequence")?;
        let slices = writer::split_packed(payloads, lengths)?;
        let (bytes, hashes) = format::encode_entries(first, &prev, &slices);
        Ok(EncodedBatch {
            bytes: bytes.into(),
            chain_hashes: hashes.into(),
        })
    })
}

#[napi]
pub fn decode_entry(env: &Env, bytes: &[u8], offset: Option<u32>) -> napi::Result<RawEntry> {
    throwing(env, || {
        let entry = format::decode_entry(bytes, offset.unwrap_or(0) as usize)?;
        Ok(RawEntry {
            sequence: to_js_number(entry.sequence, "sequence")?,
            prev_hash: entry.prev_hash.to_vec().into(),
            payload_offset: entry.payload_offset as u32,
            payload_length: entry.payload_len as u32,
            size: entry.size as u32,
        })
    })
}

#[napi]
pub fn encode_header(env: &Env, header: HeaderInit) -> napi::Result<Buffer> {
    throwing(env, || {
        Ok(Header::try_from(header)?.encode().to_vec().into())
    })
}

#[napi]
pub fn decode_header(env: &Env, bytes: &[u8]) -> napi::Result<HeaderFields> {
    throwing(env, || HeaderFields::from_header(&Header::decode(bytes)?))
}
