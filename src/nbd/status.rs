//! `NBD_CMD_BLOCK_STATUS` for `base:allocation`: the allocation map of a
//! range as (length, flags) extents, read in bounded steps. Every lookup
//! runs under the pool's metadata lock, which every other request (on any
//! volume) also needs, so one request must not hold it for long.

use super::consts::{STATE_HOLE, STATE_ZERO};
use crate::Result;

/// Blocks one reply describes at most: 64 MiB of a 4 KiB-block pool, 1 GiB
/// of a 64 KiB one. The client asks again for the rest.
pub(crate) const REPLY_BLOCKS: u64 = 1 << 14;

/// Blocks looked up per hold of the metadata lock; the lock is released
/// between steps, so other requests wait for at most this many lookups.
pub(crate) const LOCKED_BLOCKS: u64 = 1 << 10;

/// Bytes of the reply chunk before its descriptors: the 20-byte chunk
/// header and the context id.
const REPLY_HEADER: u64 = 24;
/// Bytes per (length, flags) descriptor.
const DESCRIPTOR: u64 = 8;

/// Extents of `offset..offset + len` (clipped to [`REPLY_BLOCKS`]), each
/// adjacent pair differing in state. `allocation(offset, len)` is the
/// engine's map walk; it is called once per [`LOCKED_BLOCKS`] blocks.
/// With `req_one`, only the first extent, and the walk stops once it ends.
pub(crate) fn extents(
    mut allocation: impl FnMut(u64, u64) -> Result<Vec<(u64, u64, bool)>>,
    block_size: u32,
    offset: u64,
    len: u32,
    req_one: bool,
) -> Result<Vec<(u32, u32)>> {
    let bs = u64::from(block_size.max(1));
    let end = offset.saturating_add(u64::from(len).min(REPLY_BLOCKS * bs));
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut pos = offset;
    while pos < end {
        // Steps end on block boundaries, so each covers LOCKED_BLOCKS blocks.
        let step_end = (pos / bs + LOCKED_BLOCKS).saturating_mul(bs).min(end);
        for (_, n, allocated) in allocation(pos, step_end - pos)? {
            // `n` is at most `len`, a u32.
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let flags = if allocated {
                0
            } else {
                STATE_HOLE | STATE_ZERO
            };
            match out.last_mut() {
                Some(last) if last.1 == flags => last.0 = last.0.saturating_add(n),
                _ => out.push((n, flags)),
            }
        }
        pos = step_end;
        if req_one && out.len() > 1 {
            break;
        }
    }
    if req_one {
        out.truncate(1);
    }
    if out.is_empty() {
        return Err(crate::Error::invalid("range", "no extent at that offset"));
    }
    Ok(out)
}

/// The largest reply [`extents`] can produce for the request, in bytes:
/// what the request is charged against the memory budget before it runs.
pub(crate) fn reply_bound(block_size: u32, offset: u64, len: u32, req_one: bool) -> u32 {
    let bs = u64::from(block_size.max(1));
    let end = offset.saturating_add(u64::from(len).min(REPLY_BLOCKS * bs));
    // At most one extent per block touched.
    let blocks = if end > offset {
        (end - 1) / bs - offset / bs + 1
    } else {
        0
    };
    let descriptors = if req_one { blocks.min(1) } else { blocks };
    let bytes = REPLY_HEADER + DESCRIPTOR * descriptors;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const BS: u32 = 4096;

    /// An allocation map where block `b` is allocated when `mapped(b)`,
    /// recording each call's block count.
    fn map(
        mapped: fn(u64) -> bool,
        calls: &RefCell<Vec<u64>>,
    ) -> impl FnMut(u64, u64) -> Result<Vec<(u64, u64, bool)>> + '_ {
        move |offset, len| {
            let bs = u64::from(BS);
            let mut out: Vec<(u64, u64, bool)> = Vec::new();
            let (mut pos, end) = (offset, offset + len);
            calls.borrow_mut().push((end - 1) / bs - offset / bs + 1);
            while pos < end {
                let next = ((pos / bs + 1) * bs).min(end);
                let a = mapped(pos / bs);
                match out.last_mut() {
                    Some(l) if l.2 == a => l.1 += next - pos,
                    _ => out.push((pos, next - pos, a)),
                }
                pos = next;
            }
            Ok(out)
        }
    }

    #[test]
    fn steps_are_bounded_and_extents_merge_across_them() {
        let calls = RefCell::new(Vec::new());
        // Data in blocks 1000..3000, across two step boundaries.
        let mapped = |b| (1000..3000).contains(&b);
        let len = 4000 * BS;
        let e = extents(map(mapped, &calls), BS, 0, len, false).unwrap();
        assert_eq!(e, vec![(1000 * BS, 3), (2000 * BS, 0), (1000 * BS, 3)]);
        let calls = calls.into_inner();
        assert_eq!(calls.len(), 4);
        assert!(calls.iter().all(|&n| n <= LOCKED_BLOCKS), "{calls:?}");
    }

    #[test]
    fn a_reply_covers_at_most_reply_blocks_and_starts_mid_block() {
        let calls = RefCell::new(Vec::new());
        let e = extents(map(|_| false, &calls), BS, 100, u32::MAX, false).unwrap();
        assert_eq!(e, vec![((REPLY_BLOCKS * u64::from(BS)) as u32, 3)]);
        // Unaligned start: the first step ends on a block boundary.
        let calls = calls.into_inner();
        assert!(calls.iter().all(|&n| n <= LOCKED_BLOCKS), "{calls:?}");
    }

    #[test]
    fn req_one_stops_once_the_first_extent_ends() {
        let calls = RefCell::new(Vec::new());
        let mapped = |b| b >= 10;
        let e = extents(map(mapped, &calls), BS, 0, 8000 * BS, true).unwrap();
        assert_eq!(e, vec![(10 * BS, 3)]);
        assert_eq!(calls.into_inner().len(), 1, "one step was enough");
    }

    #[test]
    fn the_charge_covers_the_worst_reply() {
        let calls = RefCell::new(Vec::new());
        // Alternating blocks: one extent per block, the worst case.
        let alternating = |b: u64| b.is_multiple_of(2);
        for (offset, len) in [(0, 64 * BS), (100, 64 * BS), (0, u32::MAX), (4095, 2)] {
            let e = extents(map(alternating, &calls), BS, offset, len, false).unwrap();
            let reply = 24 + 8 * e.len() as u32;
            assert_eq!(reply_bound(BS, offset, len, false), reply, "{offset} {len}");
        }
        assert_eq!(reply_bound(BS, 0, u32::MAX, true), 32);
        // Never more than one full reply: 128 KiB of descriptors.
        assert!(reply_bound(BS, 1, u32::MAX, false) <= 24 + 8 * (REPLY_BLOCKS as u32 + 1));
    }
}
