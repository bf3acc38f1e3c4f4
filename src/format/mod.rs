//! Byte-level layout of every on-disk structure, mirroring `docs/FORMAT.md`.
//! Everything is little-endian; offsets are derived from the previous field.

pub mod journal;
pub mod node;
pub mod refpage;
pub mod superblock;

/// Size of every metadata page (nodes, refcount pages, superblock slots, journal header).
pub const PAGE_SIZE: usize = 4096;
/// Sector size the durability contract is stated in: a torn write keeps each
/// sector old or new, never a mix.
pub const SECTOR_SIZE: usize = 512;
/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Names of the files in a pool directory.
pub mod files {
    pub const SUPERBLOCK: &str = "superblock";
    pub const NODES: &str = "nodes";
    pub const NODE_REFS: &str = "node-refs";
    pub const DATA_REFS: &str = "data-refs";
    pub const DATA: &str = "data";
    pub const JOURNALS: [&str; 2] = ["journal-0", "journal-1"];
    pub const LOCK: &str = "lock";
}

/// Smallest and largest data block size a pool may use.
pub const MIN_BLOCK_SIZE: u32 = 4096;
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
pub const DEFAULT_BLOCK_SIZE: u32 = 64 * 1024;

pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// crc32 of `bytes` with the 4-byte checksum field at `crc_at` read as zero.
pub(crate) fn crc_with_hole(bytes: &[u8], crc_at: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..crc_at]);
    h.update(&[0u8; 4]);
    h.update(&bytes[crc_at + 4..]);
    h.finalize()
}
