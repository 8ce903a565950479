//! The one error type of the crate: a stable code and a message saying what and where. The
//! binding (binding/mod.rs) turns it into a JavaScript Error; ts/errors.ts into a
//! GraphstreamError.

use std::fmt;
use std::io::ErrorKind;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Declares `ErrorCode` from one list: each variant with the name JavaScript sees as the
/// error's `code`, `ErrorCode::ALL` in the list's order, and `as_str`.
macro_rules! error_codes {
    ($($variant:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }
        }
    };
}

// The same set as ts/errors.ts's `ERROR_CODES`, in its order (a test checks both agree).
error_codes! {
    Truncated => "truncated",
    InvalidMagic => "invalid_magic",
    UnsupportedVersion => "unsupported_version",
    ChecksumMismatch => "checksum_mismatch",
    ChainBroken => "chain_broken",
    TornTail => "torn_tail",
    InvalidSegment => "invalid_segment",
    TooLarge => "too_large",
    InvalidArgument => "invalid_argument",
    Io => "io",
    DiskFull => "disk_full",
    Closed => "closed",
    Locked => "locked",
    NotFound => "not_found",
    Conflict => "conflict",
    Fenced => "fenced",
    Gap => "gap",
    Overlap => "overlap",
    Storage => "storage",
    CircuitOpen => "circuit_open",
    Corrupt => "corrupt",
    DecryptionFailed => "decryption_failed",
    NotEncrypted => "not_encrypted",
    Internal => "internal",
}

/// Whether repeating a failed storage request may succeed, and the HTTP status of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryHint {
    pub retryable: bool,
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// set on storage failures
    pub retry: Option<RetryHint>,
    /// where the entry or trailer that failed its check starts in the segment's bytes, when
    /// they hold it as it is (not inside a compressed body)
    pub offset: Option<usize>,
    /// the sequence of the entry that failed its check, when the error is about one entry
    pub sequence: Option<u64>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            retry: None,
            offset: None,
            sequence: None,
        }
    }

    /// The same error, about the entry with this sequence.
    pub fn about_entry(self, sequence: u64) -> Self {
        Error {
            sequence: Some(sequence),
            ..self
        }
    }

    /// The same error, about the part of a segment that starts at `offset`.
    pub fn at_offset(self, offset: usize) -> Self {
        Error {
            offset: Some(offset),
            ..self
        }
    }

    /// A failed storage request.
    pub fn storage(message: impl Into<String>, retryable: bool, status: Option<u16>) -> Self {
        Error {
            retry: Some(RetryHint { retryable, status }),
            ..Error::new(ErrorCode::Storage, message)
        }
    }

    /// An I/O failure, with `context` saying what was being done to which file. A full disk
    /// or quota (ENOSPC, EDQUOT; ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL on Windows) is
    /// `disk_full`.
    pub fn io(context: &str, err: std::io::Error) -> Self {
        let code = match err.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => ErrorCode::DiskFull,
            ErrorKind::NotFound => ErrorCode::NotFound,
            _ => ErrorCode::Io,
        };
        Error::new(code, format!("{context}: {err}"))
    }

    /// The same error with `context` put in front of its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error {
            message: format!("{context}: {}", self.message),
            ..self
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_with_its_own_name() {
        let names: std::collections::HashSet<&str> =
            ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn a_full_disk_or_quota_is_disk_full_on_every_platform() {
        #[cfg(unix)]
        let full = [libc::ENOSPC, libc::EDQUOT];
        // ERROR_HANDLE_DISK_FULL, ERROR_DISK_FULL
        #[cfg(windows)]
        let full = [39, 112];
        for raw in full {
            let err = Error::io("writing x", std::io::Error::from_raw_os_error(raw));
            assert_eq!(err.code, ErrorCode::DiskFull, "{raw}");
        }
        let missing = std::io::Error::from(ErrorKind::NotFound);
        assert_eq!(Error::io("x", missing).code, ErrorCode::NotFound);
    }
}
