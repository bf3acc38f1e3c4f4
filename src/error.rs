//! The one public error type: a stable kind, context, and the source.

use std::fmt;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable classification of an [`Error`], for callers that map errors to
/// exit codes or HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The operating system or the storage below us failed.
    Io,
    /// Bytes read from the pool do not form a valid structure.
    Corrupt,
    /// The pool was written by a format version this build does not read.
    UnsupportedVersion,
    /// Another process holds the pool open for writing.
    Locked,
    /// A named or numbered object does not exist.
    NotFound,
    /// An object with that name already exists.
    AlreadyExists,
    /// A caller-supplied argument is malformed or out of range.
    InvalidArgument,
    /// A configured limit (snapshots per volume, refcount width) was reached.
    LimitReached,
    /// A previous sync failed; the pool refuses writes until it is reopened.
    Poisoned,
    /// The pool was opened read-only.
    ReadOnly,
}

/// Where a piece of corrupt metadata was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Which file of the pool.
    pub file: &'static str,
    /// Byte offset inside that file.
    pub offset: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.file, self.offset)
    }
}

/// Every failure the engine reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error during {op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt pool: {what} ({location})")]
    Corrupt { what: String, location: Location },
    #[error(
        "unsupported pool format version {found} in {file} (this build reads version {supported})"
    )]
    UnsupportedVersion {
        file: &'static str,
        found: u32,
        supported: u32,
    },
    #[error("pool {path} is locked by another process: {holder}")]
    Locked { path: String, holder: String },
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error("invalid {what}: {reason}")]
    InvalidArgument { what: &'static str, reason: String },
    #[error("limit reached: {what} (limit {limit})")]
    LimitReached { what: String, limit: u64 },
    /// The caller's per-volume snapshot maximum ([`crate::Pool::create_snapshot_limited`]).
    #[error("volume {volume} already has {limit} snapshots, its limit")]
    SnapshotLimit { volume: String, limit: u64 },
    #[error("pool refuses writes after an earlier I/O failure ({cause}); reopen it")]
    Poisoned { cause: String },
    #[error("pool is open read-only")]
    ReadOnly,
}

impl Error {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::LimitReached { .. } | Error::SnapshotLimit { .. } => ErrorKind::LimitReached,
            Error::Poisoned { .. } => ErrorKind::Poisoned,
            Error::ReadOnly => ErrorKind::ReadOnly,
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, file: &'static str, offset: u64) -> Error {
        Error::Corrupt {
            what: what.into(),
            location: Location { file, offset },
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl fmt::Display) -> Error {
        Error::NotFound {
            kind,
            name: name.to_string(),
        }
    }
}
