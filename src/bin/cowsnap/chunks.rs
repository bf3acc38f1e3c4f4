//! Streaming in big block-aligned chunks, so large inputs never sit in
//! memory whole and the engine sees whole-block writes.

use std::io::{ErrorKind, Read};

/// Bytes moved per engine call. A multiple of every valid block size (4K..1M).
pub const CHUNK: usize = 4 << 20;

/// Length of the chunk starting at `pos` so that it ends on a block
/// boundary: at most `CHUNK`, and exactly `CHUNK` once `pos` is aligned.
pub fn aligned_len(pos: u64, block_size: u64) -> usize {
    CHUNK - (pos % block_size) as usize
}

/// Fill `buf` from `input`, looping over short reads (pipes deliver little at
/// a time); fewer bytes than `buf.len()` only at end of input.
pub fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_on_block_boundaries() {
        assert_eq!(aligned_len(0, 4096), CHUNK);
        assert_eq!(aligned_len(100, 4096), CHUNK - 100);
        assert_eq!((100 + aligned_len(100, 65536) as u64) % 65536, 0);
        assert_eq!(aligned_len(1 << 20, 1 << 20), CHUNK);
    }

    /// A reader that hands out at most 3 bytes per call.
    struct Dribble<'a>(&'a [u8]);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_full_loops_over_short_reads() {
        let data: Vec<u8> = (0..20).collect();
        let mut r = Dribble(&data);
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 8);
        assert_eq!(&buf, &data[..8]);
        let mut big = [0u8; 32];
        assert_eq!(read_full(&mut r, &mut big).unwrap(), 12);
        assert_eq!(&big[..12], &data[8..]);
    }
}
