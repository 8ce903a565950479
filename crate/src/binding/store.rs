//! The napi surface of object storage: `openNativeObjectStore()`, the `NativeObjectStore` and
//! `NativeStagedFile` classes (napi `async fn`s, run on the addon's tokio runtime) and
//! `readFileForUpload()` (a task off the JavaScript thread).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Env, Task};
use napi_derive::napi;

use crate::error::{guard, Error, ErrorCode, Result};
use crate::store::{self, Fetched, FileForUpload, Store};

#[napi]
pub struct NativeObjectStore {
    inner: Arc<Store>,
}

/// A file read and hashed ahead of its upload (`NativeObjectStore.stageFile`): its bytes stay in
/// native memory, and every `put` (the first one and any retry) sends them from there.
#[napi]
pub struct NativeStagedFile {
    store: Arc<Store>,
    /// None once released
    bytes: Mutex<Option<bytes::Bytes>>,
    size: i64,
    sha256: String,
}

/// Runs `work`, turning a panic into an `internal` error so it never unwinds into Node.
async fn guarded<T>(work: impl Future<Output = Result<T>>, what: &str) -> Result<T> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(Error::new(
                ErrorCode::Internal,
                format!("native code panicked {what}"),
            ))
        })
}

const IN_AN_OPERATION: &str = "in a storage operation";

/// Opens the store a URL names: `s3://bucket/prefix`, `gs://bucket/prefix`,
/// `az://container/prefix`, `file:///absolute/dir`, `memory://`. `options` holds `object_store`
/// configuration keys for the scheme (`aws_endpoint`, `aws_region`, `aws_allow_http`,
/// `aws_access_key_id`, `aws_virtual_hosted_style_request`, `google_service_account`, ...) plus
/// `max_retries`, `retry_timeout_ms` and `max_object_bytes`. Unknown keys are rejected.
#[napi]
pub async fn open_native_object_store(
    url: String,
    options: Option<HashMap<String, String>>,
) -> napi::Result<NativeObjectStore> {
    let options = options.unwrap_or_default();
    let store = guarded(store::open(&url, options), "while opening a store").await?;
    Ok(NativeObjectStore {
        inner: Arc::new(store),
    })
}

#[napi]
impl NativeObjectStore {
    /// `s3://bucket/prefix` etc., for messages.
    #[napi(getter)]
    pub fn description(&self) -> String {
        self.inner.description().to_string()
    }

    /// Stores `bytes` at `key`. With `create_only`, an existing identical object is a no-op
    /// (returns false) and different bytes are a `[conflict]`; the stored object is never replaced.
    /// Returns true when this call created (or overwrote) the object. The bytes are sent from the
    /// Buffer itself, not a copy: it must not change until the promise settles.
    #[napi]
    pub async fn put(&self, key: String, bytes: Buffer, create_only: bool) -> napi::Result<bool> {
        let bytes = bytes::Bytes::from_owner(bytes);
        let work = self.inner.put(key, bytes, create_only);
        Ok(guarded(work, IN_AN_OPERATION).await?)
    }

    /// Reads the file at `path` and hashes it (SHA-256) off the JavaScript thread, for `put`s of
    /// the returned staged file: its bytes never enter JavaScript.
    #[napi]
    pub async fn stage_file(&self, path: String) -> napi::Result<NativeStagedFile> {
        let staged = guarded(self.inner.stage_file(path), IN_AN_OPERATION).await?;
        Ok(NativeStagedFile {
            store: Arc::clone(&self.inner),
            size: staged.bytes.len() as i64,
            bytes: Mutex::new(Some(staged.bytes)),
            sha256: staged.sha256,
        })
    }

    /// The object's bytes, or null when there is none. Bytes that fit in `into` are read into it
    /// (the answer is then their length); others come in a Buffer of their own.
    #[napi(ts_return_type = "Promise<number | Buffer | null>")]
    pub async fn get(
        &self,
        key: String,
        into: Option<Buffer>,
    ) -> napi::Result<Option<Either<i64, Buffer>>> {
        let fetched = guarded(self.inner.get_into(key, into), IN_AN_OPERATION).await?;
        Ok(fetched.map(|fetched| match fetched {
            Fetched::Into(length) => Either::A(length as i64),
            Fetched::Owned(bytes) => Either::B(Buffer::from(bytes.to_vec())),
        }))
    }

    /// Keys starting with `prefix` and greater than `start_after`, ascending, every page.
    #[napi]
    pub async fn list(
        &self,
        prefix: String,
        start_after: Option<String>,
    ) -> napi::Result<Vec<String>> {
        let work = self.inner.list(prefix, start_after);
        Ok(guarded(work, IN_AN_OPERATION).await?)
    }

    /// Deletes `key`; a missing key is not an error.
    #[napi]
    pub async fn delete(&self, key: String) -> napi::Result<()> {
        Ok(guarded(self.inner.delete(key), IN_AN_OPERATION).await?)
    }
}

#[napi]
impl NativeStagedFile {
    /// Bytes read from the file.
    #[napi(getter)]
    pub fn size(&self) -> i64 {
        self.size
    }

    /// SHA-256 of the bytes, lowercase hex.
    #[napi(getter)]
    pub fn sha256(&self) -> String {
        self.sha256.clone()
    }

    /// Stores the bytes at `key` as `NativeObjectStore.put` does; may be called again (a retry).
    #[napi]
    pub async fn put(&self, key: String, create_only: bool) -> napi::Result<bool> {
        let staged = self.bytes.lock().ok().and_then(|bytes| bytes.clone());
        let bytes = staged.ok_or_else(|| {
            Error::new(
                ErrorCode::Closed,
                format!(
                    "put {}{key}: the staged file was released",
                    self.store.description()
                ),
            )
        })?;
        let work = self.store.put(key, bytes, create_only);
        Ok(guarded(work, IN_AN_OPERATION).await?)
    }

    /// Frees the bytes now rather than when the object is garbage-collected.
    #[napi]
    pub fn release(&self) {
        if let Ok(mut bytes) = self.bytes.lock() {
            *bytes = None;
        }
    }
}

/// What `readFileForUpload` found: the file's size and, when it fitted, the hash of its bytes.
#[napi(object, js_name = "FileForUpload")]
pub struct JsFileForUpload {
    /// the file's size in bytes
    pub size: i64,
    /// SHA-256 (lowercase hex) of the bytes now at the start of the buffer; null when the file is
    /// larger than the buffer and nothing was read
    pub sha256: Option<String>,
}

pub struct ReadForUploadTask {
    path: String,
    into: Buffer,
}

impl Task for ReadForUploadTask {
    type Output = FileForUpload;
    type JsValue = JsFileForUpload;

    fn compute(&mut self) -> napi::Result<FileForUpload> {
        Ok(guard(|| store::read_into(&self.path, &mut self.into))?)
    }

    fn resolve(&mut self, _env: Env, output: FileForUpload) -> napi::Result<JsFileForUpload> {
        Ok(JsFileForUpload {
            size: output.size as i64,
            sha256: output.sha256,
        })
    }
}

/// Reads the whole file at `path` into the start of `into` and hashes it (SHA-256), in one task
/// off the JavaScript thread (S3Storage reads segments into reused buffers with it). A file larger
/// than `into` is not read: its size says how large a buffer it needs. JavaScript must not touch
/// `into` until the promise settles.
#[napi(ts_return_type = "Promise<FileForUpload>")]
pub fn read_file_for_upload(path: String, into: Buffer) -> AsyncTask<ReadForUploadTask> {
    AsyncTask::new(ReadForUploadTask { path, into })
}
