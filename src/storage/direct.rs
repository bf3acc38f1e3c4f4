//! Positional reads and writes of any offset, length and memory on a file
//! opened `O_DIRECT`, which itself only takes 4 KiB-aligned ones.
//!
//! The data file does *all* its I/O this way (docs/DESIGN.md, "Direct I/O
//! for the data file"): mixing buffered and direct I/O on one file is unsafe
//! once the page cache uses folios larger than a block, because a direct
//! write cannot invalidate a folio that a buffered write to a neighbouring
//! block made dirty, and reads would then see the stale folio.
//!
//! Unaligned requests go through an aligned bounce buffer covering the
//! enclosing 4 KiB pages. A write that covers a page only in part reads the
//! page first; callers must keep other writers off that page meanwhile (the
//! engine's range locks do: a page lies inside one data block).

use super::aligned::{is_direct_aligned, AlignedBuf, DIRECT_ALIGN};
use parking_lot::Mutex;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

const PAGE: u64 = DIRECT_ALIGN as u64;

/// Largest span moved through one bounce buffer at a time.
const BOUNCE_LEN: usize = 4 << 20;
/// Large bounce buffers kept for reuse, so their memory is faulted in once.
const POOLED_BUFFERS: usize = 4;

static POOL: Mutex<Vec<AlignedBuf>> = Mutex::new(Vec::new());

/// An aligned buffer of at least `len` bytes: a pooled one for large spans
/// (a fresh one if all are busy), a small fresh one otherwise.
fn bounce(len: usize) -> AlignedBuf {
    if len > 64 * 1024 {
        if let Some(b) = POOL.lock().pop() {
            return b;
        }
        return AlignedBuf::zeroed(BOUNCE_LEN);
    }
    AlignedBuf::zeroed(len)
}

fn give_back(b: AlignedBuf) {
    if b.len() == BOUNCE_LEN {
        let mut pool = POOL.lock();
        if pool.len() < POOLED_BUFFERS {
            pool.push(b);
        }
    }
}

/// Fill `buf` (aligned) from `offset` (aligned); bytes past the end of the
/// file read as zeros.
fn read_aligned(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            // A short read ends at the end of the file, which direct I/O
            // may report mid-page; what follows reads as zeros.
            Ok(n) if !n.is_multiple_of(DIRECT_ALIGN) => {
                buf[done + n..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The 4 KiB pages covering `[offset, offset + len)`, as a byte range.
fn page_span(offset: u64, len: usize) -> (u64, u64) {
    let start = offset / PAGE * PAGE;
    let end = (offset + len as u64).div_ceil(PAGE) * PAGE;
    (start, end)
}

/// Walk the 4 KiB pages covering `[offset, offset + len)` one bounce-buffer
/// piece at a time. `step(piece, piece_offset, caller, within)` gets the
/// piece to fill or send, where it sits in the file, the caller's bytes it
/// covers, and where those sit inside the piece.
fn bounced(
    offset: u64,
    len: usize,
    mut step: impl FnMut(&mut [u8], u64, Range<usize>, Range<usize>) -> io::Result<()>,
) -> io::Result<()> {
    let end = offset + len as u64;
    let (span_start, span_end) = page_span(offset, len);
    let mut b = bounce((span_end - span_start) as usize);
    let mut at = span_start;
    let result = (|| {
        while at < span_end {
            let n = (span_end - at).min(b.len() as u64) as usize;
            let from = offset.max(at);
            let to = end.min(at + n as u64);
            let caller = (from - offset) as usize..(to - offset) as usize;
            let within = (from - at) as usize..(to - at) as usize;
            step(&mut b[..n], at, caller, within)?;
            at += n as u64;
        }
        Ok(())
    })();
    give_back(b);
    result
}

/// Read `buf.len()` bytes at `offset` through the direct descriptor.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    if is_direct_aligned(buf, offset) {
        return read_aligned(file, buf, offset);
    }
    bounced(offset, buf.len(), |piece, at, caller, within| {
        read_aligned(file, piece, at)?;
        buf[caller].copy_from_slice(&piece[within]);
        Ok(())
    })
}

/// Write all of `buf` at `offset` through the direct descriptor.
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    if is_direct_aligned(buf, offset) {
        return file.write_all_at(buf, offset);
    }
    let end = offset + buf.len() as u64;
    bounced(offset, buf.len(), |piece, at, caller, within| {
        let n = piece.len();
        // Pages the write covers only in part keep their other bytes.
        if at < offset {
            read_aligned(file, &mut piece[..DIRECT_ALIGN], at)?;
        }
        let last = at + n as u64 - PAGE;
        if end < at + n as u64 && (last > at || at >= offset) {
            read_aligned(file, &mut piece[n - DIRECT_ALIGN..], last)?;
        }
        piece[within].copy_from_slice(&buf[caller]);
        file.write_all_at(piece, at)
    })
}
