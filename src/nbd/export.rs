//! What an export name stands for: `<volume>` is the volume read-write,
//! `<volume>@<snapshot_id>` that snapshot read-only.

use super::consts::*;
use super::control::ExportControl;
use super::negotiation::{ExportInfo, Refused};
use crate::{Error, ErrorKind, Pool, Result, SnapshotReader, Volume};

#[derive(Clone)]
pub(crate) enum Export {
    Volume(Volume),
    Snapshot(SnapshotReader),
}

/// Split `vol@id`; None for a plain volume name.
fn snapshot_name(name: &str) -> Option<(&str, &str)> {
    name.split_once('@')
}

/// Look an export name up (without taking a read-write lease).
pub(crate) fn resolve(pool: &Pool, control: &ExportControl, name: &str) -> Result<Export, Refused> {
    let unknown = |why: String| Refused::Unknown(why);
    if name.is_empty() {
        return Err(unknown(
            "there is no default export: name a volume, or <volume>@<snapshot_id>".into(),
        ));
    }
    match snapshot_name(name) {
        None => {
            let vol = pool
                .volume(name)
                .map_err(|_| unknown(format!("no volume named {name:?}")))?;
            if !control.is_rw_enabled(name) {
                return Err(Refused::Policy(format!(
                    "volume {name} is not exported read-write now (its server is stopped or \
                     being restored); start the server, or open a snapshot as {name}@<id>"
                )));
            }
            Ok(Export::Volume(vol))
        }
        Some((vol, id)) => {
            let missing = || unknown(format!("no snapshot {id:?} of volume {vol:?}"));
            if !canonical_id(id) {
                return Err(missing());
            }
            let id: u64 = id.parse().map_err(|_| missing())?;
            if snapshot_volume(pool, id).as_deref() != Some(vol) {
                return Err(missing());
            }
            pool.snapshot_reader(id)
                .map(Export::Snapshot)
                .map_err(|_| missing())
        }
    }
}

/// The one spelling of a snapshot id: digits only, no leading zero, so
/// "+5", " 5" and "005" do not name snapshot 5 too. Export names are keys
/// of the per-export connection limit, so each export must have one.
fn canonical_id(id: &str) -> bool {
    let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    digits && (id == "0" || !id.starts_with('0'))
}

/// Every name a client may open now, for `NBD_OPT_LIST`.
pub(crate) fn list(pool: &Pool, control: &ExportControl) -> Vec<String> {
    let mut names: Vec<String> = pool
        .list_volumes()
        .into_iter()
        .map(|v| v.name)
        .filter(|n| control.is_rw_enabled(n))
        .collect();
    let m = pool.inner.meta.lock();
    names.extend(m.catalog.snapshots.values().filter_map(|s| {
        let vol = m.volume_rec(s.volume_id).ok()?;
        Some(format!("{}@{}", vol.name, s.id))
    }));
    names
}

/// The name of a snapshot's volume. Read from the catalog: the public
/// snapshot info also sizes the snapshot, which walks its map under the
/// metadata lock, too costly for a step any client can repeat.
fn snapshot_volume(pool: &Pool, id: u64) -> Option<String> {
    let m = pool.inner.meta.lock();
    let snap = m.snapshot_rec(id).ok()?;
    Some(m.volume_rec(snap.volume_id).ok()?.name.clone())
}

impl Export {
    pub fn size(&self) -> u64 {
        match self {
            Export::Volume(v) => v.size(),
            Export::Snapshot(s) => s.size(),
        }
    }

    pub fn writable(&self) -> bool {
        matches!(self, Export::Volume(_))
    }

    pub fn describe(&self) -> String {
        match self {
            Export::Volume(v) => format!("cowsnap volume {} (read-write)", v.name()),
            Export::Snapshot(s) => format!("cowsnap snapshot {} (read-only)", s.id()),
        }
    }

    /// What the handshake tells the client.
    pub fn info(&self) -> ExportInfo {
        ExportInfo {
            size: self.size(),
            writable: self.writable(),
            description: self.describe(),
        }
    }

    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match self {
            Export::Volume(v) => v.read_at(buf, offset),
            Export::Snapshot(s) => s.read_at(buf, offset),
        }
    }

    pub fn volume(&self) -> Result<&Volume> {
        match self {
            Export::Volume(v) => Ok(v),
            Export::Snapshot(_) => Err(Error::ReadOnly),
        }
    }

    /// Nothing to make durable on a snapshot.
    pub fn flush(&self) -> Result<()> {
        match self {
            Export::Volume(v) => v.flush(),
            Export::Snapshot(_) => Ok(()),
        }
    }

    pub fn allocation(&self, offset: u64, len: u64) -> Result<Vec<(u64, u64, bool)>> {
        match self {
            Export::Volume(v) => v.allocation(offset, len),
            Export::Snapshot(s) => s.allocation(offset, len),
        }
    }
}

/// The NBD error for an engine failure. Disk-full conditions are ENOSPC, as
/// the spec asks; a write refused by the pool's state is EPERM.
pub(crate) fn errno_of(e: &Error) -> u32 {
    match e.kind() {
        ErrorKind::InvalidArgument => EINVAL,
        ErrorKind::ReadOnly => EPERM,
        ErrorKind::LimitReached => ENOSPC,
        ErrorKind::Io => match e {
            Error::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull
                        | std::io::ErrorKind::FileTooLarge
                        | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                ENOSPC
            }
            _ => EIO,
        },
        _ => EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_snapshot_id_has_one_spelling() {
        for ok in ["0", "7", "801", "18446744073709551615"] {
            assert!(canonical_id(ok), "{ok}");
        }
        for bad in ["", "007", "00", "+7", " 7", "7 ", "0x7", "٧"] {
            assert!(!canonical_id(bad), "{bad:?}");
        }
    }
}
