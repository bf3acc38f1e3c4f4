//! Catalog-level operations: volume and snapshot create, restore, clone,
//! delete, rename. Each is O(1) in the volume's size except the garbage
//! collection that delete and restore do, which is proportional to what
//! was owned exclusively.

use super::MetaState;
use crate::catalog::{
    validate_description, validate_name, CatalogOp, SnapshotRec, SnapshotStatus, VolumeRec,
};
use crate::error::{Error, Result};
use crate::format::node;

/// Most a volume or snapshot record adds to the catalog: fixed fields, a
/// name and the longest description.
pub(crate) const RECORD_ROOM: u64 = 512 + crate::catalog::MAX_DESCRIPTION as u64;

/// Largest volume: 2^60 bytes keeps every block/byte product inside u64.
pub const MAX_VOLUME_SIZE: u64 = 1 << 60;

impl MetaState {
    pub fn volume_id(&self, name: &str) -> Result<u64> {
        self.catalog
            .volume_by_name(name)
            .map(|v| v.id)
            .ok_or_else(|| Error::not_found("volume", name))
    }

    pub fn volume_rec(&self, id: u64) -> Result<&VolumeRec> {
        self.catalog
            .volumes
            .get(&id)
            .ok_or_else(|| Error::not_found("volume", id))
    }

    pub fn snapshot_rec(&self, id: u64) -> Result<&SnapshotRec> {
        self.catalog
            .snapshots
            .get(&id)
            .ok_or_else(|| Error::not_found("snapshot", id))
    }

    fn next_volume_id(&mut self) -> Result<u64> {
        let id = self.catalog.counters.next_volume_id;
        if id >= crate::catalog::MAX_ID {
            return Err(Error::LimitReached {
                what: "volume ids".into(),
                limit: crate::catalog::MAX_ID,
            });
        }
        self.catalog.counters.next_volume_id += 1;
        Ok(id)
    }

    fn check_volume_name_free(&self, name: &str) -> Result<()> {
        validate_name("volume name", name)?;
        if self.catalog.volume_by_name(name).is_some() {
            return Err(Error::AlreadyExists {
                kind: "volume",
                name: name.into(),
            });
        }
        Ok(())
    }

    pub fn create_volume(&mut self, name: &str, size_bytes: u64, now: u64) -> Result<VolumeRec> {
        self.check_volume_name_free(name)?;
        self.ensure_catalog_room(RECORD_ROOM)?;
        if size_bytes == 0 || size_bytes > MAX_VOLUME_SIZE {
            return Err(Error::invalid(
                "volume size",
                format!("{size_bytes} bytes is outside 1..=2^60"),
            ));
        }
        let blocks = size_bytes.div_ceil(self.block_size as u64);
        let rec = VolumeRec {
            id: self.next_volume_id()?,
            name: name.into(),
            size_bytes,
            levels: node::levels_for(blocks),
            root: 0,
            allocated_blocks: 0,
            created_unix: now,
        };
        self.push_op(CatalogOp::PutVolume(rec.clone()));
        Ok(rec)
    }

    /// Delete a volume and every snapshot taken of it. Clones keep their blocks.
    pub fn delete_volume(&mut self, id: u64) -> Result<()> {
        let vol = self.volume_rec(id)?.clone();
        let snaps: Vec<u64> = self
            .catalog
            .snapshots
            .values()
            .filter(|s| s.volume_id == id)
            .map(|s| s.id)
            .collect();
        for s in snaps {
            self.delete_snapshot(s)?;
        }
        if vol.root != 0 {
            self.node_decref(vol.root, vol.levels - 1)?;
        }
        self.push_op(CatalogOp::DeleteVolume(id));
        Ok(())
    }

    pub fn create_snapshot(
        &mut self,
        volume_id: u64,
        name: &str,
        description: &str,
        limit: Option<usize>,
        now: u64,
    ) -> Result<SnapshotRec> {
        validate_name("snapshot name", name)?;
        validate_description(description)?;
        let vol = self.volume_rec(volume_id)?.clone();
        let mut count = 0usize;
        for s in self
            .catalog
            .snapshots
            .values()
            .filter(|s| s.volume_id == volume_id)
        {
            count += 1;
            if s.name == name {
                return Err(Error::AlreadyExists {
                    kind: "snapshot",
                    name: name.into(),
                });
            }
        }
        if let Some(limit) = limit {
            if count >= limit {
                return Err(Error::SnapshotLimit {
                    volume: vol.name.clone(),
                    limit: limit as u64,
                });
            }
        }
        self.ensure_catalog_room(RECORD_ROOM)?;
        if vol.root != 0 {
            self.node_incref(vol.root)?;
        }
        let id = self.catalog.counters.next_snapshot_id;
        if id >= crate::catalog::MAX_ID {
            return Err(Error::LimitReached {
                what: "snapshot ids".into(),
                limit: crate::catalog::MAX_ID,
            });
        }
        self.catalog.counters.next_snapshot_id += 1;
        let rec = SnapshotRec {
            id,
            volume_id,
            name: name.into(),
            description: description.into(),
            created_unix: now,
            status: SnapshotStatus::Completed,
            size_bytes: vol.size_bytes,
            levels: vol.levels,
            root: vol.root,
            size_blocks: vol.allocated_blocks,
        };
        self.push_op(CatalogOp::PutSnapshot(rec.clone()));
        Ok(rec)
    }

    pub fn update_snapshot(
        &mut self,
        id: u64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<SnapshotRec> {
        let mut rec = self.snapshot_rec(id)?.clone();
        self.ensure_catalog_room(RECORD_ROOM)?;
        if let Some(name) = name {
            validate_name("snapshot name", name)?;
            let clash = self
                .catalog
                .snapshots
                .values()
                .any(|s| s.volume_id == rec.volume_id && s.id != id && s.name == name);
            if clash {
                return Err(Error::AlreadyExists {
                    kind: "snapshot",
                    name: name.into(),
                });
            }
            rec.name = name.into();
        }
        if let Some(d) = description {
            validate_description(d)?;
            rec.description = d.into();
        }
        self.push_op(CatalogOp::PutSnapshot(rec.clone()));
        Ok(rec)
    }

    /// Point the volume's live map at the snapshot's: O(1) plus freeing what
    /// only the old live map owned.
    pub fn restore_snapshot(&mut self, id: u64) -> Result<VolumeRec> {
        let snap = self.snapshot_rec(id)?.clone();
        let mut vol = self.volume_rec(snap.volume_id)?.clone();
        if snap.root != 0 {
            self.node_incref(snap.root)?;
        }
        let old_root = vol.root;
        vol.root = snap.root;
        vol.allocated_blocks = snap.size_blocks;
        self.push_op(CatalogOp::PutVolume(vol.clone()));
        if old_root != 0 {
            self.node_decref(old_root, vol.levels - 1)?;
        }
        Ok(vol)
    }

    pub fn delete_snapshot(&mut self, id: u64) -> Result<()> {
        let snap = self.snapshot_rec(id)?.clone();
        if snap.root != 0 {
            self.node_decref(snap.root, snap.levels - 1)?;
        }
        self.push_op(CatalogOp::DeleteSnapshot(id));
        Ok(())
    }

    pub fn clone_snapshot(&mut self, id: u64, name: &str, now: u64) -> Result<VolumeRec> {
        self.check_volume_name_free(name)?;
        let snap = self.snapshot_rec(id)?.clone();
        self.ensure_catalog_room(RECORD_ROOM)?;
        if snap.root != 0 {
            self.node_incref(snap.root)?;
        }
        let rec = VolumeRec {
            id: self.next_volume_id()?,
            name: name.into(),
            size_bytes: snap.size_bytes,
            levels: snap.levels,
            root: snap.root,
            allocated_blocks: snap.size_blocks,
            created_unix: now,
        };
        self.push_op(CatalogOp::PutVolume(rec.clone()));
        Ok(rec)
    }
}
