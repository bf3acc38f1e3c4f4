//! The redo journal. A transaction is a run of records ending in a Commit
//! record; it is durable once the journal is synced after that record.
//! Replay applies only whole transactions, so a torn tail is harmless.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::format::journal::{
    decode_record_header, encode_record, padded_len, verify_record, JournalHeader, RecordFault,
    RecordKind, FIRST_RECORD_AT, RECORD_HEADER_LEN,
};
use crate::format::PAGE_SIZE;
use crate::meta::MetaState;
use crate::storage::Storage;
use std::sync::Arc;

pub(crate) struct Journal {
    file: Arc<dyn Storage>,
    name: &'static str,
    generation: u64,
    next_offset: u64,
    next_seq: u64,
}

impl Journal {
    /// Begin generation `generation` in `file`: header, the whole catalog, Commit.
    pub fn start(
        file: Arc<dyn Storage>,
        name: &'static str,
        generation: u64,
        pool_id: u64,
        catalog: &Catalog,
    ) -> Result<Journal> {
        let header = JournalHeader {
            generation,
            pool_id,
        }
        .encode();
        let mut buf = header.to_vec();
        encode_record(
            &mut buf,
            generation,
            0,
            RecordKind::Base,
            &crate::codec::encode(catalog),
        );
        encode_record(&mut buf, generation, 1, RecordKind::Commit, &[]);
        let io = |e| Error::io(format!("starting journal {name}"), e);
        file.write_at(&buf, 0).map_err(io)?;
        // Shrink away an older generation's records; they would be rejected
        // anyway (wrong generation), but need not take space.
        file.set_len(buf.len() as u64).map_err(io)?;
        file.sync().map_err(io)?;
        Ok(Journal {
            file,
            name,
            generation,
            next_offset: buf.len() as u64,
            next_seq: 2,
        })
    }

    /// Bytes of journal written in this generation.
    pub fn len(&self) -> u64 {
        self.next_offset
    }

    /// Frame `records` plus a Commit record and write them; the caller syncs
    /// with [`Journal::sync`] to make the transaction durable.
    pub fn append(&mut self, records: &[(RecordKind, Vec<u8>)]) -> Result<()> {
        let mut buf = Vec::with_capacity(
            records
                .iter()
                .map(|(_, p)| padded_len(p.len()))
                .sum::<usize>()
                + 64,
        );
        let mut seq = self.next_seq;
        for (kind, payload) in records {
            encode_record(&mut buf, self.generation, seq, *kind, payload);
            seq += 1;
        }
        encode_record(&mut buf, self.generation, seq, RecordKind::Commit, &[]);
        seq += 1;
        self.file
            .write_at(&buf, self.next_offset)
            .map_err(|e| Error::io(format!("appending to {}", self.name), e))?;
        self.next_offset += buf.len() as u64;
        self.next_seq = seq;
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        self.file
            .sync()
            .map_err(|e| Error::io(format!("syncing {}", self.name), e))
    }

    /// Replay every committed transaction of `generation` into `state`,
    /// then cut off any torn tail so new records follow the last commit.
    pub fn recover(
        file: Arc<dyn Storage>,
        name: &'static str,
        generation: u64,
        pool_id: u64,
        state: &mut MetaState,
    ) -> Result<Journal> {
        let io = |e| Error::io(format!("reading {name}"), e);
        let file_len = file.len().map_err(io)?;
        let mut reader = Reader::new(file.clone(), file_len);
        let header = JournalHeader::decode(reader.bytes(0, PAGE_SIZE as u64).map_err(io)?, name)?;
        if header.generation != generation || header.pool_id != pool_id {
            return Err(Error::corrupt(
                format!(
                    "journal belongs to generation {} of pool {:#x}, superblock expects generation {generation} of pool {pool_id:#x}",
                    header.generation, header.pool_id
                ),
                name,
                0,
            ));
        }
        let mut offset = FIRST_RECORD_AT;
        let mut seq = 0u64;
        let mut committed_end = None;
        let mut txn: Vec<(RecordKind, Vec<u8>, u64)> = Vec::new();
        let stop = loop {
            let Some(head) = reader
                .bytes(offset, RECORD_HEADER_LEN as u64)
                .map_err(io)?
                .get(..RECORD_HEADER_LEN)
            else {
                break RecordFault::Truncated;
            };
            let h = match decode_record_header(head) {
                Ok(h) => h,
                Err(f) => break f,
            };
            if h.generation != generation || h.seq != seq {
                break RecordFault::NotARecord;
            }
            let full = RECORD_HEADER_LEN as u64 + h.len as u64;
            if offset + full > file_len {
                break RecordFault::Truncated;
            }
            let rec = reader.bytes(offset, full).map_err(io)?;
            if let Err(f) = verify_record(rec) {
                break f;
            }
            let payload = rec[RECORD_HEADER_LEN..].to_vec();
            if seq == 0 && h.kind != RecordKind::Base {
                return Err(Error::corrupt(
                    "journal does not start with the catalog",
                    name,
                    offset,
                ));
            }
            if seq != 0 && h.kind == RecordKind::Base {
                return Err(Error::corrupt(
                    "catalog record in the middle of the journal",
                    name,
                    offset,
                ));
            }
            let at = offset;
            offset += padded_len(h.len as usize) as u64;
            seq += 1;
            if h.kind == RecordKind::Commit {
                for (kind, payload, at) in txn.drain(..) {
                    state.replay(kind, &payload, name, at)?;
                }
                committed_end = Some((offset, seq));
            } else {
                txn.push((h.kind, payload, at));
            }
        };
        let Some((end, next_seq)) = committed_end else {
            return Err(Error::corrupt(
                format!("journal has no committed catalog ({stop:?} at byte {offset})"),
                name,
                offset,
            ));
        };
        // A damaged record followed by intact later ones of this generation is
        // corruption in committed history, not a torn tail.
        if let Some(at) = find_later_record(&mut reader, offset + 8, generation, seq).map_err(io)? {
            return Err(Error::corrupt(
                format!("journal record at byte {offset} is damaged ({stop:?}) but a later record at byte {at} is intact"),
                name,
                offset,
            ));
        }
        state.finish_replay();
        if file_len > end {
            file.set_len(end)
                .map_err(|e| Error::io(format!("trimming torn tail of {name}"), e))?;
            file.sync()
                .map_err(|e| Error::io(format!("syncing {name}"), e))?;
        }
        Ok(Journal {
            file,
            name,
            generation,
            next_offset: end,
            next_seq,
        })
    }
}

fn find_later_record(
    reader: &mut Reader,
    from: u64,
    generation: u64,
    min_seq: u64,
) -> std::io::Result<Option<u64>> {
    let mut at = from.div_ceil(8) * 8;
    while at + RECORD_HEADER_LEN as u64 <= reader.file_len {
        let head = reader.bytes(at, RECORD_HEADER_LEN as u64)?;
        if let Ok(h) = decode_record_header(head) {
            if h.generation == generation && h.seq >= min_seq {
                let full = RECORD_HEADER_LEN as u64 + h.len as u64;
                if at + full <= reader.file_len && verify_record(reader.bytes(at, full)?).is_ok() {
                    return Ok(Some(at));
                }
            }
        }
        at += 8;
    }
    Ok(None)
}

/// Windowed reads over the journal so replay does not issue one syscall per record.
struct Reader {
    file: Arc<dyn Storage>,
    file_len: u64,
    window_at: u64,
    window: Vec<u8>,
}

const WINDOW: u64 = 1 << 20;

impl Reader {
    fn new(file: Arc<dyn Storage>, file_len: u64) -> Reader {
        Reader {
            file,
            file_len,
            window_at: 0,
            window: Vec::new(),
        }
    }

    /// Up to `len` bytes at `at` (fewer at end of file).
    fn bytes(&mut self, at: u64, len: u64) -> std::io::Result<&[u8]> {
        let end = (at.saturating_add(len)).min(self.file_len);
        if at >= end {
            return Ok(&[]);
        }
        let have = at >= self.window_at && end <= self.window_at + self.window.len() as u64;
        if !have {
            let want = (end - at).max(WINDOW).min(self.file_len - at);
            self.window = vec![0u8; want as usize];
            self.file.read_at(&mut self.window, at)?;
            self.window_at = at;
        }
        let s = (at - self.window_at) as usize;
        Ok(&self.window[s..s + (end - at) as usize])
    }
}
