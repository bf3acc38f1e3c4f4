//! The real-file implementation of [`Storage`] and [`Dir`].

use super::{Dir, Storage};
use rustix::fs::{copy_file_range, fadvise, fallocate, Advice, FallocateFlags};
use std::fs::{File, OpenOptions};
use std::io;
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A pool file on the host filesystem, accessed with positional I/O.
pub struct FileStorage {
    file: File,
}

impl FileStorage {
    pub fn new(file: File) -> Self {
        FileStorage { file }
    }
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

    fn copy_to_file(&self, offset: u64, len: u64, out: &File, out_offset: u64) -> io::Result<()> {
        let (mut src, mut dst, end) = (offset, out_offset, offset + len);
        while src < end {
            let want = usize::try_from(end - src)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            match copy_file_range(&self.file, Some(&mut src), out, Some(&mut dst), want) {
                Ok(0) => {
                    // Source ended early (a sparse tail): the rest reads as zeros.
                    let mut zeros = vec![0u8; (end - src).min(1 << 20) as usize];
                    while src < end {
                        let n = (end - src).min(zeros.len() as u64) as usize;
                        zeros[..n].fill(0);
                        out.write_all_at(&zeros[..n], dst)?;
                        src += n as u64;
                        dst += n as u64;
                    }
                }
                Ok(_) => {}
                // Not supported across these files: fall back to a buffered copy.
                Err(e)
                    if [
                        rustix::io::Errno::XDEV,
                        rustix::io::Errno::NOSYS,
                        rustix::io::Errno::INVAL,
                        rustix::io::Errno::OPNOTSUPP,
                    ]
                    .contains(&e) =>
                {
                    return super::copy_via_buffer(self, src, end - src, out, dst);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn drop_cache(&self, offset: u64, len: u64) {
        // Only a hint: failure changes no result.
        let _ = fadvise(&self.file, offset, NonZeroU64::new(len), Advice::DontNeed);
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

impl Dir for FsDir {
    fn open(&self, name: &str) -> io::Result<Arc<dyn Storage>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.root.join(name))?;
        Ok(Arc::new(FileStorage::new(file)))
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
