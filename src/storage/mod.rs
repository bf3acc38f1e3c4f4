//! All pool I/O goes through [`Storage`] (one file) and [`Dir`] (the pool's
//! set of files), so tests can swap in a simulated disk that loses or tears
//! un-synced writes and fails on demand.

mod ahead;
mod aligned;
mod direct;
mod file;
pub mod sim;

pub use aligned::{is_direct_aligned, AlignedBuf, DIRECT_ALIGN};
pub use file::{FileStorage, FsDir};

/// How the data file meets the kernel's page cache; metadata files always
/// use it. Like QEMU's `cache=none` and `cache=writeback`. Durability is the
/// same either way: data is durable only after a flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DataCache {
    /// Every data read and write goes around the page cache (`O_DIRECT`):
    /// no double caching under a guest that caches itself, and new blocks
    /// cost no fresh page-cache pages. The default.
    #[default]
    Direct,
    /// Every data read and write goes through the page cache: rereads are
    /// served from memory and small writes return at memory speed.
    PageCache,
}

use std::io;
use std::sync::Arc;

/// One file of a pool. Offsets are absolute; methods take `&self` so that
/// several threads can do I/O at once.
#[allow(clippy::len_without_is_empty)]
pub trait Storage: Send + Sync {
    /// Fill `buf` from `offset`. Bytes past the end of the file read as zeros.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Make every completed write durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// Truncate or extend the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current length of the file.
    fn len(&self) -> io::Result<u64>;
    /// Deallocate `[offset, offset+len)`: it reads as zeros afterwards and
    /// gives its space back to the filesystem.
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()>;
}

/// The set of files that make up a pool.
pub trait Dir: Send + Sync {
    /// Open (creating if missing) the named file.
    fn open(&self, name: &str) -> io::Result<Arc<dyn Storage>>;
    /// Open a file of bulk data blocks. Real files may then send large
    /// aligned writes around the page cache; the contract is unchanged
    /// (durable only after `sync`).
    fn open_data(&self, name: &str) -> io::Result<Arc<dyn Storage>> {
        self.open(name)
    }
    /// Whether the named file exists.
    fn exists(&self, name: &str) -> io::Result<bool>;
    /// A printable description (a path) for messages.
    fn describe(&self) -> String;
    /// Make newly created files' directory entries durable.
    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}
