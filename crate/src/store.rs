//! Object storage through the `object_store` crate: S3 and S3-compatible servers, GCS, Azure,
//! a local directory and memory, opened from a URL. The operations are futures (binding/store.rs
//! runs them on the addon's tokio runtime, never on the JavaScript thread); blocking file work
//! inside them goes to tokio's blocking threads.
//!
//! A storage failure carries whether a retry may succeed and the HTTP status as data (the
//! error's `RetryHint`); its message says the same for people: ` (retryable; HTTP 503)`,
//! ` (retryable)` or ` (not retryable; HTTP 403)`.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, Attributes, GetOptions, GetResult, GetResultPayload, ObjectStore, PutMode,
    PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use url::Url;

use crate::error::{Error, ErrorCode, Result};

/// Options of our own, next to the `object_store` configuration keys (`aws_endpoint`, ...).
const OPTION_MAX_RETRIES: &str = "max_retries";
const OPTION_RETRY_TIMEOUT_MS: &str = "retry_timeout_ms";
const OPTION_MAX_OBJECT_BYTES: &str = "max_object_bytes";

/// Ceiling on one object read into memory unless `max_object_bytes` says otherwise.
const DEFAULT_MAX_OBJECT_BYTES: u64 = 1 << 30;
/// The crate retries 10 times by default; graphstream's uploader has its own retry policy, so the
/// client only smooths over short blips.
const DEFAULT_MAX_RETRIES: usize = 2;
const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Store {
    store: Arc<dyn ObjectStore>,
    description: String,
    max_object_bytes: u64,
    /// A `file://` store's directory, symbolic links resolved: nothing outside it is touched.
    local_root: Option<PathBuf>,
}

/// Opens the store a URL names (s3, gs, az, file or memory), configured by `options`:
/// `object_store` configuration keys for the scheme plus `max_retries`, `retry_timeout_ms` and
/// `max_object_bytes`. Unknown keys are rejected.
pub async fn open(url_text: &str, mut options: HashMap<String, String>) -> Result<Store> {
    let url = Url::parse(url_text).map_err(|err| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("invalid storage URL {url_text:?}: {err}"),
        )
    })?;
    let retry = RetryConfig {
        max_retries: take_number(&mut options, OPTION_MAX_RETRIES)?
            .map_or(DEFAULT_MAX_RETRIES, |n| n as usize),
        retry_timeout: take_number(&mut options, OPTION_RETRY_TIMEOUT_MS)?
            .map_or(DEFAULT_RETRY_TIMEOUT, Duration::from_millis),
        ..RetryConfig::default()
    };
    let max_object_bytes =
        take_number(&mut options, OPTION_MAX_OBJECT_BYTES)?.unwrap_or(DEFAULT_MAX_OBJECT_BYTES);
    // A location ends with '/', so that `{description}{key}` names an object: `s3://bucket/prefix/key`.
    let description = if url_text.ends_with('/') {
        url_text.to_string()
    } else {
        format!("{url_text}/")
    };
    let prefix = url.path().trim_start_matches('/');
    let invalid = |err: object_store::Error| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("cannot open storage {url_text}: {err}"),
        )
    };

    let mut local_root = None;
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket_of(&url)?)
                .with_retry(retry);
            for (key, value) in options {
                let key: AmazonS3ConfigKey = parse_key(&key, "s3")?;
                builder = builder.with_config(key, value);
            }
            with_prefix(builder.build().map_err(invalid)?, prefix)
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket_of(&url)?)
                .with_retry(retry);
            for (key, value) in options {
                let key: GoogleConfigKey = parse_key(&key, "gs")?;
                builder = builder.with_config(key, value);
            }
            with_prefix(builder.build().map_err(invalid)?, prefix)
        }
        "az" | "azure" => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket_of(&url)?)
                .with_retry(retry);
            for (key, value) in options {
                let key: AzureConfigKey = parse_key(&key, "az")?;
                builder = builder.with_config(key, value);
            }
            with_prefix(builder.build().map_err(invalid)?, prefix)
        }
        "file" => {
            reject_options(&options, "file")?;
            let dir = url.to_file_path().map_err(|()| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!("invalid storage URL {url_text:?}: not an absolute local path"),
                )
            })?;
            let create_dir = dir.clone();
            let resolved = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&create_dir)?;
                std::fs::canonicalize(&create_dir)
            })
            .await
            .map_err(|err| Error::new(ErrorCode::Internal, err.to_string()))?
            .map_err(|err| {
                Error::io(&format!("create storage directory {}", dir.display()), err)
            })?;
            local_root = Some(resolved);
            Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(invalid)?)
        }
        "memory" => {
            reject_options(&options, "memory")?;
            Arc::new(InMemory::new())
        }
        other => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "invalid storage URL {url_text:?}: unsupported scheme {other:?} \
                     (expected s3, gs, az, file or memory)"
                ),
            ))
        }
    };
    Ok(Store {
        store,
        description,
        max_object_bytes,
        local_root,
    })
}

fn bucket_of(url: &Url) -> Result<String> {
    match url.host_str() {
        Some(host) if !host.is_empty() => Ok(host.to_string()),
        _ => Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("invalid storage URL {:?}: no bucket name", url.as_str()),
        )),
    }
}

fn with_prefix<T: ObjectStore>(store: T, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.trim_matches('/').is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

fn parse_key<K: std::str::FromStr>(key: &str, scheme: &str) -> Result<K> {
    if let Ok(parsed) = key.parse::<K>() {
        return Ok(parsed);
    }
    Err(Error::new(
        ErrorCode::InvalidArgument,
        format!("unknown option {key:?} for {scheme}:// storage"),
    ))
}

fn reject_options(options: &HashMap<String, String>, scheme: &str) -> Result<()> {
    match options.keys().next() {
        Some(key) => Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("option {key:?} does not apply to {scheme}:// storage"),
        )),
        None => Ok(()),
    }
}

fn take_number(options: &mut HashMap<String, String>, key: &str) -> Result<Option<u64>> {
    match options.remove(key) {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("option {key:?} must be a non-negative integer, got {text:?}"),
            )
        }),
    }
}

/// An object read by `Store::get_into`.
pub enum Fetched {
    /// this many bytes, now at the start of the buffer given
    Into(usize),
    /// an object larger than the buffer given, or read without one
    Owned(bytes::Bytes),
}

/// What a put requires of the object it replaces (`Store::put`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// nothing: the object is created or overwritten
    None,
    /// no object at the key (`If-None-Match: *`)
    Create,
    /// the object with this ETag (`If-Match`)
    Match(String),
}

/// User metadata of an object (`x-amz-meta-*` on S3): lowercase keys, printable ASCII values;
/// ts/storage/bytes.ts checks them before they get here.
pub type Metadata = BTreeMap<String, String>;

/// An object's size, ETag and metadata, without its bytes (`Store::head`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    pub etag: Option<String>,
    pub metadata: Metadata,
}

/// Sidecar files of a `file://` store (ts/storage/local.ts has the same): an object's metadata
/// is in `.graphstream-meta-{16 hex of SHA-256(file name)}-{32 hex of SHA-256(its bytes)}`,
/// JSON `{"key":…,"metadata":{…}}`, written durably before the object is put, and naming the
/// very bytes it describes.
const META_PREFIX: &str = ".graphstream-meta-";

fn sidecar_stem(name: &str) -> String {
    let digest = crate::format::hex(&crate::format::sha256(name.as_bytes()));
    format!("{META_PREFIX}{}-", &digest[..16])
}

fn sidecar_path(object: &std::path::Path, bytes: &[u8]) -> PathBuf {
    let name = object
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digest = crate::format::hex(&crate::format::sha256(bytes));
    object.with_file_name(format!("{}{}", sidecar_stem(&name), &digest[..32]))
}

/// Writes `text` to `path` durably: temp file, fsync, rename, directory fsync. Blocking.
fn write_durably(path: &std::path::Path, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
}

/// The metadata the sidecar of `bytes` at `key` holds (empty without one). Blocking.
fn read_sidecar(object: &std::path::Path, key: &str, bytes: &[u8]) -> Metadata {
    let Ok(text) = std::fs::read(sidecar_path(object, bytes)) else {
        return Metadata::new();
    };
    let Ok(serde_json::Value::Object(stored)) = serde_json::from_slice(&text) else {
        return Metadata::new();
    };
    if stored.get("key").and_then(|k| k.as_str()) != Some(key) {
        return Metadata::new();
    }
    match stored.get("metadata") {
        Some(serde_json::Value::Object(entries)) => entries
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
        _ => Metadata::new(),
    }
}

/// Removes the sidecars of `object` except `keep` (best effort). Blocking.
fn remove_sidecars(object: &std::path::Path, keep: Option<&std::path::Path>) {
    let (Some(dir), Some(name)) = (object.parent(), object.file_name()) else {
        return;
    };
    let stem = sidecar_stem(&name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with(&stem) && Some(path.as_path()) != keep {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What a put did (`Store::put`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// false when `Create` found the same bytes already stored
    pub created: bool,
    /// the stored object's ETag, when the store reports one
    pub etag: Option<String>,
}

/// A file read and hashed ahead of its upload (`Store::stage_file`).
pub struct StagedFile {
    pub bytes: bytes::Bytes,
    /// SHA-256 of the bytes, lowercase hex
    pub sha256: String,
}

/// A file read, hashed and age-encrypted ahead of its upload (`encrypt_file`): the ciphertext
/// and its SHA-256, and the size and SHA-256 of the plaintext that was encrypted.
pub struct EncryptedFile {
    pub bytes: bytes::Bytes,
    /// SHA-256 of `bytes`, lowercase hex
    pub sha256: String,
    pub plaintext_size: u64,
    /// SHA-256 of the file's bytes, lowercase hex
    pub plaintext_sha256: String,
}

/// What `read_into` found: the file's size and, when it fitted, the hash of its bytes.
#[derive(Debug)]
pub struct FileForUpload {
    pub size: u64,
    /// SHA-256 (lowercase hex) of the bytes now at the start of the buffer; None when the file
    /// is larger than the buffer and nothing was read
    pub sha256: Option<String>,
}

impl Store {
    /// `s3://bucket/prefix/` etc., for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The path of `key`, which must be in canonical form: `Path::parse` would strip a leading or
    /// trailing '/', and a key must name the same object on every backend.
    fn path(&self, key: &str) -> Result<Path> {
        let invalid = |why: String| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "invalid storage key {key:?} for {}: {why}",
                    self.description
                ),
            )
        };
        let path = Path::parse(key).map_err(|err| invalid(err.to_string()))?;
        if key.is_empty() || path.as_ref() != key {
            return Err(invalid(
                "keys are non-empty and relative, without a leading or trailing '/'".to_string(),
            ));
        }
        Ok(path)
    }

    /// For a `file://` store: refuses `key` (a key, or a directory of keys) when a symbolic link
    /// on its way from the root, or the file itself, leads out of the root or nowhere.
    async fn check_inside(&self, key: &str) -> Result<()> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        let (key, description) = (key.to_string(), self.description.clone());
        blocking(move || inside_root(&root, &key, &description)).await
    }

    /// The file of `key` in a `file://` store (None for other stores).
    fn local_file(&self, key: &str) -> Option<PathBuf> {
        self.local_root.as_ref().map(|root| root.join(key))
    }

    /// Stores `bytes` at `key` with `metadata`, as `condition` allows. `Create`: an existing
    /// identical object is a no-op (created false) and different bytes are a `conflict`; the
    /// stored object is never replaced. `Match(etag)`: only the object with that ETag is
    /// replaced; any other, or none, is a `conflict`. The metadata goes with the request
    /// (`x-amz-meta-*` on S3); a `file://` store writes it to a sidecar first.
    pub async fn put(
        &self,
        key: String,
        bytes: bytes::Bytes,
        condition: PutCondition,
        metadata: Metadata,
    ) -> Result<Stored> {
        let path = self.path(&key)?;
        self.check_inside(&key).await?;
        let mut attributes = Attributes::new();
        let mut sidecar = None;
        if !metadata.is_empty() {
            match self.local_file(&key) {
                Some(file) => {
                    let written = sidecar_path(&file, &bytes);
                    let text = serde_json::json!({ "key": key, "metadata": metadata }).to_string();
                    let target = written.clone();
                    blocking(move || {
                        write_durably(&target, text.as_bytes()).map_err(|err| {
                            Error::io(&format!("writing the metadata {}", target.display()), err)
                        })
                    })
                    .await?;
                    sidecar = Some((file, written));
                }
                None => {
                    for (name, value) in metadata {
                        attributes.insert(Attribute::Metadata(name.into()), value.into());
                    }
                }
            }
        }
        let result = self
            .put_with(&key, &path, bytes, condition, attributes)
            .await;
        if let Some((file, written)) = sidecar {
            // stored: other sidecars describe bytes no longer there; refused or failed: this
            // sidecar describes bytes that were not stored
            let stored = result.is_ok();
            blocking(move || {
                if stored {
                    remove_sidecars(&file, Some(&written));
                } else {
                    let _ = std::fs::remove_file(&written);
                }
                Ok(())
            })
            .await?;
        }
        result
    }

    async fn put_with(
        &self,
        key: &str,
        path: &Path,
        bytes: bytes::Bytes,
        condition: PutCondition,
        attributes: Attributes,
    ) -> Result<Stored> {
        let key = key.to_string();
        let mode = match &condition {
            PutCondition::None => PutMode::Overwrite,
            PutCondition::Create => PutMode::Create,
            PutCondition::Match(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.clone()),
                version: None,
            }),
        };
        let options = PutOptions {
            mode,
            attributes,
            ..PutOptions::default()
        };
        let err = match self
            .store
            .put_opts(path, PutPayload::from_bytes(bytes.clone()), options)
            .await
        {
            Ok(result) => {
                return Ok(Stored {
                    created: true,
                    etag: result.e_tag,
                })
            }
            Err(err) => err,
        };
        match (condition, err) {
            (
                PutCondition::Create,
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => match self.get_with_etag(key.clone()).await? {
                Some((existing, etag)) if existing == bytes => Ok(Stored {
                    created: false,
                    etag,
                }),
                Some(_) => Err(Error::new(
                    ErrorCode::Conflict,
                    format!(
                        "{}{key} already holds different bytes (another writer created it); \
                         not overwritten",
                        self.description
                    ),
                )),
                // Created and deleted again between our two requests: nothing to compare.
                None => Err(storage_error(
                    &format!(
                        "put {}{key}: object existed but vanished before it could be compared",
                        self.description
                    ),
                    true,
                    None,
                )),
            },
            (
                PutCondition::Match(etag),
                found @ (object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. }),
            ) => {
                let what = if matches!(found, object_store::Error::NotFound { .. }) {
                    "there is no object"
                } else {
                    "the object has another ETag"
                };
                Err(Error::new(
                    ErrorCode::Conflict,
                    format!(
                        "put {}{key} with If-Match {etag} refused: {what} (another writer \
                         changed it); not overwritten",
                        self.description
                    ),
                ))
            }
            (PutCondition::Match(_), object_store::Error::NotImplemented) => Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "put {}{key}: this store cannot replace an object conditionally (If-Match)",
                    self.description
                ),
            )),
            (_, err) => Err(map_error("put", &self.description, &key, err)),
        }
    }

    /// The object at `key` (checked against `max_object_bytes`), or None when there is none.
    async fn open_object(&self, key: &str) -> Result<Option<GetResult>> {
        let path = self.path(key)?;
        self.check_inside(key).await?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(map_error("get", &self.description, key, err)),
        };
        if result.meta.size > self.max_object_bytes {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!(
                    "{}{key} is {} bytes, more than the {} bytes allowed (max_object_bytes)",
                    self.description, result.meta.size, self.max_object_bytes
                ),
            ));
        }
        Ok(Some(result))
    }

    /// The object's size, ETag and metadata, or None when there is no object. A `file://`
    /// store reads the object to find the sidecar of its bytes.
    pub async fn head(&self, key: String) -> Result<Option<Head>> {
        let path = self.path(&key)?;
        self.check_inside(&key).await?;
        if let Some(file) = self.local_file(&key) {
            let Some((bytes, etag)) = self.get_with_etag(key.clone()).await? else {
                return Ok(None);
            };
            let size = bytes.len() as u64;
            let metadata = blocking(move || Ok(read_sidecar(&file, &key, &bytes))).await?;
            return Ok(Some(Head {
                size,
                etag,
                metadata,
            }));
        }
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.store.get_opts(&path, options).await {
            Ok(result) => {
                let metadata = result
                    .attributes
                    .iter()
                    .filter_map(|(attribute, value)| match attribute {
                        Attribute::Metadata(name) => {
                            Some((name.to_ascii_lowercase(), value.to_string()))
                        }
                        _ => None,
                    })
                    .collect();
                Ok(Some(Head {
                    size: result.meta.size,
                    etag: result.meta.e_tag,
                    metadata,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(map_error("head", &self.description, &key, err)),
        }
    }

    /// The object's bytes and its ETag (None when the store gives none), or None when there is
    /// no object.
    pub async fn get_with_etag(
        &self,
        key: String,
    ) -> Result<Option<(bytes::Bytes, Option<String>)>> {
        let Some(result) = self.open_object(&key).await? else {
            return Ok(None);
        };
        let etag = result.meta.e_tag.clone();
        match result.bytes().await {
            Ok(bytes) => Ok(Some((bytes, etag))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(map_error("get", &self.description, &key, err)),
        }
    }

    /// The object's bytes, or None when there is none. Bytes that fit in `into` are read into
    /// it; others come in a buffer of their own.
    pub async fn get_into<B: AsRef<[u8]> + AsMut<[u8]> + Send + 'static>(
        &self,
        key: String,
        into: Option<B>,
    ) -> Result<Option<Fetched>> {
        let Some(result) = self.open_object(&key).await? else {
            return Ok(None);
        };
        let length = result.range.end - result.range.start;
        let read = match into {
            Some(into) if length <= into.as_ref().len() as u64 => {
                let read = self.read_into(&key, result, into, length as usize).await?;
                Fetched::Into(read)
            }
            _ => match result.bytes().await {
                Ok(bytes) => Fetched::Owned(bytes),
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(err) => return Err(map_error("get", &self.description, &key, err)),
            },
        };
        Ok(Some(read))
    }

    /// Reads the `length` bytes of an object into the start of `into` (which holds them), as they
    /// arrive: no copy of the whole object on the way.
    async fn read_into<B: AsRef<[u8]> + AsMut<[u8]> + Send + 'static>(
        &self,
        key: &str,
        result: GetResult,
        mut into: B,
        length: usize,
    ) -> Result<usize> {
        let failed = |err| map_error("get", &self.description, key, err);
        match result.payload {
            GetResultPayload::File(mut file, _) => {
                let start = result.range.start;
                let read = tokio::task::spawn_blocking(move || {
                    file.seek(SeekFrom::Start(start))?;
                    let target = &mut into.as_mut()[..length];
                    let mut at = 0;
                    while at < length {
                        match file.read(&mut target[at..])? {
                            0 => break,
                            n => at += n,
                        }
                    }
                    Ok::<usize, std::io::Error>(at)
                })
                .await;
                match read {
                    Ok(Ok(read)) => self.check_length(key, read, length),
                    Ok(Err(err)) => Err(Error::io(
                        &format!("get {}{key} failed: reading the file", self.description),
                        err,
                    )),
                    Err(err) => Err(Error::new(
                        ErrorCode::Internal,
                        format!(
                            "get {}{key}: the file read stopped: {err}",
                            self.description
                        ),
                    )),
                }
            }
            GetResultPayload::Stream(mut stream) => {
                let mut at = 0;
                while let Some(chunk) = stream.try_next().await.map_err(failed)? {
                    if chunk.len() > length - at {
                        return self.check_length(key, at + chunk.len(), length);
                    }
                    into.as_mut()[at..at + chunk.len()].copy_from_slice(&chunk);
                    at += chunk.len();
                }
                self.check_length(key, at, length)
            }
        }
    }

    /// A body that ended before, or ran past, the length announced: a broken transfer.
    fn check_length(&self, key: &str, read: usize, length: usize) -> Result<usize> {
        if read == length {
            return Ok(read);
        }
        let carried = if read < length {
            format!("{read} of the {length} bytes announced")
        } else {
            format!("more than the {length} bytes announced")
        };
        Err(storage_error(
            &format!(
                "get {}{key} failed: the body carried {carried}",
                self.description
            ),
            true,
            None,
        ))
    }

    /// Keys starting with `prefix` and greater than `start_after`, ascending, every page.
    pub async fn list(&self, prefix: String, start_after: Option<String>) -> Result<Vec<String>> {
        // object_store lists whole path segments; list the directory holding the prefix and
        // keep the keys that really start with it.
        let directory = match prefix.rfind('/') {
            Some(end) if end > 0 => Some(self.path(&prefix[..end])?),
            _ => None,
        };
        if let Some(directory) = &directory {
            self.check_inside(directory.as_ref()).await?;
        }
        let offset = start_after.as_deref().and_then(|key| Path::parse(key).ok());
        let stream = match &offset {
            Some(offset) => self.store.list_with_offset(directory.as_ref(), offset),
            None => self.store.list(directory.as_ref()),
        };
        let metas: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|err| map_error("list", &self.description, &prefix, err))?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|meta| meta.location.to_string())
            .filter(|key| key.starts_with(&prefix))
            .filter(|key| start_after.as_ref().is_none_or(|after| key > after))
            .collect();
        if let Some(root) = self.local_root.clone() {
            // metadata sidecars are no objects
            keys.retain(|key| {
                !key.rsplit('/')
                    .next()
                    .unwrap_or(key)
                    .starts_with(META_PREFIX)
            });
            // object_store's listing follows symbolic links: leave out what lies outside the root
            let description = self.description.clone();
            keys = blocking(move || {
                Ok(keys
                    .into_iter()
                    .filter(|key| inside_root(&root, key, &description).is_ok())
                    .collect())
            })
            .await?;
        }
        keys.sort_unstable();
        Ok(keys)
    }

    /// Reads the file at `path` and hashes it (SHA-256), for `put`s of its bytes (refused when
    /// it is larger than `max_object_bytes`).
    pub async fn stage_file(&self, path: String) -> Result<StagedFile> {
        let limit = self.max_object_bytes;
        blocking(move || {
            let bytes = read_file(&path, limit)?;
            let sha256 = crate::format::hex(&crate::format::sha256(&bytes));
            Ok(StagedFile { bytes, sha256 })
        })
        .await
    }

    /// `encrypt_file` on a blocking thread, bounded by the store's `max_object_bytes`.
    pub async fn stage_encrypted_file(
        &self,
        path: String,
        recipients: Vec<String>,
        passphrase: Option<String>,
    ) -> Result<EncryptedFile> {
        let limit = self.max_object_bytes;
        blocking(move || {
            let to = crate::crypto::Recipients {
                recipients: &recipients,
                passphrase: passphrase.as_deref(),
            };
            encrypt_file(&path, limit, &to)
        })
        .await
    }

    /// Deletes `key`; a missing key is not an error.
    pub async fn delete(&self, key: String) -> Result<()> {
        let path = self.path(&key)?;
        self.check_inside(&key).await?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(map_error("delete", &self.description, &key, err)),
        }
        if let Some(file) = self.local_file(&key) {
            blocking(move || {
                remove_sidecars(&file, None);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// Walks `key` from `root` (resolved): a symbolic link is followed only to a place inside `root`.
/// What does not exist yet is created later as plain directories and files, inside.
fn inside_root(root: &std::path::Path, key: &str, description: &str) -> Result<()> {
    let mut at = root.to_path_buf();
    let mut walked = root.to_path_buf();
    for segment in key.split('/').filter(|segment| !segment.is_empty()) {
        at.push(segment);
        walked.push(segment);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            Ok(_) => continue,
            Err(_) => return Ok(()),
        }
        match std::fs::canonicalize(&at) {
            Ok(target) if target.starts_with(root) => at = target,
            target => {
                let leads = match target {
                    Ok(_) => format!("out of {}", root.display()),
                    Err(_) => "nowhere".to_string(),
                };
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "{description}{key}: {} is a symbolic link leading {leads}; not followed",
                        walked.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::new(ErrorCode::Internal, format!("blocking task failed: {err}")))?
}

/// Reads the file at `path` (at most `limit` bytes), hashes it and encrypts those very bytes to
/// `to`, hashing the ciphertext as it is written: one pass off the JavaScript thread, so that an
/// uploader can check the plaintext it encrypted by its SHA-256.
pub fn encrypt_file(
    path: &str,
    limit: u64,
    to: &crate::crypto::Recipients,
) -> Result<EncryptedFile> {
    let plaintext = read_file(path, limit)?;
    let plaintext_sha256 = crate::format::hex(&crate::format::sha256(&plaintext));
    let (ciphertext, digest) = crate::crypto::encrypt_hashed(&plaintext, to)
        .map_err(|err| err.context(format!("encrypting {path} for upload")))?;
    Ok(EncryptedFile {
        bytes: bytes::Bytes::from(ciphertext),
        sha256: crate::format::hex(&digest),
        plaintext_size: plaintext.len() as u64,
        plaintext_sha256,
    })
}

/// The whole file, refused when it is larger than `limit` bytes (checked before anything is
/// allocated, and again while reading in case the file grows).
fn read_file(path: &str, limit: u64) -> Result<bytes::Bytes> {
    let context = || format!("reading {path} for upload");
    let file = std::fs::File::open(path).map_err(|err| Error::io(&context(), err))?;
    let too_large = |size: u64| {
        Error::new(
            ErrorCode::TooLarge,
            format!(
                "{}: the file is {size} bytes, more than the {limit} bytes allowed \
                 (max_object_bytes)",
                context()
            ),
        )
    };
    let size = file
        .metadata()
        .map_err(|err| Error::io(&context(), err))?
        .len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| Error::io(&context(), err))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes.into())
}

/// Reads the whole file at `path` into the start of `into` and hashes it (SHA-256). A file larger
/// than `into` is not read: its size says how large a buffer it needs. Blocking.
pub fn read_into(path: &str, into: &mut [u8]) -> Result<FileForUpload> {
    let context = || format!("reading {path} for upload");
    let mut file = std::fs::File::open(path).map_err(|err| Error::io(&context(), err))?;
    let size = file
        .metadata()
        .map_err(|err| Error::io(&context(), err))?
        .len();
    if size > into.len() as u64 {
        return Ok(FileForUpload { size, sha256: None });
    }
    let wanted = &mut into[..size as usize];
    let mut filled = 0;
    while filled < wanted.len() {
        match file.read(&mut wanted[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(Error::io(&context(), err)),
        }
    }
    let digest = crate::format::sha256(&wanted[..filled]);
    Ok(FileForUpload {
        size: filled as u64,
        sha256: Some(crate::format::hex(&digest)),
    })
}

fn storage_error(what: &str, retryable: bool, status: Option<u16>) -> Error {
    let suffix = match (retryable, status) {
        (true, Some(status)) => format!("retryable; HTTP {status}"),
        (true, None) => "retryable".to_string(),
        (false, Some(status)) => format!("not retryable; HTTP {status}"),
        (false, None) => "not retryable".to_string(),
    };
    Error::storage(format!("{what} ({suffix})"), retryable, status)
}

fn map_error(op: &str, description: &str, key: &str, err: object_store::Error) -> Error {
    let what = format!("{op} {description}{key} failed: {}", full_message(&err));
    match &err {
        object_store::Error::InvalidPath { .. } => Error::new(ErrorCode::InvalidArgument, what),
        object_store::Error::PermissionDenied { .. } => storage_error(&what, false, Some(403)),
        object_store::Error::Unauthenticated { .. } => storage_error(&what, false, Some(401)),
        object_store::Error::NotFound { .. } => storage_error(&what, false, Some(404)),
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. } => {
            let (retryable, status) = classify(&err);
            storage_error(&what, retryable, status)
        }
        _ => storage_error(&what, false, None),
    }
}

/// Transport failures (connect, reset, timeout, a connection closed mid-answer) and 5xx / 429 /
/// throttling responses are worth retrying; other responses are not. object_store keeps the
/// status and its `HttpError` only in the text of its (private) retry error, so the text is read.
fn classify(err: &(dyn StdError + 'static)) -> (bool, Option<u16>) {
    let text = full_message(err);
    let status = status_in(&text);
    let throttled = ["SlowDown", "Throttl", "TooManyRequests"]
        .iter()
        .any(|marker| text.contains(marker));
    let mut transport = text.contains("HTTP error: ");
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        transport |= e.downcast_ref::<std::io::Error>().is_some();
        current = e.source();
    }
    let retryable = match status {
        Some(code) => code >= 500 || code == 429 || code == 408 || throttled,
        None => transport || throttled,
    };
    (retryable, status)
}

/// The status code in object_store's "Server returned non-2xx status code: 503 ..." text.
fn status_in(text: &str) -> Option<u16> {
    let rest = &text[text.find("status code: ")? + "status code: ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|code| (100..600).contains(code))
}

fn full_message(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_read_from_object_store_messages() {
        assert_eq!(
            status_in("Server returned non-2xx status code: 503 Service Unavailable: "),
            Some(503)
        );
        assert_eq!(
            status_in("Error performing PUT http://x in 1s - no status here"),
            None
        );
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn memory_store_conditional_put_detects_conflicts() {
        block_on(async {
            let store = open("memory://", HashMap::new()).await.unwrap();
            let one = bytes::Bytes::from_static(b"one");
            let created = store.put(
                "a/k".into(),
                one.clone(),
                PutCondition::Create,
                Metadata::new(),
            );
            let first = created.await.unwrap();
            assert!(first.created);
            let again = store.put("a/k".into(), one, PutCondition::Create, Metadata::new());
            assert_eq!(
                again.await.unwrap(),
                Stored {
                    created: false,
                    ..first
                }
            );
            let two = bytes::Bytes::from_static(b"two");
            let err = store
                .put("a/k".into(), two, PutCondition::Create, Metadata::new())
                .await
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::Conflict);
            let (stored, _) = store.get_with_etag("a/k".into()).await.unwrap().unwrap();
            assert_eq!(stored.as_ref(), b"one");
        });
    }

    #[test]
    fn if_match_replaces_only_the_version_read() {
        block_on(async {
            let store = open("memory://", HashMap::new()).await.unwrap();
            let put = |bytes: &'static [u8], condition| {
                store.put(
                    "k".into(),
                    bytes::Bytes::from_static(bytes),
                    condition,
                    Metadata::new(),
                )
            };
            let missing = put(b"x", PutCondition::Match("\"1\"".into())).await;
            assert_eq!(missing.unwrap_err().code, ErrorCode::Conflict);
            let first = put(b"one", PutCondition::Create).await.unwrap();
            let (_, read) = store.get_with_etag("k".into()).await.unwrap().unwrap();
            assert_eq!(read, first.etag);
            let second = put(b"two", PutCondition::Match(read.unwrap()))
                .await
                .unwrap();
            assert_ne!(second.etag, first.etag);
            let stale = put(b"three", PutCondition::Match(first.etag.unwrap())).await;
            assert_eq!(stale.unwrap_err().code, ErrorCode::Conflict);
            let (bytes, _) = store.get_with_etag("k".into()).await.unwrap().unwrap();
            assert_eq!(bytes.as_ref(), b"two");
        });
    }

    #[test]
    fn metadata_is_stored_with_the_object_and_read_by_head() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = Url::from_directory_path(dir.path()).unwrap();
            for store in [
                open("memory://", HashMap::new()).await.unwrap(),
                open(url.as_str(), HashMap::new()).await.unwrap(),
            ] {
                let metadata: Metadata = [("graphstream-x".to_string(), "1".to_string())].into();
                let one = bytes::Bytes::from_static(b"one");
                let put = store.put("d/k".into(), one, PutCondition::Create, metadata.clone());
                assert!(put.await.unwrap().created);
                let head = store.head("d/k".into()).await.unwrap().unwrap();
                assert_eq!((head.size, &head.metadata), (3, &metadata));
                // a refused put leaves the object's metadata as it was
                let other: Metadata = [("graphstream-x".to_string(), "2".to_string())].into();
                let two = bytes::Bytes::from_static(b"two");
                let refused = store.put("d/k".into(), two, PutCondition::Create, other);
                assert_eq!(refused.await.unwrap_err().code, ErrorCode::Conflict);
                let head = store.head("d/k".into()).await.unwrap().unwrap();
                assert_eq!(head.metadata, metadata);
                assert_eq!(store.list("d/".into(), None).await.unwrap(), ["d/k"]);
                let plain = bytes::Bytes::from_static(b"plain");
                let put = store.put("d/p".into(), plain, PutCondition::Create, Metadata::new());
                put.await.unwrap();
                let head = store.head("d/p".into()).await.unwrap().unwrap();
                assert!(head.metadata.is_empty());
                store.delete("d/k".into()).await.unwrap();
                assert_eq!(store.head("d/k".into()).await.unwrap(), None);
            }
            let left: Vec<_> = std::fs::read_dir(dir.path().join("d")).unwrap().collect();
            assert_eq!(left.len(), 1, "only d/p is left, no sidecar");
        });
    }

    #[test]
    fn read_into_fills_the_buffer_or_says_how_large_one_must_be() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, b"abc").unwrap();
        let path = path.to_str().unwrap();
        let mut buffer = [0u8; 4];
        let read = read_into(path, &mut buffer).unwrap();
        assert_eq!(read.size, 3);
        let expected = crate::format::hex(&crate::format::sha256(b"abc"));
        assert_eq!(read.sha256.as_deref(), Some(expected.as_str()));
        assert_eq!(&buffer[..3], b"abc");
        let small = read_into(path, &mut [0u8; 2]).unwrap();
        assert_eq!((small.size, small.sha256), (3, None));
        let missing = dir.path().join("missing");
        let err = read_into(missing.to_str().unwrap(), &mut buffer).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
    }

    #[test]
    fn read_file_reads_whole_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, b"abc").unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(read_file(path, 3).unwrap().as_ref(), b"abc");
        assert_eq!(read_file(path, 2).unwrap_err().code, ErrorCode::TooLarge);
        let missing = dir.path().join("missing");
        let err = read_file(missing.to_str().unwrap(), 3).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        assert!(err.message.contains("missing"));
    }

    #[test]
    fn keys_name_one_object_and_never_leave_a_file_root() {
        block_on(async {
            let memory = open("memory://", HashMap::new()).await.unwrap();
            for key in ["/x", "x/", "a//b", "a/../b", ".", ""] {
                let err = memory.get_with_etag(key.into()).await.unwrap_err();
                assert_eq!(err.code, ErrorCode::InvalidArgument, "{key:?}");
            }
            let dir = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            std::fs::write(outside.path().join("secret"), b"outside").unwrap();
            std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
            let url = Url::from_directory_path(dir.path()).unwrap();
            let local = open(url.as_str(), HashMap::new()).await.unwrap();
            assert!(local.description.ends_with('/'));
            let bytes = bytes::Bytes::from_static(b"x");
            let err = local
                .put(
                    "link/new".into(),
                    bytes,
                    PutCondition::None,
                    Metadata::new(),
                )
                .await;
            assert_eq!(err.unwrap_err().code, ErrorCode::InvalidArgument);
            let err = local.get_with_etag("link/secret".into()).await.unwrap_err();
            assert!(err.message.contains("symbolic link"), "{}", err.message);
            assert!(local.list(String::new(), None).await.unwrap().is_empty());
            assert!(!outside.path().join("new").exists());
        });
    }

    #[test]
    fn unknown_options_and_schemes_are_invalid_arguments() {
        block_on(async {
            let mut options = HashMap::new();
            options.insert("no_such_option".to_string(), "1".to_string());
            let err = open("s3://bucket/p", options).await.err().unwrap();
            assert_eq!(err.code, ErrorCode::InvalidArgument);
            let err = open("ftp://host/x", HashMap::new()).await.err().unwrap();
            assert_eq!(err.code, ErrorCode::InvalidArgument);
        });
    }
}
