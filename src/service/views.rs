//! The JSON shapes of service objects, shared by the HTTP API and the CLI's
//! `--json`. Field order is the documented one.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: String,
    pub account: String,
    pub created_at: String,
    pub revoked: bool,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    #[serde(flatten)]
    pub view: TokenView,
    pub token: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerView {
    pub id: u64,
    pub name: String,
    pub status: &'static str,
    pub disk_size_bytes: u64,
    pub snapshot_count: usize,
    pub snapshot_limit: usize,
}

/// A server as admins see it: with its owner and engine volume.
#[derive(Debug, Clone, Serialize)]
pub struct AdminServerView {
    #[serde(flatten)]
    pub server: ServerView,
    pub account: String,
    pub volume: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerRef {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotView {
    pub id: u64,
    pub server: ServerRef,
    pub name: String,
    pub status: &'static str,
    /// MiB the snapshot references, rounded up; null until completed.
    pub size_mb: Option<u64>,
    pub created_at: String,
    pub description: String,
}

/// The outcome of a restore: the snapshot used and the server's new state.
#[derive(Debug, Clone)]
pub struct Restored {
    pub snapshot: SnapshotView,
    pub server: ServerView,
}
