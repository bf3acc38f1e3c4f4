//! The real-file implementation of [`Storage`] and [`Dir`].

use super::aligned::{is_direct_aligned, AlignedBuf, DIRECT_ALIGN};
use super::{Dir, Storage};
use parking_lot::Mutex;
use rustix::fs::{fallocate, FallocateFlags, OFlags};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Writes at least this long that are aligned go around the page cache on a
/// file opened with [`Dir::open_data`]. Filling fresh page-cache pages costs
/// several times the copy itself on these VMs (docs/DESIGN.md, "Direct I/O
/// for bulk data"); small writes stay buffered, where an in-place rewrite of
/// a cached page is cheapest.
pub const DIRECT_MIN_LEN: usize = 64 * 1024;

/// A pool file on the host filesystem, accessed with positional I/O.
pub struct FileStorage {
    file: File,
    /// The same file opened `O_DIRECT`, for large aligned writes.
    direct: Option<File>,
    /// Cleared when the filesystem refuses a direct write (EINVAL): from
    /// then on every write is buffered.
    direct_ok: AtomicBool,
}

impl FileStorage {
    pub fn new(file: File) -> Self {
        FileStorage {
            file,
            direct: None,
            direct_ok: AtomicBool::new(false),
        }
    }

    /// `file`, plus `direct`, the same file opened `O_DIRECT`.
    pub fn with_direct(file: File, direct: File) -> Self {
        FileStorage {
            file,
            direct: Some(direct),
            direct_ok: AtomicBool::new(true),
        }
    }

    /// Write through the `O_DIRECT` descriptor when that is possible;
    /// false when the caller must write buffered instead. Bytes whose memory
    /// is not aligned (a network payload, say) go through one of a few
    /// shared aligned bounce buffers: a copy costs far less than filling
    /// fresh page-cache pages.
    fn try_direct(&self, buf: &[u8], offset: u64) -> io::Result<bool> {
        let Some(direct) = &self.direct else {
            return Ok(false);
        };
        let a = DIRECT_ALIGN as u64;
        if buf.len() < DIRECT_MIN_LEN
            || !offset.is_multiple_of(a)
            || !buf.len().is_multiple_of(DIRECT_ALIGN)
            || !self.direct_ok.load(Ordering::Relaxed)
        {
            return Ok(false);
        }
        let written = if is_direct_aligned(buf, offset) {
            direct.write_all_at(buf, offset).map(|()| true)
        } else {
            write_bounced(direct, buf, offset)
        };
        match written {
            Ok(done) => Ok(done),
            // This filesystem does not take direct I/O after all; a partial
            // direct write is simply written again, buffered.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                self.direct_ok.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Largest piece copied through a bounce buffer at a time.
const BOUNCE_LEN: usize = 4 << 20;
/// Bounce buffers the process keeps at most (16 MiB); a write finding none
/// free goes buffered instead.
const MAX_BOUNCE_BUFFERS: usize = 4;

/// Reused aligned buffers, so their pages are faulted in once, not per write.
static BOUNCE_POOL: Mutex<(Vec<AlignedBuf>, usize)> = Mutex::new((Vec::new(), 0));

/// A bounce buffer from the pool, or a new one while fewer than the limit
/// exist; None when all are busy.
fn take_bounce() -> Option<AlignedBuf> {
    let mut pool = BOUNCE_POOL.lock();
    if let Some(b) = pool.0.pop() {
        return Some(b);
    }
    if pool.1 < MAX_BOUNCE_BUFFERS {
        pool.1 += 1;
        return Some(AlignedBuf::zeroed(BOUNCE_LEN));
    }
    None
}

/// Direct-write `buf` (length and offset aligned, memory not) in pieces
/// copied into an aligned buffer; false when no buffer was free.
fn write_bounced(direct: &File, buf: &[u8], offset: u64) -> io::Result<bool> {
    let Some(mut bounce) = take_bounce() else {
        return Ok(false);
    };
    let mut result = Ok(true);
    for (i, piece) in buf.chunks(BOUNCE_LEN).enumerate() {
        bounce[..piece.len()].copy_from_slice(piece);
        if let Err(e) =
            direct.write_all_at(&bounce[..piece.len()], offset + (i * BOUNCE_LEN) as u64)
        {
            result = Err(e);
            break;
        }
    }
    BOUNCE_POOL.lock().0.push(bounce);
    result
}

impl Storage for FileStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    // Past end of file: the contract says zeros.
                    buf[done..].fill(0);
                    return Ok(());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.try_direct(buf, offset)? {
            return Ok(());
        }
        self.file.write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match fallocate(&self.file, flags, offset, len) {
            Ok(()) => Ok(()),
            // Filesystems without hole punching still work; they just keep the space.
            Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A pool directory on the host filesystem.
pub struct FsDir {
    root: PathBuf,
}

impl FsDir {
    pub fn new(root: impl AsRef<Path>) -> Self {
        FsDir {
            root: root.as_ref().to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }
}

impl FsDir {
    fn open_file(&self, name: &str, flags: OFlags) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(flags.bits() as i32)
            .open(self.root.join(name))
    }
}

impl Dir for FsDir {
    fn open(&self, name: &str) -> io::Result<Arc<dyn Storage>> {
        Ok(Arc::new(FileStorage::new(
            self.open_file(name, OFlags::empty())?,
        )))
    }

    fn open_data(&self, name: &str) -> io::Result<Arc<dyn Storage>> {
        let file = self.open_file(name, OFlags::empty())?;
        // Filesystems without direct I/O (some tmpfs) refuse the flag at
        // open; the file then works buffered.
        Ok(Arc::new(match self.open_file(name, OFlags::DIRECT) {
            Ok(direct) => FileStorage::with_direct(file, direct),
            Err(_) => FileStorage::new(file),
        }))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        self.root.join(name).try_exists()
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::AlignedBuf;

    fn open(dir: &tempfile::TempDir) -> Arc<dyn Storage> {
        FsDir::new(dir.path()).open_data("data").unwrap()
    }

    #[test]
    fn direct_and_buffered_writes_read_back_coherently() {
        let dir = tempfile::tempdir().unwrap();
        let f = open(&dir);
        // Buffered first, so the range is in the page cache...
        f.write_at(&[1u8; 3 * DIRECT_MIN_LEN], 0).unwrap();
        let mut buf = vec![0u8; 3 * DIRECT_MIN_LEN];
        f.read_at(&mut buf, 0).unwrap();
        // ...then an aligned direct write over its middle, and an unaligned
        // small write inside that, which stays buffered.
        let mut big = AlignedBuf::zeroed(DIRECT_MIN_LEN);
        big.fill(2);
        f.write_at(&big, DIRECT_MIN_LEN as u64).unwrap();
        f.write_at(&[3u8; 100], DIRECT_MIN_LEN as u64 + 7).unwrap();
        f.sync().unwrap();
        f.read_at(&mut buf, 0).unwrap();
        let mut want = vec![1u8; 3 * DIRECT_MIN_LEN];
        want[DIRECT_MIN_LEN..2 * DIRECT_MIN_LEN].fill(2);
        want[DIRECT_MIN_LEN + 7..DIRECT_MIN_LEN + 107].fill(3);
        assert!(buf == want, "reads see every write, whichever path it took");
        // Unaligned memory goes through a bounce buffer, still direct.
        let raw = vec![4u8; DIRECT_MIN_LEN + 1];
        f.write_at(&raw[1..], 2 * DIRECT_MIN_LEN as u64).unwrap();
        f.read_at(&mut buf, 0).unwrap();
        want[2 * DIRECT_MIN_LEN..].fill(4);
        assert!(buf == want, "the bounced write landed whole");
        // A direct write past the end extends the file.
        f.write_at(&big, 4 * DIRECT_MIN_LEN as u64).unwrap();
        assert_eq!(f.len().unwrap(), 5 * DIRECT_MIN_LEN as u64);
    }
}
