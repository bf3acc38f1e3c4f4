//! What an embedder may tune about the service. The defaults are the
//! behaviour docs/SERVICE.md describes.

use super::model::IDEM_TTL_SECS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a keyed request's first answer is replayed, in seconds.
    pub idempotency_ttl_secs: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            idempotency_ttl_secs: IDEM_TTL_SECS,
        }
    }
}
