//! The OS file lock that keeps a pool to one writing process, and the
//! note inside it that names the holder for the error a second process sees.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

pub(crate) struct PoolLock {
    _file: File,
}

impl PoolLock {
    pub fn acquire(dir: &Path) -> Result<PoolLock> {
        let path = dir.join(crate::format::files::LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    path: dir.display().to_string(),
                    holder: if holder.is_empty() {
                        "unknown process".into()
                    } else {
                        holder.into()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("locking the pool", e)),
        }
        let exe = std::env::args().next().unwrap_or_default();
        let note = format!(
            "pid {} ({}) since {}",
            std::process::id(),
            exe,
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        // The note is advisory; failing to write it does not stop the open.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.write_all(note.as_bytes());
        Ok(PoolLock { _file: file })
    }
}
