//! The bodies of the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs` only call
//! these), kept here so ordinary tests can run them on a seed corpus and on
//! random inputs without a fuzzing toolchain. Each panics only on a real
//! violation: a decoder that panics or breaks a round trip, an engine that
//! panics on damaged files, or a crash-consistency invariant broken.

use super::op::decode_ops;
use super::runner::{run_crash_with, Cut};
use crate::format::journal::{
    decode_record_header, encode_record, padded_len, verify_record, JournalHeader, RecordKind,
    FIRST_RECORD_AT, RECORD_HEADER_LEN,
};
use crate::format::superblock::Superblock;
use crate::format::{files, node, refpage, PAGE_SIZE};
use crate::storage::sim::SimDisk;
use crate::Pool;
use std::sync::{Arc, OnceLock};

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = data.get(at..) {
        let n = s.len().min(8);
        b[..n].copy_from_slice(&s[..n]);
    }
    u64::from_le_bytes(b)
}

/// A page filled from `data` (zero-padded).
fn page_from(data: &[u8]) -> [u8; PAGE_SIZE] {
    let mut p = [0u8; PAGE_SIZE];
    let n = data.len().min(PAGE_SIZE);
    p[..n].copy_from_slice(&data[..n]);
    p
}

/// `decode_structures`: every on-disk decoder on arbitrary bytes must return
/// (never panic), and what the encoders seal must verify and round-trip.
pub fn fuzz_decode_structures(data: &[u8]) {
    // Where a map node keeps its own page number: a real page verifies.
    let page_no = u64_at(data, 8);
    // Superblock: both as given and as one slot of a page.
    let _ = Superblock::decode(data, 0);
    let page = page_from(data);
    if let Ok(Some(sb)) = Superblock::decode(&page, PAGE_SIZE as u64) {
        assert_eq!(
            Superblock::decode(&sb.encode(), 0).ok().flatten(),
            Some(sb),
            "superblock round trip"
        );
    }
    let sb = Superblock {
        // Generations are 1..=MAX_GENERATION; map anything into that range.
        generation: page_no % crate::format::superblock::MAX_GENERATION + 1,
        pool_id: u64_at(data, 0),
        block_size: 4096 << (data.first().copied().unwrap_or(0) % 9),
        created_unix: u64_at(data, 16),
    };
    assert_eq!(
        Superblock::decode(&sb.encode(), 0).ok().flatten(),
        Some(sb),
        "encoded superblock must decode"
    );

    // Map nodes: arbitrary pages, then the same entries sealed properly.
    let verdict = node::verify(&page, page_no, files::NODES);
    if verdict.is_ok() {
        let _ = (0..node::FANOUT).map(|i| node::entry(&page, i)).max();
    }
    let mut sealed = [0u8; PAGE_SIZE];
    let level = node::level(&page) % node::MAX_LEVELS;
    node::init(&mut sealed, page_no, level);
    for i in 0..node::FANOUT {
        node::set_entry(&mut sealed, i, node::entry(&page, i));
    }
    node::seal(&mut sealed);
    if let Err(e) = node::verify(&sealed, page_no, files::NODES) {
        panic!("a sealed node page must verify: {e}");
    }
    assert_eq!(node::level(&sealed), level);

    // Refcount pages: arbitrary, then sealed.
    let _ = refpage::verify(&page, page_no, files::DATA_REFS);
    let mut sealed = page;
    refpage::seal(&mut sealed, page_no);
    if let Err(e) = refpage::verify(&sealed, page_no, files::DATA_REFS) {
        panic!("a sealed refcount page must verify: {e}");
    }
    let _ = refpage::locate(page_no);

    // Journal: the header, then the bytes walked as a record stream.
    let _ = JournalHeader::decode(data, files::JOURNALS[0]);
    let _ = JournalHeader::decode(&page, files::JOURNALS[1]);
    let _ = verify_record(data);
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        match decode_record_header(rest) {
            Ok(h) => {
                let full = RECORD_HEADER_LEN + h.len as usize;
                if let Some(rec) = rest.get(..full) {
                    let _ = verify_record(rec);
                }
                at += padded_len(h.len as usize).min(rest.len()).max(8);
            }
            Err(_) => at += 8,
        }
    }
    // A record we frame ourselves must decode to what we framed.
    let kind = RecordKind::from_u8(1 + data.first().copied().unwrap_or(0) % 5)
        .unwrap_or(RecordKind::Commit);
    let payload = &data[data.len().min(24)..];
    let mut framed = Vec::new();
    encode_record(&mut framed, page_no, u64_at(data, 16), kind, payload);
    match decode_record_header(&framed) {
        Ok(h) => {
            assert_eq!(
                (h.generation, h.seq, h.kind, h.len as usize),
                (page_no, u64_at(data, 16), kind, payload.len())
            );
            assert_eq!(
                verify_record(&framed[..RECORD_HEADER_LEN + payload.len()]),
                Ok(()),
                "framed record must verify"
            );
        }
        Err(f) => panic!("a framed record must decode: {f:?}"),
    }
}

/// The files of a small valid pool: two volumes with data, snapshots, a
/// checkpoint (so the nodes and refcount files hold pages) and journal
/// records after it. Built once per process.
pub fn base_pool_files() -> &'static [(String, Vec<u8>)] {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| match build_base_pool() {
        Ok(files) => files,
        Err(e) => panic!("building the base pool for fuzzing failed (engine bug): {e}"),
    })
}

fn build_base_pool() -> crate::Result<Vec<(String, Vec<u8>)>> {
    let disk = SimDisk::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), 4096)?;
    pool.create_volume("a", 64 * 1024)?;
    pool.create_volume("b", 20_000)?;
    let a = pool.volume("a")?;
    let b = pool.volume("b")?;
    a.write_at(&super::runner::pattern(1, 1, 40_000), 0)?;
    b.write_at(&super::runner::pattern(2, 2, 9000), 3000)?;
    let s1 = pool.create_snapshot("a", "s1", "first")?;
    pool.checkpoint()?;
    a.write_at(&super::runner::pattern(3, 3, 5000), 10_000)?;
    pool.create_snapshot("b", "s2", "")?;
    let c = pool.clone_snapshot(s1.id, "c")?;
    pool.volume_by_id(c.id)?.write_at(&[7u8; 4096], 8192)?;
    pool.flush()?;
    drop((a, b));
    pool.close()?;
    Ok(disk
        .file_names()
        .into_iter()
        .filter_map(|n| disk.read_file(&n).map(|b| (n, b)))
        .collect())
}

/// Journal file index the base pool's superblock selects.
fn current_journal(files_: &[(String, Vec<u8>)]) -> usize {
    let sb = files_
        .iter()
        .find(|(n, _)| n == files::SUPERBLOCK)
        .map(|(_, b)| b.as_slice())
        .unwrap_or(&[]);
    let slot = |i: usize| {
        Superblock::decode(sb.get(i * PAGE_SIZE..).unwrap_or(&[]), 0)
            .ok()
            .flatten()
    };
    let generation = [slot(0), slot(1)]
        .into_iter()
        .flatten()
        .map(|s| s.generation)
        .max()
        .unwrap_or(0);
    (generation % 2) as usize
}

/// Offsets (and kinds) of the intact records of a journal, in order.
fn journal_records(j: &[u8]) -> Vec<(usize, RecordKind, usize)> {
    let mut out = Vec::new();
    let mut at = FIRST_RECORD_AT as usize;
    while let Some(rest) = j.get(at..) {
        let Ok(h) = decode_record_header(rest) else {
            break;
        };
        let full = RECORD_HEADER_LEN + h.len as usize;
        if rest.len() < full || verify_record(&rest[..full]).is_err() {
            break;
        }
        out.push((at, h.kind, h.len as usize));
        at += padded_len(h.len as usize);
    }
    out
}

fn record_header(j: &[u8], at: usize) -> Option<crate::format::journal::RecordHeader> {
    decode_record_header(j.get(at..)?).ok()
}

/// How [`fuzz_open_pool`] damages the base pool, chosen by the first byte.
/// Modes 2..=5 re-seal checksums, so the fuzzer reaches the code behind them.
pub const OPEN_MODES: u8 = 6;

/// `open_fuzzed_pool`: damage one file of a valid pool as the input says,
/// open it, and if it opens use it. Errors are fine; panics are not.
///
/// Input: `mode, pick, off0, off1, off2, rest...` where mode (mod
/// [`OPEN_MODES`]) is 0 overlay `rest` at offset `off` (24-bit) of file
/// `pick`; 1 truncate that file at `off` and append `rest`; 2 replace the
/// current journal's catalog payload with `rest` (re-sealed); 3 append a
/// sealed transaction to it whose records are `rest` as (kind - 1, len u16,
/// payload)*; 4 overwrite node page `pick` (mod the pages there) with a
/// sealed page of level `off` whose entries (mod 64, so many point at real
/// blocks) come from `rest`; 5 overwrite the first page of the data (even
/// `pick`) or node refcount table with `rest`, sealed.
pub fn fuzz_open_pool(data: &[u8]) {
    let Some(disk) = damaged_pool_disk(data) else {
        return;
    };
    let Ok(pool) = Pool::open_in(Arc::new(disk)) else {
        return;
    };
    exercise_opened(&pool);
}

/// The disk [`fuzz_open_pool`] opens: the base pool's files damaged as
/// `data` says (`None` when the input is empty or names a missing file).
pub fn damaged_pool_disk(data: &[u8]) -> Option<SimDisk> {
    let (&mode, rest) = data.split_first()?;
    let pick = rest.first().copied().unwrap_or(0);
    let off = u64_at(&rest[rest.len().min(1)..rest.len().min(4)], 0) as usize;
    let payload = &rest[rest.len().min(4)..];
    let mut files_: Vec<(String, Vec<u8>)> = base_pool_files().to_vec();
    let jidx = current_journal(&files_);
    let by_name = |files_: &mut Vec<(String, Vec<u8>)>, name: &str| {
        files_.iter().position(|(n, _)| n == name)
    };
    match mode % OPEN_MODES {
        0 | 1 => {
            let i = pick as usize % files_.len();
            let f = &mut files_[i].1;
            let at = off.min(f.len() + 4096);
            if mode % OPEN_MODES == 1 {
                f.truncate(at);
            }
            if f.len() < at + payload.len() {
                f.resize(at + payload.len(), 0);
            }
            f[at..at + payload.len()].copy_from_slice(payload);
        }
        2 | 3 => {
            let i = by_name(&mut files_, files::JOURNALS[jidx])?;
            let j = &mut files_[i].1;
            let records = journal_records(j);
            let &(first, _, _) = records.first()?;
            let h0 = record_header(j, first)?;
            // Journal files keep a fixed length (the header records it), so
            // records are rewritten in place and what follows them is zeroed.
            let (at, mut seq) = if mode % OPEN_MODES == 2 {
                (FIRST_RECORD_AT as usize, 0)
            } else {
                let &(last, _, len) = records.last()?;
                (
                    last + padded_len(len),
                    record_header(j, last).map_or(0, |h| h.seq + 1),
                )
            };
            let mut framed = Vec::new();
            if mode % OPEN_MODES == 2 {
                // Base = fuzz bytes, then Commit.
                encode_record(&mut framed, h0.generation, seq, RecordKind::Base, payload);
                seq += 1;
            } else {
                // (kind, len u16, payload)* as one transaction.
                let mut p = payload;
                while p.len() >= 3 {
                    let kind = RecordKind::from_u8(1 + p[0] % 6).unwrap_or(RecordKind::CatalogOp);
                    let n = (u16::from_le_bytes([p[1], p[2]]) as usize).min(p.len() - 3);
                    encode_record(&mut framed, h0.generation, seq, kind, &p[3..3 + n]);
                    seq += 1;
                    p = &p[3 + n..];
                }
            }
            encode_record(&mut framed, h0.generation, seq, RecordKind::Commit, &[]);
            let end = j.len().max(at + framed.len());
            j.truncate(at);
            j.extend_from_slice(&framed);
            j.resize(end, 0);
        }
        4 => {
            let i = by_name(&mut files_, files::NODES)?;
            let f = &mut files_[i].1;
            let pages = (f.len() / PAGE_SIZE).max(2) as u64;
            let page_no = 1 + pick as u64 % (pages - 1);
            let src = page_from(payload);
            let mut p = [0u8; PAGE_SIZE];
            node::init(&mut p, page_no, off as u8 % node::MAX_LEVELS);
            for e in 0..node::FANOUT {
                node::set_entry(&mut p, e, node::entry(&src, e) % 64);
            }
            node::seal(&mut p);
            let at = page_no as usize * PAGE_SIZE;
            if f.len() < at + PAGE_SIZE {
                f.resize(at + PAGE_SIZE, 0);
            }
            f[at..at + PAGE_SIZE].copy_from_slice(&p);
        }
        _ => {
            let name = if pick % 2 == 0 {
                files::DATA_REFS
            } else {
                files::NODE_REFS
            };
            let i = by_name(&mut files_, name)?;
            let f = &mut files_[i].1;
            let mut p = page_from(payload);
            refpage::seal(&mut p, 0);
            if f.len() < PAGE_SIZE {
                f.resize(PAGE_SIZE, 0);
            }
            f[..PAGE_SIZE].copy_from_slice(&p);
        }
    }
    let disk = SimDisk::new();
    for (name, bytes) in &files_ {
        disk.write_file(name, bytes);
    }
    Some(disk)
}

/// Use a pool opened from damaged files: bounded reads of everything, a
/// check when the tables are small enough to walk quickly, a write.
fn exercise_opened(pool: &Pool) {
    let stats = pool.stats();
    if stats.metadata_bytes <= 4 << 20 {
        let _ = pool.check(false);
    }
    for v in pool.list_volumes().into_iter().take(8) {
        let Ok(h) = pool.volume(&v.name) else {
            continue;
        };
        let n = v.size_bytes.min(64 * 1024) as usize;
        let mut buf = vec![0u8; n];
        let _ = h.read_at(&mut buf, 0);
        let _ = h.read_at(&mut buf[..n.min(4096)], v.size_bytes - n.min(4096) as u64);
        let _ = h.allocation(0, n as u64);
        let _ = h.write_at(&vec![0xC3; n.min(5000)], 0);
    }
    if let Ok(snaps) = pool.list_snapshots(None) {
        for s in snaps.into_iter().take(8) {
            let Ok(r) = pool.snapshot_reader(s.id) else {
                continue;
            };
            let mut buf = vec![0u8; r.size().min(64 * 1024) as usize];
            let _ = r.read_at(&mut buf, 0);
        }
    }
    let _ = pool.flush();
}

/// `ops_with_crash`: `mode, a, b, seed, ops...`: mode 0 cuts at sync `a`,
/// 1 after `a + 256*b` disk ops, 2 never (power is cut at the end); the
/// ops are [`decode_ops`] of the rest. Panics on any invariant violation.
pub fn fuzz_ops_with_crash(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let cut = match data[0] % 3 {
        0 => Cut::AtSync(data[1] as u64),
        1 => Cut::AfterOps(data[1] as u64 + 256 * data[2] as u64),
        _ => Cut::Never,
    };
    let ops = decode_ops(&data[4..]);
    if let Err(e) = run_crash_with(&ops, cut, &[data[3] as u64], false) {
        panic!("crash-consistency violation: {e}\nops: {ops:?}");
    }
}
