//! The napi surface of the writer: `openJournalWriter()` and the `NativeJournalWriter`
//! class, mirroring `CoreWriter` of ts/core/core.ts. The writer answers each request through a
//! callback on its own thread; here that callback settles a promise.

use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::{
    AsyncTask, Buffer, BufferSlice, Either, Env, Null, Object, Task, ToNapiValue,
};
use napi_derive::napi;

use super::errors::throwing;
use super::{from_js_number, to_hash};
use crate::error::{guard, Error, ErrorCode};
use crate::format::HASH_SIZE;
use crate::writer::{
    AppendNow, AppendedBatch, Durability, PayloadBatch, Writer, WriterOptions, WriterStart,
    WriterStats, MAX_SEQUENCE,
};

#[napi(object, js_name = "WriterStart")]
pub struct JsWriterStart {
    pub sequence: i64,
    pub chain_hash: Buffer,
    /// `Option<String>` alone rejects an explicit `null` in an object field
    #[napi(ts_type = "string | null")]
    pub live_segment: Option<Either<String, Null>>,
    pub retired_segments: Option<Vec<String>>,
}

#[napi(object, js_name = "WriterOptions")]
pub struct JsWriterOptions {
    pub max_segment_bytes: f64,
    pub level: i32,
    #[napi(ts_type = "'fsync' | 'interval' | 'none'")]
    pub durability: String,
    pub fsync_interval_ms: f64,
    pub queue_capacity: f64,
}

#[napi(object, js_name = "AppendedBatch")]
pub struct JsAppendedBatch {
    pub first_sequence: i64,
    pub chain_hashes: Buffer,
}

#[napi(object, js_name = "WriterStats")]
pub struct JsWriterStats {
    pub syncs: i64,
    pub batches: i64,
    pub segments_sealed: i64,
}

fn whole_number(value: f64, what: &str) -> Result<u64, Error> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= MAX_SEQUENCE as f64 {
        Ok(value as u64)
    } else {
        Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} must be a non-negative integer, got {value}"),
        ))
    }
}

impl TryFrom<JsWriterStart> for WriterStart {
    type Error = Error;

    fn try_from(start: JsWriterStart) -> Result<WriterStart, Error> {
        Ok(WriterStart {
            sequence: from_js_number(start.sequence, "start.sequence")?,
            chain_hash: to_hash(&start.chain_hash, "start.chainHash")?,
            live_segment: match start.live_segment {
                Some(Either::A(path)) => Some(PathBuf::from(path)),
                Some(Either::B(Null)) | None => None,
            },
            retired_segments: start
                .retired_segments
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
        })
    }
}

impl TryFrom<JsWriterOptions> for WriterOptions {
    type Error = Error;

    fn try_from(options: JsWriterOptions) -> Result<WriterOptions, Error> {
        Ok(WriterOptions {
            max_segment_bytes: whole_number(options.max_segment_bytes, "maxSegmentBytes")?,
            level: options.level,
            durability: Durability::parse(&options.durability)?,
            fsync_interval: Duration::from_millis(whole_number(
                options.fsync_interval_ms,
                "fsyncIntervalMs",
            )?),
            queue_capacity: whole_number(options.queue_capacity, "queueCapacity")? as usize,
        })
    }
}

fn js_stats(stats: WriterStats) -> JsWriterStats {
    JsWriterStats {
        syncs: stats.syncs as i64,
        batches: stats.batches as i64,
        segments_sealed: stats.segments_sealed as i64,
    }
}

fn js_batch(batch: AppendedBatch) -> JsAppendedBatch {
    JsAppendedBatch {
        // the writer never assigns a sequence above 2^53-1
        first_sequence: batch.first_sequence as i64,
        chain_hashes: batch.chain_hashes.into(),
    }
}

/// A promise and the answer that settles it. The writer thread settles it directly
/// through the promise's threadsafe function, so an answer costs one wake-up of the JS
/// thread and no runtime thread in between.
fn writer_promise<'env, T, V>(
    env: &'env Env,
    to_js: fn(T) -> V,
) -> napi::Result<(
    impl FnOnce(crate::error::Result<T>) + Send + 'static,
    Object<'env>,
)>
where
    T: Send + 'static,
    V: ToNapiValue + 'static,
{
    let (deferred, promise) = env.create_deferred()?;
    // the error too is made on the JS thread, when the promise settles (binding/errors.rs)
    let answer = move |result: crate::error::Result<T>| {
        deferred.resolve(move |env| throwing(&env, || result.map(to_js)))
    };
    Ok((answer, promise))
}

pub struct OpenWriterTask {
    dir: PathBuf,
    start: Option<WriterStart>,
    options: WriterOptions,
}

impl Task for OpenWriterTask {
    type Output = crate::error::Result<Writer>;
    type JsValue = NativeJournalWriter;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let Some(start) = self.start.take() else {
            let twice = Error::new(ErrorCode::Internal, "openJournalWriter task ran twice");
            return Ok(Err(twice));
        };
        Ok(guard(|| {
            Writer::open(&self.dir, start, self.options.clone())
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<NativeJournalWriter> {
        throwing(&env, || Ok(NativeJournalWriter { writer: output? }))
    }
}

/// Locks `dir` and starts a writer from `start` (off the JS thread).
#[napi(ts_return_type = "Promise<NativeJournalWriter>")]
pub fn open_journal_writer(
    env: &Env,
    dir: String,
    start: JsWriterStart,
    options: JsWriterOptions,
) -> napi::Result<AsyncTask<OpenWriterTask>> {
    throwing(env, || {
        Ok(AsyncTask::new(OpenWriterTask {
            dir: PathBuf::from(dir),
            start: Some(WriterStart::try_from(start)?),
            options: WriterOptions::try_from(options)?,
        }))
    })
}

/// A journal writer with its own thread. Every method enqueues synchronously, so
/// requests are handled in call order.
#[napi]
pub struct NativeJournalWriter {
    writer: Writer,
}

#[napi]
impl NativeJournalWriter {
    /// Copies the packed payloads (payload i is the `lengths[i]` bytes after payload
    /// i-1; the caller may reuse its buffers at once) and queues them.
    #[napi(ts_return_type = "Promise<AppendedBatch>")]
    pub fn append<'env>(
        &self,
        env: &'env Env,
        payloads: &[u8],
        lengths: &[u32],
        stamp_sequences: Option<bool>,
    ) -> napi::Result<Object<'env>> {
        let mut batch = throwing(env, || PayloadBatch::from_packed(payloads, lengths))?;
        if stamp_sequences == Some(true) {
            batch = batch.stamping_sequences();
        }
        let (answer, promise) = writer_promise(env, js_batch)?;
        self.writer.append(batch, answer);
        Ok(promise)
    }

    /// Appends the packed payloads at once on this thread when the writer can (durability
    /// 'none' or 'interval', nothing queued ahead, no rotation due, at most 16 KiB) and returns
    /// the first sequence, the entries handed to the OS and their chain hashes written into
    /// `chain_hashes` (32 bytes per payload: a buffer of the caller's, so that an inline append
    /// makes no external buffer); otherwise queues them as `append` does and returns its promise.
    #[napi(ts_return_type = "number | Promise<AppendedBatch>")]
    pub fn append_now<'env>(
        &self,
        env: &'env Env,
        payloads: &[u8],
        lengths: &[u32],
        stamp_sequences: Option<bool>,
        mut chain_hashes: BufferSlice<'_>,
    ) -> napi::Result<Either<i64, Object<'env>>> {
        let mut batch = throwing(env, || {
            if chain_hashes.len() != HASH_SIZE * lengths.len() {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "appendNow: chain_hashes has {} bytes, not {HASH_SIZE} per payload ({})",
                        chain_hashes.len(),
                        lengths.len()
                    ),
                ));
            }
            PayloadBatch::from_packed(payloads, lengths)
        })?;
        if stamp_sequences == Some(true) {
            batch = batch.stamping_sequences();
        }
        match throwing(env, || self.writer.append_now(batch))? {
            AppendNow::Done(appended) => {
                chain_hashes.copy_from_slice(&appended.chain_hashes);
                // the writer never assigns a sequence above 2^53-1
                Ok(Either::A(appended.first_sequence as i64))
            }
            AppendNow::Queue(batch) => {
                let (answer, promise) = writer_promise(env, js_batch)?;
                self.writer.append(batch, answer);
                Ok(Either::B(promise))
            }
        }
    }

    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn seal_for_upload<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (answer, promise) = writer_promise(env, |sealed: Option<PathBuf>| {
            sealed.map(|path| path.to_string_lossy().into_owned())
        })?;
        self.writer.seal_for_upload(answer);
        Ok(promise)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (answer, promise) = writer_promise(env, |()| ())?;
        self.writer.flush(answer);
        Ok(promise)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (answer, promise) = writer_promise(env, |()| ())?;
        self.writer.close(answer);
        Ok(promise)
    }

    #[napi(getter)]
    pub fn sequence(&self) -> i64 {
        self.writer.sequence() as i64
    }

    #[napi(getter)]
    pub fn chain_hash(&self) -> Buffer {
        self.writer.chain_hash().to_vec().into()
    }

    #[napi(getter)]
    pub fn alive(&self) -> bool {
        self.writer.alive()
    }

    #[napi]
    pub fn stats(&self) -> JsWriterStats {
        js_stats(self.writer.stats())
    }
}
