//! Creating a server: its disk and its record. An empty disk is one engine
//! commit holding the volume and the record. A disk filled from a raw image
//! takes many commits, so it is bracketed: the empty volume is committed
//! with a creation record, the import fills it, and one last commit swaps
//! the creation record for the server record. A creation record found at
//! startup is an interrupted import, removed with its volume
//! ([`super::core::Service::open_with`]).

use super::core::Service;
use super::error::{reason, ServiceError};
use super::model::{volume_name, CreatingRec, ServerRec, ServerStatus, MAX_SERVER_ID};
use super::registry::ServerSlot;
use super::servers::{admin_view, Disk, NewServer};
use super::store;
use super::AdminServerView;
use crate::info::now_unix;
use crate::{AppDataChange, ErrorKind};
use std::path::Path;

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
        let rec = match &new.disk {
            Disk::Size(size) => self.create_sized_server(&new, *size, Vec::new())?,
            Disk::Image(path) => self.create_imaged_server(&new, path)?,
        };
        Ok(self.install_server(rec))
    }

    /// Create the server's empty disk, committing its record and `also`
    /// with the volume. The caller holds the admin lock and has checked the
    /// id and account.
    pub(crate) fn create_sized_server(
        &self,
        new: &NewServer,
        size: u64,
        also: Vec<AppDataChange>,
    ) -> Result<ServerRec, ServiceError> {
        let volume = volume_name(new.id);
        let rec = server_rec(new, &volume, size);
        let mut changes = vec![store::put(&store::server_key(new.id), &rec)?];
        changes.extend(also);
        self.pool
            .create_volume_with(&volume, size, |_| changes)
            .map_err(|e| volume_error(e, &new.disk, &volume))?;
        Ok(rec)
    }

    fn create_imaged_server(
        &self,
        new: &NewServer,
        path: &Path,
    ) -> Result<ServerRec, ServiceError> {
        let len = image_len(path)?;
        let volume = volume_name(new.id);
        let creating_key = store::creating_key(new.id);
        let creating = CreatingRec {
            id: new.id,
            volume: volume.clone(),
            account: new.account.clone(),
            image: path.display().to_string(),
            started_unix: now_unix(),
        };
        let bracket = vec![store::put(&creating_key, &creating)?];
        // Nobody writes the disk over NBD while it fills.
        self.exports.disable_rw(&volume);
        if let Err(e) = self.pool.create_volume_with(&volume, len, |_| bracket) {
            self.exports.enable_rw(&volume);
            return Err(volume_error(e, &new.disk, &volume));
        }
        let filled = self
            .pool
            .import_raw(&volume, path, &mut |_, _| {})
            .map_err(image_error)
            .and_then(|info| {
                let rec = server_rec(new, &volume, info.size_bytes);
                let swap = vec![
                    store::put(&store::server_key(new.id), &rec)?,
                    store::delete(&creating_key),
                ];
                store::commit(&self.pool, swap)?;
                Ok(rec)
            });
        if filled.is_err() {
            // Undo now if the pool lets us; otherwise the creation record
            // makes the next start do it.
            if let Err(e) = self
                .pool
                .delete_volume_with(&volume, vec![store::delete(&creating_key)])
            {
                tracing::error!(error = %e, %volume, "could not remove a failed server creation; the next start will");
            }
            self.exports.enable_rw(&volume);
        }
        filled
    }

    /// Make a committed server visible and, as it is running, exported.
    pub(crate) fn install_server(&self, rec: ServerRec) -> AdminServerView {
        let volume = rec.volume.clone();
        let slot = ServerSlot::new(rec);
        let view = admin_view(&slot);
        self.reg.lock().servers.insert(view.server.id, slot);
        self.exports.enable_rw(&volume);
        view
    }
}

fn server_rec(new: &NewServer, volume: &str, size: u64) -> ServerRec {
    ServerRec {
        id: new.id,
        name: new.name.clone(),
        account: new.account.clone(),
        volume: volume.to_string(),
        status: ServerStatus::Running,
        disk_size_bytes: size,
        created_unix: now_unix(),
    }
}

/// The size of a raw image: a regular file with at least one byte.
fn image_len(path: &Path) -> Result<u64, ServiceError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ServiceError::field("image_path", format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(ServiceError::field(
            "image_path",
            format!("{} is not a regular file.", path.display()),
        ));
    }
    if meta.len() == 0 {
        return Err(ServiceError::field(
            "image_path",
            format!("{} is empty.", path.display()),
        ));
    }
    Ok(meta.len())
}

fn volume_error(e: crate::Error, disk: &Disk, volume: &str) -> ServiceError {
    match e.kind() {
        ErrorKind::AlreadyExists => ServiceError::field(
            "id",
            format!(
                "The pool already has a volume {volume} that no server owns; \
                 delete it or choose another id."
            ),
        ),
        ErrorKind::InvalidArgument => {
            let field = match disk {
                Disk::Size(_) => "size_bytes",
                Disk::Image(_) => "image_path",
            };
            ServiceError::field(field, reason(&e))
        }
        _ => e.into(),
    }
}

fn image_error(e: crate::Error) -> ServiceError {
    match e.kind() {
        ErrorKind::InvalidArgument => ServiceError::field("image_path", reason(&e)),
        ErrorKind::NotFound | ErrorKind::Io => ServiceError::field("image_path", e.to_string()),
        _ => e.into(),
    }
}
