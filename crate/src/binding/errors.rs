//! How a core error reaches JavaScript: an `Error` whose message is the error's message and
//! whose `code` property is its code, with the retry hint of a storage failure as `retryable`
//! and `status` properties, the `offset` of a bad entry or trailer in a segment and the
//! `sequence` of a bad entry.
//! ts/errors.ts reads those properties; nothing parses the message.

use napi::bindgen_prelude::{Env, JsObjectValue};
use napi::JsValue;
use napi_derive::napi;

use crate::error::{Error, ErrorCode, Result};

const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The JavaScript error for `err`, to throw or to reject a promise with (on the JS thread).
pub(super) fn js_error(env: &Env, err: Error) -> napi::Error {
    create(env, &err).unwrap_or_else(|_| {
        // the environment can no longer create objects (it is going away): nobody will look
        napi::Error::from_reason(err.message)
    })
}

fn create(env: &Env, err: &Error) -> napi::Result<napi::Error> {
    let mut error = env.create_error(napi::Error::from_reason(err.message.as_str()))?;
    error.set_named_property("code", err.code.as_str())?;
    if let Some(offset) = err.offset {
        error.set_named_property("offset", offset as f64)?;
    }
    // a sequence beyond 2^53 would not survive the conversion to a JS number: left out
    if let Some(sequence) = err
        .sequence
        .filter(|sequence| *sequence <= MAX_SAFE_INTEGER)
    {
        error.set_named_property("sequence", sequence as f64)?;
    }
    if let Some(hint) = err.retry {
        error.set_named_property("retryable", hint.retryable)?;
        if let Some(status) = hint.status {
            error.set_named_property("status", u32::from(status))?;
        }
    }
    Ok(napi::Error::from(error.to_unknown()))
}

/// Runs `f`, throwing its error as [`js_error`] makes it.
pub(super) fn throwing<T>(env: &Env, f: impl FnOnce() -> Result<T>) -> napi::Result<T> {
    f().map_err(|err| js_error(env, err))
}

/// Every error code the native core knows (ts/errors.ts's `ERROR_CODES` must be the same set).
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    ErrorCode::ALL.iter().map(|code| code.as_str()).collect()
}
