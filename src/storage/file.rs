//! The real-file implementation of [`Storage`] and [`Dir`].

use super::aligned::{AlignedBuf, DIRECT_ALIGN};
use super::{DataCache, Dir, Storage};
use rustix::fs::{fallocate, FallocateFlags, OFlags};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A pool file on the host filesystem, accessed with positional I/O.
pub struct FileStorage {
    file: File,
    /// The same file opened `O_DIRECT`. When present, *every* read and write
    /// goes through it (see `direct.rs` for why never a mix).
    direct: Option<File>,
    /// Growth of the file ahead of direct writes (direct mode only).
    ahead: Option<super::ahead::AllocateAhead>,
}

impl FileStorage {
    /// A file accessed through the page cache.
    pub fn new(file: File) -> Self {
        FileStorage {
            file,
            direct: None,
            ahead: None,
        }
    }

    /// `file`, whose reads and writes all go through `direct`, the same file
    /// opened `O_DIRECT` (`file` is kept for sync, length and hole punching).
    pub fn with_direct(file: File, direct: File) -> io::Result<Self> {
        Ok(FileStorage {
            ahead: Some(super::ahead::AllocateAhead::new(&file)?),
            file,
            direct: Some(direct),
        })
    }
}

/// Whether direct I/O works on `direct`: a 4 KiB write and read at offset 0.
/// Only for the data file, where data block 0 never holds data (block
/// numbers start at 1; 0 means a hole).
fn direct_io_works(direct: &File) -> bool {
    let mut page = AlignedBuf::zeroed(DIRECT_ALIGN);
    direct.write_all_at(&page, 0).is_ok() && direct.read_exact_at(&mut page, 0).is_ok()
}

impl Storage for FileStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if let Some(direct) = &self.direct {
            return super::direct::read_at(direct, buf, offset);
        }
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
        match &self.direct {
            Some(direct) => {
                if let Some(ahead) = &self.ahead {
                    ahead.before_write(&self.file, offset + buf.len() as u64);
                }
                super::direct::write_at(direct, buf, offset)
            }
            None => self.file.write_all_at(buf, offset),
        }
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        if let Some(ahead) = &self.ahead {
            ahead.truncated_to(len);
        }
        Ok(())
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
    data_cache: DataCache,
}

impl FsDir {
    pub fn new(root: impl AsRef<Path>) -> Self {
        Self::with_data_cache(root, DataCache::default())
    }

    pub fn with_data_cache(root: impl AsRef<Path>, data_cache: DataCache) -> Self {
        FsDir {
            root: root.as_ref().to_path_buf(),
            data_cache,
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
        if self.data_cache == DataCache::PageCache {
            return Ok(Arc::new(FileStorage::new(file)));
        }
        // Filesystems without direct I/O (some tmpfs) refuse the flag at
        // open or the first I/O; the file then works buffered, all of it.
        Ok(Arc::new(match self.open_file(name, OFlags::DIRECT) {
            Ok(direct) if direct_io_works(&direct) => FileStorage::with_direct(file, direct)?,
            _ => FileStorage::new(file),
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

    /// Deterministic pseudo-random numbers.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn direct_io_of_any_offset_length_and_memory_matches_a_model() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FsDir::new(dir.path());
        let direct = fs.open_file("data", OFlags::DIRECT).unwrap();
        assert!(direct_io_works(&direct), "direct I/O on the test directory");
        let f = FileStorage::with_direct(fs.open_file("data", OFlags::empty()).unwrap(), direct)
            .unwrap();
        let mut model = vec![0u8; 1 << 20];
        let mut rng = 0x9E37_79B9_u64;
        let mut mem = vec![0u8; (256 << 10) + 7];
        for round in 0..400 {
            let len = (next(&mut rng) % (200 << 10)) as usize + 1;
            let off = next(&mut rng) % (model.len() - len) as u64;
            // Memory at any alignment, from an odd start inside `mem`.
            let skew = (next(&mut rng) % 7) as usize;
            if round % 2 == 0 {
                for (i, b) in mem[skew..skew + len].iter_mut().enumerate() {
                    *b = (round as u8).wrapping_mul(31) ^ (i as u8) | 1;
                }
                f.write_at(&mem[skew..skew + len], off).unwrap();
                model[off as usize..off as usize + len].copy_from_slice(&mem[skew..skew + len]);
            } else {
                f.read_at(&mut mem[skew..skew + len], off).unwrap();
                assert!(
                    mem[skew..skew + len] == model[off as usize..off as usize + len],
                    "round {round}: {len} bytes at {off}"
                );
            }
        }
        // Past the end of the file reads as zeros, also mid-page (the file
        // was allocated ahead, so it may be longer than anything written).
        let file_len = f.len().unwrap();
        model.resize(model.len().max(file_len as usize), 0);
        let mut tail = vec![0xffu8; 10_000];
        f.read_at(&mut tail, file_len - 100).unwrap();
        assert!(tail[..100] == model[file_len as usize - 100..file_len as usize]);
        assert!(tail[100..].iter().all(|&b| b == 0));
        f.sync().unwrap();
    }

    #[test]
    fn writes_past_the_end_allocate_the_file_ahead_in_steps() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let fs = FsDir::new(dir.path());
        let data = fs.open_data("data").unwrap();
        let at = 10 << 20;
        data.write_at(&[5; 4096], at).unwrap();
        let len = data.len().unwrap();
        assert!(len >= at + (1 << 20), "grown by at least a step: {len}");
        assert_eq!(len % (1 << 20), 0, "grown to a whole step: {len}");
        let allocated = std::fs::metadata(dir.path().join("data")).unwrap().blocks() * 512;
        assert!(allocated >= len - at, "allocated {allocated} of {len}");
        // Writes inside the allocated range leave the length alone and read back.
        data.write_at(&[6; 4096], len - 4096).unwrap();
        assert_eq!(data.len().unwrap(), len);
        let mut back = vec![0; 8192];
        data.read_at(&mut back, at).unwrap();
        assert!(back[..4096].iter().all(|&b| b == 5) && back[4096..].iter().all(|&b| b == 0));
        // After a cut, growth starts again from the new end.
        data.set_len(1 << 20).unwrap();
        data.write_at(&[7; 4096], 2 << 20).unwrap();
        assert!(data.len().unwrap() >= 3 << 20);
        data.read_at(&mut back[..4096], 2 << 20).unwrap();
        assert!(back[..4096].iter().all(|&b| b == 7));
    }

    /// A small tmpfs mounted for one test, unmounted when dropped.
    struct SmallFs(tempfile::TempDir);

    impl SmallFs {
        fn mount(size: &str) -> Option<SmallFs> {
            let dir = tempfile::tempdir().unwrap();
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(SmallFs(dir))
        }
    }

    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    #[test]
    fn a_nearly_full_file_system_is_filled_not_refused_early() {
        let Some(fs) = SmallFs::mount("3700k") else {
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
            return;
        };
        let data = FsDir::new(fs.0.path()).open_data("data").unwrap();
        let chunk = AlignedBuf::zeroed(64 << 10);
        let mut at = 1 << 16;
        let err = loop {
            match data.write_at(&chunk, at) {
                Ok(()) => at += chunk.len() as u64,
                Err(e) => break e,
            }
            assert!(at < 8 << 20, "a 3.7 MiB file system took {at} bytes");
        };
        assert_eq!(err.raw_os_error(), Some(28), "ENOSPC, got {err}");
        // The allocate-ahead step (1 MiB) no longer fit long before the
        // data did: writes went on until less than a chunk was left.
        let free = rustix::fs::statvfs(fs.0.path()).unwrap();
        let left = free.f_bavail * free.f_frsize;
        assert!(left < chunk.len() as u64, "{left} bytes left unused");
    }
}
