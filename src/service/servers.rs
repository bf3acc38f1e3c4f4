//! Servers: an account's VPS disks, each one engine volume, with a power
//! state the service tracks.

use super::core::Service;
use super::error::ServiceError;
use super::model::{ServerRec, ServerStatus, SNAPSHOT_LIMIT};
use super::registry::ServerSlot;
use super::store;
use super::{AdminServerView, ServerView};
use crate::ErrorKind;
use std::path::PathBuf;

/// Where a new server's disk comes from.
#[derive(Debug, Clone)]
pub enum Disk {
    /// An empty disk of this many bytes.
    Size(u64),
    /// A raw image file on this host; the disk takes its size.
    Image(PathBuf),
}

#[derive(Debug, Clone)]
pub struct NewServer {
    pub id: u64,
    pub name: String,
    pub account: String,
    pub disk: Disk,
}

pub(crate) fn server_view(slot: &ServerSlot) -> ServerView {
    ServerView {
        id: slot.rec.id,
        name: slot.rec.name.clone(),
        status: slot.status().as_str(),
        disk_size_bytes: slot.rec.disk_size_bytes,
        snapshot_count: slot.snapshots.len(),
        snapshot_limit: SNAPSHOT_LIMIT,
    }
}

pub(crate) fn admin_view(slot: &ServerSlot) -> AdminServerView {
    AdminServerView {
        server: server_view(slot),
        account: slot.rec.account.clone(),
        volume: slot.rec.volume.clone(),
    }
}

impl Service {
    /// Delete a server, its disk and its snapshots; their blocks are freed.
    /// Returns the server as it was.
    pub fn delete_server(&self, id: u64) -> Result<AdminServerView, ServiceError> {
        let _admin = self.admin.lock();
        self.with_server_ops(None, id, |rec| {
            let view = self.reg.lock().servers.get(&id).map(admin_view);
            let view = view.ok_or_else(|| ServiceError::not_found("Server"))?;
            // Its NBD connections close before the disk goes.
            self.exports.disable_rw(&rec.volume);
            // The volume and the record go in one commit.
            let record = vec![store::delete(&store::server_key(id))];
            match self.pool.delete_volume_with(&rec.volume, record.clone()) {
                Ok(()) => {}
                // Deleted outside the service while it ran: the record goes alone.
                Err(e) if e.kind() == ErrorKind::NotFound => store::commit(&self.pool, record)?,
                Err(e) => {
                    self.sync_export(&rec.volume, rec.status);
                    return Err(e.into());
                }
            }
            self.reg.lock().unindex_server(id);
            Ok(view)
        })
    }

    pub fn list_all_servers(&self) -> Vec<AdminServerView> {
        self.reg.lock().servers.values().map(admin_view).collect()
    }

    pub fn list_servers(&self, account: &str) -> Vec<ServerView> {
        let reg = self.reg.lock();
        reg.servers
            .values()
            .filter(|s| s.rec.account == account)
            .map(server_view)
            .collect()
    }

    pub fn server(&self, account: &str, id: u64) -> Result<ServerView, ServiceError> {
        let reg = self.reg.lock();
        reg.owned_server(account, id)
            .map(server_view)
            .ok_or_else(|| ServiceError::not_found("Server"))
    }

    /// Start or stop a server. Asking for the state it is in changes nothing.
    pub fn set_power(
        &self,
        account: &str,
        id: u64,
        running: bool,
    ) -> Result<ServerView, ServiceError> {
        let status = if running {
            ServerStatus::Running
        } else {
            ServerStatus::Stopped
        };
        self.with_server_ops(Some(account), id, |rec| {
            // A stop closes the disk's NBD connections, flushed, before it
            // is recorded; a failed change restores the export.
            self.sync_export(&rec.volume, status);
            if rec.status != status {
                self.persist_status(rec, status)
                    .inspect_err(|_| self.sync_export(&rec.volume, rec.status))?;
            }
            Ok(())
        })?;
        self.server(account, id)
    }

    /// Make the disk's read-write NBD export follow a server status: only
    /// a running server's disk is exported. Disabling blocks until the
    /// volume's connections have flushed and closed.
    pub(crate) fn sync_export(&self, volume: &str, status: ServerStatus) {
        match status {
            ServerStatus::Running => self.exports.enable_rw(volume),
            _ => self.exports.disable_rw(volume),
        }
    }

    pub(crate) fn persist_status(
        &self,
        rec: &ServerRec,
        status: ServerStatus,
    ) -> Result<(), ServiceError> {
        let updated = ServerRec {
            status,
            ..rec.clone()
        };
        store::commit(
            &self.pool,
            vec![store::put(&store::server_key(rec.id), &updated)?],
        )?;
        if let Some(slot) = self.reg.lock().servers.get_mut(&rec.id) {
            slot.rec.status = status;
        }
        Ok(())
    }

    /// Run `op` holding the server's operation lock, waiting for any other
    /// operation on it; refuse while a restore runs. `account` None is an
    /// admin acting on any server.
    pub(crate) fn with_server_ops<T>(
        &self,
        account: Option<&str>,
        id: u64,
        op: impl FnOnce(&ServerRec) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let ops = self.server_rec(account, id)?.1;
        let _guard = ops.lock();
        // Look again: the server may have gone while we waited.
        let (rec, _) = self.server_rec(account, id)?;
        op(&rec)
    }

    /// The server's record and operation lock, if the caller may see it
    /// and no restore is running on it.
    pub(crate) fn server_rec(
        &self,
        account: Option<&str>,
        id: u64,
    ) -> Result<(ServerRec, std::sync::Arc<parking_lot::Mutex<()>>), ServiceError> {
        let reg = self.reg.lock();
        let slot = match account {
            Some(a) => reg.owned_server(a, id),
            None => reg.servers.get(&id),
        }
        .ok_or_else(|| ServiceError::not_found("Server"))?;
        if slot.restoring {
            return Err(busy(&slot.rec.name));
        }
        Ok((slot.rec.clone(), slot.ops.clone()))
    }
}

/// Holds a server's operation lock; see [`Service::hold_server`].
pub struct ServerHold {
    _guard: parking_lot::ArcMutexGuard<parking_lot::RawMutex, ()>,
}

impl Service {
    /// Hold a server still, for an operator working on its disk through the
    /// library (an export, a check) while the service runs: snapshot
    /// operations on it wait, and restores are refused as busy, until the
    /// hold is dropped.
    pub fn hold_server(&self, id: u64) -> Result<ServerHold, ServiceError> {
        let (_, ops) = self.server_rec(None, id)?;
        Ok(ServerHold {
            _guard: ops.lock_arc(),
        })
    }
}

pub(crate) fn busy(server: &str) -> ServiceError {
    ServiceError::Busy(format!(
        "A restore or another snapshot operation is running on server {server}; retry when it finishes."
    ))
}
