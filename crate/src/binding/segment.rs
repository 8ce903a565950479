//! Decoding and sealing whole segments, on the JS thread or as tasks off it.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Env, Task, Uint32Array};
use napi_derive::napi;

use super::errors::throwing;
use super::format::HeaderFields;
use super::{to_js_number, MAX_SAFE_INTEGER};
use crate::error::{guard, Error, ErrorCode};
use crate::format::Header;
use crate::sealer::{in_idle_class, wait_for_idle_runs};
use crate::segment::{
    self, Body, DecodeOptions as SegmentDecodeOptions, DecodedSegment, DEFAULT_MAX_BODY_BYTES,
};

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
    fn from_decoded(decoded: DecodedSegment<Body>, into: Option<Buffer>) -> Result<Self, Error> {
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
    /// a buffer to write the sealed segment into when it fits (never the input's memory)
    pub into: Option<Buffer>,
}

fn seal_settings(options: Option<SealOptions>) -> Result<(i32, usize, Option<Buffer>), Error> {
    let Some(options) = options else {
        return Ok((3, DEFAULT_MAX_BODY_BYTES, None));
    };
    Ok((
        options.level.unwrap_or(3),
        ceiling(options.max_body_bytes)?,
        options.into,
    ))
}

/// A sealed segment: the number of its bytes written at the start of the caller's `into` buffer
/// when it fitted there (the caller takes the view), else a buffer of its own.
pub enum Sealed {
    Into(usize),
    Own(Vec<u8>),
}

impl Sealed {
    /// Copies `sealed` into `into` when it fits (a memcpy beside the seal's milliseconds: one
    /// buffer reused call after call leaves the garbage collector no dead megabyte per call).
    fn place(sealed: Vec<u8>, into: Option<&mut [u8]>) -> Sealed {
        match into {
            Some(into) if sealed.len() <= into.len() => {
                into[..sealed.len()].copy_from_slice(&sealed);
                Sealed::Into(sealed.len())
            }
            _ => Sealed::Own(sealed),
        }
    }

    fn into_js(self) -> Either<u32, Buffer> {
        match self {
            // a sealed segment is at most its input's size plus a zstd frame's overhead: below 4 GiB
            Sealed::Into(length) => Either::A(length as u32),
            Sealed::Own(bytes) => Either::B(bytes.into()),
        }
    }
}

#[napi(ts_return_type = "number | Buffer")]
pub fn seal_segment(
    env: &Env,
    unsealed: &[u8],
    options: Option<SealOptions>,
) -> napi::Result<Either<u32, Buffer>> {
    throwing(env, || {
        let (level, max, mut into) = seal_settings(options)?;
        check_header_fits_js(unsealed)?;
        let sealed = guard(|| segment::seal_segment(unsealed, level, max))?;
        Ok(Sealed::place(sealed, into.as_deref_mut()).into_js())
    })
}

#[napi]
pub fn decode_segment(
    env: &Env,
    bytes: &[u8],
    options: Option<DecodeOptions>,
) -> napi::Result<RawSegment> {
    throwing(env, || {
        let (options, mut into) = DecodeOptions::resolve(options)?;
        check_header_fits_js(bytes)?;
        let decoded = guard(|| {
            segment::decode_segment_to(bytes, &options, into.as_deref_mut().unwrap_or_default())
        })?;
        RawSegment::from_decoded(decoded, into)
    })
}

pub struct SealTask {
    unsealed: Arc<Buffer>,
    level: i32,
    max_body_bytes: usize,
    into: Option<Buffer>,
}

/// How long a seal may wait for idle cores before its libuv thread computes it in the normal
/// class: four times what a 4 MiB segment takes on an idle core (~12 ms), scaled to the input.
fn seal_patience(bytes: usize) -> Duration {
    Duration::from_millis(10 + (bytes as u64 >> 20) * 10)
}

impl Task for SealTask {
    type Output = Result<Sealed, Error>;
    type JsValue = Either<u32, Buffer>;

    /// Sealing (a few ms of CPU per MiB on two threads) runs in the idle class while cores are
    /// free, so that it never keeps the event loop from a core (the journal's sealer does the
    /// same); see [`in_idle_class`] for what happens when the machine is busy.
    fn compute(&mut self) -> napi::Result<Self::Output> {
        let unsealed = Arc::clone(&self.unsealed);
        let (level, max_body_bytes) = (self.level, self.max_body_bytes);
        let patience = seal_patience(unsealed.len());
        // the work may run twice (see in_idle_class), so it only computes; `into` is written here
        let sealed = in_idle_class(
            patience,
            Arc::new(move || {
                guard(|| {
                    check_header_fits_js(&unsealed)?;
                    segment::seal_segment(&unsealed, level, max_body_bytes)
                })
            }),
        );
        Ok(sealed.map(|sealed| Sealed::place(sealed, self.into.as_deref_mut())))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Either<u32, Buffer>> {
        throwing(&env, || Ok(output?.into_js()))
    }
}

thread_local! {
    /// The environment of this thread that waits for idle-class seals in its cleanup.
    static WAITING_ENV: std::cell::Cell<napi::sys::napi_env> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// A seal that [`in_idle_class`] overtook keeps reading its input, a Buffer whose memory Node
/// frees when the environment is torn down (a process exiting, a worker ending): the
/// environment's cleanup waits for such runs first.
fn wait_for_idle_seals_at_cleanup(env: &Env) -> napi::Result<()> {
    if WAITING_ENV.get() == env.raw() {
        return Ok(());
    }
    env.add_env_cleanup_hook((), |()| wait_for_idle_runs())?;
    WAITING_ENV.set(env.raw());
    Ok(())
}

#[napi(ts_return_type = "Promise<number | Buffer>")]
pub fn seal_segment_async(
    env: &Env,
    unsealed: Buffer,
    options: Option<SealOptions>,
) -> napi::Result<AsyncTask<SealTask>> {
    let (level, max_body_bytes, into) = throwing(env, || seal_settings(options))?;
    wait_for_idle_seals_at_cleanup(env)?;
    Ok(AsyncTask::new(SealTask {
        unsealed: Arc::new(unsealed),
        level,
        max_body_bytes,
        into,
    }))
}

pub struct DecodeTask {
    bytes: Buffer,
    into: Option<Buffer>,
    options: SegmentDecodeOptions,
}

impl Task for DecodeTask {
    type Output = Result<DecodedSegment<Body>, Error>;
    type JsValue = RawSegment;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let out = self.into.as_deref_mut().unwrap_or_default();
        Ok(guard(|| {
            check_header_fits_js(&self.bytes)?;
            segment::decode_segment_to(&self.bytes, &self.options, out)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<RawSegment> {
        throwing(&env, || RawSegment::from_decoded(output?, self.into.take()))
    }
}

#[napi(ts_return_type = "Promise<RawSegment>")]
pub fn decode_segment_async(
    env: &Env,
    bytes: Buffer,
    options: Option<DecodeOptions>,
) -> napi::Result<AsyncTask<DecodeTask>> {
    let (options, into) = throwing(env, || DecodeOptions::resolve(options))?;
    Ok(AsyncTask::new(DecodeTask {
        bytes,
        into,
        options,
    }))
}
