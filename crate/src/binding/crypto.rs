//! Encryption at rest (`EncryptionApi` of ts/core/core.ts): age v1 files, off the JS thread.

use napi::bindgen_prelude::{AsyncTask, Buffer, Env, Task};
use napi_derive::napi;

use super::errors::throwing;
use super::from_js_number;
use crate::crypto::{self, Identities, Recipients};
use crate::error::{guard, Error};
use crate::format::{HEADER_SIZE, TRAILER_SIZE};
use crate::segment::DEFAULT_MAX_BODY_BYTES;
use crate::store::{self, EncryptedFile};

#[napi(object)]
pub struct AgeRecipients {
    /// X25519 recipients (`age1...`)
    pub recipients: Option<Vec<String>>,
    /// a passphrase (scrypt), alone
    pub passphrase: Option<String>,
}

#[napi(object)]
pub struct AgeIdentities {
    /// X25519 identities (`AGE-SECRET-KEY-1...`)
    pub identities: Option<Vec<String>>,
    pub passphrase: Option<String>,
    /// ceiling on the decrypted bytes; default the largest sealed segment a reader accepts
    pub max_bytes: Option<i64>,
}

pub struct EncryptTask {
    bytes: Buffer,
    to: AgeRecipients,
}

impl Task for EncryptTask {
    type Output = Result<Vec<u8>, Error>;
    type JsValue = Buffer;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let recipients = self.to.recipients.as_deref().unwrap_or_default();
        Ok(guard(|| {
            crypto::encrypt(
                &self.bytes,
                &Recipients {
                    recipients,
                    passphrase: self.to.passphrase.as_deref(),
                },
            )
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Buffer> {
        throwing(&env, || Ok(output?.into()))
    }
}

#[napi(ts_return_type = "Promise<Buffer>")]
pub fn encrypt_segment_async(bytes: Buffer, to: AgeRecipients) -> AsyncTask<EncryptTask> {
    AsyncTask::new(EncryptTask { bytes, to })
}

/// A file read, hashed and encrypted for its upload (`encryptFileForUploadAsync`).
#[napi(object, js_name = "EncryptedFile")]
pub struct JsEncryptedFile {
    /// the age file
    pub bytes: Buffer,
    /// SHA-256 of `bytes`, lowercase hex
    pub sha256: String,
    /// bytes read from the file
    pub plaintext_size: i64,
    /// SHA-256 of the bytes read from the file, lowercase hex
    pub plaintext_sha256: String,
}

pub struct EncryptFileTask {
    path: String,
    to: AgeRecipients,
}

impl Task for EncryptFileTask {
    type Output = Result<EncryptedFile, Error>;
    type JsValue = JsEncryptedFile;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let recipients = self.to.recipients.as_deref().unwrap_or_default();
        let limit = (DEFAULT_MAX_BODY_BYTES + HEADER_SIZE + TRAILER_SIZE) as u64;
        Ok(guard(|| {
            store::encrypt_file(
                &self.path,
                limit,
                &Recipients {
                    recipients,
                    passphrase: self.to.passphrase.as_deref(),
                },
            )
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<JsEncryptedFile> {
        throwing(&env, || {
            let file = output?;
            Ok(JsEncryptedFile {
                bytes: Vec::from(file.bytes).into(),
                sha256: file.sha256,
                plaintext_size: file.plaintext_size as i64,
                plaintext_sha256: file.plaintext_sha256,
            })
        })
    }
}

/// Reads the file at `path` (at most the largest sealed segment), hashes it and age-encrypts
/// those bytes, hashing the ciphertext as it is written: one task off the JavaScript thread.
#[napi(ts_return_type = "Promise<EncryptedFile>")]
pub fn encrypt_file_for_upload_async(
    path: String,
    to: AgeRecipients,
) -> AsyncTask<EncryptFileTask> {
    AsyncTask::new(EncryptFileTask { path, to })
}

pub struct DecryptTask {
    bytes: Buffer,
    keys: AgeIdentities,
    max_bytes: usize,
}

impl Task for DecryptTask {
    type Output = Result<Vec<u8>, Error>;
    type JsValue = Buffer;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let identities = self.keys.identities.as_deref().unwrap_or_default();
        Ok(guard(|| {
            crypto::decrypt(
                &self.bytes,
                &Identities {
                    identities,
                    passphrase: self.keys.passphrase.as_deref(),
                },
                self.max_bytes,
            )
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Buffer> {
        throwing(&env, || Ok(output?.into()))
    }
}

#[napi(ts_return_type = "Promise<Buffer>")]
pub fn decrypt_segment_async(
    env: &Env,
    bytes: Buffer,
    keys: AgeIdentities,
) -> napi::Result<AsyncTask<DecryptTask>> {
    let max_bytes = throwing(env, || match keys.max_bytes {
        None => Ok(DEFAULT_MAX_BODY_BYTES + HEADER_SIZE + TRAILER_SIZE),
        Some(n) => Ok(from_js_number(n, "maxBytes")? as usize),
    })?;
    Ok(AsyncTask::new(DecryptTask {
        bytes,
        keys,
        max_bytes,
    }))
}
