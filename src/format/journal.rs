//! Journal framing: a 4 KiB header page, then 8-byte aligned, crc-framed records.
//!
//! ```text
//! header (offset 0):
//! 0   magic      "CSJOURNL"
//! 8   version    u32
//! 12  crc32      u32   over bytes 0..40 with this field zero
//! 16  generation u64   must equal the superblock's
//! 24  pool_id    u64   must equal the superblock's
//! 32  file_len   u64   length the file was given; a shorter file was truncated
//!
//! record (offset 4096, then each 8-byte aligned):
//! 0   magic      "CSJR"
//! 4   crc32      u32   over the record header and payload with this field zero
//! 8   generation u64
//! 16  seq        u64   0, 1, 2, ... within a generation
//! 24  kind       u8
//! 25  reserved   [u8; 3] zero
//! 28  len        u32   payload bytes
//! 32  payload
//! ```

use super::{crc_with_hole, get_u32, get_u64, put_u32, put_u64, FORMAT_VERSION, PAGE_SIZE};
use crate::error::{Error, Result};

pub const HEADER_MAGIC: [u8; 8] = *b"CSJOURNL";
const H_VERSION_AT: usize = 8;
const H_CRC_AT: usize = H_VERSION_AT + 4;
const H_GENERATION_AT: usize = H_CRC_AT + 4;
const H_POOL_ID_AT: usize = H_GENERATION_AT + 8;
const H_FILE_LEN_AT: usize = H_POOL_ID_AT + 8;
const H_LEN: usize = H_FILE_LEN_AT + 8;

/// Records start after the header page.
pub const FIRST_RECORD_AT: u64 = PAGE_SIZE as u64;

pub const RECORD_MAGIC: [u8; 4] = *b"CSJR";
const R_CRC_AT: usize = 4;
const R_GENERATION_AT: usize = R_CRC_AT + 4;
const R_SEQ_AT: usize = R_GENERATION_AT + 8;
const R_KIND_AT: usize = R_SEQ_AT + 8;
const R_LEN_AT: usize = R_KIND_AT + 4;
pub const RECORD_HEADER_LEN: usize = R_LEN_AT + 4;
/// Largest payload a record may carry (a catalog of millions of snapshots still fits).
pub const MAX_PAYLOAD: u32 = 1 << 30;

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// The whole catalog, bincode; the first record of every generation.
    Base = 1,
    /// One catalog change, bincode.
    CatalogOp = 2,
    /// A map node's new bytes: page_no u64 + 4096 bytes.
    NodeImage = 3,
    /// Refcount values: table u8, 3 zero bytes, count u32, then count × (index u64, value u32).
    RefcountSet = 4,
    /// Ends a transaction: everything since the previous Commit applies atomically.
    Commit = 5,
    /// The journal file was lengthened to the u64 in the payload; a shorter
    /// file was truncated.
    Extend = 6,
}

impl RecordKind {
    pub fn from_u8(v: u8) -> Option<RecordKind> {
        Some(match v {
            1 => RecordKind::Base,
            2 => RecordKind::CatalogOp,
            3 => RecordKind::NodeImage,
            4 => RecordKind::RefcountSet,
            5 => RecordKind::Commit,
            6 => RecordKind::Extend,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHeader {
    pub generation: u64,
    pub pool_id: u64,
    pub file_len: u64,
}

impl JournalHeader {
    pub fn encode(&self) -> [u8; PAGE_SIZE] {
        let mut b = [0u8; PAGE_SIZE];
        b[..8].copy_from_slice(&HEADER_MAGIC);
        put_u32(&mut b, H_VERSION_AT, FORMAT_VERSION);
        put_u64(&mut b, H_GENERATION_AT, self.generation);
        put_u64(&mut b, H_POOL_ID_AT, self.pool_id);
        put_u64(&mut b, H_FILE_LEN_AT, self.file_len);
        let crc = crc_with_hole(&b[..H_LEN], H_CRC_AT);
        put_u32(&mut b, H_CRC_AT, crc);
        b
    }

    pub fn decode(b: &[u8], file: &'static str) -> Result<JournalHeader> {
        if b.len() < H_LEN || b[..8] != HEADER_MAGIC {
            return Err(Error::corrupt("journal header has bad magic", file, 0));
        }
        if get_u32(b, H_CRC_AT) != crc_with_hole(&b[..H_LEN], H_CRC_AT) {
            return Err(Error::corrupt(
                "journal header checksum mismatch",
                file,
                H_CRC_AT as u64,
            ));
        }
        let version = get_u32(b, H_VERSION_AT);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                file,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(JournalHeader {
            generation: get_u64(b, H_GENERATION_AT),
            pool_id: get_u64(b, H_POOL_ID_AT),
            file_len: get_u64(b, H_FILE_LEN_AT),
        })
    }
}

/// Sequence numbers are grouped in epochs of 2^32; each open starts a new
/// epoch, so records a crash left behind after the valid tail can never be
/// taken for the records that later overwrite the space before them.
pub const EPOCH_BITS: u32 = 32;

/// The first sequence number of the epoch after the one `seq` is in.
pub fn next_epoch(seq: u64) -> u64 {
    ((seq >> EPOCH_BITS) + 1) << EPOCH_BITS
}

/// Whether `seq` may follow `expected` at the start of a transaction.
pub fn seq_follows(expected: u64, seq: u64) -> bool {
    seq == expected || (seq > expected && seq.trailing_zeros() >= EPOCH_BITS)
}

/// Round a record length up to the 8-byte alignment records keep.
pub fn padded_len(payload_len: usize) -> usize {
    (RECORD_HEADER_LEN + payload_len).div_ceil(8) * 8
}

/// Append one framed record to `out`.
pub fn encode_record(
    out: &mut Vec<u8>,
    generation: u64,
    seq: u64,
    kind: RecordKind,
    payload: &[u8],
) {
    let start = out.len();
    out.resize(start + padded_len(payload.len()), 0);
    let rec = &mut out[start..];
    rec[..4].copy_from_slice(&RECORD_MAGIC);
    put_u64(rec, R_GENERATION_AT, generation);
    put_u64(rec, R_SEQ_AT, seq);
    rec[R_KIND_AT] = kind as u8;
    put_u32(rec, R_LEN_AT, payload.len() as u32);
    rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(payload);
    let crc = crc_with_hole(&rec[..RECORD_HEADER_LEN + payload.len()], R_CRC_AT);
    put_u32(rec, R_CRC_AT, crc);
}

/// A decoded record header; the payload follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub generation: u64,
    pub seq: u64,
    pub kind: RecordKind,
    pub len: u32,
}

/// Why a record could not be read: the end of the valid log, or a record that is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFault {
    /// Bytes that are not a record header (zeros, garbage, an older generation's record).
    NotARecord,
    /// A header that claims more payload than the file holds.
    Truncated,
    /// The checksum does not match.
    BadChecksum,
}

/// Parse the fixed header of the record starting at `buf[0]`.
pub fn decode_record_header(buf: &[u8]) -> std::result::Result<RecordHeader, RecordFault> {
    if buf.len() < RECORD_HEADER_LEN || buf[..4] != RECORD_MAGIC {
        return Err(RecordFault::NotARecord);
    }
    let kind = RecordKind::from_u8(buf[R_KIND_AT]).ok_or(RecordFault::NotARecord)?;
    let len = get_u32(buf, R_LEN_AT);
    if len > MAX_PAYLOAD {
        return Err(RecordFault::NotARecord);
    }
    Ok(RecordHeader {
        generation: get_u64(buf, R_GENERATION_AT),
        seq: get_u64(buf, R_SEQ_AT),
        kind,
        len,
    })
}

/// Check the crc of a whole record (`buf` holds header and payload, unpadded).
pub fn verify_record(buf: &[u8]) -> std::result::Result<(), RecordFault> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(RecordFault::Truncated);
    }
    if get_u32(buf, R_CRC_AT) == crc_with_hole(buf, R_CRC_AT) {
        Ok(())
    } else {
        Err(RecordFault::BadChecksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_damage() {
        let mut out = Vec::new();
        encode_record(&mut out, 3, 9, RecordKind::CatalogOp, b"hello");
        assert_eq!(out.len() % 8, 0);
        let h = decode_record_header(&out).unwrap();
        assert_eq!(
            (h.generation, h.seq, h.kind, h.len),
            (3, 9, RecordKind::CatalogOp, 5)
        );
        verify_record(&out[..RECORD_HEADER_LEN + 5]).unwrap();
        out[RECORD_HEADER_LEN] ^= 0x10;
        assert_eq!(
            verify_record(&out[..RECORD_HEADER_LEN + 5]),
            Err(RecordFault::BadChecksum)
        );
        assert_eq!(
            decode_record_header(&[0u8; 64]),
            Err(RecordFault::NotARecord)
        );
    }

    #[test]
    fn epochs_only_move_forward() {
        assert_eq!(next_epoch(5), 1 << 32);
        assert!(seq_follows(7, 7));
        assert!(seq_follows(7, 1 << 32));
        assert!(!seq_follows(7, 8));
        assert!(!seq_follows(1 << 33, 1 << 32));
    }

    #[test]
    fn header_round_trip() {
        let h = JournalHeader {
            generation: 5,
            pool_id: 11,
            file_len: 1 << 24,
        };
        assert_eq!(JournalHeader::decode(&h.encode(), "journal-1").unwrap(), h);
        let mut b = h.encode();
        b[20] ^= 1;
        assert!(JournalHeader::decode(&b, "journal-1").is_err());
    }
}
