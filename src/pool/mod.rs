//! The pool: opening and creating, the commit path and checkpoints.
//!
//! Durability order (see docs/FORMAT.md, "Commit steps"):
//! 1. data blocks are written before the map change that links them;
//! 2. a commit syncs the data file, then appends and syncs the journal;
//! 3. blocks a commit freed are punched out and reused only after that;
//! 4. a checkpoint writes committed pages in place, syncs them, starts the
//!    other journal file with the whole catalog, syncs it, and only then
//!    flips the superblock.

mod api;
pub use api::AppDataChange;
mod lockfile;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::format::superblock::{valid_block_size, Superblock};
use crate::format::{files, PAGE_SIZE};
use crate::journal::Journal;
use crate::meta::MetaState;
use crate::rangelock::RangeLock;
use crate::storage::{DataCache, Dir, FsDir, Storage};
use lockfile::PoolLock;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Checkpoint once the journal holds this much.
const CHECKPOINT_JOURNAL_BYTES: u64 = 16 << 20;
/// ... or once this many pages are pinned in memory awaiting a checkpoint.
const CHECKPOINT_TOUCHED_PAGES: usize = 8192;
/// On close, checkpoint if the journal is longer than this, so the next open replays little.
const CLOSE_CHECKPOINT_BYTES: u64 = 1 << 20;

/// A pool of volumes and snapshots. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Pool {
    pub(crate) inner: Arc<PoolInner>,
}

/// Per-volume I/O coordination.
#[derive(Default)]
pub(crate) struct VolumeIo {
    /// Data I/O holds it shared; snapshot create, restore, delete and volume
    /// delete hold it exclusively, so they never see half a write.
    pub gate: RwLock<()>,
    pub ranges: RangeLock,
}

struct CommitState {
    journal: Journal,
    superblock: Superblock,
}

pub(crate) struct PoolInner {
    pub desc: String,
    pub block_size: u32,
    pub data: Arc<dyn Storage>,
    superblock_file: Arc<dyn Storage>,
    journals: [Arc<dyn Storage>; 2],
    pub meta: Mutex<MetaState>,
    commit: Mutex<CommitState>,
    volume_io: Mutex<HashMap<u64, Arc<VolumeIo>>>,
    poison: Mutex<Option<String>>,
    /// Set by data writes; a commit that sees it syncs the data file.
    pub data_dirty: AtomicBool,
    closed: AtomicBool,
    _lock: Option<PoolLock>,
}

fn new_pool_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

impl Pool {
    /// Create a new pool in directory `path` (created if missing).
    pub fn create(path: impl AsRef<Path>, block_size: u32) -> Result<Pool> {
        Self::create_with(path, block_size, DataCache::default())
    }

    /// [`Pool::create`], with the data file used as `data_cache` says.
    pub fn create_with(
        path: impl AsRef<Path>,
        block_size: u32,
        data_cache: DataCache,
    ) -> Result<Pool> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let lock = PoolLock::acquire(path)?;
        let dir = FsDir::with_data_cache(path, data_cache);
        Self::create_on(Arc::new(dir), block_size, Some(lock))
    }

    /// Open an existing pool in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Pool> {
        Self::open_with(path, DataCache::default())
    }

    /// [`Pool::open`], with the data file used as `data_cache` says. The
    /// mode is a property of this open, not of the pool: the files are the
    /// same either way.
    pub fn open_with(path: impl AsRef<Path>, data_cache: DataCache) -> Result<Pool> {
        let path = path.as_ref();
        let sb = path.join(files::SUPERBLOCK);
        if !sb.exists() {
            return Err(Error::not_found("pool", path.display()));
        }
        let lock = PoolLock::acquire(path)?;
        let dir = FsDir::with_data_cache(path, data_cache);
        Self::open_on(Arc::new(dir), Some(lock))
    }

    /// Create a pool on any [`Dir`] (a simulated disk in tests).
    pub fn create_in(dir: Arc<dyn Dir>, block_size: u32) -> Result<Pool> {
        Self::create_on(dir, block_size, None)
    }

    /// Open a pool on any [`Dir`].
    pub fn open_in(dir: Arc<dyn Dir>) -> Result<Pool> {
        Self::open_on(dir, None)
    }

    fn create_on(dir: Arc<dyn Dir>, block_size: u32, lock: Option<PoolLock>) -> Result<Pool> {
        if !valid_block_size(block_size) {
            return Err(Error::invalid(
                "block size",
                format!("{block_size} is not a power of two from 4096 to 1048576"),
            ));
        }
        let desc = dir.describe();
        let io = |what: &str| {
            let what = format!("{what} in {desc}");
            move |e| Error::io(what, e)
        };
        let sb_file = dir
            .open(files::SUPERBLOCK)
            .map_err(io("creating superblock"))?;
        if sb_file.len().map_err(io("reading superblock"))? != 0 {
            return Err(Error::AlreadyExists {
                kind: "pool",
                name: desc,
            });
        }
        let sb = Superblock {
            generation: 1,
            pool_id: new_pool_id(),
            block_size,
            created_unix: crate::info::now_unix(),
        };
        for name in [
            files::NODES,
            files::NODE_REFS,
            files::DATA_REFS,
            files::DATA,
        ] {
            dir.open(name).map_err(io("creating pool file"))?;
        }
        let journal_file = dir
            .open(files::JOURNALS[1])
            .map_err(io("creating journal"))?;
        dir.open(files::JOURNALS[0])
            .map_err(io("creating journal"))?;
        Journal::start(
            journal_file,
            files::JOURNALS[1],
            sb.generation,
            sb.pool_id,
            &Catalog::new(),
        )?;
        sb_file
            .write_at(&sb.encode(), Superblock::slot_offset(sb.generation))
            .map_err(io("writing superblock"))?;
        sb_file.sync().map_err(io("syncing superblock"))?;
        dir.sync_dir().map_err(io("syncing pool directory"))?;
        Self::open_on(dir, lock)
    }

    fn open_on(dir: Arc<dyn Dir>, lock: Option<PoolLock>) -> Result<Pool> {
        let desc = dir.describe();
        let io = |what: &str| {
            let what = format!("{what} in {desc}");
            move |e| Error::io(what, e)
        };
        let sb_file = dir
            .open(files::SUPERBLOCK)
            .map_err(io("opening superblock"))?;
        let mut slots = vec![0u8; 2 * PAGE_SIZE];
        sb_file
            .read_at(&mut slots, 0)
            .map_err(io("reading superblock"))?;
        let a = Superblock::decode(&slots[..PAGE_SIZE], 0)?;
        let b = Superblock::decode(&slots[PAGE_SIZE..], PAGE_SIZE as u64)?;
        let sb = match (a, b) {
            (Some(a), Some(b)) => {
                if a.pool_id != b.pool_id || a.block_size != b.block_size {
                    return Err(Error::corrupt(
                        "superblock slots describe different pools",
                        files::SUPERBLOCK,
                        0,
                    ));
                }
                if a.generation >= b.generation {
                    a
                } else {
                    b
                }
            }
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => {
                let len = sb_file.len().map_err(io("reading superblock"))?;
                let what = if len == 0 {
                    "no superblock (not a cowsnap pool, or creation was interrupted)"
                } else {
                    "no valid superblock slot"
                };
                return Err(Error::corrupt(what, files::SUPERBLOCK, 0));
            }
        };
        if Superblock::slot_offset(sb.generation)
            != if a == Some(sb) { 0 } else { PAGE_SIZE as u64 }
        {
            return Err(Error::corrupt(
                format!(
                    "superblock generation {} is in the wrong slot",
                    sb.generation
                ),
                files::SUPERBLOCK,
                0,
            ));
        }
        let open = |name: &str| dir.open(name).map_err(io("opening pool file"));
        let data = dir
            .open_data(files::DATA)
            .map_err(io("opening pool file"))?;
        let journals = [open(files::JOURNALS[0])?, open(files::JOURNALS[1])?];
        let mut meta = MetaState::new(
            sb.block_size,
            Catalog::new(),
            open(files::NODES)?,
            open(files::NODE_REFS)?,
            open(files::DATA_REFS)?,
        );
        let jidx = (sb.generation % 2) as usize;
        // A committed transaction in the next generation's journal means the
        // superblock naming that generation was durable and is now damaged:
        // opening the older generation would silently roll back.
        let other = (1 - jidx) as usize;
        if Journal::has_commits_after_base(&journals[other], sb.generation + 1, sb.pool_id)
            .map_err(io("reading journal"))?
        {
            return Err(Error::corrupt(
                format!(
                    "the newest superblock slot (generation {}) is damaged: {} holds its committed transactions",
                    sb.generation + 1,
                    files::JOURNALS[other]
                ),
                files::SUPERBLOCK,
                Superblock::slot_offset(sb.generation + 1),
            ));
        }
        let journal = Journal::recover(
            journals[jidx].clone(),
            files::JOURNALS[jidx],
            sb.generation,
            sb.pool_id,
            &mut meta,
        )?;
        Ok(Pool {
            inner: Arc::new(PoolInner {
                desc,
                block_size: sb.block_size,
                data,
                superblock_file: sb_file,
                journals,
                meta: Mutex::new(meta),
                commit: Mutex::new(CommitState {
                    journal,
                    superblock: sb,
                }),
                volume_io: Mutex::new(HashMap::new()),
                poison: Mutex::new(None),
                data_dirty: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                _lock: lock,
            }),
        })
    }

    /// Where the pool lives (a path, or the simulated disk).
    pub fn describe(&self) -> &str {
        &self.inner.desc
    }

    /// Data block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.inner.block_size
    }

    /// Make every completed write durable.
    pub fn flush(&self) -> Result<()> {
        self.inner.commit()
    }

    /// Flush, checkpoint if the journal is long, and release the pool.
    pub fn close(self) -> Result<()> {
        self.inner.commit()?;
        let mut cs = self.inner.commit.lock();
        if cs.journal.len() > CLOSE_CHECKPOINT_BYTES {
            self.inner.checkpoint(&mut cs)?;
        }
        self.inner.closed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Force a checkpoint now (tests and tools).
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.commit()?;
        let mut cs = self.inner.commit.lock();
        self.inner.checkpoint(&mut cs)
    }
}

impl PoolInner {
    pub fn check_writable(&self) -> Result<()> {
        match &*self.poison.lock() {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Record a failure after which on-disk state is unknown. Writes are
    /// refused until reopen; a failed fsync is never retried as if nothing happened.
    pub fn poison(&self, err: &Error) {
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some(err.to_string());
        }
    }

    /// Run a metadata change under the metadata lock. A `Corrupt` or `Io`
    /// error may come after part of the change was made in memory (a bad
    /// page found halfway down a tree), so it poisons the pool: the half
    /// change must never reach a commit.
    pub fn mutate<T>(&self, change: impl FnOnce(&mut MetaState) -> Result<T>) -> Result<T> {
        let _panic = PoisonOnPanic(self);
        let r = change(&mut self.meta.lock());
        if let Err(e) = &r {
            if matches!(e.kind(), crate::ErrorKind::Corrupt | crate::ErrorKind::Io) {
                self.poison(e);
            }
        }
        r
    }

    fn guard<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if matches!(e.kind(), crate::ErrorKind::Io) {
                self.poison(e);
            }
        }
        r
    }

    pub fn volume_io(&self, id: u64) -> Arc<VolumeIo> {
        self.volume_io.lock().entry(id).or_default().clone()
    }

    pub fn forget_volume_io(&self, id: u64) {
        self.volume_io.lock().remove(&id);
    }

    /// Make all completed writes and metadata changes durable.
    pub fn commit(&self) -> Result<()> {
        let _panic = PoisonOnPanic(self);
        self.check_writable()?;
        let mut cs = self.commit.lock();
        self.check_writable()?;
        let txn = {
            let mut m = self.meta.lock();
            if m.has_changes() {
                Some(self.guard(m.capture())?)
            } else {
                None
            }
        };
        // Data first: every block the transaction links was written, and the
        // flag set, before it was published; so either an earlier commit
        // synced it or the flag is still set now.
        if self.data_dirty.swap(false, Ordering::SeqCst) {
            self.guard(self.data.sync().map_err(|e| Error::io("syncing data", e)))?;
        }
        let Some(txn) = txn else { return Ok(()) };
        // Any append failure poisons: the transaction left memory already.
        cs.journal
            .append(&txn.records)
            .inspect_err(|e| self.poison(e))?;
        self.guard(cs.journal.sync())?;
        // The commit is durable: freed blocks may now go back to the filesystem and the allocator,
        // and blocks it unshared may be written in place.
        self.meta.lock().release_stabilized(&txn.stabilized);
        self.punch_and_release(&txn.freed);
        let touched = {
            let mut m = self.meta.lock();
            m.trim_caches();
            m.touched_pages()
        };
        if cs.journal.len() > CHECKPOINT_JOURNAL_BYTES || touched > CHECKPOINT_TOUCHED_PAGES {
            // The transaction is durable whatever happens next, so the caller
            // is told it succeeded. A failed checkpoint leaves the pool's
            // files in an unknown state: refuse writes until reopen, when
            // recovery replays the journal again.
            if let Err(e) = self.checkpoint(&mut cs) {
                self.poison(&e);
            }
        }
        Ok(())
    }

    pub fn journal_len(&self) -> u64 {
        self.commit.lock().journal.len()
    }

    fn punch_and_release(&self, freed: &[u64]) {
        if freed.is_empty() {
            return;
        }
        let mut sorted = freed.to_vec();
        sorted.sort_unstable();
        let bs = self.block_size as u64;
        let mut i = 0;
        while i < sorted.len() {
            let start = sorted[i];
            let mut end = start + 1;
            i += 1;
            while i < sorted.len() && sorted[i] == end {
                end += 1;
                i += 1;
            }
            // Only space is at stake: a reused block is always written whole
            // before it is linked, so a failed punch cannot expose old data.
            let _ = self.data.punch_hole(start * bs, (end - start) * bs);
        }
        self.meta.lock().release_freed(freed);
    }

    /// Write committed pages in place and move to the next journal
    /// generation. The commit mutex is held throughout, so no other commit
    /// runs; the metadata lock only while the changes and page images are
    /// taken, so reads and writes go on while the pages are written.
    fn checkpoint(&self, cs: &mut CommitState) -> Result<()> {
        let _panic = PoisonOnPanic(self);
        self.check_writable()?;
        // Refused before anything is captured or written.
        let Some(generation) = cs
            .superblock
            .generation
            .checked_add(1)
            .filter(|g| *g <= crate::format::superblock::MAX_GENERATION)
        else {
            return Err(Error::LimitReached {
                what: "checkpoint generations".into(),
                limit: crate::format::superblock::MAX_GENERATION,
            });
        };
        let (txn, images) = {
            let mut m = self.meta.lock();
            // Changes made since our last commit must be journaled before any
            // page reaches its home location.
            let txn = if m.has_changes() {
                Some(self.guard(m.capture())?)
            } else {
                None
            };
            (txn, m.take_checkpoint())
        };
        let written = self.write_checkpoint(cs, generation, txn.as_ref(), &images);
        {
            let mut m = self.meta.lock();
            m.finish_checkpoint(&images, written.is_ok());
            if written.is_ok() {
                if let Some(txn) = &txn {
                    m.release_stabilized(&txn.stabilized);
                }
                m.trim_caches();
            }
        }
        written?;
        if let Some(txn) = txn {
            self.punch_and_release(&txn.freed);
        }
        Ok(())
    }

    /// The I/O of a checkpoint, in its durability order; no lock but the
    /// commit mutex is held.
    fn write_checkpoint(
        &self,
        cs: &mut CommitState,
        generation: u64,
        txn: Option<&crate::meta::Txn>,
        images: &crate::meta::CheckpointImages,
    ) -> Result<()> {
        if let Some(txn) = txn {
            // Data the transaction links first, then the transaction itself.
            if self.data_dirty.swap(false, Ordering::SeqCst) {
                self.guard(self.data.sync().map_err(|e| Error::io("syncing data", e)))?;
            }
            // Any append failure poisons: the transaction left memory already.
            cs.journal
                .append(&txn.records)
                .inspect_err(|e| self.poison(e))?;
            self.guard(cs.journal.sync())?;
        }
        // Pages home and synced before the next generation's journal and
        // superblock can name them.
        self.guard(images.write_pages())?;
        let next = Superblock {
            generation,
            ..cs.superblock
        };
        let jidx = (next.generation % 2) as usize;
        let journal = self.guard(Journal::start(
            self.journals[jidx].clone(),
            files::JOURNALS[jidx],
            next.generation,
            next.pool_id,
            &images.catalog,
        ))?;
        let sb_io = |e| Error::io("writing superblock", e);
        self.guard(
            self.superblock_file
                .write_at(&next.encode(), Superblock::slot_offset(next.generation))
                .map_err(sb_io),
        )?;
        self.guard(
            self.superblock_file
                .sync()
                .map_err(|e| Error::io("syncing superblock", e)),
        )?;
        cs.superblock = next;
        cs.journal = journal;
        Ok(())
    }
}

/// Poisons the pool when dropped while its thread panics. parking_lot locks
/// do not poison, so without this a panic halfway through a metadata change
/// (a bug) would leave the half change in memory for the next commit.
struct PoisonOnPanic<'a>(&'a PoolInner);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut p = self.0.poison.lock();
            if p.is_none() {
                *p = Some("a panic inside a metadata change or commit".into());
            }
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Best effort: a pool dropped without close() still persists what it can.
        if !self.closed.load(Ordering::SeqCst) && self.check_writable().is_ok() {
            let _ = self.commit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::SimDisk;

    #[test]
    fn a_panic_inside_a_metadata_change_poisons_the_pool() {
        let pool = Pool::create_in(Arc::new(SimDisk::new()), 4096).unwrap();
        let inner = pool.inner.clone();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.mutate(|_| -> Result<()> { panic!("a bug halfway through a change") })
        }));
        assert!(panicked.is_err());
        let e = pool.create_volume("v", 4096).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Poisoned, "{e}");
        assert!(e.to_string().contains("panic"), "{e}");
    }

    #[test]
    fn a_full_catalog_refuses_growth_before_changing_anything() {
        let disk = SimDisk::new();
        let pool = Pool::create_in(Arc::new(disk.clone()), 4096).unwrap();
        pool.create_volume("v", 1 << 20).unwrap();
        pool.create_volume("w", 1 << 20).unwrap();
        pool.volume("v").unwrap().write_at(&[7; 4096], 0).unwrap();
        let early = pool.create_snapshot("v", "early", "").unwrap().id;
        // Above the room a `_with` operation reserves, so only the filling
        // below can make the limit bite.
        pool.inner.meta.lock().catalog_limit = 4 << 20;
        let mut stored = 0;
        let full = loop {
            match pool.put_app_data(&format!("k{stored}"), vec![1; 40_000]) {
                Ok(()) => stored += 1,
                Err(e) => break e,
            }
            assert!(stored < 200, "the limit never bit");
        };
        assert_eq!(full.kind(), crate::ErrorKind::LimitReached, "{full}");
        assert!(full.to_string().contains("catalog bytes"), "{full}");
        assert!(stored >= 90, "refused too early: {stored}");
        assert_eq!(pool.app_data(&format!("k{stored}")), None);
        let snaps = pool
            .create_snapshot("v", "s", &"d".repeat(4096))
            .unwrap_err();
        assert_eq!(snaps.kind(), crate::ErrorKind::LimitReached, "{snaps}");
        assert!(!matches!(snaps, Error::SnapshotLimit { .. }), "{snaps}");
        assert_eq!(pool.list_snapshots(None).unwrap().len(), 1);
        // Refusals are not failures: the pool still takes writes, and
        // whatever shrinks the catalog works however full it is.
        pool.delete_snapshot(early).unwrap();
        pool.delete_volume("w").unwrap();
        pool.delete_app_data("k0").unwrap();
        pool.volume("v")
            .unwrap()
            .write_at(&[8; 4096], 4096)
            .unwrap();
        pool.checkpoint().unwrap();
        let report = pool.check(false).unwrap();
        assert!(report.ok && report.leaked_blocks == 0, "{report:?}");
        drop(pool);
        let pool = Pool::open_in(Arc::new(disk)).unwrap();
        assert_eq!(pool.app_data("k0"), None);
        assert_eq!(pool.app_data("k1"), Some(vec![1; 40_000]));
        assert_eq!(pool.app_data(&format!("k{stored}")), None);
        assert!(pool.list_snapshots(None).unwrap().is_empty());
        assert_eq!(pool.list_volumes().len(), 1);
        assert_eq!(pool.volume_info("v").unwrap().allocated_bytes, 8192);
    }

    #[test]
    fn app_data_beyond_its_bounds_is_refused_whole() {
        let pool = Pool::create_in(Arc::new(SimDisk::new()), 4096).unwrap();
        let long_key = "k".repeat(crate::catalog::MAX_APP_KEY + 1);
        let big = vec![0; crate::catalog::MAX_APP_VALUE + 1];
        for changes in [
            vec![AppDataChange::Put(long_key.clone(), vec![1])],
            vec![AppDataChange::Put(String::new(), vec![1])],
            vec![
                AppDataChange::Put("ok".into(), vec![1]),
                AppDataChange::Put("big".into(), big),
            ],
        ] {
            let e = pool.change_app_data(changes).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
        }
        assert_eq!(
            pool.app_data("ok"),
            None,
            "a refused change applied in part"
        );
        let many: Vec<_> = (0..5)
            .map(|i| AppDataChange::Put(format!("m{i}"), vec![0; 15 << 20]))
            .collect();
        let e = pool.change_app_data(many).unwrap_err();
        assert!(e.to_string().contains("in one change"), "{e}");
        // A `_with` record past its reserved room is the embedder's bug: it
        // poisons rather than commit a change made halfway.
        pool.create_volume("v", 4096).unwrap();
        let e = pool
            .create_snapshot_with("v", "s", "", None, |_| {
                vec![AppDataChange::Put("r".into(), vec![0; 2 << 20])]
            })
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
        let after = pool.create_volume("w", 4096).unwrap_err();
        assert_eq!(after.kind(), crate::ErrorKind::Poisoned, "{after}");
    }
}
