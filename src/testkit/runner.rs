//! Runs [`Op`] sequences against a pool on a [`SimDisk`] and the [`Model`]
//! side by side.
//!
//! - [`run_model`]: no faults; after every op every volume and snapshot must
//!   read exactly as modelled, and at the end `check(false)` must be clean
//!   (ok, no leaks) before and after a reopen.
//! - [`run_crash`]: cut power at a sync index or after a number of disk
//!   operations, rebuild the disk with [`SimDisk::crash`] for each seed,
//!   reopen and verify the durability contract: committed snapshots exact,
//!   each volume byte its last durable value or one written since, the
//!   in-flight operation either applied or not, `check(false).ok`; then keep
//!   using the recovered pool and verify it exactly again.
//!
//! Every failure is an `Err(String)` naming the op, the object and the byte.

use super::model::{Model, SnapshotModel, VolumeModel};
use super::op::Op;
use crate::storage::sim::SimDisk;
use crate::{CheckReport, Pool};
use std::sync::Arc;

/// Data block size of the default [`Layout`].
pub const BLOCK_SIZE: u32 = 4096;
/// Sizes of the volumes the default [`Layout`] starts with (one unaligned).
pub const INITIAL_VOLUME_SIZES: [u64; 3] = [64 * 1024, 100_000, 256 * 1024];

/// The pool a run starts from: its block size and its volumes' sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub block_size: u32,
    pub volume_sizes: Vec<u64>,
    /// Longest single write, zero or discard.
    pub max_io_len: u64,
}

impl Layout {
    /// 4 KiB blocks and small volumes: every map is a single leaf.
    pub fn small() -> Layout {
        Layout {
            block_size: BLOCK_SIZE,
            volume_sizes: INITIAL_VOLUME_SIZES.to_vec(),
            max_io_len: MAX_IO_LEN,
        }
    }

    /// 4 KiB blocks with a third volume of 3 MiB + a bit (778 blocks): its
    /// map has a root above two leaves, so inner nodes are shadowed, shared
    /// and freed.
    pub fn two_level() -> Layout {
        Layout {
            block_size: BLOCK_SIZE,
            volume_sizes: vec![64 * 1024, 100_000, (3 << 20) + 12_345],
            max_io_len: MAX_IO_LEN,
        }
    }

    /// The default 64 KiB blocks: most writes are partial-block
    /// copy-on-writes, and a volume ends inside a block.
    pub fn big_blocks() -> Layout {
        Layout {
            block_size: 64 * 1024,
            volume_sizes: vec![64 * 1024, 300_000, 1 << 20],
            // Room for whole-block writes, and runs of them.
            max_io_len: 4 * 64 * 1024,
        }
    }
}

impl Default for Layout {
    fn default() -> Layout {
        Layout::small()
    }
}
/// `Clone` is skipped once this many volumes exist.
pub const MAX_VOLUMES: usize = 6;
/// `CreateSnapshot` is skipped once this many snapshots exist.
pub const MAX_SNAPSHOTS: usize = 24;
/// Longest single write, zero or discard.
pub const MAX_IO_LEN: u64 = 32 * 1024;

/// The ops run after a crash on the recovered pool, verified exactly.
pub const AFTER_CRASH_OPS: [Op; 9] = [
    Op::Write {
        vol: 0,
        offset: 0,
        len: 12_288,
        seed: 7,
    },
    Op::Write {
        vol: 1,
        offset: 5000,
        len: 9000,
        seed: 9,
    },
    Op::CreateSnapshot { vol: 0 },
    Op::Write {
        vol: 0,
        offset: 4096,
        len: 4096,
        seed: 11,
    },
    Op::Discard {
        vol: 1,
        offset: 0,
        len: 8192,
    },
    Op::DeleteSnapshot { snap: 0 },
    Op::Restore { snap: 255 },
    Op::Flush,
    Op::Reopen,
];

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bytes of a write: all zeros when `seed % 16 == 0`, else pseudo-random
/// bytes that differ for every `nonce`, so stale or misplaced data shows.
pub fn pattern(nonce: u64, seed: u8, len: usize) -> Vec<u8> {
    if seed.is_multiple_of(16) {
        return vec![0; len];
    }
    let mut x = nonce.wrapping_mul(0x1000_0000_01B3) ^ ((seed as u64) << 48);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut x).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reduce an op's raw offset and length to a non-empty range of the volume,
/// at most `max_len` long.
pub fn io_range(size: u64, offset: u32, len: u32, max_len: u64) -> (u64, u64) {
    let off = offset as u64 % size;
    let max = (size - off).min(max_len);
    (off, (len as u64).clamp(1, max))
}

/// An [`Op`] resolved against the model's current state.
#[derive(Debug, Clone)]
enum Step {
    Write {
        vol: String,
        offset: u64,
        data: Vec<u8>,
    },
    Zero {
        vol: String,
        offset: u64,
        len: u64,
        discard: bool,
    },
    Flush,
    Snapshot {
        vol: String,
        name: String,
    },
    Restore {
        snap: usize,
    },
    DeleteSnapshot {
        snap: usize,
    },
    Clone {
        snap: usize,
        name: String,
    },
    DeleteVolume {
        vol: String,
    },
    Reopen,
    Checkpoint,
}

fn engine_err(what: &str, e: crate::Error) -> String {
    format!("{what}: {:?} error: {e}", e.kind())
}

/// Index and a short description of the first difference, if any.
fn first_diff(actual: &[u8], expected: &[u8], block_size: u32) -> Option<String> {
    if actual.len() != expected.len() {
        return Some(format!(
            "length {} instead of {}",
            actual.len(),
            expected.len()
        ));
    }
    // Whole-slice equality is one memcmp; fuzz builds instrument every
    // byte comparison of a loop.
    if actual == expected {
        return None;
    }
    let first = actual.iter().zip(expected).position(|(a, b)| a != b)?;
    let count = actual.iter().zip(expected).filter(|(a, b)| a != b).count();
    Some(format!(
        "byte {first} (block {}) reads {:#04x}, expected {:#04x}; {count} bytes differ",
        first / block_size as usize,
        actual[first],
        expected[first]
    ))
}

/// A pool on a simulated disk plus its model.
pub struct Harness {
    pub disk: SimDisk,
    pool: Option<Pool>,
    pub model: Model,
    nonce: u64,
    block_size: u32,
    max_io_len: u64,
}

impl Harness {
    /// A new pool on `disk` with the default [`Layout`], all durable.
    pub fn new(disk: SimDisk) -> Result<Harness, String> {
        Harness::with_layout(disk, &Layout::default())
    }

    /// A new pool on `disk` laid out as `layout`, all durable.
    pub fn with_layout(disk: SimDisk, layout: &Layout) -> Result<Harness, String> {
        let pool = Pool::create_in(Arc::new(disk.clone()), layout.block_size)
            .map_err(|e| engine_err("creating pool", e))?;
        let mut model = Model::new();
        for &size in &layout.volume_sizes {
            let name = model.fresh_name("v");
            pool.create_volume(&name, size)
                .map_err(|e| engine_err("creating volume", e))?;
            model
                .volumes
                .push(VolumeModel::new(name, vec![0; size as usize]));
        }
        Ok(Harness {
            disk,
            pool: Some(pool),
            model,
            nonce: 0,
            block_size: layout.block_size,
            max_io_len: layout.max_io_len,
        })
    }

    /// Continue with an open pool whose content `model` describes exactly.
    pub fn resume(disk: SimDisk, pool: Pool, model: Model, nonce: u64) -> Harness {
        let block_size = pool.block_size();
        Harness {
            disk,
            pool: Some(pool),
            model,
            nonce,
            block_size,
            max_io_len: MAX_IO_LEN,
        }
    }

    pub fn pool(&self) -> Result<&Pool, String> {
        self.pool
            .as_ref()
            .ok_or_else(|| "pool is not open (an earlier reopen failed)".to_string())
    }

    /// Give up the pool handle (dropping it later is the caller's business).
    pub fn take_pool(&mut self) -> Option<Pool> {
        self.pool.take()
    }

    fn plan(&mut self, op: &Op) -> Option<Step> {
        let m = &mut self.model;
        let max_io_len = self.max_io_len;
        let io = |m: &Model, vol: u8, offset: u32, len: u32| {
            let v = &m.volumes[m.pick_volume(vol)?];
            let (off, len) = io_range(v.size(), offset, len, max_io_len);
            Some((v.name.clone(), off, len))
        };
        Some(match *op {
            Op::Write {
                vol,
                offset,
                len,
                seed,
            } => {
                let (vol, offset, len) = io(m, vol, offset, len)?;
                self.nonce += 1;
                Step::Write {
                    vol,
                    offset,
                    data: pattern(self.nonce, seed, len as usize),
                }
            }
            Op::WriteZeroes { vol, offset, len } => {
                let (vol, offset, len) = io(m, vol, offset, len)?;
                Step::Zero {
                    vol,
                    offset,
                    len,
                    discard: false,
                }
            }
            Op::Discard { vol, offset, len } => {
                let (vol, offset, len) = io(m, vol, offset, len)?;
                Step::Zero {
                    vol,
                    offset,
                    len,
                    discard: true,
                }
            }
            Op::Flush => Step::Flush,
            Op::CreateSnapshot { vol } => {
                if m.snapshots.len() >= MAX_SNAPSHOTS {
                    return None;
                }
                let vol = m.volumes[m.pick_volume(vol)?].name.clone();
                Step::Snapshot {
                    vol,
                    name: m.fresh_name("s"),
                }
            }
            Op::Restore { snap } => Step::Restore {
                snap: m.pick_snapshot(snap)?,
            },
            Op::DeleteSnapshot { snap } => Step::DeleteSnapshot {
                snap: m.pick_snapshot(snap)?,
            },
            Op::Clone { snap } => {
                if m.volumes.len() >= MAX_VOLUMES {
                    return None;
                }
                let snap = m.pick_snapshot(snap)?;
                Step::Clone {
                    snap,
                    name: m.fresh_name("c"),
                }
            }
            Op::DeleteVolume { vol } => {
                if m.volumes.len() <= 1 {
                    return None;
                }
                Step::DeleteVolume {
                    vol: m.volumes[m.pick_volume(vol)?].name.clone(),
                }
            }
            Op::Reopen => Step::Reopen,
            Op::Checkpoint => Step::Checkpoint,
        })
    }

    /// Run a step on the engine; `Ok(Some(id))` for a created snapshot.
    fn exec(&mut self, step: &Step) -> Result<Option<u64>, String> {
        if let Step::Reopen = step {
            let pool = self.pool.take().ok_or("pool is not open")?;
            pool.close().map_err(|e| engine_err("close", e))?;
            let pool = Pool::open_in(Arc::new(self.disk.clone()))
                .map_err(|e| engine_err("open after clean close", e))?;
            self.pool = Some(pool);
            return Ok(None);
        }
        let pool = self.pool()?;
        let snap_id = |i: usize| self.model.snapshots[i].id;
        let vol = |name: &str| {
            pool.volume(name)
                .map_err(|e| engine_err(&format!("opening volume {name}"), e))
        };
        match step {
            Step::Write {
                vol: name,
                offset,
                data,
            } => vol(name)?
                .write_at(data, *offset)
                .map_err(|e| engine_err("write_at", e))?,
            Step::Zero {
                vol: name,
                offset,
                len,
                discard: true,
            } => vol(name)?
                .discard(*offset, *len)
                .map_err(|e| engine_err("discard", e))?,
            Step::Zero {
                vol: name,
                offset,
                len,
                discard: false,
            } => vol(name)?
                .write_zeroes(*offset, *len)
                .map_err(|e| engine_err("write_zeroes", e))?,
            Step::Flush => pool.flush().map_err(|e| engine_err("flush", e))?,
            Step::Snapshot { vol, name } => {
                let info = pool
                    .create_snapshot(vol, name, "")
                    .map_err(|e| engine_err("create_snapshot", e))?;
                return Ok(Some(info.id));
            }
            Step::Restore { snap } => {
                pool.restore_snapshot(snap_id(*snap))
                    .map_err(|e| engine_err("restore_snapshot", e))?;
            }
            Step::DeleteSnapshot { snap } => pool
                .delete_snapshot(snap_id(*snap))
                .map_err(|e| engine_err("delete_snapshot", e))?,
            Step::Clone { snap, name } => {
                pool.clone_snapshot(snap_id(*snap), name)
                    .map_err(|e| engine_err("clone_snapshot", e))?;
            }
            Step::DeleteVolume { vol } => pool
                .delete_volume(vol)
                .map_err(|e| engine_err("delete_volume", e))?,
            Step::Checkpoint => pool.checkpoint().map_err(|e| engine_err("checkpoint", e))?,
            Step::Reopen => unreachable!("handled above"),
        }
        Ok(None)
    }

    /// The step returned Ok: the model follows.
    fn completed(&mut self, step: Step, snap_id: Option<u64>) {
        let m = &mut self.model;
        match step {
            Step::Write { vol, offset, data } => {
                if let Some(v) = m.volume_mut(&vol) {
                    v.write(offset, &data);
                }
            }
            Step::Zero {
                vol, offset, len, ..
            } => {
                if let Some(v) = m.volume_mut(&vol) {
                    v.write(offset, &vec![0; len as usize]);
                }
            }
            Step::Flush | Step::Reopen | Step::Checkpoint => m.mark_all_durable(),
            Step::Snapshot { vol, name } => {
                let data = m.volume(&vol).map(|v| v.data.clone()).unwrap_or_default();
                m.snapshots.push(SnapshotModel {
                    name,
                    volume: vol,
                    id: snap_id.unwrap_or(0),
                    data,
                    maybe: false,
                });
                m.mark_all_durable();
            }
            Step::Restore { snap } => {
                let s = m.snapshots[snap].clone();
                if let Some(v) = m.volume_mut(&s.volume) {
                    v.data = s.data;
                }
                m.mark_all_durable();
            }
            Step::DeleteSnapshot { snap } => {
                m.snapshots.remove(snap);
                m.mark_all_durable();
            }
            Step::Clone { snap, name } => {
                let data = m.snapshots[snap].data.clone();
                m.volumes.push(VolumeModel::new(name, data));
                m.mark_all_durable();
            }
            // The contract makes only the delete itself durable, so other
            // volumes' pending writes stay pending in the model.
            Step::DeleteVolume { vol } => m.delete_volume(&vol),
        }
    }

    /// The step failed because power was cut during it: it may have
    /// reached the disk in whole or in part.
    fn in_flight(&mut self, step: Step) {
        let m = &mut self.model;
        match step {
            Step::Write { vol, offset, data } => {
                if let Some(v) = m.volume_mut(&vol) {
                    v.write_maybe(offset, &data);
                }
            }
            Step::Zero {
                vol, offset, len, ..
            } => {
                if let Some(v) = m.volume_mut(&vol) {
                    v.write_maybe(offset, &vec![0; len as usize]);
                }
            }
            Step::Flush | Step::Reopen | Step::Checkpoint => {}
            Step::Snapshot { vol, name } => {
                let data = m.volume(&vol).map(|v| v.data.clone()).unwrap_or_default();
                m.snapshots.push(SnapshotModel {
                    name,
                    volume: vol,
                    id: 0,
                    data,
                    maybe: true,
                });
            }
            Step::Restore { snap } => {
                let s = m.snapshots[snap].clone();
                if let Some(v) = m.volume_mut(&s.volume) {
                    v.alternative = Some(s.data);
                }
            }
            Step::DeleteSnapshot { snap } => m.snapshots[snap].maybe = true,
            Step::Clone { snap, name } => {
                let data = m.snapshots[snap].data.clone();
                m.volumes.push(VolumeModel {
                    maybe: true,
                    ..VolumeModel::new(name, data)
                });
            }
            Step::DeleteVolume { vol } => {
                if let Some(v) = m.volume_mut(&vol) {
                    v.maybe = true;
                }
                for s in m.snapshots.iter_mut().filter(|s| s.volume == vol) {
                    s.maybe = true;
                }
            }
        }
    }

    /// Apply one op to engine and model; an engine error is a failure.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        let Some(step) = self.plan(op) else {
            return Ok(());
        };
        let id = self.exec(&step)?;
        self.completed(step, id);
        Ok(())
    }

    /// Every volume and snapshot reads exactly as modelled, the listings
    /// match, and unallocated ranges are zeros in the model.
    pub fn verify(&self) -> Result<(), String> {
        let pool = self.pool()?;
        let m = &self.model;
        let mut listed: Vec<(String, u64)> = pool
            .list_volumes()
            .into_iter()
            .map(|v| (v.name, v.size_bytes))
            .collect();
        listed.sort();
        let mut want: Vec<(String, u64)> = m
            .volumes
            .iter()
            .map(|v| (v.name.clone(), v.size()))
            .collect();
        want.sort();
        if listed != want {
            return Err(format!("volumes listed {listed:?}, model has {want:?}"));
        }
        for v in &m.volumes {
            let handle = pool
                .volume(&v.name)
                .map_err(|e| engine_err(&format!("opening volume {}", v.name), e))?;
            let mut buf = vec![0xA5u8; v.data.len()];
            handle
                .read_at(&mut buf, 0)
                .map_err(|e| engine_err(&format!("reading volume {}", v.name), e))?;
            if let Some(d) = first_diff(&buf, &v.data, self.block_size) {
                return Err(format!("volume {}: {d}", v.name));
            }
            let extents = handle
                .allocation(0, v.size())
                .map_err(|e| engine_err(&format!("allocation of volume {}", v.name), e))?;
            let zeros = vec![0u8; v.data.len()];
            for (off, len, alloc) in extents {
                let range = &v.data[off as usize..(off + len) as usize];
                if !alloc && range != &zeros[..range.len()] {
                    return Err(format!(
                        "volume {}: {len} bytes at {off} reported unallocated but hold data",
                        v.name
                    ));
                }
            }
        }
        let mut listed: Vec<(u64, String, String)> = pool
            .list_snapshots(None)
            .map_err(|e| engine_err("list_snapshots", e))?
            .into_iter()
            .map(|s| (s.id, s.name, s.volume_name))
            .collect();
        listed.sort();
        let mut want: Vec<(u64, String, String)> = m
            .snapshots
            .iter()
            .map(|s| (s.id, s.name.clone(), s.volume.clone()))
            .collect();
        want.sort();
        if listed != want {
            return Err(format!("snapshots listed {listed:?}, model has {want:?}"));
        }
        for s in &m.snapshots {
            let got = read_snapshot(pool, s.id, s.data.len())?;
            if let Some(d) = first_diff(&got, &s.data, self.block_size) {
                return Err(format!(
                    "snapshot {} ({}) of {}: {d}",
                    s.id, s.name, s.volume
                ));
            }
        }
        let stats = pool.stats();
        if stats.volumes != m.volumes.len() as u64 || stats.snapshots != m.snapshots.len() as u64 {
            return Err(format!(
                "stats count {} volumes, {} snapshots",
                stats.volumes, stats.snapshots
            ));
        }
        Ok(())
    }

    /// No mapped block holds only zeros: zero writes, whole or partial,
    /// leave holes. (Only without crashes: a torn write may leave one.)
    pub fn verify_no_stored_zero_blocks(&self) -> Result<(), String> {
        let pool = self.pool()?;
        let bs = self.block_size as u64;
        for v in &self.model.volumes {
            let handle = pool
                .volume(&v.name)
                .map_err(|e| engine_err(&format!("opening volume {}", v.name), e))?;
            let extents = handle
                .allocation(0, v.size())
                .map_err(|e| engine_err(&format!("allocation of volume {}", v.name), e))?;
            for (off, len, alloc) in extents {
                let mut at = off;
                while alloc && at < off + len {
                    let end = ((at / bs + 1) * bs).min(v.size());
                    if v.data[at as usize..end as usize].iter().all(|&b| b == 0) {
                        return Err(format!(
                            "volume {}: block {} is stored but holds only zeros",
                            v.name,
                            at / bs
                        ));
                    }
                    at = end;
                }
            }
        }
        Ok(())
    }

    /// Every volume and snapshot exported as a raw file reads exactly as
    /// modelled.
    pub fn verify_exports(&self) -> Result<(), String> {
        let pool = self.pool()?;
        let dir = tempfile_dir()?;
        let out = dir.join("export.raw");
        let compare = |what: &str, want: &[u8]| -> Result<(), String> {
            let got = std::fs::read(&out).map_err(|e| format!("reading export of {what}: {e}"))?;
            match first_diff(&got, want, self.block_size) {
                Some(d) => Err(format!("export of {what}: {d}")),
                None => Ok(()),
            }
        };
        let result = (|| {
            for v in &self.model.volumes {
                pool.export_volume(&v.name, &out, &mut |_, _| {})
                    .map_err(|e| engine_err(&format!("exporting volume {}", v.name), e))?;
                compare(&format!("volume {}", v.name), &v.data)?;
            }
            for s in &self.model.snapshots {
                pool.export_snapshot(s.id, &out, &mut |_, _| {})
                    .map_err(|e| engine_err(&format!("exporting snapshot {}", s.id), e))?;
                compare(&format!("snapshot {}", s.id), &s.data)?;
            }
            Ok(())
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// `check(false)`, failing unless ok.
    pub fn check(&self) -> Result<CheckReport, String> {
        let report = self
            .pool()?
            .check(false)
            .map_err(|e| engine_err("check", e))?;
        if !report.ok {
            return Err(format!("check reports corruption: {:?}", report.errors));
        }
        Ok(report)
    }
}

fn read_snapshot(pool: &Pool, id: u64, len: usize) -> Result<Vec<u8>, String> {
    let reader = pool
        .snapshot_reader(id)
        .map_err(|e| engine_err(&format!("opening snapshot {id}"), e))?;
    if reader.size() != len as u64 {
        return Err(format!(
            "snapshot {id} has size {}, expected {len}",
            reader.size()
        ));
    }
    let mut buf = vec![0x5Au8; len];
    reader
        .read_at(&mut buf, 0)
        .map_err(|e| engine_err(&format!("reading snapshot {id}"), e))?;
    Ok(buf)
}

/// What a fault-free run did.
#[derive(Debug, Clone, Default)]
pub struct ModelRun {
    /// Ops that ran (the rest were skipped as not applicable).
    pub applied: usize,
    /// Syncs the whole run issued.
    pub syncs: u64,
}

/// Run `ops` with no faults, verifying everything after each op (when
/// `verify_each`) and at the end; then `check(false)` must be ok with no
/// leaks, and so again after a clean reopen.
pub fn run_model(ops: &[Op], verify_each: bool) -> Result<ModelRun, String> {
    run_model_on(&Layout::default(), ops, verify_each)
}

/// [`run_model`] on a pool laid out as `layout`; also exports every volume
/// and snapshot as a raw file at the end and compares it with the model.
pub fn run_model_on(layout: &Layout, ops: &[Op], verify_each: bool) -> Result<ModelRun, String> {
    let disk = SimDisk::new();
    let mut h = Harness::with_layout(disk.clone(), layout)?;
    let mut applied = 0;
    for (i, op) in ops.iter().enumerate() {
        let Some(step) = h.plan(op) else { continue };
        let desc = format!("op #{i} {op:?} ({step:?})");
        let desc = truncate(desc);
        let id = h.exec(&step).map_err(|e| format!("{desc}: {e}"))?;
        h.completed(step, id);
        applied += 1;
        if verify_each {
            h.verify().map_err(|e| format!("after {desc}: {e}"))?;
            h.verify_no_stored_zero_blocks()
                .map_err(|e| format!("after {desc}: {e}"))?;
        }
    }
    h.verify().map_err(|e| format!("at the end: {e}"))?;
    h.verify_exports()
        .map_err(|e| format!("exports at the end: {e}"))?;
    let clean = |h: &Harness, when: &str| -> Result<(), String> {
        let r = h.check().map_err(|e| format!("{when}: {e}"))?;
        if r.leaked_blocks != 0 {
            return Err(format!(
                "{when}: check reports {} leaked blocks after a fault-free run",
                r.leaked_blocks
            ));
        }
        Ok(())
    };
    clean(&h, "at the end")?;
    h.apply(&Op::Reopen)
        .map_err(|e| format!("final reopen: {e}"))?;
    h.verify()
        .map_err(|e| format!("after the final reopen: {e}"))?;
    clean(&h, "after the final reopen")?;
    Ok(ModelRun {
        applied,
        syncs: disk.sync_count(),
    })
}

/// A fresh directory for export files (the test kit cannot depend on
/// `tempfile`: it ships in the library for the fuzz targets).
fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cowsnap-testkit-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

fn truncate(mut s: String) -> String {
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Where power is cut, counted from the end of the setup (pool and initial
/// volumes created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Run everything, then cut power.
    Never,
    /// The sync with this index (0 = the first after setup) fails and power dies.
    AtSync(u64),
    /// This many mutating disk ops go through, then power dies.
    AfterOps(u64),
    /// This many mutating disk ops go through, the next one fails once
    /// while power stays on: the op that sees it must fail, every later
    /// write and flush must be refused as `Poisoned`, and power is cut
    /// right after (a failed op on a live disk must leave state that a
    /// crash can recover just the same).
    FailOp(u64),
}

/// What a crash run did.
#[derive(Debug, Clone, Default)]
pub struct CrashRun {
    /// Whether the cut was reached before the ops ran out.
    pub cut_hit: bool,
    /// Ops that completed before the cut.
    pub completed: usize,
    /// The op the cut interrupted, if any.
    pub in_flight: Option<String>,
    /// Syncs and mutating disk ops the workload issued after setup.
    pub syncs: u64,
    pub disk_ops: u64,
    /// Leaked blocks `check` reported after recovery, per seed.
    pub leaked_blocks: Vec<u64>,
}

/// Run `ops` on a fresh pool, cut power at `cut`, and for every seed
/// rebuild the crashed disk, reopen and verify (see the module docs).
pub fn run_crash(ops: &[Op], cut: Cut, seeds: &[u64]) -> Result<CrashRun, String> {
    run_crash_with(ops, cut, seeds, true)
}

/// [`run_crash`]; with `thorough` false the recovered pool is verified
/// exactly only before and after [`AFTER_CRASH_OPS`] rather than after each
/// of them (for fuzzing, where executions per second matter).
pub fn run_crash_with(
    ops: &[Op],
    cut: Cut,
    seeds: &[u64],
    thorough: bool,
) -> Result<CrashRun, String> {
    run_crash_on(&Layout::default(), ops, cut, seeds, thorough)
}

/// [`run_crash_with`] on a pool laid out as `layout`.
pub fn run_crash_on(
    layout: &Layout,
    ops: &[Op],
    cut: Cut,
    seeds: &[u64],
    thorough: bool,
) -> Result<CrashRun, String> {
    let disk = SimDisk::new();
    let mut h = Harness::with_layout(disk.clone(), layout)?;
    let (base_syncs, base_ops) = (disk.sync_count(), disk.op_count());
    match cut {
        Cut::Never => {}
        Cut::AtSync(k) => disk.cut_power_at_sync(base_syncs + k),
        Cut::AfterOps(n) => disk.cut_power_after_ops(n),
        Cut::FailOp(n) => disk.fail_op_after(n),
    }
    let mut run = CrashRun::default();
    for (i, op) in ops.iter().enumerate() {
        let Some(step) = h.plan(op) else { continue };
        match h.exec(&step) {
            Ok(id) => {
                h.completed(step, id);
                run.completed += 1;
            }
            Err(e) if disk.is_powered_off() => {
                run.cut_hit = true;
                run.in_flight = Some(truncate(format!("op #{i} {op:?}: {e}")));
                h.in_flight(step);
                break;
            }
            Err(e)
                if matches!(cut, Cut::FailOp(_))
                    && e.contains(crate::storage::sim::INJECTED_FAILURE_MSG) =>
            {
                run.cut_hit = true;
                run.in_flight = Some(truncate(format!("op #{i} {op:?}: {e}")));
                h.in_flight(step);
                if let Some(pool) = h.pool.as_ref() {
                    expect_poisoned(pool, &h.model)
                        .map_err(|p| format!("after op #{i} {op:?} failed ({e}): {p}"))?;
                }
                break;
            }
            Err(e) => return Err(format!("op #{i} {op:?} failed with power on: {e}")),
        }
    }
    run.syncs = disk.sync_count() - base_syncs;
    run.disk_ops = disk.op_count() - base_ops;
    disk.cut_power_now();
    // Dropping the pool now cannot reach the (powered-off) disk.
    drop(h.take_pool());
    for &seed in seeds {
        let leaked = recover_and_verify(&disk, &h.model, seed, h.nonce, thorough).map_err(|e| {
            format!(
                "{cut:?}, crash seed {seed}, in flight {:?}: {e}",
                run.in_flight
            )
        })?;
        run.leaked_blocks.push(leaked);
    }
    Ok(run)
}

/// After a failed I/O: writes, zeroing, flushes and snapshot creation must
/// all be refused with `Poisoned`.
fn expect_poisoned(pool: &Pool, model: &Model) -> Result<(), String> {
    let poisoned = |what: &str, r: crate::Result<()>| match r {
        Err(e) if e.kind() == crate::ErrorKind::Poisoned => Ok(()),
        Err(e) => Err(format!(
            "{what} failed with {:?} ({e}), expected Poisoned",
            e.kind()
        )),
        Ok(()) => Err(format!("{what} succeeded on a poisoned pool")),
    };
    poisoned("flush", pool.flush())?;
    if let Some(v) = model.volumes.iter().find(|v| !v.maybe) {
        let handle = pool
            .volume(&v.name)
            .map_err(|e| engine_err("opening volume", e))?;
        poisoned("write_at", handle.write_at(&[1, 2, 3], 0))?;
        poisoned("write_zeroes", handle.write_zeroes(0, 4096.min(v.size())))?;
        poisoned(
            "create_snapshot",
            pool.create_snapshot(&v.name, "after-failure", "").map(drop),
        )?;
    }
    Ok(())
}

/// Crash `disk` with `seed`, reopen, verify against `model`, keep using
/// the pool (verifying after each further op when `thorough`); returns the
/// leaked blocks `check` reported right after recovery.
pub fn recover_and_verify(
    disk: &SimDisk,
    model: &Model,
    seed: u64,
    nonce: u64,
    thorough: bool,
) -> Result<u64, String> {
    let crashed = disk.crash(seed);
    let pool =
        Pool::open_in(Arc::new(crashed.clone())).map_err(|e| engine_err("open after crash", e))?;
    let exact = verify_after_crash(&pool, model)?;
    let report = pool
        .check(false)
        .map_err(|e| engine_err("check after crash", e))?;
    if !report.ok {
        return Err(format!(
            "check after crash reports corruption: {:?}",
            report.errors
        ));
    }
    // The recovered pool must stay fully usable.
    let mut h = Harness::resume(crashed, pool, exact, nonce);
    h.verify()
        .map_err(|e| format!("recovered pool, before further use: {e}"))?;
    for op in &AFTER_CRASH_OPS {
        h.apply(op)
            .map_err(|e| format!("recovered pool, {op:?}: {e}"))?;
        if thorough {
            h.verify()
                .map_err(|e| format!("recovered pool, after {op:?}: {e}"))?;
        }
    }
    h.verify()
        .map_err(|e| format!("recovered pool, after further use: {e}"))?;
    h.check()
        .map_err(|e| format!("recovered pool after further use: {e}"))?;
    Ok(report.leaked_blocks)
}

/// Check a just-recovered pool against the crash model; returns a model
/// that describes the recovered content exactly.
pub fn verify_after_crash(pool: &Pool, model: &Model) -> Result<Model, String> {
    let listed = pool.list_volumes();
    for v in &listed {
        if model.volume(&v.name).is_none() {
            return Err(format!(
                "volume {} exists after the crash, but was never created or its delete completed",
                v.name
            ));
        }
    }
    let mut exact = model.clone();
    exact.volumes.clear();
    exact.snapshots.clear();
    for mv in &model.volumes {
        let Some(info) = listed.iter().find(|v| v.name == mv.name) else {
            if mv.maybe {
                continue;
            }
            return Err(format!("volume {} is missing after the crash", mv.name));
        };
        if info.size_bytes != mv.size() {
            return Err(format!(
                "volume {} has size {} after the crash, expected {}",
                mv.name,
                info.size_bytes,
                mv.size()
            ));
        }
        let handle = pool
            .volume(&mv.name)
            .map_err(|e| engine_err(&format!("opening volume {}", mv.name), e))?;
        let mut buf = vec![0xA5u8; mv.data.len()];
        handle
            .read_at(&mut buf, 0)
            .map_err(|e| engine_err(&format!("reading volume {}", mv.name), e))?;
        mv.crash_explains(&buf)
            .map_err(|e| format!("volume {} after the crash: {e}", mv.name))?;
        exact.volumes.push(VolumeModel::new(mv.name.clone(), buf));
    }
    let snaps = pool
        .list_snapshots(None)
        .map_err(|e| engine_err("list_snapshots after crash", e))?;
    for s in &snaps {
        let known = model
            .snapshots
            .iter()
            .find(|m| m.name == s.name && m.volume == s.volume_name);
        match known {
            None => {
                return Err(format!(
                    "snapshot {} ({}) of {} exists after the crash, but was never created or its delete completed",
                    s.id, s.name, s.volume_name
                ))
            }
            Some(m) if m.id != 0 && m.id != s.id => {
                return Err(format!(
                    "snapshot {} has id {} after the crash, expected {}",
                    s.name, s.id, m.id
                ))
            }
            Some(_) => {}
        }
    }
    for ms in &model.snapshots {
        let Some(info) = snaps
            .iter()
            .find(|s| s.name == ms.name && s.volume_name == ms.volume)
        else {
            let volume_gone = exact.volume(&ms.volume).is_none();
            if ms.maybe || volume_gone {
                continue;
            }
            return Err(format!(
                "snapshot {} ({}) of {} is missing after the crash",
                ms.id, ms.name, ms.volume
            ));
        };
        let got = read_snapshot(pool, info.id, ms.data.len())?;
        if let Some(d) = first_diff(&got, &ms.data, pool.block_size()) {
            return Err(format!(
                "snapshot {} ({}) of {} after the crash: {d}",
                info.id, ms.name, ms.volume
            ));
        }
        exact.snapshots.push(SnapshotModel {
            id: info.id,
            maybe: false,
            ..ms.clone()
        });
    }
    Ok(exact)
}
