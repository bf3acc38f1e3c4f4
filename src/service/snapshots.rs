//! Snapshots of an account's servers: the engine's snapshots of the server's
//! volume, ids and all, with the per-server limit enforced atomically.

use super::core::Service;
use super::error::{reason, ServiceError};
use super::model::{ServerRec, ServerStatus, MAX_DESCRIPTION, SNAPSHOT_LIMIT};
use super::registry::{Registry, SnapMeta};
use super::servers::{busy, server_view};
use super::{Keyed, Restored, ServerRef, SnapshotView};
use crate::ErrorKind;

/// One page of a listing and the size of the whole.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub count: usize,
    pub items: Vec<T>,
}

fn view(reg: &Registry, m: &SnapMeta) -> SnapshotView {
    let server_name = reg
        .servers
        .get(&m.server_id)
        .map(|s| s.rec.name.as_str())
        .unwrap_or_default();
    snapshot_view(server_name, m)
}

fn snapshot_view(server_name: &str, m: &SnapMeta) -> SnapshotView {
    SnapshotView {
        id: m.id,
        server: ServerRef {
            id: m.server_id,
            name: server_name.to_string(),
        },
        name: m.name.clone(),
        status: m.status,
        size_mb: m.size_mb,
        created_at: m.created_at.clone(),
        description: m.description.clone(),
    }
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    crate::validate_name("snapshot name", name).map_err(|e| ServiceError::field("name", reason(&e)))
}

fn check_description(d: &str) -> Result<(), ServiceError> {
    if d.len() > MAX_DESCRIPTION {
        return Err(ServiceError::field(
            "description",
            format!("Ensure this field has no more than {MAX_DESCRIPTION} bytes."),
        ));
    }
    Ok(())
}

fn name_taken() -> ServiceError {
    ServiceError::field(
        "name",
        "A snapshot with this name already exists on this server.",
    )
}

impl Service {
    pub fn create_snapshot(
        &self,
        account: &str,
        server_id: u64,
        name: &str,
        description: &str,
    ) -> Result<SnapshotView, ServiceError> {
        self.create_snapshot_keyed(account, server_id, name, description, None)
    }

    /// [`Service::create_snapshot`], committing a keyed request's answer in
    /// the snapshot's own transaction.
    pub fn create_snapshot_keyed(
        &self,
        account: &str,
        server_id: u64,
        name: &str,
        description: &str,
        keyed: Option<Keyed<'_, SnapshotView>>,
    ) -> Result<SnapshotView, ServiceError> {
        check_name(name)?;
        check_description(description)?;
        // Creates on one server run one at a time, so of two racing for the
        // last slot the loser sees the limit, not some other failure.
        self.with_server_ops(Some(account), server_id, |rec| {
            // The answer is rendered from the new snapshot inside the
            // engine's transaction, so it commits with the snapshot.
            let mut recording = None;
            let info = self
                .pool
                .create_snapshot_with(
                    &rec.volume,
                    name,
                    description,
                    Some(SNAPSHOT_LIMIT),
                    |info| {
                        let view = snapshot_view(&rec.name, &SnapMeta::from_info(rec.id, info));
                        let r = keyed.as_ref().map(|k| k.recording(&view));
                        let changes = match &r {
                            Some(Ok(r)) => vec![r.change.clone()],
                            _ => Vec::new(),
                        };
                        recording = r;
                        changes
                    },
                )
                .map_err(|e| match e {
                    crate::Error::SnapshotLimit { .. } => ServiceError::LimitReached {
                        limit: SNAPSHOT_LIMIT,
                    },
                    e if e.kind() == ErrorKind::AlreadyExists => name_taken(),
                    e => e.into(),
                })?;
            let meta = SnapMeta::from_info(rec.id, &info);
            let view = snapshot_view(&rec.name, &meta);
            self.reg.lock().index_snapshot(meta);
            match recording {
                Some(Ok(r)) => self.keep_answer(r),
                // The snapshot exists; only a retry would not be recognised.
                Some(Err(e)) => {
                    tracing::error!(error = %e, "could not record an idempotency key's answer")
                }
                None => {}
            }
            Ok(view)
        })
    }

    /// The caller's snapshots, newest first, `limit` of them from `offset`;
    /// only one server's when `server` is given (none if it is not theirs).
    pub fn list_snapshots(
        &self,
        account: &str,
        server: Option<u64>,
        offset: usize,
        limit: usize,
    ) -> Page<SnapshotView> {
        let reg = self.reg.lock();
        let ids = match server {
            Some(id) => reg.owned_server(account, id).map(|s| &s.snapshots),
            None => reg.by_account.get(account),
        };
        let Some(ids) = ids else {
            return Page {
                count: 0,
                items: Vec::new(),
            };
        };
        let items = ids
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .filter_map(|id| reg.snapshots.get(id))
            .map(|m| view(&reg, m))
            .collect();
        Page {
            count: ids.len(),
            items,
        }
    }

    pub fn snapshot(&self, account: &str, id: u64) -> Result<SnapshotView, ServiceError> {
        let reg = self.reg.lock();
        reg.owned_snapshot(account, id)
            .map(|m| view(&reg, m))
            .ok_or_else(|| ServiceError::not_found("Snapshot"))
    }

    fn snapshot_server(&self, account: &str, id: u64) -> Result<u64, ServiceError> {
        self.reg
            .lock()
            .owned_snapshot(account, id)
            .map(|m| m.server_id)
            .ok_or_else(|| ServiceError::not_found("Snapshot"))
    }

    /// Change a snapshot's name and/or description.
    pub fn update_snapshot(
        &self,
        account: &str,
        id: u64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<SnapshotView, ServiceError> {
        if let Some(n) = name {
            check_name(n)?;
        }
        if let Some(d) = description {
            check_description(d)?;
        }
        let server = self.snapshot_server(account, id)?;
        self.with_server_ops(Some(account), server, |rec| {
            self.snapshot_server(account, id)?;
            let info = self
                .pool
                .update_snapshot(id, name, description)
                .map_err(|e| match e.kind() {
                    ErrorKind::AlreadyExists => name_taken(),
                    _ => e.into(),
                })?;
            let meta = SnapMeta::from_info(rec.id, &info);
            let mut reg = self.reg.lock();
            reg.index_snapshot(meta.clone());
            Ok(view(&reg, &meta))
        })
    }

    /// Delete a snapshot; the blocks only it held are freed.
    pub fn delete_snapshot(&self, account: &str, id: u64) -> Result<(), ServiceError> {
        let server = self.snapshot_server(account, id)?;
        self.with_server_ops(Some(account), server, |_| {
            self.snapshot_server(account, id)?;
            self.pool.delete_snapshot(id)?;
            self.reg.lock().unindex_snapshot(id);
            Ok(())
        })
    }

    /// Stop the server, then make its disk the snapshot's. The server stays
    /// stopped: its owner boots the restored disk deliberately. Refused
    /// while any other operation runs on the server.
    pub fn restore_snapshot(&self, account: &str, id: u64) -> Result<Restored, ServiceError> {
        self.restore_snapshot_keyed(account, id, None)
    }

    /// [`Service::restore_snapshot`], committing a keyed request's answer in
    /// the restore's own transaction.
    pub fn restore_snapshot_keyed(
        &self,
        account: &str,
        id: u64,
        keyed: Option<Keyed<'_, Restored>>,
    ) -> Result<Restored, ServiceError> {
        let server = self.snapshot_server(account, id)?;
        let (rec, ops) = self.server_rec(Some(account), server)?;
        let Some(_guard) = ops.try_lock() else {
            return Err(busy(&rec.name));
        };
        // Look again under the lock: the snapshot or server may have gone.
        self.snapshot_server(account, id)?;
        let (rec, _) = self.server_rec(Some(account), server)?;
        // From here the server reads `restoring`, and every other operation
        // on it is refused as busy, for the whole restore, its stop included.
        self.set_restoring(server, true);
        let outcome = self.stop_and_restore(&rec, id, keyed);
        self.set_restoring(server, false);
        outcome
    }

    /// The restore proper, with the server marked restoring.
    fn stop_and_restore(
        &self,
        rec: &ServerRec,
        id: u64,
        keyed: Option<Keyed<'_, Restored>>,
    ) -> Result<Restored, ServiceError> {
        // No NBD write may race the restore: the disk's connections flush
        // and close first, and none reopen while the server is stopped.
        self.sync_export(&rec.volume, ServerStatus::Stopped);
        if rec.status != ServerStatus::Stopped {
            self.persist_status(rec, ServerStatus::Stopped)
                .inspect_err(|_| self.sync_export(&rec.volume, rec.status))?;
        }
        // The outcome is known before the engine runs: the snapshot as it
        // is, and the server stopped.
        let restored = {
            let reg = self.reg.lock();
            let snapshot = reg.snapshots.get(&id).map(|m| view(&reg, m));
            let server = reg.servers.get(&rec.id).map(server_view);
            match (snapshot, server) {
                (Some(snapshot), Some(mut server)) => {
                    server.status = ServerStatus::Stopped.as_str();
                    Restored { snapshot, server }
                }
                _ => return Err(ServiceError::not_found("Snapshot")),
            }
        };
        let recording = keyed.map(|k| k.recording(&restored)).transpose()?;
        let changes = recording.iter().map(|r| r.change.clone()).collect();
        self.pool.restore_snapshot_with(id, |_| changes)?;
        if let Some(r) = recording {
            self.keep_answer(r);
        }
        Ok(restored)
    }

    fn set_restoring(&self, server: u64, on: bool) {
        if let Some(slot) = self.reg.lock().servers.get_mut(&server) {
            slot.restoring = on;
        }
    }
}
