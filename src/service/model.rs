//! The service's durable records, as stored (JSON) in the pool's app data.

use serde::{Deserialize, Serialize};

/// Snapshots a server may hold at once.
pub const SNAPSHOT_LIMIT: usize = 5;

/// The account whose tokens may use the admin endpoints.
pub const ADMIN_ACCOUNT: &str = "admin";

/// Largest server id: ids must survive JSON clients that use doubles.
pub const MAX_SERVER_ID: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRec {
    pub name: String,
    pub created_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRec {
    /// `tok_` and the first 8 hex digits of the hash: safe to print and log.
    pub id: String,
    pub account: String,
    /// SHA-256 of the token, hex. The token itself is never stored.
    pub hash: String,
    pub created_unix: u64,
    pub revoked: bool,
}

/// A server's power state as the service tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerStatus {
    Running,
    Stopped,
    /// Only ever in memory: a restore in progress. Stored as `stopped`.
    Restoring,
}

impl ServerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Running => "running",
            ServerStatus::Stopped => "stopped",
            ServerStatus::Restoring => "restoring",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRec {
    pub id: u64,
    pub name: String,
    pub account: String,
    /// The engine volume holding the server's disk.
    pub volume: String,
    pub status: ServerStatus,
    pub disk_size_bytes: u64,
    pub created_unix: u64,
}

/// The first answer to a request that carried an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRec {
    /// SHA-256 (hex) of the method, path and canonical body it answered.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub created_unix: u64,
}

/// A server whose disk is being filled from a raw image: committed with the
/// empty volume, removed with the commit that records the server. One left
/// at startup marks an interrupted creation, whose volume is then deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatingRec {
    pub id: u64,
    pub volume: String,
    pub account: String,
    pub image: String,
    pub started_unix: u64,
}

/// The engine volume name for a server id.
pub fn volume_name(server_id: u64) -> String {
    format!("srv-{server_id}")
}

/// How long an idempotency key's first answer is kept and replayed, unless
/// [`super::Settings`] says otherwise.
pub const IDEM_TTL_SECS: u64 = 24 * 3600;

/// Longest snapshot description, as the engine enforces it.
pub const MAX_DESCRIPTION: usize = 4096;
