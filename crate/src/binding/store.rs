//! The napi surface of object storage: `openNativeObjectStore()`, the `NativeObjectStore` and
//! `NativeStagedFile` classes (napi `async fn`s, run on the addon's tokio runtime) and
//! `readFileForUpload()` (a task off the JavaScript thread).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::future::{select, Either as Settled};
use futures::FutureExt;
use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Env, PromiseRaw, Task, ToNapiValue};
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

use super::crypto::AgeRecipients;
use super::errors::{js_error, throwing};
use crate::error::{guard, Error, ErrorCode, Result};
use crate::store::{self, Fetched, FileForUpload, Head, Metadata, PutCondition, Store, Stored};

#[napi]
pub struct NativeObjectStore {
    inner: Arc<Store>,
}

/// A file read and hashed ahead of its upload (`NativeObjectStore.stageFile`), or read, hashed
/// and encrypted (`stageEncryptedFile`): the bytes to store stay in native memory, and every `put`
/// (the first one and any retry) sends them from there.
#[napi]
pub struct NativeStagedFile {
    store: Arc<Store>,
    /// None once released
    bytes: Mutex<Option<bytes::Bytes>>,
    size: i64,
    sha256: String,
    /// of the file's bytes: the same as size and sha256 unless they were encrypted
    plaintext_size: i64,
    plaintext_sha256: String,
}

impl NativeStagedFile {
    fn new(
        store: Arc<Store>,
        bytes: bytes::Bytes,
        sha256: String,
        plaintext: Option<(u64, String)>,
    ) -> Self {
        let size = bytes.len() as i64;
        let (plaintext_size, plaintext_sha256) = match plaintext {
            Some((size, sha256)) => (size as i64, sha256),
            None => (size, sha256.clone()),
        };
        NativeStagedFile {
            store,
            bytes: Mutex::new(Some(bytes)),
            size,
            sha256,
            plaintext_size,
            plaintext_sha256,
        }
    }
}

/// A promise of `work`, run on the addon's tokio runtime: it resolves with `to_js` of the value,
/// or rejects with the error as binding/errors.rs makes it. A panic in `work` becomes an
/// `internal` error, so it never unwinds into Node.
fn promise<'env, T, V>(
    env: &'env Env,
    work: impl Future<Output = Result<T>> + Send + 'static,
    what: &'static str,
    to_js: impl FnOnce(T) -> V + 'static,
) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
{
    let guarded = async move {
        let settled = AssertUnwindSafe(work).catch_unwind().await;
        Ok(settled.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorCode::Internal,
                format!("native code panicked {what}"),
            ))
        }))
    };
    env.spawn_future_with_callback(guarded, move |env, settled| {
        settled.map(to_js).map_err(|err| js_error(env, err))
    })
}

const IN_AN_OPERATION: &str = "in a storage operation";

/// A switch that stops the requests it was given (`NativeObjectStore.cancellation()`): `cancel()`
/// drops each of them where it is, in flight or not yet sent, so its connection is closed and its
/// promise rejects with `closed`. ObjectStoreStorage cancels it when a put's AbortSignal aborts.
#[napi]
pub struct NativeCancel {
    token: CancellationToken,
}

#[napi]
impl NativeCancel {
    /// Drops every request given this switch; later ones are refused before they are sent.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// `work`, unless `cancel` is cancelled first: then `work` is dropped (an HTTP request in flight
/// with it) and the answer is a `closed` error naming `what`.
async fn cancellable<T>(
    work: impl Future<Output = Result<T>>,
    cancel: Option<CancellationToken>,
    what: String,
) -> Result<T> {
    let Some(token) = cancel else {
        return work.await;
    };
    let cancelled = Error::new(ErrorCode::Closed, format!("{what} was cancelled"));
    if token.is_cancelled() {
        return Err(cancelled);
    }
    let stopped = token.cancelled_owned();
    match select(Box::pin(stopped), Box::pin(work)).await {
        Settled::Left(((), _dropped)) => Err(cancelled),
        Settled::Right((settled, _)) => settled,
    }
}

/// What a put did: `created` false when create-only found the same bytes already stored.
#[napi(object, js_name = "NativeStored")]
pub struct JsStored {
    pub created: bool,
    /// the stored object's ETag, when the store reports one
    pub etag: Option<String>,
}

impl From<Stored> for JsStored {
    fn from(stored: Stored) -> Self {
        JsStored {
            created: stored.created,
            etag: stored.etag,
        }
    }
}

/// An object's size, ETag and metadata (`NativeObjectStore.head`).
#[napi(object, js_name = "NativeHead")]
pub struct JsHead {
    pub size: i64,
    /// null when the store gives none
    pub etag: Option<String>,
    /// lowercase keys
    pub metadata: HashMap<String, String>,
}

impl From<Head> for JsHead {
    fn from(head: Head) -> Self {
        JsHead {
            size: head.size as i64,
            etag: head.etag,
            metadata: head.metadata.into_iter().collect(),
        }
    }
}

/// An object and its ETag (`NativeObjectStore.getWithETag`).
#[napi(object, js_name = "NativeVersionedObject")]
pub struct JsVersionedObject {
    pub bytes: Buffer,
    /// null when the store gives none
    pub etag: Option<String>,
}

/// The condition of a put: create-only, or replace only the object with ETag `if_match`.
fn condition(create_only: bool, if_match: Option<String>) -> Result<PutCondition> {
    match (create_only, if_match) {
        (false, None) => Ok(PutCondition::None),
        (true, None) => Ok(PutCondition::Create),
        (false, Some(etag)) => Ok(PutCondition::Match(etag)),
        (true, Some(_)) => Err(Error::new(
            ErrorCode::InvalidArgument,
            "a put is create-only or conditional on an ETag, not both",
        )),
    }
}

/// Opens the store a URL names: `s3://bucket/prefix`, `gs://bucket/prefix`,
/// `az://container/prefix`, `file:///absolute/dir`, `memory://`. `options` holds `object_store`
/// configuration keys for the scheme (`aws_endpoint`, `aws_region`, `aws_allow_http`,
/// `aws_access_key_id`, `aws_virtual_hosted_style_request`, `google_service_account`, ...) plus
/// `max_retries`, `retry_timeout_ms` and `max_object_bytes`. Unknown keys are rejected.
#[napi(ts_return_type = "Promise<NativeObjectStore>")]
pub fn open_native_object_store(
    env: &Env,
    url: String,
    options: Option<HashMap<String, String>>,
) -> napi::Result<PromiseRaw<'_, NativeObjectStore>> {
    let options = options.unwrap_or_default();
    let open = async move { store::open(&url, options).await };
    promise(env, open, "while opening a store", |store| {
        NativeObjectStore {
            inner: Arc::new(store),
        }
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
    /// (`created` false) and different bytes are a `conflict`; the stored object is never
    /// replaced. With `if_match`, only the object with that ETag is replaced; any other, or none,
    /// is a `conflict`. The bytes are sent from the Buffer itself, not a copy: it must not change
    /// until the promise settles. `cancel` (from `cancellation()`) drops the request when it is
    /// cancelled, even once sent: the promise then rejects with `closed`. `metadata` is stored
    /// with the object (`x-amz-meta-*`; a `file://` store's sidecar).
    #[napi(ts_return_type = "Promise<NativeStored>")]
    #[allow(clippy::too_many_arguments)]
    pub fn put<'env>(
        &self,
        env: &'env Env,
        key: String,
        bytes: Buffer,
        create_only: bool,
        if_match: Option<String>,
        cancel: Option<&NativeCancel>,
        metadata: Option<HashMap<String, String>>,
    ) -> napi::Result<PromiseRaw<'env, JsStored>> {
        let metadata: Metadata = metadata.unwrap_or_default().into_iter().collect();
        let store = Arc::clone(&self.inner);
        let bytes = bytes::Bytes::from_owner(bytes);
        let cancel = cancel.map(|cancel| cancel.token.clone());
        let what = format!("put {}{key}", store.description());
        let put = async move {
            let condition = condition(create_only, if_match)?;
            cancellable(store.put(key, bytes, condition, metadata), cancel, what).await
        };
        promise(env, put, IN_AN_OPERATION, JsStored::from)
    }

    /// The object's size, ETag and metadata, or null when there is none.
    #[napi(ts_return_type = "Promise<NativeHead | null>")]
    pub fn head<'env>(
        &self,
        env: &'env Env,
        key: String,
    ) -> napi::Result<PromiseRaw<'env, Option<JsHead>>> {
        let store = Arc::clone(&self.inner);
        let head = async move { store.head(key).await };
        promise(env, head, IN_AN_OPERATION, |head| head.map(JsHead::from))
    }

    /// A new switch for cancelling requests (`put`'s `cancel`).
    #[napi]
    pub fn cancellation(&self) -> NativeCancel {
        NativeCancel {
            token: CancellationToken::new(),
        }
    }

    /// The object's bytes and ETag, or null when there is none.
    #[napi(ts_return_type = "Promise<NativeVersionedObject | null>")]
    pub fn get_with_etag<'env>(
        &self,
        env: &'env Env,
        key: String,
    ) -> napi::Result<PromiseRaw<'env, Option<JsVersionedObject>>> {
        let store = Arc::clone(&self.inner);
        let get = async move { store.get_with_etag(key).await };
        promise(env, get, IN_AN_OPERATION, |got| {
            got.map(|(bytes, etag)| JsVersionedObject {
                bytes: Buffer::from(bytes.to_vec()),
                etag,
            })
        })
    }

    /// Reads the file at `path` and hashes it (SHA-256) off the JavaScript thread, for `put`s of
    /// the returned staged file: its bytes never enter JavaScript.
    #[napi(ts_return_type = "Promise<NativeStagedFile>")]
    pub fn stage_file<'env>(
        &self,
        env: &'env Env,
        path: String,
    ) -> napi::Result<PromiseRaw<'env, NativeStagedFile>> {
        let store = Arc::clone(&self.inner);
        let stage = async move { store.stage_file(path).await };
        let inner = Arc::clone(&self.inner);
        promise(env, stage, IN_AN_OPERATION, move |staged| {
            NativeStagedFile::new(inner, staged.bytes, staged.sha256, None)
        })
    }

    /// Reads the file at `path`, hashes it and age-encrypts it to `to` off the JavaScript thread,
    /// for `put`s of the ciphertext (`size` and `sha256` are the ciphertext's, `plaintextSize`
    /// and `plaintextSha256` the file's): neither enters JavaScript.
    #[napi(ts_return_type = "Promise<NativeStagedFile>")]
    pub fn stage_encrypted_file<'env>(
        &self,
        env: &'env Env,
        path: String,
        to: AgeRecipients,
    ) -> napi::Result<PromiseRaw<'env, NativeStagedFile>> {
        let store = Arc::clone(&self.inner);
        let recipients = to.recipients.unwrap_or_default();
        let stage = async move {
            store
                .stage_encrypted_file(path, recipients, to.passphrase)
                .await
        };
        let inner = Arc::clone(&self.inner);
        promise(env, stage, IN_AN_OPERATION, move |staged| {
            let plaintext = (staged.plaintext_size, staged.plaintext_sha256);
            NativeStagedFile::new(inner, staged.bytes, staged.sha256, Some(plaintext))
        })
    }

    /// The object's bytes, or null when there is none. Bytes that fit in `into` are read into it
    /// (the answer is then their length); others come in a Buffer of their own.
    #[napi(ts_return_type = "Promise<number | Buffer | null>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        key: String,
        into: Option<Buffer>,
    ) -> napi::Result<PromiseRaw<'env, Option<Either<i64, Buffer>>>> {
        let store = Arc::clone(&self.inner);
        let get = async move { store.get_into(key, into).await };
        promise(env, get, IN_AN_OPERATION, |fetched| {
            fetched.map(|fetched| match fetched {
                Fetched::Into(length) => Either::A(length as i64),
                Fetched::Owned(bytes) => Either::B(Buffer::from(bytes.to_vec())),
            })
        })
    }

    /// Keys starting with `prefix` and greater than `start_after`, ascending, every page.
    #[napi(ts_return_type = "Promise<Array<string>>")]
    pub fn list<'env>(
        &self,
        env: &'env Env,
        prefix: String,
        start_after: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let store = Arc::clone(&self.inner);
        let list = async move { store.list(prefix, start_after).await };
        promise(env, list, IN_AN_OPERATION, |keys| keys)
    }

    /// Deletes `key`; a missing key is not an error.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'env>(&self, env: &'env Env, key: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let store = Arc::clone(&self.inner);
        let delete = async move { store.delete(key).await };
        promise(env, delete, IN_AN_OPERATION, |()| ())
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

    /// Bytes read from the file (before encryption).
    #[napi(getter)]
    pub fn plaintext_size(&self) -> i64 {
        self.plaintext_size
    }

    /// SHA-256 of the bytes read from the file (before encryption), lowercase hex.
    #[napi(getter)]
    pub fn plaintext_sha256(&self) -> String {
        self.plaintext_sha256.clone()
    }

    /// Stores the bytes at `key` as `NativeObjectStore.put` does (`cancel` and `metadata`
    /// included); may be called again (a retry).
    #[napi(ts_return_type = "Promise<NativeStored>")]
    pub fn put<'env>(
        &self,
        env: &'env Env,
        key: String,
        create_only: bool,
        if_match: Option<String>,
        cancel: Option<&NativeCancel>,
        metadata: Option<HashMap<String, String>>,
    ) -> napi::Result<PromiseRaw<'env, JsStored>> {
        let metadata: Metadata = metadata.unwrap_or_default().into_iter().collect();
        let store = Arc::clone(&self.store);
        let staged = self.bytes.lock().ok().and_then(|bytes| bytes.clone());
        let cancel = cancel.map(|cancel| cancel.token.clone());
        let what = format!("put {}{key}", store.description());
        let put = async move {
            let bytes = staged.ok_or_else(|| {
                Error::new(
                    ErrorCode::Closed,
                    format!(
                        "put {}{key}: the staged file was released",
                        store.description()
                    ),
                )
            })?;
            let condition = condition(create_only, if_match)?;
            cancellable(store.put(key, bytes, condition, metadata), cancel, what).await
        };
        promise(env, put, IN_AN_OPERATION, JsStored::from)
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
    type Output = Result<FileForUpload>;
    type JsValue = JsFileForUpload;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guard(|| store::read_into(&self.path, &mut self.into)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<JsFileForUpload> {
        throwing(&env, || {
            let read = output?;
            Ok(JsFileForUpload {
                size: read.size as i64,
                sha256: read.sha256,
            })
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
