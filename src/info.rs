//! Plain descriptions of pool objects returned by the public API.

use serde::Serialize;

/// A volume as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeInfo {
    pub id: u64,
    pub name: String,
    pub size_bytes: u64,
    pub allocated_bytes: u64,
}

/// A snapshot as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub id: u64,
    pub volume_id: u64,
    pub volume_name: String,
    pub name: String,
    pub description: String,
    /// Always "completed": creation is constant-time and done when it returns.
    pub status: &'static str,
    /// Data the snapshot references: allocated blocks × block size.
    pub size_bytes: u64,
    /// Exactly what deleting the snapshot would free.
    pub exclusive_bytes: u64,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl SnapshotInfo {
    /// `size_bytes` in MiB, rounded up.
    pub fn size_mb(&self) -> u64 {
        self.size_bytes.div_ceil(1 << 20)
    }
}

/// Pool-wide figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    pub block_size: u32,
    /// Data blocks in use × block size.
    pub used_bytes: u64,
    pub used_blocks: u64,
    /// Blocks inside the data file that are free for reuse.
    pub free_blocks: u64,
    /// Bytes the metadata takes: map nodes, refcount tables and the journal.
    pub metadata_bytes: u64,
    pub volumes: u64,
    pub snapshots: u64,
}

/// What an integrity check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// True when no corruption was found (leaks alone do not make it false).
    pub ok: bool,
    /// Each corruption found, with its location.
    pub errors: Vec<String>,
    /// Data blocks and map nodes whose refcount is higher than the references found.
    pub leaked_blocks: u64,
    /// Leaks reclaimed by `--repair`.
    pub repaired: u64,
}

/// Latest time RFC 3339 can write: 9999-12-31T23:59:59Z.
pub(crate) const MAX_UNIX_TIME: u64 = 253_402_300_799;

pub(crate) fn rfc3339(unix: u64) -> String {
    // The catalog rejects later times; clamp anyway so formatting cannot fail.
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.min(MAX_UNIX_TIME));
    humantime::format_rfc3339_seconds(t).to_string()
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_and_far_future_ones_do_not_panic() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(MAX_UNIX_TIME), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }
}
