//! Servers: an account's VPS disks, each one engine volume, with a power
//! state the service tracks.

use super::core::Service;
use super::error::{reason, ServiceError};
use super::model::{volume_name, ServerRec, ServerStatus, MAX_SERVER_ID, SNAPSHOT_LIMIT};
use super::registry::ServerSlot;
use super::store;
use super::{AdminServerView, ServerView};
use crate::info::now_unix;
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

fn admin_view(slot: &ServerSlot) -> AdminServerView {
    AdminServerView {
        server: server_view(slot),
        account: slot.rec.account.clone(),
        volume: slot.rec.volume.clone(),
    }
}

impl Service {
    pub fn create_server(&self, new: NewServer) -> Result<AdminServerView, ServiceError> {
        if new.id == 0 || new.id > MAX_SERVER_ID {
            return Err(ServiceError::field(
                "id",
                format!("Ensure this value is between 1 and {MAX_SERVER_ID}."),
            ));
        }
        crate::validate_name("server name", &new.name)
            .map_err(|e| ServiceError::field("name", reason(&e)))?;
        let _admin = self.admin.lock();
        {
            let reg = self.reg.lock();
            if !reg.accounts.contains_key(&new.account) {
                return Err(ServiceError::field(
                    "account",
                    format!("No account named {}.", new.account),
                ));
            }
            if reg.servers.contains_key(&new.id) {
                return Err(ServiceError::field(
                    "id",
                    format!("A server with id {} already exists.", new.id),
                ));
            }
        }
        let volume = volume_name(new.id);
        let info = match &new.disk {
            Disk::Size(size) => self.pool.create_volume(&volume, *size),
            Disk::Image(path) => {
                if self.pool.volume_info(&volume).is_ok() {
                    Err(crate::Error::AlreadyExists {
                        kind: "volume",
                        name: volume.clone(),
                    })
                } else {
                    self.pool.import_raw(&volume, path, &mut |_, _| {})
                }
            }
        }
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => ServiceError::field(
                "id",
                format!(
                    "The pool already has a volume {volume} that no server owns; \
                     delete it or choose another id."
                ),
            ),
            ErrorKind::InvalidArgument => {
                let field = match new.disk {
                    Disk::Size(_) => "size_bytes",
                    Disk::Image(_) => "image_path",
                };
                ServiceError::field(field, reason(&e))
            }
            ErrorKind::NotFound | ErrorKind::Io if matches!(new.disk, Disk::Image(_)) => {
                ServiceError::field("image_path", e.to_string())
            }
            _ => e.into(),
        })?;
        let rec = ServerRec {
            id: new.id,
            name: new.name,
            account: new.account,
            volume: volume.clone(),
            status: ServerStatus::Running,
            disk_size_bytes: info.size_bytes,
            created_unix: now_unix(),
        };
        if let Err(e) = store::put(&self.pool, &store::server_key(rec.id), &rec) {
            // Leave no ownerless volume behind; a failure here is reported
            // by the put's error already.
            let _ = self.pool.delete_volume(&volume);
            return Err(e);
        }
        let slot = ServerSlot::new(rec);
        let view = admin_view(&slot);
        self.reg.lock().servers.insert(view.server.id, slot);
        self.exports.enable_rw(&volume);
        Ok(view)
    }

    /// Delete a server, its disk and its snapshots; their blocks are freed.
    pub fn delete_server(&self, id: u64) -> Result<(), ServiceError> {
        let _admin = self.admin.lock();
        self.with_server_ops(None, id, |rec| {
            // Its NBD connections close before the disk goes.
            self.exports.disable_rw(&rec.volume);
            // Volume first: a crash before the record goes is finished at
            // the next open, which drops servers whose volume is gone.
            self.pool
                .delete_volume(&rec.volume)
                .inspect_err(|_| self.sync_export(&rec.volume, rec.status))?;
            store::delete(&self.pool, &store::server_key(id))?;
            self.reg.lock().unindex_server(id);
            Ok(())
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
        store::put(&self.pool, &store::server_key(rec.id), &updated)?;
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
