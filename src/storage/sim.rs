//! A simulated disk for crash-consistency tests, model-based tests and fuzz
//! targets.
//!
//! A real disk holds two states that an ordinary test cannot tell apart: what
//! a read returns ("written") and what survives a power cut ("durable"). Only
//! `sync` turns the first into the second; anything written since may vanish,
//! survive, or survive in part. A test on real files therefore passes whether
//! or not the engine syncs in the right places.
//!
//! [`SimDisk`] keeps the two states apart explicitly, records every un-synced
//! operation per file, and can cut power after any operation or at any sync.
//! [`SimDisk::crash`] then builds the disk a reboot would find: the durable
//! content plus, chosen from a seed, each un-synced operation applied whole,
//! dropped, or (for writes) torn at 512-byte sector granularity. Enumerating
//! cut points and seeds lets crash tests prove durability instead of arguing
//! it. Transient faults (a write or sync that fails while the disk stays up)
//! exercise error paths the same way.
//!
//! Model, in short:
//! - Mutating operations are `write_at`, `sync`, `set_len` and `punch_hole`;
//!   they are counted and are what power cuts and injected faults hit. Reads,
//!   `len`, `open` and `exists` are not counted, but fail once power is off.
//! - `sync` applies to one file, like `fdatasync`. A file created by `open`
//!   exists after a crash (possibly empty): directory entries are treated as
//!   durable.
//! - Every range must end at or below [`MAX_FILE_LEN`], else the operation
//!   fails with `InvalidInput` and is not counted. Contents are sparse, so a
//!   large but legal length costs no memory until written.

use super::{Dir, Storage};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;

/// Largest file length, and largest end of any I/O range, the simulator
/// accepts (1 TiB): a stray offset becomes an error, not an absurd allocation.
pub const MAX_FILE_LEN: u64 = 1 << 40;

/// Granularity of torn writes: a crash keeps or loses each sector of an
/// un-synced write as a unit, as disks guarantee for aligned sectors.
pub const SECTOR_SIZE: u64 = 512;

/// Message of every error caused by a (simulated) power cut.
pub const POWER_CUT_MSG: &str = "simulated power cut";

/// Message of every error caused by transient fault injection.
pub const INJECTED_FAILURE_MSG: &str = "injected I/O failure";

/// Content is stored in pages of this size; a multiple of [`SECTOR_SIZE`].
const PAGE: usize = 4096;
const PAGE_U64: u64 = PAGE as u64;

fn power_cut_error() -> io::Error {
    io::Error::other(POWER_CUT_MSG)
}

fn injected_error() -> io::Error {
    io::Error::other(INJECTED_FAILURE_MSG)
}

/// Rejects ranges past [`MAX_FILE_LEN`] (and ones whose end overflows).
fn check_range(offset: u64, len: u64) -> io::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= MAX_FILE_LEN => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "range at offset {offset} of length {len} exceeds the simulated \
                 disk's limit of {MAX_FILE_LEN} bytes"
            ),
        )),
    }
}

/// The bytes of one file: a length plus sparse pages (absent pages read as
/// zeros). Pages are shared through `Arc`, so making a file durable or
/// copying a disk for a crash costs a pointer per page, not a data copy;
/// a page is copied only when written after being shared.
///
/// Invariant: no page lies wholly at or past `len`, and the bytes past `len`
/// in the last page are zero. Reads can therefore ignore `len`.
#[derive(Clone, Default)]
struct Content {
    len: u64,
    pages: BTreeMap<u64, Arc<[u8; PAGE]>>,
}

impl Content {
    fn from_bytes(bytes: &[u8]) -> Self {
        let mut content = Content::default();
        content.write(bytes, 0);
        content
    }

    /// Caller guarantees `offset + buf.len()` does not overflow.
    fn read(&self, buf: &mut [u8], offset: u64) {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let in_page = (pos % PAGE_U64) as usize;
            let n = (PAGE - in_page).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            match self.pages.get(&(pos / PAGE_U64)) {
                Some(page) => dst.copy_from_slice(&page[in_page..in_page + n]),
                None => dst.fill(0),
            }
            done += n;
        }
    }

    /// Caller guarantees `offset + data.len()` does not overflow.
    fn write(&mut self, data: &[u8], offset: u64) {
        // Like pwrite: an empty write does not extend the file.
        if data.is_empty() {
            return;
        }
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done as u64;
            let in_page = (pos % PAGE_U64) as usize;
            let n = (PAGE - in_page).min(data.len() - done);
            let page = self
                .pages
                .entry(pos / PAGE_U64)
                .or_insert_with(|| Arc::new([0; PAGE]));
            Arc::make_mut(page)[in_page..in_page + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self.len = self.len.max(offset + data.len() as u64);
    }

    fn set_len(&mut self, len: u64) {
        if len < self.len {
            // Keep the invariant: shrinking must zero what a later extension
            // would expose again.
            let dropped = self.pages.split_off(&len.div_ceil(PAGE_U64));
            drop(dropped);
            let tail = (len % PAGE_U64) as usize;
            if tail != 0 {
                if let Some(page) = self.pages.get_mut(&(len / PAGE_U64)) {
                    Arc::make_mut(page)[tail..].fill(0);
                }
            }
        }
        self.len = len;
    }

    /// Zeroes `[offset, offset+len)` without changing the length (like
    /// `FALLOC_FL_KEEP_SIZE`); bytes past the end are already zero.
    fn punch(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(self.len);
        if offset >= end {
            return;
        }
        // Visit only pages that exist: a huge hole over a sparse file is cheap.
        let touched: Vec<u64> = self
            .pages
            .range(offset / PAGE_U64..=(end - 1) / PAGE_U64)
            .map(|(&idx, _)| idx)
            .collect();
        for idx in touched {
            let start = idx * PAGE_U64;
            let lo = offset.max(start);
            let hi = end.min(start + PAGE_U64);
            if lo == start && hi == start + PAGE_U64 {
                self.pages.remove(&idx);
            } else if let Some(page) = self.pages.get_mut(&idx) {
                Arc::make_mut(page)[(lo - start) as usize..(hi - start) as usize].fill(0);
            }
        }
    }

    fn flip_bit(&mut self, offset: u64, bit: u8) {
        if offset >= self.len {
            return;
        }
        let page = self
            .pages
            .entry(offset / PAGE_U64)
            .or_insert_with(|| Arc::new([0; PAGE]));
        Arc::make_mut(page)[(offset % PAGE_U64) as usize] ^= 1 << (bit & 7);
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.len as usize];
        self.read(&mut out, 0);
        out
    }
}

/// An operation not yet made durable by a sync, kept so that a crash can
/// decide its fate.
#[derive(Clone)]
enum PendingOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
    Punch { offset: u64, len: u64 },
}

#[derive(Clone, Default)]
struct SimFileState {
    /// What reads see.
    written: Content,
    /// What survives a power cut.
    durable: Content,
    /// Mutations since the last successful sync, oldest first.
    pending: Vec<PendingOp>,
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, SimFileState>,
    op_count: u64,
    sync_count: u64,
    powered_off: bool,
    /// Power dies when a mutating op would get this index.
    cut_at_op: Option<u64>,
    /// Power dies when a sync would get this index.
    cut_at_sync: Option<u64>,
    /// The mutating op with this index fails once.
    fail_at_op: Option<u64>,
    fail_next_sync: bool,
}

impl State {
    fn check_powered(&self) -> io::Result<()> {
        if self.powered_off {
            Err(power_cut_error())
        } else {
            Ok(())
        }
    }

    /// Admits one (already validated) mutating operation: cuts power or
    /// injects a failure if one is due, and counts it. `Ok` means apply it.
    ///
    /// The op that meets a power cut is not counted: it never reached the
    /// disk. An op failed by injection is counted: the disk saw it and
    /// refused, so a retry is a new op.
    fn admit(&mut self, is_sync: bool) -> io::Result<()> {
        self.check_powered()?;
        let cut = self.cut_at_op.is_some_and(|n| self.op_count >= n)
            || (is_sync && self.cut_at_sync.is_some_and(|k| self.sync_count >= k));
        if cut {
            self.powered_off = true;
            return Err(power_cut_error());
        }
        let index = self.op_count;
        self.op_count = self.op_count.saturating_add(1);
        if is_sync {
            self.sync_count = self.sync_count.saturating_add(1);
        }
        if self.fail_at_op == Some(index) {
            self.fail_at_op = None;
            return Err(injected_error());
        }
        if is_sync && self.fail_next_sync {
            self.fail_next_sync = false;
            return Err(injected_error());
        }
        Ok(())
    }
}

/// splitmix64: tiny, fast, and good enough to pick crash outcomes; being
/// self-contained keeps outcomes stable across dependency upgrades.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

/// Re-applies one un-synced op to the durable content the way a power cut
/// might have left it. Choosing any subset of ops also covers reordering by
/// the disk's cache: a later op that survived while an earlier one did not.
fn replay(content: &mut Content, op: &PendingOp, rng: &mut SplitMix64) {
    match op {
        PendingOp::Write { offset, data } => match rng.next_u64() % 3 {
            0 => content.write(data, *offset),
            1 => {}
            _ => {
                // Torn: sectors are aligned to absolute file offsets, so the
                // first and last pieces may be partial sectors of the write.
                let end = offset + data.len() as u64;
                let mut pos = *offset;
                while pos < end {
                    let next = ((pos / SECTOR_SIZE + 1) * SECTOR_SIZE).min(end);
                    if rng.coin() {
                        let from = (pos - offset) as usize;
                        let to = (next - offset) as usize;
                        content.write(&data[from..to], pos);
                    }
                    pos = next;
                }
            }
        },
        PendingOp::SetLen(len) => {
            if rng.coin() {
                content.set_len(*len);
            }
        }
        PendingOp::Punch { offset, len } => {
            if rng.coin() {
                content.punch(*offset, *len);
            }
        }
    }
}

/// A simulated disk: a set of named files whose "written" and "durable"
/// contents are kept apart, with power cuts and fault injection on demand.
///
/// Clones share the same disk. Use it as a [`Dir`]; files are created on
/// first open, and opening a name twice gives the same file.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
    /// Called with a file's name as each sync on it begins, with no lock of
    /// the disk held, so a test can act inside a commit's window.
    before_sync: Arc<Mutex<Option<SyncHook>>>,
}

/// See [`SimDisk::before_sync`].
pub type SyncHook = Arc<dyn Fn(&str) + Send + Sync>;

impl SimDisk {
    /// An empty, powered disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// The disk a reboot after a power cut right now would find, as a new
    /// independent, powered [`SimDisk`] with zeroed counters and no faults
    /// armed. Each file holds its durable content with each un-synced op
    /// re-applied in order, chosen from `seed`: a write whole, dropped or
    /// torn per 512-byte sector; a `set_len` or `punch_hole` applied or
    /// dropped. The same seed on the same disk gives the same result.
    /// `self` is left untouched, so many seeds can be tried on one cut.
    pub fn crash(&self, seed: u64) -> SimDisk {
        let st = self.state.lock();
        let mut rng = SplitMix64(seed);
        let files = st
            .files
            .iter()
            .map(|(name, file)| {
                let mut content = file.durable.clone();
                for op in &file.pending {
                    replay(&mut content, op, &mut rng);
                }
                let state = SimFileState {
                    written: content.clone(),
                    durable: content,
                    pending: Vec::new(),
                };
                (name.clone(), state)
            })
            .collect();
        SimDisk {
            state: Arc::new(Mutex::new(State {
                files,
                ..State::default()
            })),
            before_sync: Arc::default(),
        }
    }

    /// Let `n` more mutating ops through; the next one, and every operation
    /// after it (reads included), fails with "simulated power cut" and
    /// changes nothing. Replaces any earlier `cut_power_after_ops`.
    pub fn cut_power_after_ops(&self, n: u64) {
        let mut st = self.state.lock();
        st.cut_at_op = Some(st.op_count.saturating_add(n));
    }

    /// Power dies at sync number `k` (0-based, counted from the creation of
    /// this disk): that sync fails with "simulated power cut", as does every
    /// later operation. If `k` syncs have already happened, the next sync
    /// is the one that fails.
    pub fn cut_power_at_sync(&self, k: u64) {
        self.state.lock().cut_at_sync = Some(k);
    }

    /// Run `hook(file name)` at the start of every later sync, before the
    /// sync is admitted (so the hook may cut power to make it fail). It runs
    /// on the syncing thread with no lock of the disk held.
    pub fn before_sync(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        *self.before_sync.lock() = Some(Arc::new(hook));
    }

    /// Power dies now: every later operation fails with "simulated power cut".
    pub fn cut_power_now(&self) {
        self.state.lock().powered_off = true;
    }

    /// Whether power has been cut.
    pub fn is_powered_off(&self) -> bool {
        self.state.lock().powered_off
    }

    /// Mutating ops (`write_at`, `sync`, `set_len`, `punch_hole`) accepted so
    /// far, including ones failed by injection but not ones rejected as
    /// invalid or cut off by power loss. Run a workload once, read this,
    /// then try `cut_power_after_ops(i)` for every `i` below it.
    pub fn op_count(&self) -> u64 {
        self.state.lock().op_count
    }

    /// Syncs accepted so far, counted the same way as [`Self::op_count`].
    pub fn sync_count(&self) -> u64 {
        self.state.lock().sync_count
    }

    /// Let `n` more mutating ops through; the next one fails once with
    /// "injected I/O failure" while the disk stays powered. The failed op
    /// changes nothing; a failed sync makes nothing durable and, like a real
    /// disk after a failed fsync, leaves the file's writes un-synced (a later
    /// crash may still lose them). Replaces any earlier `fail_op_after`.
    pub fn fail_op_after(&self, n: u64) {
        let mut st = self.state.lock();
        st.fail_at_op = Some(st.op_count.saturating_add(n));
    }

    /// The next sync (on any file) fails once with "injected I/O failure",
    /// with the same effect as a sync failed by [`Self::fail_op_after`].
    pub fn fail_next_sync(&self) {
        self.state.lock().fail_next_sync = true;
    }

    // Inspection and tampering. These act on the medium directly, so they
    // work with power off, are not counted and never fail. They are meant
    // for a quiescent disk (e.g. after `crash`); on a file with un-synced
    // ops, a later crash replays those ops over the tampered durable bytes.

    /// Names of all files, sorted.
    pub fn file_names(&self) -> Vec<String> {
        self.state.lock().files.keys().cloned().collect()
    }

    /// The written content (what reads see) of a file, if it exists.
    pub fn read_file(&self, name: &str) -> Option<Vec<u8>> {
        self.state
            .lock()
            .files
            .get(name)
            .map(|f| f.written.to_vec())
    }

    /// The durable content (what a crash keeps for sure) of a file, if it
    /// exists.
    pub fn read_durable_file(&self, name: &str) -> Option<Vec<u8>> {
        self.state
            .lock()
            .files
            .get(name)
            .map(|f| f.durable.to_vec())
    }

    /// Replaces a file's written and durable content with `bytes`, dropping
    /// its un-synced ops; creates the file if missing.
    pub fn write_file(&self, name: &str, bytes: &[u8]) {
        let content = Content::from_bytes(bytes);
        let state = SimFileState {
            written: content.clone(),
            durable: content,
            pending: Vec::new(),
        };
        self.state.lock().files.insert(name.to_owned(), state);
    }

    /// Flips bit `bit & 7` of the byte at `byte_offset` in both the written
    /// and the durable content. Offsets past a content's end, and missing
    /// files, are ignored.
    pub fn flip_bit(&self, name: &str, byte_offset: u64, bit: u8) {
        if let Some(f) = self.state.lock().files.get_mut(name) {
            f.written.flip_bit(byte_offset, bit);
            f.durable.flip_bit(byte_offset, bit);
        }
    }

    /// Sets the length of both the written and the durable content
    /// (extending with zeros); `len` is capped at [`MAX_FILE_LEN`]. Missing
    /// files are ignored.
    pub fn truncate_file(&self, name: &str, len: u64) {
        let len = len.min(MAX_FILE_LEN);
        if let Some(f) = self.state.lock().files.get_mut(name) {
            f.written.set_len(len);
            f.durable.set_len(len);
        }
    }
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("SimDisk")
            .field("files", &st.files.len())
            .field("op_count", &st.op_count)
            .field("sync_count", &st.sync_count)
            .field("powered_off", &st.powered_off)
            .finish()
    }
}

impl Dir for SimDisk {
    fn open(&self, name: &str) -> io::Result<Arc<dyn Storage>> {
        let mut st = self.state.lock();
        st.check_powered()?;
        st.files.entry(name.to_owned()).or_default();
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            before_sync: Arc::clone(&self.before_sync),
            name: name.to_owned(),
        }))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        let st = self.state.lock();
        st.check_powered()?;
        Ok(st.files.contains_key(name))
    }

    fn describe(&self) -> String {
        "sim-disk".to_owned()
    }
}

/// An open file of a [`SimDisk`]; all handles to a name share its state.
struct SimFile {
    state: Arc<Mutex<State>>,
    before_sync: Arc<Mutex<Option<SyncHook>>>,
    name: String,
}

impl SimFile {
    /// Runs a validated mutating op against this file's state if the disk
    /// admits it.
    fn mutate(&self, is_sync: bool, apply: impl FnOnce(&mut SimFileState)) -> io::Result<()> {
        let mut st = self.state.lock();
        st.admit(is_sync)?;
        // Files are never removed, but recreate rather than panic if absent.
        apply(st.files.entry(self.name.clone()).or_default());
        Ok(())
    }
}

impl Storage for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let st = self.state.lock();
        st.check_powered()?;
        check_range(offset, buf.len() as u64)?;
        match st.files.get(&self.name) {
            Some(f) => f.written.read(buf, offset),
            None => buf.fill(0),
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.state.lock().check_powered()?;
        check_range(offset, buf.len() as u64)?;
        self.mutate(false, |f| {
            f.written.write(buf, offset);
            if !buf.is_empty() {
                f.pending.push(PendingOp::Write {
                    offset,
                    data: buf.to_vec(),
                });
            }
        })
    }

    fn sync(&self) -> io::Result<()> {
        let hook = self.before_sync.lock().clone();
        if let Some(hook) = hook {
            hook(&self.name);
        }
        self.mutate(true, |f| {
            // Pages are shared, so this copies pointers, not data.
            f.durable = f.written.clone();
            f.pending.clear();
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.state.lock().check_powered()?;
        check_range(len, 0)?;
        self.mutate(false, |f| {
            f.written.set_len(len);
            f.pending.push(PendingOp::SetLen(len));
        })
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.state.lock();
        st.check_powered()?;
        Ok(st.files.get(&self.name).map_or(0, |f| f.written.len))
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        self.state.lock().check_powered()?;
        check_range(offset, len)?;
        self.mutate(false, |f| {
            f.written.punch(offset, len);
            if len > 0 {
                f.pending.push(PendingOp::Punch { offset, len });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(disk: &SimDisk, name: &str) -> Arc<dyn Storage> {
        disk.open(name).unwrap()
    }

    fn read(file: &dyn Storage, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0xEE; len];
        file.read_at(&mut buf, offset).unwrap();
        buf
    }

    fn is_power_cut(err: &io::Error) -> bool {
        err.to_string().contains("simulated power cut")
    }

    fn is_injected(err: &io::Error) -> bool {
        err.to_string().contains("injected I/O failure")
    }

    #[test]
    fn reads_see_writes_and_zeros_past_end() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(b"hello", 10).unwrap();
        assert_eq!(f.len().unwrap(), 15);
        let got = read(&*f, 8, 10);
        assert_eq!(&got, b"\0\0hello\0\0\0");
        // Writes spanning a page boundary land intact.
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        f.write_at(&data, 4000).unwrap();
        assert_eq!(read(&*f, 4000, data.len()), data);
        assert_eq!(f.len().unwrap(), 14_000);
    }

    #[test]
    fn same_name_opens_same_file() {
        let disk = SimDisk::new();
        assert!(!disk.exists("a").unwrap());
        let f1 = open(&disk, "a");
        let f2 = open(&disk, "a");
        assert!(disk.exists("a").unwrap());
        f1.write_at(b"xyz", 0).unwrap();
        assert_eq!(read(&*f2, 0, 3), b"xyz");
        assert_eq!(disk.file_names(), vec!["a".to_owned()]);
        assert_eq!(disk.describe(), "sim-disk");
    }

    #[test]
    fn synced_writes_survive_and_unsynced_may_vanish() {
        let disk = SimDisk::new();
        let f = open(&disk, "pool");
        f.write_at(&[1; 4096], 0).unwrap();
        f.sync().unwrap();
        f.write_at(&[2; 4096], 4096).unwrap();
        disk.cut_power_now();

        let (mut lost, mut kept) = (false, false);
        for seed in 0..64 {
            let after = disk.crash(seed);
            let bytes = after.read_file("pool").unwrap();
            assert_eq!(&bytes[..4096], &[1; 4096][..], "seed {seed}");
            match bytes.get(4096..8192) {
                Some(tail) if tail == [2; 4096] => kept = true,
                Some(tail) if tail.iter().all(|&b| b == 0) => lost = true,
                None => lost = true,
                Some(_) => {} // torn
            }
            // The crashed disk is powered and everything in it is durable.
            assert!(!after.is_powered_off());
            assert_eq!(after.read_durable_file("pool").unwrap(), bytes);
            open(&after, "pool").write_at(b"ok", 0).unwrap();
        }
        assert!(lost && kept, "lost={lost} kept={kept}");
    }

    #[test]
    fn synced_overwrites_are_not_undone_by_a_crash() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(&[1; 1024], 0).unwrap();
        f.sync().unwrap();
        f.write_at(&[3; 1024], 0).unwrap();
        f.sync().unwrap();
        f.write_at(&[4; 10], 2048).unwrap();
        for seed in 0..64 {
            let bytes = disk.crash(seed).read_file("a").unwrap();
            assert_eq!(&bytes[..1024], &[3; 1024][..], "seed {seed}");
        }
    }

    #[test]
    fn crash_leaves_old_disk_untouched_and_new_one_independent() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(b"before", 0).unwrap();
        let after = disk.crash(7);
        let g = open(&after, "a");
        g.write_at(b"AFTER!", 0).unwrap();
        assert_eq!(read(&*f, 0, 6), b"before");
        f.write_at(b"still!", 0).unwrap();
        assert_eq!(read(&*g, 0, 6), b"AFTER!");
        assert!(!disk.is_powered_off());
    }

    #[test]
    fn torn_writes_mix_only_whole_sectors() {
        const OLD: u8 = 0xAA;
        const NEW: u8 = 0xBB;
        // Unaligned on purpose: the first and last pieces are partial sectors.
        let (start, len) = (100u64, 5000usize);
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(&[OLD; 8192], 0).unwrap();
        f.sync().unwrap();
        f.write_at(&vec![NEW; len], start).unwrap();

        let mut mixed = false;
        for seed in 0..200 {
            let bytes = disk.crash(seed).read_file("a").unwrap();
            assert_eq!(bytes.len(), 8192);
            let end = start as usize + len;
            assert!(bytes[..start as usize].iter().all(|&b| b == OLD));
            assert!(bytes[end..].iter().all(|&b| b == OLD));
            let mut seen = [false; 2];
            for sector in (0..8192).step_by(512) {
                let lo = sector.max(start as usize);
                let hi = (sector + 512).min(end);
                if lo >= hi {
                    continue;
                }
                let piece = &bytes[lo..hi];
                let first = piece[0];
                assert!(first == OLD || first == NEW, "seed {seed}");
                assert!(
                    piece.iter().all(|&b| b == first),
                    "seed {seed}: sector at {sector} mixes old and new bytes"
                );
                seen[usize::from(first == NEW)] = true;
            }
            mixed |= seen[0] && seen[1];
        }
        assert!(mixed, "no seed produced a torn write");
    }

    #[test]
    fn crash_is_deterministic_per_seed() {
        let disk = SimDisk::new();
        for name in ["a", "b"] {
            let f = open(&disk, name);
            for i in 0..20u64 {
                f.write_at(&[i as u8 + 1; 700], i * 300).unwrap();
            }
            f.punch_hole(1000, 2000).unwrap();
            f.set_len(5000).unwrap();
        }
        let snapshot = |seed| {
            let d = disk.crash(seed);
            (d.read_file("a"), d.read_file("b"))
        };
        let mut differ = false;
        for seed in 0..16 {
            assert_eq!(snapshot(seed), snapshot(seed));
            differ |= snapshot(seed) != snapshot(seed + 1000);
        }
        assert!(differ, "different seeds should give different outcomes");
    }

    #[test]
    fn cut_power_at_sync_fails_that_sync_and_everything_after() {
        let disk = SimDisk::new();
        disk.cut_power_at_sync(1);
        let f = open(&disk, "a");
        f.write_at(b"one", 0).unwrap();
        f.sync().unwrap(); // sync 0
        f.write_at(b"two", 3).unwrap();
        let err = f.sync().unwrap_err(); // sync 1
        assert!(is_power_cut(&err), "{err}");
        assert!(disk.is_powered_off());
        assert_eq!(disk.sync_count(), 1);
        assert_eq!(disk.op_count(), 3);

        let mut buf = [0u8; 3];
        assert!(is_power_cut(&f.read_at(&mut buf, 0).unwrap_err()));
        assert!(is_power_cut(&f.write_at(b"x", 0).unwrap_err()));
        assert!(is_power_cut(&f.len().unwrap_err()));
        assert!(is_power_cut(&f.punch_hole(0, 1).unwrap_err()));
        assert!(is_power_cut(&f.set_len(0).unwrap_err()));
        assert!(is_power_cut(&disk.open("b").err().unwrap()));
        assert_eq!(disk.op_count(), 3);

        // The failed sync made nothing durable: "two" may or may not survive.
        assert_eq!(disk.read_durable_file("a").unwrap(), b"one");
        for seed in 0..16 {
            let bytes = disk.crash(seed).read_file("a").unwrap();
            assert_eq!(&bytes[..3], b"one");
        }
    }

    #[test]
    fn cut_power_after_ops_lets_exactly_n_through() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(b"x", 0).unwrap();
        disk.cut_power_after_ops(2);
        f.write_at(b"y", 1).unwrap();
        // Reads are not counted.
        assert_eq!(read(&*f, 0, 2), b"xy");
        f.sync().unwrap();
        let err = f.write_at(b"z", 2).unwrap_err();
        assert!(is_power_cut(&err));
        assert_eq!(disk.op_count(), 3);
        assert_eq!(disk.read_file("a").unwrap(), b"xy");
        assert!(is_power_cut(&f.sync().unwrap_err()));
        assert_eq!(disk.crash(0).read_file("a").unwrap(), b"xy");
    }

    #[test]
    fn fail_op_after_fails_exactly_one_op() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        disk.fail_op_after(1);
        f.write_at(b"aaaa", 0).unwrap();
        let err = f.write_at(b"bb", 1).unwrap_err();
        assert!(is_injected(&err), "{err}");
        assert!(!disk.is_powered_off());
        assert_eq!(read(&*f, 0, 4), b"aaaa");
        f.write_at(b"cc", 2).unwrap();
        f.sync().unwrap();
        f.punch_hole(0, 1).unwrap();
        assert_eq!(read(&*f, 0, 4), b"\0acc");
        assert_eq!(disk.op_count(), 5);

        // A failed punch changes nothing either.
        disk.fail_op_after(0);
        assert!(is_injected(&f.punch_hole(0, 4).unwrap_err()));
        assert_eq!(read(&*f, 0, 4), b"\0acc");
    }

    #[test]
    fn failed_sync_keeps_writes_pending() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(&[5; 1024], 0).unwrap();
        disk.fail_next_sync();
        assert!(is_injected(&f.sync().unwrap_err()));
        assert_eq!(disk.sync_count(), 1);
        assert_eq!(disk.read_durable_file("a").unwrap(), b"");
        let lost = (0..32).any(|seed| disk.crash(seed).read_file("a").unwrap() != [5; 1024]);
        assert!(lost, "writes behind a failed sync must stay losable");

        f.sync().unwrap();
        for seed in 0..8 {
            assert_eq!(disk.crash(seed).read_file("a").unwrap(), [5; 1024]);
        }
    }

    #[test]
    fn punch_hole_zeroes_without_changing_length() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(&[0xFF; 10_000], 0).unwrap();
        f.punch_hole(1000, 5000).unwrap();
        assert_eq!(f.len().unwrap(), 10_000);
        let bytes = disk.read_file("a").unwrap();
        assert!(bytes[..1000].iter().all(|&b| b == 0xFF));
        assert!(bytes[1000..6000].iter().all(|&b| b == 0));
        assert!(bytes[6000..].iter().all(|&b| b == 0xFF));
        // Past the end: no effect, no growth.
        f.punch_hole(9_000, 1 << 30).unwrap();
        assert_eq!(f.len().unwrap(), 10_000);
        assert!(read(&*f, 9_000, 1000).iter().all(|&b| b == 0));
        f.punch_hole(5, 0).unwrap();
        assert_eq!(read(&*f, 5, 1), [0xFF]);
    }

    #[test]
    fn set_len_truncates_and_extends_with_zeros() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(&[0xFF; 9000], 0).unwrap();
        f.set_len(500).unwrap();
        assert_eq!(f.len().unwrap(), 500);
        assert!(read(&*f, 400, 200)[100..].iter().all(|&b| b == 0));
        // Bytes cut off must not come back when the file grows again.
        f.set_len(9000).unwrap();
        let bytes = disk.read_file("a").unwrap();
        assert_eq!(bytes.len(), 9000);
        assert!(bytes[..500].iter().all(|&b| b == 0xFF));
        assert!(bytes[500..].iter().all(|&b| b == 0));
    }

    #[test]
    fn unsynced_set_len_and_punch_are_applied_or_dropped() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        f.write_at(&[7; 4096], 0).unwrap();
        f.sync().unwrap();
        f.set_len(1024).unwrap();
        let g = open(&disk, "b");
        g.write_at(&[9; 4096], 0).unwrap();
        g.sync().unwrap();
        g.punch_hole(0, 2048).unwrap();

        let mut seen_a = (false, false);
        let mut seen_b = (false, false);
        for seed in 0..64 {
            let after = disk.crash(seed);
            match after.read_file("a").unwrap() {
                a if a == [7; 4096] => seen_a.0 = true,
                a if a == [7; 1024] => seen_a.1 = true,
                a => panic!("seed {seed}: unexpected length {}", a.len()),
            }
            let b = after.read_file("b").unwrap();
            assert_eq!(b.len(), 4096);
            assert!(b[2048..].iter().all(|&x| x == 9));
            if b[..2048].iter().all(|&x| x == 9) {
                seen_b.0 = true;
            } else {
                assert!(b[..2048].iter().all(|&x| x == 0), "seed {seed}");
                seen_b.1 = true;
            }
        }
        assert_eq!(seen_a, (true, true));
        assert_eq!(seen_b, (true, true));
    }

    #[test]
    fn huge_offsets_are_rejected_without_panicking() {
        let disk = SimDisk::new();
        let f = open(&disk, "a");
        let invalid = |r: io::Result<()>| {
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        };
        invalid(f.write_at(b"x", u64::MAX));
        invalid(f.write_at(b"x", MAX_FILE_LEN));
        invalid(f.read_at(&mut [0; 4], u64::MAX - 1));
        invalid(f.set_len(MAX_FILE_LEN + 1));
        invalid(f.punch_hole(u64::MAX, u64::MAX));
        // Rejected ops are not counted and change nothing.
        assert_eq!(disk.op_count(), 0);
        assert_eq!(f.len().unwrap(), 0);

        // Large but legal lengths are sparse, so they cost no memory.
        f.set_len(MAX_FILE_LEN).unwrap();
        f.write_at(b"end", MAX_FILE_LEN - 3).unwrap();
        assert_eq!(read(&*f, MAX_FILE_LEN - 5, 5), b"\0\0end");
        f.punch_hole(0, MAX_FILE_LEN).unwrap();
        assert_eq!(read(&*f, MAX_FILE_LEN - 3, 3), b"\0\0\0");
        f.set_len(0).unwrap();

        disk.flip_bit("a", u64::MAX, 255);
        disk.flip_bit("missing", 0, 0);
        disk.truncate_file("missing", 5);
        disk.truncate_file("a", u64::MAX);
        assert_eq!(f.len().unwrap(), MAX_FILE_LEN);
        disk.truncate_file("a", 0);
        disk.cut_power_after_ops(u64::MAX);
        disk.fail_op_after(u64::MAX);
        f.write_at(b"fine", 0).unwrap();
    }

    #[test]
    fn tampering_helpers_change_written_and_durable_content() {
        let disk = SimDisk::new();
        disk.write_file("sb", &[0u8; 16]);
        assert_eq!(disk.file_names(), vec!["sb".to_owned()]);
        assert!(disk.read_file("nope").is_none());

        disk.flip_bit("sb", 3, 2);
        disk.flip_bit("sb", 3, 10); // bit 10 & 7 == 2: flips it back
        disk.flip_bit("sb", 4, 7);
        let mut expected = [0u8; 16];
        expected[4] = 0x80;
        assert_eq!(disk.read_file("sb").unwrap(), expected);
        assert_eq!(disk.crash(1).read_file("sb").unwrap(), expected);

        disk.truncate_file("sb", 5);
        assert_eq!(disk.read_file("sb").unwrap(), &expected[..5]);
        assert_eq!(disk.crash(2).read_file("sb").unwrap(), &expected[..5]);

        // write_file drops pending ops: the replaced content is all durable.
        let f = open(&disk, "sb");
        f.write_at(b"pending", 0).unwrap();
        disk.write_file("sb", b"fresh");
        for seed in 0..8 {
            assert_eq!(disk.crash(seed).read_file("sb").unwrap(), b"fresh");
        }
        // Tampering works on a powered-off disk too.
        disk.cut_power_now();
        disk.flip_bit("sb", 0, 0);
        assert_eq!(disk.read_file("sb").unwrap(), b"gresh");
        assert!(format!("{disk:?}").contains("powered_off: true"));
    }
}
