//! The napi binding: every `#[napi]` item of the addon, and every conversion between
//! JavaScript values and the core's Rust types. One file per module of the core (format,
//! segment, writer, store, crypto); the core itself never sees a JavaScript value. Every error (and
//! panic) reaches JavaScript as an Error carrying its code and details as properties
//! (errors.rs).

// napi-derive registers the items only outside `cfg(test)`, so test builds see them as unused.
#![cfg_attr(test, allow(dead_code))]

mod crypto;
mod errors;
mod format;
mod segment;
mod store;
mod writer;

use crate::error::{Error, ErrorCode};

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
