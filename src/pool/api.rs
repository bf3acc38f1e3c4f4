//! Public volume and snapshot operations. Each structural change is atomic
//! and durable when it returns: it is applied in memory under the metadata
//! lock, then committed.

use super::Pool;
use crate::catalog::SnapshotRec;
use crate::error::{Error, Result};
use crate::info::{now_unix, rfc3339, PoolStats, SnapshotInfo, VolumeInfo};
use crate::meta::ops::RECORD_ROOM;
use crate::meta::MetaState;
use crate::volume::{SnapshotReader, Volume};

/// A change to the embedder's key/value data ([`Pool::put_app_data`]), for
/// the `_with` operations, which commit it in the same transaction as the
/// operation itself: a service's record of what it did then always agrees
/// with what the engine did, whenever power fails.
///
/// A `record` closure runs under the pool's metadata lock, after the
/// operation changed the metadata in memory: it must only build the change
/// (calling back into the [`Pool`] deadlocks), and its changes may carry at
/// most [`MAX_LINKED_CHANGE`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppDataChange {
    Put(String, Vec<u8>),
    Delete(String),
}

/// Most app-data bytes the `_with` operations may commit with their change;
/// room for them is reserved before the operation starts.
pub const MAX_LINKED_CHANGE: u64 = 1 << 20;

/// Check `changes` against the app-data bounds, before anything is applied.
fn validate_changes(changes: &[AppDataChange], max_total: u64) -> Result<u64> {
    use crate::catalog::{MAX_APP_KEY, MAX_APP_VALUE};
    let mut total = 0u64;
    for change in changes {
        let (key, value_len) = match change {
            AppDataChange::Put(k, v) => (k, v.len()),
            AppDataChange::Delete(k) => (k, 0),
        };
        if key.is_empty() || key.len() > MAX_APP_KEY {
            return Err(Error::invalid(
                "app data key",
                format!("{} bytes is outside 1..={MAX_APP_KEY}", key.len()),
            ));
        }
        if value_len > MAX_APP_VALUE {
            return Err(Error::invalid(
                "app data value",
                format!("{value_len} bytes under {key:?} is more than {MAX_APP_VALUE}"),
            ));
        }
        // Each change's encoding: a tag and two length prefixes besides its bytes.
        total += (key.len() + value_len) as u64 + 32;
    }
    if total > max_total {
        return Err(Error::invalid(
            "app data change",
            format!("{total} bytes in one change is more than {max_total}"),
        ));
    }
    Ok(total)
}

fn push_changes(m: &mut MetaState, changes: Vec<AppDataChange>) {
    for change in changes {
        m.push_op(match change {
            AppDataChange::Put(k, v) => crate::catalog::CatalogOp::PutAppData(k, v),
            AppDataChange::Delete(k) => crate::catalog::CatalogOp::DeleteAppData(k),
        });
    }
}

/// Apply the changes a `_with` operation's `record` gave, after the
/// operation itself changed the metadata. Room for [`MAX_LINKED_CHANGE`]
/// bytes was reserved first; a record beyond it is the embedder's bug and,
/// coming after a half-made change, poisons the pool rather than commit it.
fn apply_linked(
    inner: &super::PoolInner,
    m: &mut MetaState,
    changes: Vec<AppDataChange>,
) -> Result<()> {
    if let Err(e) = validate_changes(&changes, MAX_LINKED_CHANGE) {
        inner.poison(&e);
        return Err(e);
    }
    push_changes(m, changes);
    Ok(())
}

impl Pool {
    fn volume_info_of(m: &MetaState, id: u64) -> Result<VolumeInfo> {
        let v = m.volume_rec(id)?;
        Ok(VolumeInfo {
            id: v.id,
            name: v.name.clone(),
            size_bytes: v.size_bytes,
            allocated_bytes: v.allocated_blocks * m.block_size as u64,
        })
    }

    fn snapshot_info_of(m: &mut MetaState, rec: &SnapshotRec) -> Result<SnapshotInfo> {
        let exclusive = if rec.root == 0 {
            0
        } else {
            m.exclusive_blocks(rec.root, rec.levels - 1)?
        };
        let volume_name = m
            .volume_rec(rec.volume_id)
            .map(|v| v.name.clone())
            .unwrap_or_default();
        Ok(SnapshotInfo {
            id: rec.id,
            volume_id: rec.volume_id,
            volume_name,
            name: rec.name.clone(),
            description: rec.description.clone(),
            status: rec.status.as_str(),
            size_bytes: rec.size_blocks * m.block_size as u64,
            exclusive_bytes: exclusive * m.block_size as u64,
            created_unix: rec.created_unix,
            created_at: rfc3339(rec.created_unix),
        })
    }

    /// Create an empty volume of `size_bytes`.
    pub fn create_volume(&self, name: &str, size_bytes: u64) -> Result<VolumeInfo> {
        self.create_volume_with(name, size_bytes, |_| Vec::new())
    }

    /// [`Pool::create_volume`], committing `record(new volume)` in the same
    /// transaction.
    pub fn create_volume_with(
        &self,
        name: &str,
        size_bytes: u64,
        record: impl FnOnce(&VolumeInfo) -> Vec<AppDataChange>,
    ) -> Result<VolumeInfo> {
        self.inner.check_writable()?;
        let info = self.inner.mutate(|m| {
            m.ensure_catalog_room(MAX_LINKED_CHANGE + RECORD_ROOM)?;
            let id = m.create_volume(name, size_bytes, now_unix())?.id;
            let info = Self::volume_info_of(m, id)?;
            apply_linked(&self.inner, m, record(&info))?;
            Ok(info)
        })?;
        self.inner.commit()?;
        Ok(info)
    }

    /// A handle for I/O on the named volume.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        let id = self.inner.meta.lock().volume_id(name)?;
        self.volume_by_id(id)
    }

    pub fn volume_by_id(&self, id: u64) -> Result<Volume> {
        let (name, size) = {
            let m = self.inner.meta.lock();
            let v = m.volume_rec(id)?;
            (v.name.clone(), v.size_bytes)
        };
        Ok(Volume::new(
            self.inner.clone(),
            id,
            name,
            size,
            self.inner.volume_io(id),
        ))
    }

    pub fn volume_info(&self, name: &str) -> Result<VolumeInfo> {
        let m = self.inner.meta.lock();
        Self::volume_info_of(&m, m.volume_id(name)?)
    }

    pub fn list_volumes(&self) -> Vec<VolumeInfo> {
        let m = self.inner.meta.lock();
        m.catalog
            .volumes
            .keys()
            .filter_map(|&id| Self::volume_info_of(&m, id).ok())
            .collect()
    }

    /// Delete a volume and all its snapshots; their exclusive blocks are freed.
    pub fn delete_volume(&self, name: &str) -> Result<()> {
        self.delete_volume_with(name, Vec::new())
    }

    /// [`Pool::delete_volume`], committing `changes` in the same transaction.
    pub fn delete_volume_with(&self, name: &str, changes: Vec<AppDataChange>) -> Result<()> {
        self.inner.check_writable()?;
        let id = self.inner.meta.lock().volume_id(name)?;
        let io = self.inner.volume_io(id);
        {
            let _gate = io.gate.write();
            self.inner.mutate(|m| {
                // A delete shrinks the catalog: only its records need room,
                // so a full catalog can always be emptied.
                let bytes = validate_changes(&changes, MAX_LINKED_CHANGE)?;
                if bytes > 0 {
                    m.ensure_catalog_room(bytes)?;
                }
                m.delete_volume(id)?;
                push_changes(m, changes);
                Ok(())
            })?;
        }
        self.inner.forget_volume_io(id);
        self.inner.commit()
    }

    /// Take a point-in-time snapshot of a volume.
    pub fn create_snapshot(
        &self,
        volume: &str,
        name: &str,
        description: &str,
    ) -> Result<SnapshotInfo> {
        self.create_snapshot_limited(volume, name, description, None)
    }

    /// As [`Pool::create_snapshot`], failing with `LimitReached` when the
    /// volume already has `limit` snapshots (checked atomically with the create).
    pub fn create_snapshot_limited(
        &self,
        volume: &str,
        name: &str,
        description: &str,
        limit: Option<usize>,
    ) -> Result<SnapshotInfo> {
        self.create_snapshot_with(volume, name, description, limit, |_| Vec::new())
    }

    /// [`Pool::create_snapshot_limited`], committing `record(new snapshot)`
    /// in the same transaction.
    pub fn create_snapshot_with(
        &self,
        volume: &str,
        name: &str,
        description: &str,
        limit: Option<usize>,
        record: impl FnOnce(&SnapshotInfo) -> Vec<AppDataChange>,
    ) -> Result<SnapshotInfo> {
        self.inner.check_writable()?;
        let id = self.inner.meta.lock().volume_id(volume)?;
        let io = self.inner.volume_io(id);
        let info = {
            // Waits for writes in flight: the snapshot holds every write that
            // completed before this call and none that start after it returns.
            let _gate = io.gate.write();
            self.inner.mutate(|m| {
                m.ensure_catalog_room(MAX_LINKED_CHANGE + RECORD_ROOM)?;
                let rec = m.create_snapshot(id, name, description, limit, now_unix())?;
                let info = Self::snapshot_info_of(m, &rec)?;
                apply_linked(&self.inner, m, record(&info))?;
                Ok(info)
            })?
        };
        self.inner.commit()?;
        Ok(info)
    }

    /// Snapshots, newest first; all of them or one volume's.
    pub fn list_snapshots(&self, volume: Option<&str>) -> Result<Vec<SnapshotInfo>> {
        let mut m = self.inner.meta.lock();
        let filter = volume.map(|n| m.volume_id(n)).transpose()?;
        let recs: Vec<SnapshotRec> = m
            .catalog
            .snapshots
            .values()
            .rev()
            .filter(|s| filter.is_none_or(|v| s.volume_id == v))
            .cloned()
            .collect();
        recs.iter()
            .map(|r| Self::snapshot_info_of(&mut m, r))
            .collect()
    }

    pub fn snapshot(&self, id: u64) -> Result<SnapshotInfo> {
        let mut m = self.inner.meta.lock();
        let rec = m.snapshot_rec(id)?.clone();
        Self::snapshot_info_of(&mut m, &rec)
    }

    /// Rename and/or re-describe a snapshot.
    pub fn update_snapshot(
        &self,
        id: u64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<SnapshotInfo> {
        self.inner.check_writable()?;
        let rec = self
            .inner
            .mutate(|m| m.update_snapshot(id, name, description))?;
        self.inner.commit()?;
        Self::snapshot_info_of(&mut self.inner.meta.lock(), &rec)
    }

    /// Make the volume's content that of the snapshot. The snapshot, and
    /// newer ones, stay.
    pub fn restore_snapshot(&self, id: u64) -> Result<VolumeInfo> {
        self.restore_snapshot_with(id, |_| Vec::new())
    }

    /// [`Pool::restore_snapshot`], committing `record(restored volume)` in
    /// the same transaction.
    pub fn restore_snapshot_with(
        &self,
        id: u64,
        record: impl FnOnce(&VolumeInfo) -> Vec<AppDataChange>,
    ) -> Result<VolumeInfo> {
        self.inner.check_writable()?;
        let vol = self.inner.meta.lock().snapshot_rec(id)?.volume_id;
        let io = self.inner.volume_io(vol);
        let info = {
            let _gate = io.gate.write();
            self.inner.mutate(|m| {
                m.ensure_catalog_room(MAX_LINKED_CHANGE)?;
                m.restore_snapshot(id)?;
                let info = Self::volume_info_of(m, vol)?;
                apply_linked(&self.inner, m, record(&info))?;
                Ok(info)
            })?
        };
        self.inner.commit()?;
        Ok(info)
    }

    /// Delete a snapshot and free the blocks nothing else references.
    pub fn delete_snapshot(&self, id: u64) -> Result<()> {
        self.delete_snapshot_with(id, Vec::new())
    }

    /// [`Pool::delete_snapshot`], committing `changes` in the same transaction.
    pub fn delete_snapshot_with(&self, id: u64, changes: Vec<AppDataChange>) -> Result<()> {
        self.inner.check_writable()?;
        let vol = self.inner.meta.lock().snapshot_rec(id)?.volume_id;
        let io = self.inner.volume_io(vol);
        {
            // Readers of the snapshot hold the gate shared, so its blocks are
            // not freed under them.
            let _gate = io.gate.write();
            self.inner.mutate(|m| {
                let bytes = validate_changes(&changes, MAX_LINKED_CHANGE)?;
                if bytes > 0 {
                    m.ensure_catalog_room(bytes)?;
                }
                m.delete_snapshot(id)?;
                push_changes(m, changes);
                Ok(())
            })?;
        }
        self.inner.commit()
    }

    /// A new writable volume whose content is the snapshot's, sharing its blocks.
    pub fn clone_snapshot(&self, id: u64, new_volume: &str) -> Result<VolumeInfo> {
        self.inner.check_writable()?;
        let vid = self
            .inner
            .mutate(|m| m.clone_snapshot(id, new_volume, now_unix()))?
            .id;
        self.inner.commit()?;
        Self::volume_info_of(&self.inner.meta.lock(), vid)
    }

    /// A read-only view of a snapshot's content.
    pub fn snapshot_reader(&self, id: u64) -> Result<SnapshotReader> {
        let (vol, size) = {
            let m = self.inner.meta.lock();
            let s = m.snapshot_rec(id)?;
            (s.volume_id, s.size_bytes)
        };
        Ok(SnapshotReader::new(
            self.inner.clone(),
            id,
            size,
            self.inner.volume_io(vol),
        ))
    }

    pub fn stats(&self) -> PoolStats {
        // Lock order is commit, then metadata: read the journal length first.
        let journal = self.inner.journal_len();
        let m = self.inner.meta.lock();
        let c = &m.catalog.counters;
        let bs = self.inner.block_size as u64;
        let page = crate::format::PAGE_SIZE as u64;
        let refs_bytes = |entries: u64| {
            entries
                .div_ceil(crate::format::refpage::PER_PAGE as u64)
                .saturating_mul(page)
        };
        PoolStats {
            block_size: self.inner.block_size,
            used_bytes: c.data_used.saturating_mul(bs),
            used_blocks: c.data_used,
            free_blocks: c.data_hw.saturating_sub(1).saturating_sub(c.data_used),
            metadata_bytes: c
                .nodes_used
                .saturating_mul(page)
                .saturating_add(refs_bytes(c.data_hw))
                .saturating_add(refs_bytes(c.node_hw))
                .saturating_add(journal),
            volumes: m.catalog.volumes.len() as u64,
            snapshots: m.catalog.snapshots.len() as u64,
        }
    }

    /// Bound the clean metadata pages (map nodes, refcount pages) kept
    /// cached, per kind; 4096 (16 MiB) by default. Pages changed since the
    /// last checkpoint stay cached whatever the bound.
    pub fn set_metadata_cache_pages(&self, pages: usize) {
        let mut m = self.inner.meta.lock();
        m.cache_pages = pages;
        m.trim_caches();
    }

    /// Store an embedder's key/value state durably with the pool's metadata.
    pub fn put_app_data(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.change_app_data(vec![AppDataChange::Put(key.into(), value)])
    }

    /// Apply several key/value changes in one transaction: after a crash,
    /// all of them or none.
    pub fn change_app_data(&self, changes: Vec<AppDataChange>) -> Result<()> {
        self.inner.check_writable()?;
        let bytes = validate_changes(&changes, crate::catalog::MAX_APP_CHANGE)?;
        {
            let mut m = self.inner.meta.lock();
            m.ensure_catalog_room(bytes)?;
            push_changes(&mut m, changes);
        }
        self.inner.commit()
    }

    pub fn delete_app_data(&self, key: &str) -> Result<()> {
        self.inner.check_writable()?;
        let mut m = self.inner.meta.lock();
        if !m.catalog.app_data.contains_key(key) {
            return Err(Error::not_found("app data", key));
        }
        m.push_op(crate::catalog::CatalogOp::DeleteAppData(key.into()));
        drop(m);
        self.inner.commit()
    }

    pub fn app_data(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.meta.lock().catalog.app_data.get(key).cloned()
    }

    /// Keys with the given prefix, in order.
    pub fn app_data_keys(&self, prefix: &str) -> Vec<String> {
        let m = self.inner.meta.lock();
        m.catalog
            .app_data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }
}
