//! The redo journal. A transaction is a run of records ending in a Commit
//! record; it is durable once the journal is synced after that record.
//! Replay applies only whole transactions, so a torn tail is harmless.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::format::journal::{
    decode_record_header, encode_record, next_epoch, padded_len, seq_follows, verify_record,
    JournalHeader, RecordFault, RecordKind, FIRST_RECORD_AT, MAX_PAYLOAD, RECORD_HEADER_LEN,
};
use crate::format::PAGE_SIZE;
use crate::meta::{MetaState, Replayed};
use crate::storage::Storage;
use std::sync::Arc;

/// Length a journal file is given when a generation starts (sparse: holes cost nothing).
const JOURNAL_FILE_LEN: u64 = 4 << 20;

pub(crate) struct Journal {
    file: Arc<dyn Storage>,
    name: &'static str,
    generation: u64,
    next_offset: u64,
    next_seq: u64,
    /// The length committed records promise the file has.
    file_len: u64,
}

/// A payload over the format's bound would be written but never replayed.
fn fits_a_record(journal: &str, len: usize) -> Result<()> {
    if len as u64 > u64::from(MAX_PAYLOAD) {
        return Err(Error::LimitReached {
            what: format!("journal record bytes in {journal} ({len} asked)"),
            limit: u64::from(MAX_PAYLOAD),
        });
    }
    Ok(())
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
        let base = crate::codec::encode(catalog);
        // Refused before anything is written: the previous generation stays
        // the valid one.
        fits_a_record(name, base.len())?;
        let mut body = Vec::new();
        encode_record(&mut body, generation, 0, RecordKind::Base, &base);
        encode_record(&mut body, generation, 1, RecordKind::Commit, &[]);
        let used = PAGE_SIZE as u64 + body.len() as u64;
        let file_len = JOURNAL_FILE_LEN.max(used.next_multiple_of(PAGE_SIZE as u64));
        let header = JournalHeader {
            generation,
            pool_id,
            file_len,
        }
        .encode();
        let io = |e| Error::io(format!("starting journal {name}"), e);
        file.write_at(&header, 0).map_err(io)?;
        file.write_at(&body, PAGE_SIZE as u64).map_err(io)?;
        // Cut away an older generation's records (they would be rejected
        // anyway), then give the file its fixed length: a later truncation
        // of committed records is then visible as a short file.
        file.set_len(used).map_err(io)?;
        file.set_len(file_len).map_err(io)?;
        file.sync().map_err(io)?;
        Ok(Journal {
            file,
            name,
            generation,
            next_offset: used,
            next_seq: 2,
            file_len,
        })
    }

    /// Bytes of journal written in this generation.
    pub fn len(&self) -> u64 {
        self.next_offset
    }

    /// Frame `records` plus a Commit record and write them; the caller syncs
    /// with [`Journal::sync`] to make the transaction durable.
    pub fn append(&mut self, records: &[(RecordKind, Vec<u8>)]) -> Result<()> {
        for (_, payload) in records {
            fits_a_record(self.name, payload.len())?;
        }
        let mut buf = Vec::with_capacity(
            records
                .iter()
                .map(|(_, p)| padded_len(p.len()))
                .sum::<usize>()
                + 64,
        );
        let mut seq = self.next_seq;
        let io = |e| Error::io(format!("appending to {}", self.name), e);
        let needed: u64 = self.next_offset
            + records
                .iter()
                .map(|(_, p)| padded_len(p.len()) as u64)
                .sum::<u64>()
            + 2 * padded_len(8) as u64;
        if needed > self.file_len {
            // Grow, and say so inside the transaction: the committed Extend
            // record is what lets replay tell a truncated file from a short log.
            let new_len = needed
                .next_multiple_of(PAGE_SIZE as u64)
                .max(self.file_len.saturating_mul(2));
            self.file.set_len(new_len).map_err(io)?;
            encode_record(
                &mut buf,
                self.generation,
                seq,
                RecordKind::Extend,
                &new_len.to_le_bytes(),
            );
            seq += 1;
            self.file_len = new_len;
        }
        for (kind, payload) in records {
            encode_record(&mut buf, self.generation, seq, *kind, payload);
            seq += 1;
        }
        encode_record(&mut buf, self.generation, seq, RecordKind::Commit, &[]);
        seq += 1;
        self.file.write_at(&buf, self.next_offset).map_err(io)?;
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
        if file_len < header.file_len {
            return Err(Error::corrupt(
                format!(
                    "journal is {file_len} bytes but was created with {}: truncated",
                    header.file_len
                ),
                name,
                0,
            ));
        }
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
        let mut promised_len = header.file_len;
        let mut txn: Vec<Replayed> = Vec::new();
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
            let at_txn_start = txn.is_empty() && seq != 0;
            let seq_ok = if at_txn_start {
                seq_follows(seq, h.seq)
            } else {
                h.seq == seq
            };
            if h.generation != generation || !seq_ok {
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
            let parsed = MetaState::parse_record(h.kind, &rec[RECORD_HEADER_LEN..], name, offset)?;
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
            offset += padded_len(h.len as usize) as u64;
            seq = h.seq + 1;
            if h.kind == RecordKind::Commit {
                for record in txn.drain(..) {
                    if let Replayed::Extend(len) = record {
                        promised_len = promised_len.max(len);
                    }
                    state.apply_replayed(record)?;
                }
                committed_end = Some((offset, seq));
            } else {
                txn.push(parsed);
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
        let tail = scan_tail(&mut reader, end, offset + 8, generation, seq).map_err(io)?;
        if let Some(at) = tail.later_record {
            return Err(Error::corrupt(
                format!("journal record at byte {offset} is damaged ({stop:?}) but a later record at byte {at} is intact"),
                name,
                offset,
            ));
        }
        if file_len < promised_len {
            return Err(Error::corrupt(
                format!("journal is {file_len} bytes but its committed records say {promised_len}: truncated"),
                name,
                file_len,
            ));
        }
        state.finish_replay(name)?;
        // Everything is judged before the first write of the open.
        state.catalog.validate(state.block_size, name)?;
        if tail.dirty {
            // A crash left a torn append after `end`. New records will
            // overwrite it only in part, and a later epoch alone cannot keep
            // its remains out: an open that commits nothing reuses the epoch.
            // So zero it, durably, before anything is appended.
            zero_tail(&file, end, promised_len.max(file_len))
                .map_err(|e| Error::io(format!("clearing the torn tail of {name}"), e))?;
        }
        Ok(Journal {
            file,
            name,
            generation,
            next_offset: end,
            next_seq: next_epoch(next_seq),
            file_len: promised_len.max(file_len),
        })
    }

    /// Whether `file` holds generation `generation` of this pool with at
    /// least one committed transaction after its base catalog. Such a journal
    /// only exists once the superblock naming that generation was durable.
    pub fn has_commits_after_base(
        file: &Arc<dyn Storage>,
        generation: u64,
        pool_id: u64,
    ) -> std::io::Result<bool> {
        let file_len = file.len()?;
        let mut reader = Reader::new(file.clone(), file_len);
        let Ok(header) = JournalHeader::decode(reader.bytes(0, PAGE_SIZE as u64)?, "journal")
        else {
            return Ok(false);
        };
        if header.generation != generation || header.pool_id != pool_id {
            return Ok(false);
        }
        let mut offset = FIRST_RECORD_AT;
        let mut expected = 0u64;
        loop {
            let head = reader.bytes(offset, RECORD_HEADER_LEN as u64)?;
            let Ok(h) = decode_record_header(head) else {
                return Ok(false);
            };
            let ok_seq = if expected >= 2 {
                seq_follows(expected, h.seq)
            } else {
                h.seq == expected
            };
            let full = RECORD_HEADER_LEN as u64 + h.len as u64;
            if h.generation != generation || !ok_seq || offset + full > file_len {
                return Ok(false);
            }
            if verify_record(reader.bytes(offset, full)?).is_err() {
                return Ok(false);
            }
            if h.seq >= 2 {
                return Ok(true);
            }
            offset += padded_len(h.len as usize) as u64;
            expected = h.seq + 1;
        }
    }
}

/// What lies after the valid end of the log.
struct Tail {
    /// Proof that a damaged record was committed history (see [`scan_tail`]).
    later_record: Option<u64>,
    /// Whether any byte after the valid end is non-zero.
    dirty: bool,
}

/// Looks past a damaged record for proof that it was committed history and
/// not the torn final append: an intact Commit of this epoch followed by
/// another intact record. Only the last append can be torn by a crash, and
/// an append is one transaction, so a record after a later Commit means the
/// damaged one was synced before; `later_record` says where that evidence
/// starts. Also tells whether anything but zeros follows `end`.
fn scan_tail(
    reader: &mut Reader,
    end: u64,
    from: u64,
    generation: u64,
    min_seq: u64,
) -> std::io::Result<Tail> {
    let mut dirty = reader.bytes(end, from - end)?.iter().any(|&b| b != 0);
    let mut at = from.div_ceil(8) * 8;
    let mut commit_seq: Option<u64> = None;
    while at + RECORD_HEADER_LEN as u64 <= reader.file_len {
        // Skip runs of zeros (the unused, sparse end of the file) quickly.
        let window = reader.bytes(at, 1 << 16)?;
        match window.iter().position(|&b| b != 0) {
            None => {
                at += window.len() as u64;
                continue;
            }
            Some(i) if i >= 8 => {
                dirty = true;
                at += (i as u64) / 8 * 8;
                continue;
            }
            Some(_) => dirty = true,
        }
        let head = reader.bytes(at, RECORD_HEADER_LEN as u64)?;
        if let Ok(h) = decode_record_header(head) {
            if h.generation == generation && h.seq >= min_seq {
                let full = RECORD_HEADER_LEN as u64 + h.len as u64;
                if at + full <= reader.file_len && verify_record(reader.bytes(at, full)?).is_ok() {
                    match commit_seq {
                        Some(c) if h.seq > c => {
                            return Ok(Tail {
                                later_record: Some(at),
                                dirty,
                            })
                        }
                        None if h.kind == RecordKind::Commit => commit_seq = Some(h.seq),
                        _ => {}
                    }
                    at += padded_len(h.len as usize) as u64;
                    continue;
                }
            }
        }
        at += 8;
    }
    // The last partial record slot (under a header's length) was not scanned.
    dirty |= reader
        .bytes(at, reader.file_len.saturating_sub(at))?
        .iter()
        .any(|&b| b != 0);
    Ok(Tail {
        later_record: None,
        dirty,
    })
}

/// Make `[end, len)` read as zeros, durably. Zeros are written over each
/// window holding anything else (punching holes is only a hint on some
/// filesystems); this runs once, after a crash left a torn append.
fn zero_tail(file: &Arc<dyn Storage>, end: u64, len: u64) -> std::io::Result<()> {
    const STEP: u64 = 1 << 20;
    let mut buf = vec![0u8; STEP as usize];
    let zeros = vec![0u8; STEP as usize];
    let mut at = end;
    while at < len {
        let n = (len - at).min(STEP) as usize;
        file.read_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            file.write_at(&zeros[..n], at)?;
        }
        at += n as u64;
    }
    file.sync()
}

/// Windowed reads over the journal so replay does not issue one syscall per record.
struct Reader {
    file: Arc<dyn Storage>,
    file_len: u64,
    window_at: u64,
    window: Vec<u8>,
}

/// Read-ahead for the journal scan; small enough that opening stays cheap.
const WINDOW: u64 = 64 << 10;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{encode_refcounts, Table};
    use crate::storage::sim::SimDisk;
    use crate::storage::Dir;

    const GEN: u64 = 1;
    const POOL: u64 = 7;

    fn state(disk: &SimDisk) -> MetaState {
        let open = |n: &str| disk.open(n).unwrap();
        MetaState::new(
            4096,
            Catalog::new(),
            open("nodes"),
            open("node-refs"),
            open("data-refs"),
        )
    }

    fn recover(disk: &SimDisk) -> (Journal, MetaState) {
        let mut st = state(disk);
        let j = Journal::recover(disk.open("j").unwrap(), "j", GEN, POOL, &mut st).unwrap();
        (j, st)
    }

    /// Sets data refcount `index` to `value`; `extra` entries pad the record.
    fn refs(entries: &[(u64, u32)]) -> (RecordKind, Vec<u8>) {
        (
            RecordKind::RefcountSet,
            encode_refcounts(Table::Data, entries),
        )
    }

    /// Session 1 tears its only append, so session 2 reuses its epoch.
    /// Session 2's commit then ends exactly where one of the torn
    /// transaction's records begins, with the seq replay would expect next.
    /// That record and the torn transaction's Commit must never be replayed.
    #[test]
    fn a_torn_append_is_never_replayed_behind_a_later_commit() {
        let disk = SimDisk::new();
        let mut catalog = Catalog::new();
        catalog.counters.data_hw = 100;
        drop(Journal::start(disk.open("j").unwrap(), "j", GEN, POOL, &catalog).unwrap());

        // Session 1: T = [A, B, C, Commit], each refcount record 56 bytes.
        let (mut j, _) = recover(&disk);
        let t_at = j.len();
        j.append(&[refs(&[(1, 5)]), refs(&[(2, 6)]), refs(&[(3, 7)])])
            .unwrap();
        j.sync().unwrap();
        drop(j);
        // The crash lost the sector holding A's header.
        let mut file = disk.read_file("j").unwrap();
        file[t_at as usize..t_at as usize + 32].fill(0);
        disk.write_file("j", &file);

        // Session 2: U = [X (80 bytes), Commit (32)] covers exactly A and B.
        let (mut j, st) = recover(&disk);
        assert_eq!(j.len(), t_at, "T never committed");
        drop(st);
        j.append(&[refs(&[(10, 1), (11, 1), (12, 1)])]).unwrap();
        assert_eq!(j.len(), t_at + 112);
        j.sync().unwrap();
        drop(j);

        let (_, mut st) = recover(&disk);
        assert_eq!(st.data_refs.get(10).unwrap(), 1, "U committed");
        assert_eq!(
            st.data_refs.get(3).unwrap(),
            0,
            "record C of the torn transaction was replayed"
        );
    }
}
