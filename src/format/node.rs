//! Map nodes: 4 KiB pages of a copy-on-write radix tree.
//!
//! ```text
//! 0   magic   "CSN"            3 bytes
//! 3   level   u8               0 = leaf (entries are data blocks)
//! 4   crc32   u32              over the page with this field zero
//! 8   page_no u64              where the page belongs; catches misdirected writes
//! 16  entries [u64; 510]       0 = hole, else a data block (leaf) or node page number
//! ```

use super::{crc_with_hole, get_u32, get_u64, put_u32, put_u64, PAGE_SIZE};
use crate::error::{Error, Result};

pub const MAGIC: [u8; 3] = *b"CSN";
const LEVEL_AT: usize = 3;
const CRC_AT: usize = 4;
const PAGE_NO_AT: usize = 8;
pub const ENTRIES_AT: usize = 16;
/// Children per node.
pub const FANOUT: usize = (PAGE_SIZE - ENTRIES_AT) / 8;
/// Deepest tree we accept: 510^7 blocks is far beyond any u64 byte size.
pub const MAX_LEVELS: u8 = 7;

pub type Page = [u8; PAGE_SIZE];

pub fn init(page: &mut Page, page_no: u64, level: u8) {
    page.fill(0);
    page[..3].copy_from_slice(&MAGIC);
    page[LEVEL_AT] = level;
    put_u64(page, PAGE_NO_AT, page_no);
}

pub fn level(page: &Page) -> u8 {
    page[LEVEL_AT]
}

pub fn entry(page: &Page, idx: usize) -> u64 {
    get_u64(page, ENTRIES_AT + idx * 8)
}

pub fn set_entry(page: &mut Page, idx: usize, value: u64) {
    put_u64(page, ENTRIES_AT + idx * 8, value);
}

/// Fill in the checksum before the page leaves memory.
pub fn seal(page: &mut Page) {
    let crc = crc_with_hole(page, CRC_AT);
    put_u32(page, CRC_AT, crc);
}

/// Validate a page read from `file` at `page_no`.
pub fn verify(page: &Page, page_no: u64, file: &'static str) -> Result<()> {
    let at = page_no.saturating_mul(PAGE_SIZE as u64);
    if page[..3] != MAGIC {
        return Err(Error::corrupt(
            format!("map node {page_no} has bad magic"),
            file,
            at,
        ));
    }
    if get_u32(page, CRC_AT) != crc_with_hole(page, CRC_AT) {
        return Err(Error::corrupt(
            format!("map node {page_no} checksum mismatch"),
            file,
            at.saturating_add(CRC_AT as u64),
        ));
    }
    let stored = get_u64(page, PAGE_NO_AT);
    if stored != page_no {
        return Err(Error::corrupt(
            format!("map node {page_no} claims to be page {stored}"),
            file,
            at.saturating_add(PAGE_NO_AT as u64),
        ));
    }
    if level(page) >= MAX_LEVELS {
        return Err(Error::corrupt(
            format!("map node {page_no} has level {}", level(page)),
            file,
            at.saturating_add(LEVEL_AT as u64),
        ));
    }
    Ok(())
}

/// Number of levels a tree needs to map `blocks` blocks.
pub fn levels_for(blocks: u64) -> u8 {
    let mut levels = 1u8;
    let mut span = FANOUT as u64;
    while span < blocks {
        levels += 1;
        span = span.saturating_mul(FANOUT as u64);
    }
    levels
}

/// Blocks covered by one entry of a node at `level`.
pub fn entry_span(level: u8) -> u64 {
    (FANOUT as u64).saturating_pow(level as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_verify() {
        let mut p = [0u8; PAGE_SIZE];
        init(&mut p, 42, 1);
        set_entry(&mut p, 509, 77);
        seal(&mut p);
        verify(&p, 42, "nodes").unwrap();
        assert_eq!(entry(&p, 509), 77);
        assert!(
            verify(&p, 43, "nodes").is_err(),
            "misdirected page must fail"
        );
        p[100] ^= 4;
        assert!(verify(&p, 42, "nodes").is_err(), "bit flip must fail");
    }

    #[test]
    fn levels_grow_with_size() {
        assert_eq!(FANOUT, 510);
        assert_eq!(levels_for(1), 1);
        assert_eq!(levels_for(510), 1);
        assert_eq!(levels_for(511), 2);
        assert_eq!(levels_for(510 * 510), 2);
        assert_eq!(levels_for(510 * 510 + 1), 3);
        // The largest volume (2^60 bytes of 4 KiB blocks) fits.
        assert!(levels_for(1 << 48) < MAX_LEVELS);
    }
}
