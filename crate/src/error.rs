//! The one error type of the crate: a stable code and a message saying what and where. The
//! binding (binding/mod.rs) turns it into a JavaScript Error; ts/errors.ts into a
//! GraphstreamError.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Truncated,
    InvalidMagic,
    UnsupportedVersion,
    ChecksumMismatch,
    ChainBroken,
    TornTail,
    InvalidSegment,
    TooLarge,
    InvalidArgument,
    Io,
    DiskFull,
    Closed,
    Locked,
    NotFound,
    Conflict,
    Storage,
    Corrupt,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Truncated => "truncated",
            ErrorCode::InvalidMagic => "invalid_magic",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::ChecksumMismatch => "checksum_mismatch",
            ErrorCode::ChainBroken => "chain_broken",
            ErrorCode::TornTail => "torn_tail",
            ErrorCode::InvalidSegment => "invalid_segment",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Io => "io",
            ErrorCode::DiskFull => "disk_full",
            ErrorCode::Closed => "closed",
            ErrorCode::Locked => "locked",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Storage => "storage",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// An I/O failure, with `context` saying what was being done to which file.
    pub fn io(context: &str, err: std::io::Error) -> Self {
        let code = match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorCode::DiskFull,
            _ if err.kind() == std::io::ErrorKind::NotFound => ErrorCode::NotFound,
            _ => ErrorCode::Io,
        };
        Error::new(code, format!("{context}: {err}"))
    }

    /// The same error with `context` put in front of its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error::new(self.code, format!("{context}: {}", self.message))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// Runs `f`, turning a panic into an `internal` error so it never unwinds into Node.
pub fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(Error::new(
                ErrorCode::Internal,
                format!("native code panicked: {what}"),
            ))
        }
    }
}
