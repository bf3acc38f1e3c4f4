//! Buffers whose bytes start on a [`DIRECT_ALIGN`] boundary, so that writes
//! from them can bypass the page cache (`O_DIRECT`). Built without unsafe
//! code: over-allocate and use the aligned window.

use std::ops::{Deref, DerefMut};

/// Alignment of memory, file offset and length that direct I/O needs. 4 KiB
/// satisfies every Linux filesystem and device we meet (512 B or 4 KiB
/// logical sectors).
pub const DIRECT_ALIGN: usize = 4096;

/// A zero-filled byte buffer aligned for direct I/O.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes. The allocation is `len + DIRECT_ALIGN` bytes, and
    /// `vec!` of zeros gets lazily zeroed pages from the allocator.
    pub fn zeroed(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + DIRECT_ALIGN];
        // `align_offset` may give up (usize::MAX); the buffer then works,
        // only unaligned, and direct I/O from it goes through a bounce buffer.
        let start = match raw.as_ptr().align_offset(DIRECT_ALIGN) {
            n if n < DIRECT_ALIGN => n,
            _ => 0,
        };
        AlignedBuf { raw, start, len }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// Whether a write of `buf` at `offset` meets direct I/O's alignment rules.
pub fn is_direct_aligned(buf: &[u8], offset: u64) -> bool {
    offset.is_multiple_of(DIRECT_ALIGN as u64)
        && buf.len().is_multiple_of(DIRECT_ALIGN)
        && (buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_zeroed_and_sized() {
        for len in [0, 1, 4096, 65536, 1 << 20] {
            let mut b = AlignedBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0));
            assert_eq!(b.as_ptr() as usize % DIRECT_ALIGN, 0);
            if len > 0 {
                b[len - 1] = 7;
                assert_eq!(b[len - 1], 7);
            }
        }
    }

    #[test]
    fn alignment_needs_offset_length_and_address() {
        let b = AlignedBuf::zeroed(8192);
        assert!(is_direct_aligned(&b, 4096));
        assert!(!is_direct_aligned(&b, 512));
        assert!(!is_direct_aligned(&b[..4000], 0));
        assert!(!is_direct_aligned(&b[1..4097], 0));
    }
}
