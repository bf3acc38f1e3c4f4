//! Refcount pages: 4 KiB = 8 sectors, each sealed on its own so that a torn
//! checkpoint write leaves every sector old or new and still valid.
//!
//! ```text
//! sector s (512 bytes):
//! 0   crc32  u32        over (page_no u64, s u8, entries); 0 with all-zero entries = never written
//! 4   entries [u32; 127]
//! ```

use super::{get_u32, put_u32, PAGE_SIZE, SECTOR_SIZE};
use crate::error::{Error, Result};

pub const SECTORS: usize = PAGE_SIZE / SECTOR_SIZE;
pub const PER_SECTOR: usize = (SECTOR_SIZE - 4) / 4;
/// Refcount entries per page.
pub const PER_PAGE: usize = SECTORS * PER_SECTOR;

pub type Page = [u8; PAGE_SIZE];

/// Where entry `index` lives: (page number, byte offset inside the page).
pub fn locate(index: u64) -> (u64, usize) {
    let page = index / PER_PAGE as u64;
    let within = (index % PER_PAGE as u64) as usize;
    let sector = within / PER_SECTOR;
    let slot = within % PER_SECTOR;
    (page, sector * SECTOR_SIZE + 4 + slot * 4)
}

pub fn get(page: &Page, byte_at: usize) -> u32 {
    get_u32(page, byte_at)
}

pub fn set(page: &mut Page, byte_at: usize, value: u32) {
    put_u32(page, byte_at, value);
}

fn sector_crc(page_no: u64, sector: usize, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&page_no.to_le_bytes());
    h.update(&[sector as u8]);
    h.update(body);
    h.finalize()
}

pub fn seal(page: &mut Page, page_no: u64) {
    for s in 0..SECTORS {
        let at = s * SECTOR_SIZE;
        let body = &page[at + 4..at + SECTOR_SIZE];
        let crc = if body.iter().all(|&b| b == 0) {
            0
        } else {
            sector_crc(page_no, s, body)
        };
        put_u32(page, at, crc);
    }
}

pub fn verify(page: &Page, page_no: u64, file: &'static str) -> Result<()> {
    for s in 0..SECTORS {
        let at = s * SECTOR_SIZE;
        let body = &page[at + 4..at + SECTOR_SIZE];
        let stored = get_u32(page, at);
        let ok = if stored == 0 && body.iter().all(|&b| b == 0) {
            true
        } else {
            stored == sector_crc(page_no, s, body)
        };
        if !ok {
            return Err(Error::corrupt(
                format!("refcount page {page_no} sector {s} checksum mismatch"),
                file,
                page_no
                    .saturating_mul(PAGE_SIZE as u64)
                    .saturating_add(at as u64),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_every_slot_once() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..(PER_PAGE as u64 * 2) {
            assert!(seen.insert(locate(i)));
            let (_, at) = locate(i);
            assert!(at % SECTOR_SIZE >= 4 && at + 4 <= PAGE_SIZE);
        }
    }

    #[test]
    fn zero_page_is_valid_and_flips_are_caught() {
        let mut p = [0u8; PAGE_SIZE];
        verify(&p, 3, "data-refs").unwrap();
        let (_, at) = locate(5);
        set(&mut p, at, 9);
        seal(&mut p, 3);
        verify(&p, 3, "data-refs").unwrap();
        assert!(verify(&p, 4, "data-refs").is_err());
        p[at] ^= 1;
        assert!(verify(&p, 3, "data-refs").is_err());
    }

    #[test]
    fn torn_page_keeps_sectors_valid() {
        let mut old = [0u8; PAGE_SIZE];
        let mut new = [0u8; PAGE_SIZE];
        for i in 0..PER_PAGE as u64 {
            let (_, at) = locate(i);
            set(&mut old, at, 1);
            set(&mut new, at, 2);
        }
        seal(&mut old, 0);
        seal(&mut new, 0);
        let mut torn = old;
        torn[SECTOR_SIZE * 3..SECTOR_SIZE * 5]
            .copy_from_slice(&new[SECTOR_SIZE * 3..SECTOR_SIZE * 5]);
        verify(&torn, 0, "data-refs").unwrap();
    }
}
