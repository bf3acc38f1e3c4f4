//! The catalog: volumes, snapshots, id counters and embedder key/value data.
//! It is held in memory; the journal records its changes and each checkpoint
//! writes it whole as the first record of the next journal generation.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRec {
    pub id: u64,
    pub name: String,
    pub size_bytes: u64,
    pub levels: u8,
    /// Root node page, 0 when nothing was ever written.
    pub root: u64,
    pub allocated_blocks: u64,
    pub created_unix: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotStatus {
    Completed,
}

impl SnapshotStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            SnapshotStatus::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRec {
    pub id: u64,
    pub volume_id: u64,
    pub name: String,
    pub description: String,
    pub created_unix: u64,
    pub status: SnapshotStatus,
    pub size_bytes: u64,
    pub levels: u8,
    pub root: u64,
    /// Allocated blocks at the point in time (O(1) `size_bytes`).
    pub size_blocks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub next_volume_id: u64,
    pub next_snapshot_id: u64,
    /// Data blocks `1..data_hw` exist in the data file.
    pub data_hw: u64,
    /// Node pages `1..node_hw` exist in the nodes file.
    pub node_hw: u64,
    /// Data blocks with a nonzero refcount.
    pub data_used: u64,
    /// Node pages with a nonzero refcount.
    pub nodes_used: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub counters: Counters,
    pub volumes: BTreeMap<u64, VolumeRec>,
    pub snapshots: BTreeMap<u64, SnapshotRec>,
    /// Opaque state of an embedding service (accounts, tokens...), kept as
    /// durable as the engine's own metadata.
    pub app_data: BTreeMap<String, Vec<u8>>,
}

/// One journaled change to the catalog. Each carries absolute values, so
/// replaying it twice is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogOp {
    PutVolume(VolumeRec),
    DeleteVolume(u64),
    PutSnapshot(SnapshotRec),
    DeleteSnapshot(u64),
    SetCounters(Counters),
    PutAppData(String, Vec<u8>),
    DeleteAppData(String),
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog {
            counters: Counters {
                next_volume_id: 1,
                next_snapshot_id: 1,
                data_hw: 1,
                node_hw: 1,
                data_used: 0,
                nodes_used: 0,
            },
            ..Catalog::default()
        }
    }

    pub fn apply(&mut self, op: CatalogOp) {
        match op {
            CatalogOp::PutVolume(v) => {
                self.volumes.insert(v.id, v);
            }
            CatalogOp::DeleteVolume(id) => {
                self.volumes.remove(&id);
            }
            CatalogOp::PutSnapshot(s) => {
                self.snapshots.insert(s.id, s);
            }
            CatalogOp::DeleteSnapshot(id) => {
                self.snapshots.remove(&id);
            }
            CatalogOp::SetCounters(c) => self.counters = c,
            CatalogOp::PutAppData(k, v) => {
                self.app_data.insert(k, v);
            }
            CatalogOp::DeleteAppData(k) => {
                self.app_data.remove(&k);
            }
        }
    }

    pub fn volume_by_name(&self, name: &str) -> Option<&VolumeRec> {
        self.volumes.values().find(|v| v.name == name)
    }
}

/// Validate a volume or snapshot name: 1 to 64 of ASCII letters, digits, `-` and `_`.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(what, "must not be empty"));
    }
    if name.len() > 64 {
        return Err(Error::invalid(
            what,
            format!("{} characters is longer than 64", name.chars().count()),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(Error::invalid(
            what,
            format!("character {bad:?} is not allowed (use ASCII letters, digits, '-' and '_')"),
        ));
    }
    Ok(())
}

/// Most data blocks or node pages a pool may have (2^48: 16 EiB of 64 KiB blocks).
pub const MAX_UNITS: u64 = 1 << 48;

/// Most data blocks a pool of `block_size` may have: also keeps every block's
/// byte offset (block × block size) below 2^62, inside a file offset.
pub fn max_data_blocks(block_size: u32) -> u64 {
    MAX_UNITS.min((1u64 << 62) / u64::from(block_size.max(1)))
}
/// Largest volume or snapshot id.
pub const MAX_ID: u64 = 1 << 62;

/// Most bytes the encoded catalog may take. Each checkpoint writes it whole
/// as one journal record, which may not exceed the format's 1 GiB payload
/// bound; refusing growth well below that keeps every checkpoint writable.
pub const MAX_CATALOG_BYTES: u64 = 256 << 20;
/// Longest app-data key.
pub const MAX_APP_KEY: usize = 1024;
/// Largest app-data value.
pub const MAX_APP_VALUE: usize = 16 << 20;
/// Most app-data bytes (keys and values) one change may carry.
pub const MAX_APP_CHANGE: u64 = 64 << 20;

/// Longest description we store, so one record cannot bloat the catalog.
pub const MAX_DESCRIPTION: usize = 4096;

pub fn validate_description(desc: &str) -> Result<()> {
    if desc.len() > MAX_DESCRIPTION {
        return Err(Error::invalid(
            "description",
            format!("{} bytes is longer than {MAX_DESCRIPTION}", desc.len()),
        ));
    }
    Ok(())
}

impl Catalog {
    /// Reject a decoded catalog whose values would break the engine's
    /// arithmetic (untrusted bytes from disk).
    pub fn validate(&self, block_size: u32, file: &'static str) -> Result<()> {
        let bad = |what: String| Err(Error::corrupt(what, file, 0));
        let c = &self.counters;
        if c.data_hw == 0 || c.node_hw == 0 || c.next_volume_id == 0 || c.next_snapshot_id == 0 {
            return bad("catalog counters are zero".into());
        }
        // Bounds that keep every product with a block or page size inside
        // a file offset.
        if c.data_hw > max_data_blocks(block_size) || c.node_hw > MAX_UNITS {
            return bad(format!(
                "catalog counts {} data blocks of {block_size} bytes and {} node pages, beyond {} and 2^48",
                c.data_hw,
                c.node_hw,
                max_data_blocks(block_size)
            ));
        }
        if c.data_used >= c.data_hw || c.nodes_used >= c.node_hw {
            return bad(format!(
                "catalog says {} of {} data blocks and {} of {} node pages are in use",
                c.data_used, c.data_hw, c.nodes_used, c.node_hw
            ));
        }
        if c.next_volume_id > MAX_ID || c.next_snapshot_id > MAX_ID {
            return bad("catalog id counters are beyond 2^62".into());
        }
        for (id, v) in &self.volumes {
            if *id != v.id || *id >= c.next_volume_id {
                return bad(format!("volume {id} has an inconsistent id"));
            }
            if v.created_unix > crate::info::MAX_UNIX_TIME {
                return bad(format!("volume {id} was created after the year 9999"));
            }
            check_map(
                v.size_bytes,
                v.levels,
                v.root,
                v.allocated_blocks,
                block_size,
                c,
            )
            .or_else(|e| bad(format!("volume {} ({}): {e}", v.id, v.name)))?;
        }
        for (id, s) in &self.snapshots {
            if *id != s.id || *id >= c.next_snapshot_id {
                return bad(format!("snapshot {id} has an inconsistent id"));
            }
            if s.created_unix > crate::info::MAX_UNIX_TIME {
                return bad(format!("snapshot {id} was created after the year 9999"));
            }
            if !self.volumes.contains_key(&s.volume_id) {
                return bad(format!(
                    "snapshot {id} belongs to missing volume {}",
                    s.volume_id
                ));
            }
            check_map(s.size_bytes, s.levels, s.root, s.size_blocks, block_size, c)
                .or_else(|e| bad(format!("snapshot {id}: {e}")))?;
            // Volumes never change size, so a snapshot has its volume's.
            if let Some(v) = self.volumes.get(&s.volume_id) {
                if v.size_bytes != s.size_bytes {
                    return bad(format!(
                        "snapshot {id} is {} bytes but its volume {} is {}",
                        s.size_bytes, v.id, v.size_bytes
                    ));
                }
            }
        }
        self.validate_names().or_else(bad)
    }

    /// Names are well formed, volume names unique, and snapshot names
    /// unique within each volume.
    fn validate_names(&self) -> std::result::Result<(), String> {
        let mut volumes = std::collections::HashSet::new();
        for v in self.volumes.values() {
            validate_name("volume name", &v.name).map_err(|e| format!("volume {}: {e}", v.id))?;
            if !volumes.insert(v.name.as_str()) {
                return Err(format!("two volumes are named {:?}", v.name));
            }
        }
        let mut snapshots = std::collections::HashSet::new();
        for s in self.snapshots.values() {
            validate_name("snapshot name", &s.name)
                .map_err(|e| format!("snapshot {}: {e}", s.id))?;
            validate_description(&s.description).map_err(|e| format!("snapshot {}: {e}", s.id))?;
            if !snapshots.insert((s.volume_id, s.name.as_str())) {
                return Err(format!(
                    "volume {} has two snapshots named {:?}",
                    s.volume_id, s.name
                ));
            }
        }
        Ok(())
    }
}

fn check_map(
    size: u64,
    levels: u8,
    root: u64,
    allocated: u64,
    block_size: u32,
    c: &Counters,
) -> Result<(), String> {
    if size == 0 || size > crate::meta::MAX_VOLUME_SIZE {
        return Err(format!("size {size} out of range"));
    }
    let blocks = size.div_ceil(block_size as u64);
    if levels != crate::format::node::levels_for(blocks) {
        return Err(format!(
            "tree has {levels} levels, {blocks} blocks need {}",
            crate::format::node::levels_for(blocks)
        ));
    }
    if root >= c.node_hw {
        return Err(format!("root {root} beyond {} node pages", c.node_hw));
    }
    if allocated > blocks {
        return Err(format!("{allocated} allocated blocks of {blocks}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_block_offsets_stay_inside_a_file_offset_for_every_block_size() {
        for shift in 12..=20 {
            let bs = 1u32 << shift;
            let max = max_data_blocks(bs);
            assert!(max.checked_mul(u64::from(bs)).is_some_and(|b| b <= 1 << 62));
            let mut c = Catalog::new();
            c.counters.data_hw = max;
            assert!(
                c.validate(bs, "j").is_ok(),
                "{bs}: the limit itself is valid"
            );
            c.counters.data_hw = max + 1;
            assert!(c.validate(bs, "j").is_err(), "{bs}: one past it is corrupt");
        }
        // 2^48 blocks of 1 MiB would be 2^68 bytes: the old bound let it wrap.
        assert!(max_data_blocks(1 << 20) < MAX_UNITS);
    }

    #[test]
    fn names() {
        validate_name("name", "weekly-snapshot-2025-01-08").unwrap();
        validate_name("name", "a_B-9").unwrap();
        assert!(validate_name("name", "").is_err());
        assert!(validate_name("name", &"x".repeat(65)).is_err());
        validate_name("name", &"x".repeat(64)).unwrap();
        assert!(validate_name("name", "has space").is_err());
        assert!(validate_name("name", "é").is_err());
    }

    #[test]
    fn catalog_round_trips_through_codec() {
        let mut c = Catalog::new();
        c.apply(CatalogOp::PutVolume(VolumeRec {
            id: 1,
            name: "v".into(),
            size_bytes: 10,
            levels: 1,
            root: 0,
            allocated_blocks: 0,
            created_unix: 5,
        }));
        let bytes = crate::codec::encode(&c);
        let back: Catalog = crate::codec::decode(&bytes).unwrap();
        assert_eq!(back, c);
        assert!(crate::codec::decode::<Catalog>(&bytes[..bytes.len() - 1]).is_err());
    }
}
