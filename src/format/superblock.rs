//! The superblock: two checksummed 4 KiB slots; the valid one with the
//! higher generation is current. Slot `generation % 2` is written by a checkpoint.

use super::{crc_with_hole, get_u32, get_u64, put_u32, put_u64, FORMAT_VERSION, PAGE_SIZE};
use crate::error::{Error, Result};

pub const MAGIC: [u8; 8] = *b"COWSNAP1";

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 8;
const CRC_AT: usize = VERSION_AT + 4;
const GENERATION_AT: usize = CRC_AT + 4;
const POOL_ID_AT: usize = GENERATION_AT + 8;
const BLOCK_SIZE_AT: usize = POOL_ID_AT + 8;
const PAGE_SIZE_AT: usize = BLOCK_SIZE_AT + 4;
const CREATED_AT: usize = PAGE_SIZE_AT + 4;
/// Bytes covered by the checksum; the rest of the slot is zero.
pub const USED_LEN: usize = CREATED_AT + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// Checkpoint generation; selects the journal file `journal-{generation % 2}`.
    pub generation: u64,
    /// Random id tying the journal files to this pool.
    pub pool_id: u64,
    pub block_size: u32,
    pub created_unix: u64,
}

impl Superblock {
    pub fn slot_offset(generation: u64) -> u64 {
        (generation % 2) * PAGE_SIZE as u64
    }

    pub fn encode(&self) -> [u8; PAGE_SIZE] {
        let mut b = [0u8; PAGE_SIZE];
        b[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(&MAGIC);
        put_u32(&mut b, VERSION_AT, FORMAT_VERSION);
        put_u64(&mut b, GENERATION_AT, self.generation);
        put_u64(&mut b, POOL_ID_AT, self.pool_id);
        put_u32(&mut b, BLOCK_SIZE_AT, self.block_size);
        put_u32(&mut b, PAGE_SIZE_AT, PAGE_SIZE as u32);
        put_u64(&mut b, CREATED_AT, self.created_unix);
        let crc = crc_with_hole(&b[..USED_LEN], CRC_AT);
        put_u32(&mut b, CRC_AT, crc);
        b
    }

    /// Decode one slot. `Ok(None)` means the slot is empty or torn (bad
    /// magic or checksum); a valid slot of another version is an error.
    pub fn decode(b: &[u8], slot_offset: u64) -> Result<Option<Superblock>> {
        const FILE: &str = super::files::SUPERBLOCK;
        if b.len() < USED_LEN || b[MAGIC_AT..MAGIC_AT + 8] != MAGIC {
            return Ok(None);
        }
        if get_u32(b, CRC_AT) != crc_with_hole(&b[..USED_LEN], CRC_AT) {
            return Ok(None);
        }
        let version = get_u32(b, VERSION_AT);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: FILE,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let page_size = get_u32(b, PAGE_SIZE_AT);
        if page_size as usize != PAGE_SIZE {
            return Err(Error::corrupt(
                format!("superblock page size {page_size}, expected {PAGE_SIZE}"),
                FILE,
                slot_offset + PAGE_SIZE_AT as u64,
            ));
        }
        let block_size = get_u32(b, BLOCK_SIZE_AT);
        if !valid_block_size(block_size) {
            return Err(Error::corrupt(
                format!("superblock block size {block_size} is not a power of two in 4 KiB..1 MiB"),
                FILE,
                slot_offset + BLOCK_SIZE_AT as u64,
            ));
        }
        let generation = get_u64(b, GENERATION_AT);
        // Generations count checkpoints from 1; the top of the range is
        // refused so that the next generation always exists.
        if generation == 0 || generation > MAX_GENERATION {
            return Err(Error::corrupt(
                format!("superblock generation {generation} is outside 1..=2^62"),
                FILE,
                slot_offset + GENERATION_AT as u64,
            ));
        }
        Ok(Some(Superblock {
            generation,
            pool_id: get_u64(b, POOL_ID_AT),
            block_size,
            created_unix: get_u64(b, CREATED_AT),
        }))
    }
}

/// Largest generation a superblock may carry: 2^62 checkpoints never happen,
/// and `generation + 1` stays far from overflow.
pub const MAX_GENERATION: u64 = 1 << 62;

pub fn valid_block_size(bs: u32) -> bool {
    bs.is_power_of_two() && (super::MIN_BLOCK_SIZE..=super::MAX_BLOCK_SIZE).contains(&bs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            generation: 7,
            pool_id: 0xfeed,
            block_size: 65536,
            created_unix: 1_700_000_000,
        }
    }

    #[test]
    fn round_trips() {
        let b = sample().encode();
        assert_eq!(Superblock::decode(&b, 0).unwrap(), Some(sample()));
    }

    #[test]
    fn bit_flip_makes_slot_invalid() {
        let mut b = sample().encode();
        b[GENERATION_AT] ^= 1;
        assert_eq!(Superblock::decode(&b, 0).unwrap(), None);
    }

    #[test]
    fn other_version_is_typed_error() {
        let mut b = sample().encode();
        put_u32(&mut b, VERSION_AT, 99);
        let crc = crc_with_hole(&b[..USED_LEN], CRC_AT);
        put_u32(&mut b, CRC_AT, crc);
        let err = Superblock::decode(&b, 0).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::UnsupportedVersion);
    }

    #[test]
    fn generations_outside_the_range_are_corrupt() {
        for generation in [0, MAX_GENERATION + 1, u64::MAX] {
            let b = Superblock {
                generation,
                ..sample()
            }
            .encode();
            let err = Superblock::decode(&b, 0).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Corrupt, "{generation}");
            assert!(err.to_string().contains("generation"), "{err}");
        }
        let top = Superblock {
            generation: MAX_GENERATION,
            ..sample()
        };
        assert_eq!(Superblock::decode(&top.encode(), 0).unwrap(), Some(top));
    }
}
