//! Volume and snapshot handles: the data path. Metadata decisions are made
//! under the pool's metadata lock; the data-block I/O itself runs outside it.

use crate::error::{Error, Result};
use crate::meta::WriteTarget;
use crate::pool::{PoolInner, VolumeIo};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A writable volume. `Send + Sync`: many threads may read and write at once.
#[derive(Clone)]
pub struct Volume {
    pool: Arc<PoolInner>,
    id: u64,
    name: String,
    size: u64,
    io: Arc<VolumeIo>,
}

/// A read-only view of one snapshot.
#[derive(Clone)]
pub struct SnapshotReader {
    pool: Arc<PoolInner>,
    id: u64,
    size: u64,
    io: Arc<VolumeIo>,
}

/// Which blocks a byte range touches, and where in each.
struct Span {
    first: u64,
    last: u64,
}

fn span(bs: u64, offset: u64, len: usize) -> Span {
    Span {
        first: offset / bs,
        last: (offset + len as u64 - 1) / bs,
    }
}

fn check_range(size: u64, offset: u64, len: usize) -> Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::invalid(
            "range",
            format!("{len} bytes at offset {offset} go past the end ({size} bytes)"),
        )),
    }
}

/// Per block of a request: the slice of the caller's buffer and where it sits in the block.
fn pieces(bs: u64, offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let end = offset + len as u64;
    let mut pos = offset;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let lb = pos / bs;
        let in_block = (pos % bs) as usize;
        let n = ((bs - in_block as u64).min(end - pos)) as usize;
        let buf_at = (pos - offset) as usize;
        pos += n as u64;
        Some((lb, in_block, buf_at, n))
    })
}

/// Read mapped blocks into `buf`, coalescing physically contiguous runs into one read.
fn read_mapped(pool: &PoolInner, phys: &[u64], offset: u64, buf: &mut [u8]) -> Result<()> {
    let bs = pool.block_size as u64;
    let mut run: Option<(u64, usize, usize)> = None; // (physical byte offset, buf start, len)
    let flush = |run: &mut Option<(u64, usize, usize)>, buf: &mut [u8]| -> Result<()> {
        if let Some((at, s, n)) = run.take() {
            pool.data
                .read_at(&mut buf[s..s + n], at)
                .map_err(|e| Error::io("reading data block", e))?;
        }
        Ok(())
    };
    for (i, (_lb, in_block, buf_at, n)) in pieces(bs, offset, buf.len()).enumerate() {
        let p = phys[i];
        if p == 0 {
            flush(&mut run, buf)?;
            buf[buf_at..buf_at + n].fill(0);
            continue;
        }
        let at = p * bs + in_block as u64;
        match &mut run {
            Some((rat, rs, rn)) if *rat + *rn as u64 == at && *rs + *rn == buf_at => *rn += n,
            _ => {
                flush(&mut run, buf)?;
                run = Some((at, buf_at, n));
            }
        }
    }
    flush(&mut run, buf)
}

impl Volume {
    pub(crate) fn new(
        pool: Arc<PoolInner>,
        id: u64,
        name: String,
        size: u64,
        io: Arc<VolumeIo>,
    ) -> Volume {
        Volume {
            pool,
            id,
            name,
            size,
            io,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn bs(&self) -> u64 {
        self.pool.block_size as u64
    }

    /// Read `buf.len()` bytes at `offset`. Never-written ranges read as zeros.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        let _gate = self.io.gate.read();
        let s = span(self.bs(), offset, buf.len());
        let _range = self.io.ranges.lock(s.first, s.last + 1, false);
        let phys = {
            let mut m = self.pool.meta.lock();
            let v = m.volume_rec(self.id)?;
            let (root, levels) = (v.root, v.levels);
            let phys = (s.first..=s.last)
                .map(|lb| m.lookup(root, levels, lb))
                .collect::<Result<Vec<u64>>>()?;
            // Reads alone never commit, so bound the clean-page cache here too.
            m.trim_caches();
            phys
        };
        read_mapped(&self.pool, &phys, offset, buf)
    }

    /// Write `buf` at `offset`. Durable after the next [`Volume::flush`].
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len())?;
        self.pool.check_writable()?;
        if buf.is_empty() {
            return Ok(());
        }
        let _gate = self.io.gate.read();
        let s = span(self.bs(), offset, buf.len());
        let _range = self.io.ranges.lock(s.first, s.last + 1, true);
        self.write_locked(buf, offset)
    }

    /// Bytes of block `lb` that lie inside the volume.
    fn block_len(&self, lb: u64) -> usize {
        (self.size - lb * self.bs()).min(self.bs()) as usize
    }

    fn write_locked(&self, buf: &[u8], offset: u64) -> Result<()> {
        let bs = self.bs();
        let plan: Vec<(u64, usize, usize, usize)> = pieces(bs, offset, buf.len()).collect();
        // A whole block of zeros is unmapped instead of stored.
        let zero_whole: Vec<bool> = plan
            .iter()
            .map(|&(lb, in_block, at, n)| {
                in_block == 0 && n == self.block_len(lb) && is_zero(&buf[at..at + n])
            })
            .collect();
        let targets = self.pool.mutate(|m| {
            let mut targets = Vec::with_capacity(plan.len());
            for (i, &(lb, ..)) in plan.iter().enumerate() {
                let t = if zero_whole[i] {
                    m.unmap_block(self.id, lb).map(|_| None)
                } else {
                    m.prepare_write(self.id, lb).map(Some)
                };
                match t {
                    Ok(t) => targets.push(t),
                    Err(e) => {
                        abandon(m, &targets);
                        return Err(e);
                    }
                }
            }
            Ok(targets)
        })?;
        if let Err(e) = self.write_blocks(buf, &plan, &targets) {
            abandon(&mut self.pool.meta.lock(), &targets);
            self.pool.poison(&e);
            return Err(e);
        }
        // Set only after the data is written: a commit that clears the flag
        // and then syncs must cover every write that set it.
        self.pool.data_dirty.store(true, Ordering::SeqCst);
        let emptied = match self.blocks_left_zero(buf, &plan, &targets) {
            Ok(e) => e,
            Err(e) => {
                // The data is on disk but what it holds is unknown to us: as
                // after a failed write, refuse further writes until reopen.
                abandon(&mut self.pool.meta.lock(), &targets);
                self.pool.poison(&e);
                return Err(e);
            }
        };
        self.pool.mutate(|m| {
            for (i, t) in targets.iter().enumerate() {
                let lb = plan[i].0;
                match (t, emptied[i]) {
                    // The block now holds only zeros: a hole says the same
                    // and takes no space (and export keeps it sparse).
                    (Some(WriteTarget::Fresh { block, .. }), true) => {
                        m.abandon_reserved(*block)?;
                        m.unmap_block(self.id, lb)?;
                    }
                    (Some(WriteTarget::InPlace(_)), true) => m.unmap_block(self.id, lb)?,
                    (Some(WriteTarget::Fresh { block, .. }), false) => {
                        m.publish_block(self.id, lb, *block)?
                    }
                    _ => {}
                }
            }
            Ok(())
        })
    }

    /// For each piece: whether a partial write of zeros left its whole block
    /// zero. Only such writes pay for reading the block back.
    fn blocks_left_zero(
        &self,
        buf: &[u8],
        plan: &[(u64, usize, usize, usize)],
        targets: &[Option<WriteTarget>],
    ) -> Result<Vec<bool>> {
        let bs = self.bs();
        let mut whole: Option<crate::storage::AlignedBuf> = None;
        let mut out = vec![false; plan.len()];
        for (i, &(lb, in_block, at, n)) in plan.iter().enumerate() {
            let partial = !(in_block == 0 && n == self.block_len(lb));
            let block = match targets[i] {
                Some(WriteTarget::InPlace(p)) => p,
                Some(WriteTarget::Fresh { block, .. }) => block,
                None => continue,
            };
            if !partial || !is_zero(&buf[at..at + n]) {
                continue;
            }
            let whole =
                whole.get_or_insert_with(|| crate::storage::AlignedBuf::zeroed(bs as usize));
            self.pool
                .data
                .read_at(whole, block * bs)
                .map_err(|e| Error::io("reading back a zeroed block", e))?;
            out[i] = is_zero(whole);
        }
        Ok(out)
    }

    /// The data I/O of a write: direct writes are coalesced when both the
    /// physical blocks and the caller's bytes are contiguous.
    fn write_blocks(
        &self,
        buf: &[u8],
        plan: &[(u64, usize, usize, usize)],
        targets: &[Option<WriteTarget>],
    ) -> Result<()> {
        let bs = self.bs();
        let data = &self.pool.data;
        let io = |e| Error::io("writing data block", e);
        let mut run: Option<(u64, usize, usize)> = None;
        let flush_run = |run: &mut Option<(u64, usize, usize)>| -> Result<()> {
            if let Some((at, s, n)) = run.take() {
                data.write_at(&buf[s..s + n], at).map_err(io)?;
            }
            Ok(())
        };
        for (i, &(lb, in_block, at, n)) in plan.iter().enumerate() {
            let direct = match targets[i] {
                None => None,
                Some(WriteTarget::InPlace(p)) => Some(p * bs + in_block as u64),
                Some(WriteTarget::Fresh { block, .. })
                    if in_block == 0 && n == self.block_len(lb) =>
                {
                    Some(block * bs)
                }
                Some(WriteTarget::Fresh { block, old }) => {
                    // Partial write to a new block: merge with the old bytes (or zeros).
                    flush_run(&mut run)?;
                    let mut whole = crate::storage::AlignedBuf::zeroed(bs as usize);
                    if old != 0 {
                        data.read_at(&mut whole, old * bs)
                            .map_err(|e| Error::io("reading block to copy", e))?;
                    }
                    whole[in_block..in_block + n].copy_from_slice(&buf[at..at + n]);
                    data.write_at(&whole, block * bs).map_err(io)?;
                    None
                }
            };
            let Some(phys_at) = direct else { continue };
            match &mut run {
                Some((rat, rs, rn)) if *rat + *rn as u64 == phys_at && *rs + *rn == at => *rn += n,
                _ => {
                    flush_run(&mut run)?;
                    run = Some((phys_at, at, n));
                }
            }
        }
        flush_run(&mut run)
    }

    /// Make every write that completed before this call durable.
    pub fn flush(&self) -> Result<()> {
        self.pool.commit()
    }

    /// The range reads as zeros afterwards; blocks wholly inside it are freed.
    pub fn discard(&self, offset: u64, len: u64) -> Result<()> {
        let len_usize =
            usize::try_from(len).map_err(|_| Error::invalid("range", "length too large"))?;
        check_range(self.size, offset, len_usize)?;
        self.pool.check_writable()?;
        if len == 0 {
            return Ok(());
        }
        let bs = self.bs();
        let _gate = self.io.gate.read();
        let s = span(bs, offset, len_usize);
        let _range = self.io.ranges.lock(s.first, s.last + 1, true);
        for (lb, in_block, _at, n) in pieces(bs, offset, len_usize) {
            if in_block == 0 && n == self.block_len(lb) {
                self.pool.mutate(|m| m.unmap_block(self.id, lb))?;
            } else {
                let mapped = {
                    let mut m = self.pool.meta.lock();
                    let v = m.volume_rec(self.id)?;
                    let (root, levels) = (v.root, v.levels);
                    m.lookup(root, levels, lb)? != 0
                };
                if mapped {
                    self.write_locked(&vec![0u8; n], lb * bs + in_block as u64)?;
                }
            }
        }
        Ok(())
    }

    /// Zero a range; like [`Volume::discard`], whole blocks take no space afterwards.
    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.discard(offset, len)
    }

    /// Current size and allocation.
    pub fn info(&self) -> Result<crate::VolumeInfo> {
        let m = self.pool.meta.lock();
        let v = m.volume_rec(self.id)?;
        Ok(crate::VolumeInfo {
            id: v.id,
            name: v.name.clone(),
            size_bytes: v.size_bytes,
            allocated_bytes: v.allocated_blocks * self.pool.block_size as u64,
        })
    }

    /// Allocation map: (offset, length, allocated) extents covering `offset..offset+len`.
    pub fn allocation(&self, offset: u64, len: u64) -> Result<Vec<(u64, u64, bool)>> {
        let _gate = self.io.gate.read();
        let mut m = self.pool.meta.lock();
        let v = m.volume_rec(self.id)?;
        let (root, levels) = (v.root, v.levels);
        allocation_of(&mut m, root, levels, self.size, self.bs(), offset, len)
    }
}

fn allocation_of(
    m: &mut crate::meta::MetaState,
    root: u64,
    levels: u8,
    size: u64,
    bs: u64,
    offset: u64,
    len: u64,
) -> Result<Vec<(u64, u64, bool)>> {
    let end = offset.saturating_add(len).min(size);
    let mut out: Vec<(u64, u64, bool)> = Vec::new();
    let mut pos = offset;
    while pos < end {
        let lb = pos / bs;
        let next = ((lb + 1) * bs).min(end);
        let alloc = m.lookup(root, levels, lb)? != 0;
        match out.last_mut() {
            Some(last) if last.2 == alloc => last.1 += next - pos,
            _ => out.push((pos, next - pos, alloc)),
        }
        pos = next;
    }
    Ok(out)
}

fn abandon(m: &mut crate::meta::MetaState, targets: &[Option<WriteTarget>]) {
    for t in targets.iter().flatten() {
        if let WriteTarget::Fresh { block, .. } = t {
            let _ = m.abandon_reserved(*block);
        }
    }
}

/// Whether `buf` is all zeros; folding 64-byte chunks lets the compiler use wide compares.
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    let chunks = buf.chunks_exact(64);
    let rest = chunks.remainder();
    chunks
        .into_iter()
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
        && rest.iter().all(|&b| b == 0)
}

impl SnapshotReader {
    pub(crate) fn new(
        pool: Arc<PoolInner>,
        id: u64,
        size: u64,
        io: Arc<VolumeIo>,
    ) -> SnapshotReader {
        SnapshotReader { pool, id, size, io }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Read the snapshot's content at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        // Shared gate: a delete of this snapshot waits until the read is done.
        let _gate = self.io.gate.read();
        let bs = self.pool.block_size as u64;
        let s = span(bs, offset, buf.len());
        let phys = {
            let mut m = self.pool.meta.lock();
            let snap = m.snapshot_rec(self.id)?;
            let (root, levels) = (snap.root, snap.levels);
            (s.first..=s.last)
                .map(|lb| m.lookup(root, levels, lb))
                .collect::<Result<Vec<u64>>>()?
        };
        read_mapped(&self.pool, &phys, offset, buf)
    }

    /// Allocation map of the snapshot, as [`Volume::allocation`].
    pub fn allocation(&self, offset: u64, len: u64) -> Result<Vec<(u64, u64, bool)>> {
        let _gate = self.io.gate.read();
        let mut m = self.pool.meta.lock();
        let snap = m.snapshot_rec(self.id)?;
        let (root, levels) = (snap.root, snap.levels);
        allocation_of(
            &mut m,
            root,
            levels,
            self.size,
            self.pool.block_size as u64,
            offset,
            len,
        )
    }
}
