//! What a service operation can refuse or fail with. The HTTP layer maps each
//! variant to one status and body; the CLI prints the Display form.

use std::collections::BTreeMap;
use std::fmt;

/// Field name → messages, the shape of a DRF validation error.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug)]
pub enum ServiceError {
    /// Invalid input, per field (400).
    Fields(FieldErrors),
    /// Invalid input not tied to one field (400).
    BadRequest { code: &'static str, detail: String },
    /// The server already holds the snapshot limit (400).
    LimitReached { limit: usize },
    /// Another operation is running on the server (400).
    Busy(String),
    /// Missing, or another account's (404: existence never leaks).
    NotFound(String),
    /// The caller is authenticated but not an admin (403).
    Forbidden,
    /// The request clashes with one in flight (409).
    Conflict { code: &'static str, detail: String },
    /// Well-formed but inconsistent with an earlier request (422).
    Unprocessable { code: &'static str, detail: String },
    /// The engine failed (500).
    Engine(crate::Error),
    /// Our own invariant or encoding failed (500).
    Internal(String),
}

impl ServiceError {
    pub fn field(name: &str, message: impl Into<String>) -> ServiceError {
        let mut errors = FieldErrors::new();
        errors.insert(name.to_string(), vec![message.into()]);
        ServiceError::Fields(errors)
    }

    pub fn not_found(what: &str) -> ServiceError {
        ServiceError::NotFound(format!("{what} not found."))
    }
}

impl From<crate::Error> for ServiceError {
    fn from(e: crate::Error) -> ServiceError {
        ServiceError::Engine(e)
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Fields(errors) => {
                let parts: Vec<String> = errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.join(" ")))
                    .collect();
                f.write_str(&parts.join("; "))
            }
            ServiceError::BadRequest { detail, .. }
            | ServiceError::Busy(detail)
            | ServiceError::NotFound(detail)
            | ServiceError::Conflict { detail, .. }
            | ServiceError::Unprocessable { detail, .. }
            | ServiceError::Internal(detail) => f.write_str(detail),
            ServiceError::LimitReached { limit } => {
                write!(f, "the server already has {limit} snapshots (the limit)")
            }
            ServiceError::Forbidden => f.write_str("this needs an admin token"),
            ServiceError::Engine(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// The reason text of an engine validation error, without its prefix.
pub fn reason(e: &crate::Error) -> String {
    match e {
        crate::Error::InvalidArgument { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}
