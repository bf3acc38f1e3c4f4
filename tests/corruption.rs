//! Damaged pool files never panic the engine and never yield silently wrong
//! data: opening either fails with a typed error (Corrupt, UnsupportedVersion,
//! Io) or every volume and snapshot reads back exactly or with an error, and
//! `check` flags whatever reads could not be trusted. Two documented
//! exceptions: the data file carries no checksum (as in dm-thin), so damage
//! there is only required not to panic; and damage at the journal's tail may
//! drop the last transactions (FORMAT.md, "Known limits"), giving exactly the
//! earlier state, never a mix.

use cowsnap::format::journal::{
    decode_record_header, encode_record, padded_len, RecordKind, FIRST_RECORD_AT, RECORD_HEADER_LEN,
};
use cowsnap::format::superblock::{Superblock, USED_LEN};
use cowsnap::storage::sim::SimDisk;
use cowsnap::storage::Dir;
use cowsnap::{Error, ErrorKind, Pool};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

const BS: u32 = 4096;
const PAGE: u64 = 4096;
const SB: &str = "superblock";
const NODES: &str = "nodes";
const NODE_REFS: &str = "node-refs";
const DATA_REFS: &str = "data-refs";
const DATA: &str = "data";

// ---------------------------------------------------------------------------
// The pristine pool and what it must read back as.

/// Everything a caller can observe of a pool.
#[derive(Clone, Debug, PartialEq, Default)]
struct State {
    volumes: BTreeMap<String, Vec<u8>>,
    /// id -> (snapshot name, volume name, content)
    snapshots: BTreeMap<u64, (String, String, Vec<u8>)>,
    app_data: BTreeMap<String, Vec<u8>>,
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((seed * 0x9e37 + i * 131 + (i >> 7)) % 251) as u8 + 1)
        .collect()
}

struct Builder<'a> {
    pool: &'a Pool,
    m: State,
}

impl Builder<'_> {
    fn volume(&mut self, name: &str, size: u64) {
        self.pool.create_volume(name, size).unwrap();
        self.m.volumes.insert(name.into(), vec![0; size as usize]);
    }
    fn write(&mut self, name: &str, at: usize, len: usize, seed: u64) {
        let data = pattern(seed, len);
        self.pool
            .volume(name)
            .unwrap()
            .write_at(&data, at as u64)
            .unwrap();
        self.m.volumes.get_mut(name).unwrap()[at..at + len].copy_from_slice(&data);
    }
    fn snapshot(&mut self, vol: &str, name: &str) -> u64 {
        let id = self.pool.create_snapshot(vol, name, "d").unwrap().id;
        let content = self.m.volumes[vol].clone();
        self.m
            .snapshots
            .insert(id, (name.into(), vol.into(), content));
        id
    }
}

/// A record of the current journal, as parsed from the pristine bytes.
#[derive(Clone, Copy, Debug)]
struct Rec {
    at: u64,
    /// Header plus payload, without padding.
    len: u64,
    padded: u64,
    kind: RecordKind,
    seq: u64,
}

struct Fixture {
    /// The closed pool, every file fully durable, nothing pending.
    disk: SimDisk,
    files: BTreeMap<String, Vec<u8>>,
    expected: State,
    /// The states before the last and before the last two committed
    /// transactions (FORMAT.md, "Known limits": damage inside the last one,
    /// or to the Commit record of the one before, drops them).
    before_last: State,
    before_last_two: State,
    /// The state when the checkpoint was taken (for naming rollbacks).
    at_checkpoint: State,
    generation: u64,
    current_slot: u64,
    current_journal: &'static str,
    older_journal: &'static str,
    records: Vec<Rec>,
    /// Byte offset where the last committed transaction's records begin.
    last_txn_at: u64,
    /// Byte offset of the Commit record that ends the transaction before it.
    prev_commit_at: u64,
    /// Where the current journal's records end (the file may be longer).
    records_end: u64,
    older_records_end: u64,
    /// Bytes of the journal header its crc covers (derived from the bytes).
    journal_header_len: usize,
    node_pages: u64,
}

impl Fixture {
    /// An independent copy of the pristine disk (pages are shared, not copied).
    fn copy(&self) -> SimDisk {
        self.disk.crash(0)
    }
    fn file(&self, name: &str) -> &[u8] {
        &self.files[name]
    }
    /// What damage inside record `r` may do, per FORMAT.md's "Known limits":
    /// inside the last transaction it may drop that transaction; in the
    /// Commit record before it, the last two; anywhere earlier it must be
    /// detected (or harmless).
    fn allow_for_damage_in(&self, r: &Rec) -> Allow {
        if r.at >= self.last_txn_at {
            Allow::ExactOrErrorOrDrop(1)
        } else if r.at == self.prev_commit_at {
            Allow::ExactOrErrorOrDrop(2)
        } else {
            Allow::ExactOrError
        }
    }
    fn journal_file_len(&self) -> u64 {
        self.files[self.current_journal].len() as u64
    }
}

fn fixture() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let disk = SimDisk::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), BS).unwrap();
    let mut b = Builder {
        pool: &pool,
        m: State::default(),
    };
    b.volume("a", 256 << 10);
    b.volume("b", 100_000 + 123); // not a whole number of blocks
    b.volume("c", 600 * BS as u64); // > 510 blocks: a two-level map
    b.write("a", 0, 70_000, 1);
    b.write("a", 100_000, 5000, 2);
    b.write("b", 3, 50_000, 3);
    b.write("b", 100_000, 123, 4); // the partial last block
    b.write("c", 0, 3 * BS as usize, 5);
    b.write("c", 550 * BS as usize + 17, 10_000, 6); // second leaf
    b.snapshot("a", "a1");
    b.write("a", 4000, 9000, 7);
    let b1 = b.snapshot("b", "b1");
    let a1 = *b.m.snapshots.iter().find(|(_, s)| s.0 == "a1").unwrap().0;
    pool.clone_snapshot(a1, "d").unwrap();
    let a1_content = b.m.snapshots[&a1].2.clone();
    b.m.volumes.insert("d".into(), a1_content);
    b.write("d", 60_000, 20_000, 8);
    pool.put_app_data("k1", b"one".to_vec()).unwrap();
    b.m.app_data.insert("k1".into(), b"one".to_vec());
    b.snapshot("c", "c1");
    b.write("c", 100, 200, 9);
    pool.checkpoint().unwrap();
    let at_checkpoint = b.m.clone();

    // More history after the checkpoint, in the new journal generation.
    b.write("a", 30_000, 50_000, 10);
    b.snapshot("a", "a2");
    pool.delete_snapshot(b1).unwrap();
    b.m.snapshots.remove(&b1);
    b.write("b", 40_000, 30_000, 11);
    b.snapshot("d", "d1");
    pool.put_app_data("k2", b"two".to_vec()).unwrap();
    b.m.app_data.insert("k2".into(), b"two".to_vec());
    let before_last_two = b.m.clone();
    // The last two transactions: a write to c (flushed), then one to a (closed).
    b.write("c", 300 * BS as usize, 5000, 12);
    pool.flush().unwrap();
    let before_last = b.m.clone();
    // The last transaction: a partial overwrite of blocks shared with a2.
    b.write("a", 31_000, 3000, 13);
    let expected = b.m.clone();
    pool.close().unwrap();

    // Make everything durable (close leaves punched holes un-synced), so that
    // every `crash(0)` copy of the disk is exact.
    let mut files = BTreeMap::new();
    for name in disk.file_names() {
        Dir::open(&disk, &name).unwrap().sync().unwrap();
        files.insert(name.clone(), disk.read_file(&name).unwrap());
    }
    let sb = &files[SB];
    let slot = |i: u64| {
        Superblock::decode(
            &sb[(i * PAGE) as usize..((i + 1) * PAGE) as usize],
            i * PAGE,
        )
        .unwrap()
    };
    let (s0, s1) = (
        slot(0).expect("slot 0 valid"),
        slot(1).expect("slot 1 valid"),
    );
    let current = if s0.generation > s1.generation {
        s0
    } else {
        s1
    };
    let generation = current.generation;
    let journals = ["journal-0", "journal-1"];
    let current_journal = journals[(generation % 2) as usize];
    let older_journal = journals[(1 - generation % 2) as usize];
    let records = parse_records(&files[current_journal]);
    let commits: Vec<&Rec> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Commit)
        .collect();
    assert!(
        commits.len() >= 3,
        "the current journal holds several transactions"
    );
    let prev_commit = commits[commits.len() - 2];
    let last_txn_at = prev_commit.at + prev_commit.padded;
    let prev_commit_at = prev_commit.at;
    let records_end = records.last().unwrap().at + records.last().unwrap().padded;
    let older = parse_records(&files[older_journal]);
    let older_records_end = older.last().map_or(FIRST_RECORD_AT, |r| r.at + r.padded);
    let journal_header_len = header_crc_len(&files[current_journal]);
    let node_pages = files[NODES].len() as u64 / PAGE;
    assert!(
        node_pages >= 4,
        "the checkpoint wrote map nodes home ({node_pages} pages)"
    );
    assert!(files[DATA_REFS].len() >= PAGE as usize && files[NODE_REFS].len() >= PAGE as usize);
    Fixture {
        disk,
        files,
        expected,
        before_last,
        before_last_two,
        at_checkpoint,
        generation,
        current_slot: generation % 2,
        current_journal,
        older_journal,
        records,
        last_txn_at,
        prev_commit_at,
        records_end,
        older_records_end,
        journal_header_len,
        node_pages,
    }
}

/// How many header bytes the journal header's crc (at 12) covers.
fn header_crc_len(j: &[u8]) -> usize {
    let stored = u32::from_le_bytes(j[12..16].try_into().unwrap());
    (24..=PAGE as usize)
        .step_by(8)
        .find(|&n| crc_with_hole(&j[..n], 12) == stored)
        .expect("no prefix of the journal header matches its crc")
}

fn parse_records(j: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut at = FIRST_RECORD_AT;
    while let Ok(h) = decode_record_header(j.get(at as usize..).unwrap_or(&[])) {
        let len = (RECORD_HEADER_LEN + h.len as usize) as u64;
        out.push(Rec {
            at,
            len,
            padded: padded_len(h.len as usize) as u64,
            kind: h.kind,
            seq: h.seq,
        });
        at += padded_len(h.len as usize) as u64;
    }
    out
}

// ---------------------------------------------------------------------------
// Judging one damaged pool.

/// Result of reading everything from an opened pool and comparing with a state.
#[derive(Debug)]
enum Cmp {
    Exact,
    /// Some reads failed with a typed error; everything that succeeded was exact.
    Errors(Vec<String>),
    /// Something read back successfully but wrong.
    Wrong(Vec<String>),
}

fn typed_read_error(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Io)
}

/// Read `want.len()` bytes in chunks and compare: the first differing byte, if any.
fn read_compare(
    want: &[u8],
    read: impl Fn(&mut [u8], u64) -> cowsnap::Result<()>,
) -> cowsnap::Result<Option<usize>> {
    const CHUNK: usize = 64 << 10;
    let mut buf = vec![0u8; CHUNK];
    for at in (0..want.len()).step_by(CHUNK) {
        let n = CHUNK.min(want.len() - at);
        read(&mut buf[..n], at as u64)?;
        if buf[..n] != want[at..at + n] {
            return Ok(Some(
                at + buf[..n]
                    .iter()
                    .zip(&want[at..])
                    .position(|(a, b)| a != b)
                    .unwrap(),
            ));
        }
    }
    Ok(None)
}

fn compare(pool: &Pool, want: &State) -> Cmp {
    let mut errors = Vec::new();
    let mut wrong = Vec::new();
    let vols: BTreeMap<String, u64> = pool
        .list_volumes()
        .into_iter()
        .map(|v| (v.name, v.size_bytes))
        .collect();
    let want_vols: BTreeMap<String, u64> = want
        .volumes
        .iter()
        .map(|(n, b)| (n.clone(), b.len() as u64))
        .collect();
    if vols != want_vols {
        wrong.push(format!("volumes {vols:?}, expected {want_vols:?}"));
    }
    for (name, bytes) in &want.volumes {
        match pool
            .volume(name)
            .and_then(|v| read_compare(bytes, |buf, at| v.read_at(buf, at)))
        {
            Ok(None) => {}
            Ok(Some(d)) => wrong.push(format!("volume {name} differs at byte {d}")),
            Err(e) if typed_read_error(&e) => errors.push(format!("volume {name}: {e}")),
            Err(e) => wrong.push(format!(
                "volume {name}: untyped or wrong error {:?}: {e}",
                e.kind()
            )),
        }
    }
    match pool.list_snapshots(None) {
        Ok(list) => {
            let got: BTreeMap<u64, (String, String)> = list
                .into_iter()
                .map(|s| (s.id, (s.name, s.volume_name)))
                .collect();
            let exp: BTreeMap<u64, (String, String)> = want
                .snapshots
                .iter()
                .map(|(id, (n, v, _))| (*id, (n.clone(), v.clone())))
                .collect();
            if got != exp {
                wrong.push(format!("snapshots {got:?}, expected {exp:?}"));
            }
        }
        Err(e) if typed_read_error(&e) => errors.push(format!("list_snapshots: {e}")),
        Err(e) => wrong.push(format!("list_snapshots: {:?}: {e}", e.kind())),
    }
    for (id, (name, _, bytes)) in &want.snapshots {
        match pool
            .snapshot_reader(*id)
            .and_then(|r| read_compare(bytes, |buf, at| r.read_at(buf, at)))
        {
            Ok(None) => {}
            Ok(Some(d)) => wrong.push(format!("snapshot {id} ({name}) differs at byte {d}")),
            Err(e) if typed_read_error(&e) => errors.push(format!("snapshot {id}: {e}")),
            Err(e) => wrong.push(format!("snapshot {id} ({name}): {:?}: {e}", e.kind())),
        }
    }
    let app: BTreeMap<String, Vec<u8>> = pool
        .app_data_keys("")
        .into_iter()
        .map(|k| (k.clone(), pool.app_data(&k).unwrap_or_default()))
        .collect();
    if app != want.app_data {
        wrong.push(format!("app data {app:?}, expected {:?}", want.app_data));
    }
    if !wrong.is_empty() {
        Cmp::Wrong(wrong)
    } else if !errors.is_empty() {
        Cmp::Errors(errors)
    } else {
        Cmp::Exact
    }
}

#[derive(Debug)]
enum Verdict {
    Refused(Error),
    Opened {
        cmp: Cmp,
        /// When the content is wrong: whether it is exactly an earlier state.
        like: Option<&'static str>,
        check_ok: bool,
    },
}

const BEFORE_LAST: &str = "the state before the last committed transaction";
const BEFORE_LAST_TWO: &str = "the state before the last two committed transactions";

fn judge(fx: &Fixture, disk: SimDisk) -> Verdict {
    let pool = match Pool::open_in(Arc::new(disk)) {
        Ok(p) => p,
        Err(e) => return Verdict::Refused(e),
    };
    let cmp = compare(&pool, &fx.expected);
    let like = match cmp {
        Cmp::Wrong(_) => {
            if matches!(compare(&pool, &fx.before_last), Cmp::Exact) {
                Some(BEFORE_LAST)
            } else if matches!(compare(&pool, &fx.before_last_two), Cmp::Exact) {
                Some(BEFORE_LAST_TWO)
            } else if matches!(compare(&pool, &fx.at_checkpoint), Cmp::Exact) {
                Some("the state at the checkpoint (later commits lost)")
            } else {
                None
            }
        }
        _ => None,
    };
    let check_ok = matches!(pool.check(false), Ok(r) if r.ok);
    Verdict::Opened {
        cmp,
        like,
        check_ok,
    }
}

/// What a damage case is allowed to produce.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Allow {
    /// Open fails with a typed error, or everything reads back exactly / with errors.
    ExactOrError,
    /// As ExactOrError, or exactly the state before the last n (1 or 2)
    /// committed transactions: the documented limit of the journal.
    ExactOrErrorOrDrop(u8),
    /// Must open, and read everything exactly.
    Exact,
    /// Data-file damage: anything but a panic or an untyped open error.
    NoPanic,
}

#[derive(Default)]
struct Tally {
    cases: usize,
    refused: BTreeMap<String, usize>,
    exact: usize,
    read_errors: usize,
    dropped: usize,
    wrong: usize,
    violations: Vec<String>,
    started: Option<std::time::Instant>,
}

impl Tally {
    fn run(&mut self, fx: &Fixture, case: &str, allow: Allow, damage: impl FnOnce(&SimDisk)) {
        self.cases += 1;
        self.started.get_or_insert_with(std::time::Instant::now);
        let disk = fx.copy();
        damage(&disk);
        let verdict = match std::panic::catch_unwind(AssertUnwindSafe(|| judge(fx, disk))) {
            Ok(v) => v,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                self.violations
                    .push(format!("{case}: PANIC: {}", msg.unwrap_or_default()));
                return;
            }
        };
        let mut bad = |why: String| self.violations.push(format!("{case}: {why}"));
        match verdict {
            Verdict::Refused(e) => {
                *self.refused.entry(format!("{:?}", e.kind())).or_default() += 1;
                let typed = matches!(
                    e.kind(),
                    ErrorKind::Corrupt | ErrorKind::UnsupportedVersion | ErrorKind::Io
                );
                if !typed {
                    bad(format!("open failed with {:?}: {e}", e.kind()));
                } else if allow == Allow::Exact {
                    bad(format!("must open, failed: {e}"));
                }
            }
            Verdict::Opened {
                cmp: Cmp::Exact, ..
            } => self.exact += 1,
            Verdict::Opened {
                cmp: Cmp::Errors(errs),
                check_ok,
                ..
            } => {
                self.read_errors += 1;
                if allow == Allow::Exact {
                    bad(format!("must read exactly, got errors: {errs:?}"));
                } else if check_ok && allow != Allow::NoPanic {
                    bad(format!(
                        "reads failed ({}) but check(false) reports ok",
                        errs[0]
                    ));
                }
            }
            Verdict::Opened {
                cmp: Cmp::Wrong(what),
                like,
                check_ok,
            } => {
                let dropped = match like {
                    Some(BEFORE_LAST) => 1,
                    Some(BEFORE_LAST_TWO) => 2,
                    _ => 0,
                };
                if dropped > 0 {
                    self.dropped += 1;
                } else {
                    self.wrong += 1;
                }
                match allow {
                    Allow::NoPanic => {}
                    Allow::ExactOrErrorOrDrop(n) if dropped > 0 && dropped <= n => {}
                    _ => bad(format!(
                        "opened and read back silently wrong data{} (check ok: {check_ok}): {}",
                        like.map(|l| format!(", exactly {l}")).unwrap_or_default(),
                        what[..what.len().min(3)].join("; ")
                    )),
                }
            }
        }
    }

    fn finish(self, what: &str) {
        eprintln!(
            "{what}: {} cases in {:.2?}: refused {:?}, exact {}, read errors {}, dropped last transaction(s) {}, other wrong {}; {} violations",
            self.cases,
            self.started.map(|t| t.elapsed()).unwrap_or_default(),
            self.refused,
            self.exact,
            self.read_errors,
            self.dropped,
            self.wrong,
            self.violations.len()
        );
        if !self.violations.is_empty() {
            let shown: Vec<&String> = self.violations.iter().take(25).collect();
            panic!(
                "{what}: {} of {} damaged pools violate the invariant; first ones:\n{}",
                self.violations.len(),
                self.cases,
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

fn open_err(fx: &Fixture, damage: impl FnOnce(&SimDisk)) -> Error {
    let disk = fx.copy();
    damage(&disk);
    match Pool::open_in(Arc::new(disk)) {
        Ok(_) => panic!("the damaged pool opened"),
        Err(e) => e,
    }
}

fn assert_corrupt_in(e: &Error, file: &str) {
    match e {
        Error::Corrupt { location, .. } => assert_eq!(location.file, file, "{e}"),
        other => panic!(
            "expected Corrupt in {file}, got {:?}: {other}",
            other.kind()
        ),
    }
}

fn crc_with_hole(bytes: &[u8], at: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..at]);
    h.update(&[0; 4]);
    h.update(&bytes[at + 4..]);
    h.finalize()
}

/// A superblock slot with its version field set to `version` and a valid crc.
fn slot_with_version(slot: &[u8], version: u32) -> Vec<u8> {
    let mut s = slot.to_vec();
    s[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc_with_hole(&s[..USED_LEN], 12);
    s[12..16].copy_from_slice(&crc.to_le_bytes());
    s
}

/// Overwrite bytes of a file of a (copied, otherwise idle) disk in place.
fn with_bytes(disk: &SimDisk, name: &str, at: usize, bytes: &[u8]) {
    let f = Dir::open(disk, name).unwrap();
    f.write_at(bytes, at as u64).unwrap();
    f.sync().unwrap();
}

fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen()).collect()
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn pristine_fixture_reopens_exactly() {
    let fx = fixture();
    let pool = Pool::open_in(Arc::new(fx.copy())).unwrap();
    match compare(&pool, &fx.expected) {
        Cmp::Exact => {}
        other => panic!("pristine pool: {other:?}"),
    }
    let report = pool.check(false).unwrap();
    assert!(report.ok && report.leaked_blocks == 0, "{report:?}");
    // The comparison itself can fail: the three reference states differ.
    assert!(matches!(compare(&pool, &fx.before_last), Cmp::Wrong(_)));
    assert!(matches!(compare(&pool, &fx.before_last_two), Cmp::Wrong(_)));
    assert!(matches!(compare(&pool, &fx.at_checkpoint), Cmp::Wrong(_)));
    assert_ne!(fx.older_journal, fx.current_journal);
    assert!(fx.generation >= 2, "a checkpoint happened");
}

/// Every byte of both superblock slots: each bit of the 48 checksummed bytes
/// of the older slot, and every byte of the unused tail of both slots (sixteen
/// consecutive bytes per case), must not matter at all.
#[test]
fn superblock_older_slot_and_unused_bytes() {
    let fx = fixture();
    let mut t = Tally::default();
    for slot in 0..2u64 {
        let which = if slot == fx.current_slot {
            "current"
        } else {
            "older"
        };
        if slot != fx.current_slot {
            for byte in 0..USED_LEN as u64 {
                for bit in 0..8 {
                    let at = slot * PAGE + byte;
                    t.run(
                        fx,
                        &format!("superblock {which} slot byte {byte} bit {bit}"),
                        Allow::Exact,
                        |d| d.flip_bit(SB, at, bit),
                    );
                }
            }
        }
        for first in (USED_LEN as u64..PAGE).step_by(16) {
            t.run(
                fx,
                &format!(
                    "superblock {which} slot unused bytes {first}..{}",
                    first + 16
                ),
                Allow::Exact,
                |d| {
                    for byte in first..first + 16 {
                        d.flip_bit(SB, slot * PAGE + byte, (byte % 8) as u8);
                    }
                },
            );
        }
    }
    t.finish("superblock: older slot and unused bytes");
}

/// Every bit of the current slot's 48 checksummed bytes. The slot is then
/// invalid and the older one is valid: opening must fail (Corrupt) or give
/// back exactly the current state — never silently the older generation's.
#[test]
fn superblock_current_slot_every_bit() {
    let fx = fixture();
    let mut t = Tally::default();
    for byte in 0..USED_LEN as u64 {
        for bit in 0..8 {
            let at = fx.current_slot * PAGE + byte;
            t.run(
                fx,
                &format!("superblock current slot byte {byte} bit {bit}"),
                Allow::ExactOrError,
                |d| d.flip_bit(SB, at, bit),
            );
        }
    }
    t.finish("superblock: current slot");
}

#[test]
fn superblock_both_slots_damaged_is_corrupt() {
    let fx = fixture();
    let used = USED_LEN as u64;
    for i in 0..used {
        let j = (i * 7 + 3) % used;
        let e = open_err(fx, |d| {
            d.flip_bit(SB, i, (i % 8) as u8);
            d.flip_bit(SB, PAGE + j, (j % 8) as u8);
        });
        assert_corrupt_in(&e, SB);
    }
    for (what, bytes) in [
        ("zeros", vec![0u8; 2 * PAGE as usize]),
        ("garbage", garbage(1, 2 * PAGE as usize)),
        ("empty", Vec::new()),
        (
            "cut inside the first slot's checksummed bytes",
            fx.file(SB)[..40].to_vec(),
        ),
    ] {
        let e = open_err(fx, |d| d.write_file(SB, &bytes));
        assert_corrupt_in(&e, SB);
        assert!(e.to_string().contains("superblock"), "{what}: {e}");
    }
    // Wrong magic in both slots.
    let e = open_err(fx, |d| {
        with_bytes(d, SB, 0, b"COWSNAP2");
        with_bytes(d, SB, PAGE as usize, b"XOWSNAP1");
    });
    assert_corrupt_in(&e, SB);
}

#[test]
fn superblock_older_slot_damage_still_opens() {
    let fx = fixture();
    let older = (1 - fx.current_slot) * PAGE;
    let mut t = Tally::default();
    t.run(fx, "older slot: wrong magic", Allow::Exact, |d| {
        with_bytes(d, SB, older as usize, b"NOTAPOOL")
    });
    t.run(fx, "older slot: zeroed", Allow::Exact, |d| {
        with_bytes(d, SB, older as usize, &[0u8; PAGE as usize])
    });
    t.run(fx, "older slot: garbage", Allow::Exact, |d| {
        with_bytes(d, SB, older as usize, &garbage(2, PAGE as usize))
    });
    t.run(fx, "older slot: bit flip in crc", Allow::Exact, |d| {
        d.flip_bit(SB, older + 12, 0)
    });
    t.run(
        fx,
        "older slot: bit flip in generation",
        Allow::Exact,
        |d| d.flip_bit(SB, older + 16, 3),
    );
    if fx.current_slot == 0 {
        t.run(
            fx,
            "older slot cut off (file truncated to one slot)",
            Allow::Exact,
            |d| d.truncate_file(SB, PAGE),
        );
    }
    t.finish("older superblock slot damage");
}

#[test]
fn superblock_unsupported_version_is_typed_with_the_version() {
    let fx = fixture();
    let sb = fx.file(SB).to_vec();
    for version in [0u32, 2, 7, u32::MAX] {
        for slot in [fx.current_slot, 1 - fx.current_slot] {
            let at = (slot * PAGE) as usize;
            let bad = slot_with_version(&sb[at..at + PAGE as usize], version);
            let e = open_err(fx, |d| with_bytes(d, SB, at, &bad));
            match &e {
                Error::UnsupportedVersion { file, found, supported } => {
                    assert_eq!((*file, *found, *supported), (SB, version, 1), "{e}");
                }
                other => panic!("version {version} in slot {slot}: expected UnsupportedVersion, got {:?}: {other}", other.kind()),
            }
            assert!(
                e.to_string().contains(&format!("version {version}")),
                "message names the version: {e}"
            );
        }
    }
}

#[test]
fn superblock_valid_but_inconsistent_slots_are_corrupt() {
    let fx = fixture();
    let sb = fx.file(SB);
    let cur_at = (fx.current_slot * PAGE) as usize;
    let old_at = ((1 - fx.current_slot) * PAGE) as usize;
    let cur = Superblock::decode(&sb[cur_at..cur_at + PAGE as usize], cur_at as u64)
        .unwrap()
        .unwrap();
    let old = Superblock::decode(&sb[old_at..old_at + PAGE as usize], old_at as u64)
        .unwrap()
        .unwrap();
    // Slots of two different pools.
    let e = open_err(fx, |d| {
        with_bytes(
            d,
            SB,
            old_at,
            &Superblock {
                pool_id: old.pool_id ^ 2,
                ..old
            }
            .encode(),
        )
    });
    assert_corrupt_in(&e, SB);
    // Different block sizes.
    let e = open_err(fx, |d| {
        with_bytes(
            d,
            SB,
            old_at,
            &Superblock {
                block_size: 8192,
                ..old
            }
            .encode(),
        )
    });
    assert_corrupt_in(&e, SB);
    // A generation in the slot of the wrong parity.
    let e = open_err(fx, |d| {
        with_bytes(
            d,
            SB,
            old_at,
            &Superblock {
                generation: cur.generation + 2,
                ..old
            }
            .encode(),
        )
    });
    assert_corrupt_in(&e, SB);
    // A newer generation whose journal does not exist (the other journal holds an older one).
    let e = open_err(fx, |d| {
        with_bytes(
            d,
            SB,
            old_at,
            &Superblock {
                generation: cur.generation + 1,
                ..old
            }
            .encode(),
        )
    });
    assert_corrupt_in(&e, fx.older_journal);
    // Invalid block size or page size with a valid crc.
    for bs in [0u32, 1000, 2048, 1 << 21] {
        let e = open_err(fx, |d| {
            let mut s = Superblock {
                block_size: 4096,
                ..cur
            }
            .encode()
            .to_vec();
            s[32..36].copy_from_slice(&bs.to_le_bytes());
            let crc = crc_with_hole(&s[..USED_LEN], 12);
            s[12..16].copy_from_slice(&crc.to_le_bytes());
            with_bytes(d, SB, cur_at, &s);
        });
        assert_eq!(e.kind(), ErrorKind::Corrupt, "block size {bs}: {e}");
    }
    let e = open_err(fx, |d| {
        let mut s = cur.encode().to_vec();
        s[36..40].copy_from_slice(&8192u32.to_le_bytes());
        let crc = crc_with_hole(&s[..USED_LEN], 12);
        s[12..16].copy_from_slice(&crc.to_le_bytes());
        with_bytes(d, SB, cur_at, &s);
    });
    assert_corrupt_in(&e, SB);
}

/// The current journal's header: every bit of its checksummed bytes is
/// caught and reported as Corrupt in that file; the rest of the page is unused.
#[test]
fn journal_header_damage_is_corrupt_naming_the_journal() {
    let fx = fixture();
    let j = fx.current_journal;
    let hl = fx.journal_header_len;
    for byte in 0..hl as u64 {
        for bit in 0..8 {
            let e = open_err(fx, |d| d.flip_bit(j, byte, bit));
            assert_corrupt_in(&e, j);
        }
    }
    let mut t = Tally::default();
    for byte in (hl as u64..PAGE).step_by(37) {
        t.run(
            fx,
            &format!("{j} header page unused byte {byte}"),
            Allow::Exact,
            |d| d.flip_bit(j, byte, (byte % 8) as u8),
        );
    }
    t.finish("journal header page, unused bytes");
    let e = open_err(fx, |d| with_bytes(d, j, 0, b"CSJOURNX"));
    assert_corrupt_in(&e, j);
    for version in [0u32, 2, 99] {
        let e = open_err(fx, |d| {
            let mut h = fx.file(j)[..hl].to_vec();
            h[8..12].copy_from_slice(&version.to_le_bytes());
            let crc = crc_with_hole(&h, 12);
            h[12..16].copy_from_slice(&crc.to_le_bytes());
            with_bytes(d, j, 0, &h);
        });
        match &e {
            Error::UnsupportedVersion { file, found, .. } => {
                assert_eq!((*file, *found), (j, version))
            }
            other => panic!(
                "journal version {version}: expected UnsupportedVersion, got {:?}: {other}",
                other.kind()
            ),
        }
        assert!(e.to_string().contains(&format!("version {version}")), "{e}");
    }
    // A header of another generation or another pool.
    for (field, delta) in [(16usize, 1u64), (24, 4)] {
        let e = open_err(fx, |d| {
            let mut h = fx.file(j)[..hl].to_vec();
            let v = u64::from_le_bytes(h[field..field + 8].try_into().unwrap()) ^ delta;
            h[field..field + 8].copy_from_slice(&v.to_le_bytes());
            let crc = crc_with_hole(&h, 12);
            h[12..16].copy_from_slice(&crc.to_le_bytes());
            with_bytes(d, j, 0, &h);
        });
        assert_corrupt_in(&e, j);
    }
}

/// Bit flips across the records of the current journal: every header byte of
/// every record and a stride through payloads and padding.
#[test]
fn journal_record_bit_flips() {
    let fx = fixture();
    let j = fx.current_journal;
    let mut t = Tally::default();
    for r in &fx.records {
        let allow = fx.allow_for_damage_in(r);
        let mut offsets: Vec<u64> = (0..RECORD_HEADER_LEN as u64).collect();
        offsets.extend((RECORD_HEADER_LEN as u64..r.padded).step_by(97));
        offsets.extend(r.len..r.padded); // padding, outside the crc
        if r.len > RECORD_HEADER_LEN as u64 {
            offsets.push(r.len - 1);
        }
        for off in offsets {
            let at = r.at + off;
            let bit = ((at * 5) % 8) as u8;
            t.run(
                fx,
                &format!(
                    "{j} record seq {} ({:?}) byte {off} bit {bit}",
                    r.seq, r.kind
                ),
                allow,
                |d| d.flip_bit(j, at, bit),
            );
        }
    }
    t.finish("journal record bit flips");
}

/// Damage in committed history followed by intact transactions is
/// corruption, not a torn tail: it must be reported, naming the journal.
#[test]
fn journal_damage_before_the_last_two_commits_is_corrupt() {
    let fx = fixture();
    let j = fx.current_journal;
    for r in fx.records.iter().filter(|r| r.at < fx.prev_commit_at) {
        for off in [0u64, 4, 9, 17, 24, 28, r.len - 1] {
            let e = open_err(fx, |d| d.flip_bit(j, r.at + off, 1));
            assert_corrupt_in(&e, j);
        }
    }
}

/// Absurd values in a record's length field (its crc then fails).
#[test]
fn journal_absurd_record_lengths() {
    absurd_lengths(false, "journal absurd lengths");
}

/// The same lengths with the record's crc recomputed, as a buggy writer or
/// an attacker would leave them: a record claiming to extend over the
/// records after it must not make them vanish silently.
#[test]
fn journal_crc_valid_absurd_record_lengths() {
    absurd_lengths(true, "journal crc-valid absurd lengths");
}

fn absurd_lengths(recrc: bool, what: &str) {
    let fx = fixture();
    let j = fx.current_journal;
    let end = fx.records_end;
    let pristine = fx.file(j);
    let mut t = Tally::default();
    for r in &fx.records {
        let allow = fx.allow_for_damage_in(r);
        for len in [
            u32::MAX,
            1 << 31,
            (1 << 30) + 1,
            1 << 30,
            end as u32,
            (end - r.at) as u32,
            (end - r.at - RECORD_HEADER_LEN as u64) as u32 + 1,
            1,
            0,
        ] {
            let case = format!(
                "{j} record seq {} ({:?}) len field {len:#x}, crc recomputed: {recrc}",
                r.seq, r.kind
            );
            t.run(fx, &case, allow, |d| {
                let at = r.at as usize;
                let mut head = pristine[at..at + RECORD_HEADER_LEN].to_vec();
                head[28..32].copy_from_slice(&len.to_le_bytes());
                let rec_end = at + RECORD_HEADER_LEN + len as usize;
                if recrc && rec_end <= pristine.len() {
                    let mut whole = head.clone();
                    whole.extend_from_slice(&pristine[at + RECORD_HEADER_LEN..rec_end]);
                    let crc = crc_with_hole(&whole, 4);
                    head[4..8].copy_from_slice(&crc.to_le_bytes());
                }
                with_bytes(d, j, at, &head);
            });
        }
    }
    t.finish(what);
}

/// Whole-file damage to the current journal: garbage, zeros, wrong magic.
#[test]
fn journal_overwritten() {
    let fx = fixture();
    let j = fx.current_journal;
    let n = fx.journal_file_len() as usize;
    for (what, bytes) in [
        ("garbage", garbage(3, n)),
        ("zeros", vec![0; n]),
        ("empty", vec![]),
    ] {
        let e = open_err(fx, |d| d.write_file(j, &bytes));
        assert_corrupt_in(&e, j);
        let _ = what;
    }
    let mut t = Tally::default();
    // Garbage over one record at a time (the file length unchanged).
    for (i, r) in fx.records.iter().enumerate() {
        let allow = fx.allow_for_damage_in(r);
        t.run(
            fx,
            &format!("{j} record {i} overwritten with garbage"),
            allow,
            |d| {
                with_bytes(
                    d,
                    j,
                    r.at as usize,
                    &garbage(10 + i as u64, r.padded as usize),
                )
            },
        );
        t.run(fx, &format!("{j} record {i} magic"), allow, |d| {
            with_bytes(d, j, r.at as usize, b"XSJR")
        });
    }
    // Garbage after the last record, and zeros appended to the file.
    t.run(fx, "garbage after the last record", Allow::Exact, |d| {
        with_bytes(d, j, fx.records_end as usize, &garbage(4, 5000))
    });
    t.run(fx, "zeros appended", Allow::Exact, |d| {
        d.truncate_file(j, n as u64 + 10_000)
    });
    t.finish("journal overwritten");
}

/// Truncating the current journal. Cutting inside the last transaction is a
/// torn tail (dropping it is the documented limit); cutting earlier loses
/// committed transactions, which must not go unnoticed.
#[test]
fn journal_truncation() {
    let fx = fixture();
    let j = fx.current_journal;
    let jl = fx.journal_file_len();
    let end = fx.records_end;
    let mut lens: Vec<u64> = vec![
        0,
        1,
        31,
        32,
        100,
        PAGE - 1,
        PAGE,
        PAGE + 8,
        end - 1,
        end - 8,
        end,
        jl - 1,
    ];
    for r in &fx.records {
        lens.extend([r.at, r.at + 16, r.at + r.len / 2]);
    }
    lens.sort();
    lens.dedup();
    let mut t = Tally::default();
    for len in lens.into_iter().filter(|&l| l < jl) {
        let allow = if len >= fx.last_txn_at {
            Allow::ExactOrErrorOrDrop(1)
        } else {
            Allow::ExactOrError
        };
        t.run(
            fx,
            &format!("{j} truncated to {len} of {jl} bytes"),
            allow,
            |d| d.truncate_file(j, len),
        );
    }
    t.finish("journal truncation");
}

/// Hand-made records with valid checksums but impossible content, appended as
/// a committed transaction: a typed error, never a panic.
#[test]
fn journal_crc_valid_but_malformed_records() {
    let fx = fixture();
    let j = fx.current_journal;
    let last = fx.records.last().unwrap();
    let append = |d: &SimDisk, recs: &[(RecordKind, Vec<u8>)]| {
        let mut f = Vec::new();
        let mut seq = last.seq + 1;
        for (kind, payload) in recs {
            encode_record(&mut f, fx.generation, seq, *kind, payload);
            seq += 1;
        }
        encode_record(&mut f, fx.generation, seq, RecordKind::Commit, &[]);
        with_bytes(d, j, fx.records_end as usize, &f);
    };
    let vol_a_id = 1u64;
    // bincode (fixint, little endian) of CatalogOp::PutVolume(VolumeRec).
    let put_volume = |id: u64, name: &str, size: u64, levels: u8, root: u64, allocated: u64| {
        let mut p = 0u32.to_le_bytes().to_vec();
        p.extend(id.to_le_bytes());
        p.extend((name.len() as u64).to_le_bytes());
        p.extend(name.as_bytes());
        p.extend(size.to_le_bytes());
        p.push(levels);
        p.extend(root.to_le_bytes());
        p.extend(allocated.to_le_bytes());
        p.extend(0u64.to_le_bytes());
        p
    };
    let refcounts = |table: u8, entries: &[(u64, u32)]| {
        let mut p = vec![table, 0, 0, 0];
        p.extend((entries.len() as u32).to_le_bytes());
        for (i, v) in entries {
            p.extend(i.to_le_bytes());
            p.extend(v.to_le_bytes());
        }
        p
    };
    let node_image = |page_no: u64, page: Vec<u8>| {
        let mut p = page_no.to_le_bytes().to_vec();
        p.extend(page);
        p
    };
    type Txn = Vec<(RecordKind, Vec<u8>)>;
    let cases: Vec<(&str, Txn)> = vec![
        (
            "catalog op that does not decode",
            vec![(RecordKind::CatalogOp, garbage(5, 40))],
        ),
        (
            "catalog op with an unknown variant",
            vec![(RecordKind::CatalogOp, 99u32.to_le_bytes().to_vec())],
        ),
        (
            "volume with zero levels",
            vec![(
                RecordKind::CatalogOp,
                put_volume(vol_a_id, "a", 256 << 10, 0, 0, 0),
            )],
        ),
        (
            "volume with 200 levels",
            vec![(
                RecordKind::CatalogOp,
                put_volume(vol_a_id, "a", 256 << 10, 200, 1, 0),
            )],
        ),
        (
            "volume of size 0",
            vec![(RecordKind::CatalogOp, put_volume(vol_a_id, "a", 0, 1, 0, 0))],
        ),
        (
            "volume of size 2^63",
            vec![(
                RecordKind::CatalogOp,
                put_volume(vol_a_id, "a", 1 << 63, 6, 0, 0),
            )],
        ),
        (
            "volume root beyond the nodes",
            vec![(
                RecordKind::CatalogOp,
                put_volume(vol_a_id, "a", 256 << 10, 1, 1 << 40, 1),
            )],
        ),
        (
            "volume id past the counter",
            vec![(
                RecordKind::CatalogOp,
                put_volume(1 << 50, "zz", 4096, 1, 0, 0),
            )],
        ),
        (
            "more allocated than blocks",
            vec![(
                RecordKind::CatalogOp,
                put_volume(vol_a_id, "a", 256 << 10, 1, 0, 1 << 40),
            )],
        ),
        (
            "node image too short",
            vec![(RecordKind::NodeImage, vec![1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3])],
        ),
        (
            "node image of garbage",
            vec![(
                RecordKind::NodeImage,
                node_image(1, garbage(6, PAGE as usize)),
            )],
        ),
        (
            "node image for page u64::MAX",
            vec![(
                RecordKind::NodeImage,
                node_image(u64::MAX, vec![0; PAGE as usize]),
            )],
        ),
        (
            "refcount record, unknown table",
            vec![(RecordKind::RefcountSet, refcounts(7, &[(1, 1)]))],
        ),
        (
            "refcount record, count too large",
            vec![(RecordKind::RefcountSet, {
                let mut p = refcounts(0, &[(1, 1)]);
                p[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
                p
            })],
        ),
        (
            "refcount index u64::MAX",
            vec![(RecordKind::RefcountSet, refcounts(0, &[(u64::MAX, 1)]))],
        ),
        (
            "refcount index 2^45",
            vec![(RecordKind::RefcountSet, refcounts(1, &[(1 << 45, 1)]))],
        ),
        (
            "a second Base record",
            vec![(RecordKind::Base, garbage(7, 64))],
        ),
    ];
    let mut failures = Vec::new();
    for (what, recs) in cases {
        let disk = fx.copy();
        append(&disk, &recs);
        let r =
            std::panic::catch_unwind(AssertUnwindSafe(|| match Pool::open_in(Arc::new(disk)) {
                Err(e) => (
                    matches!(
                        e.kind(),
                        ErrorKind::Corrupt | ErrorKind::Io | ErrorKind::UnsupportedVersion
                    ),
                    format!("{:?}: {e}", e.kind()),
                ),
                Ok(pool) => {
                    // Opened: reads may fail (typed) but must not panic; check must not pass over it silently.
                    let cmp = compare(&pool, &fx.expected);
                    let ok = matches!(pool.check(false), Ok(r) if r.ok);
                    (
                        matches!(cmp, Cmp::Exact) || !ok,
                        format!("opened: {cmp:?}, check ok {ok}"),
                    )
                }
            }));
        match r {
            Ok((true, _)) => {}
            Ok((false, how)) => failures.push(format!("{what}: {how}")),
            Err(_) => failures.push(format!("{what}: PANIC")),
        }
    }
    assert!(
        failures.is_empty(),
        "crc-valid malformed records:\n{}",
        failures.join("\n")
    );
}

/// The other journal file belongs to an older generation: no damage to it matters.
#[test]
fn older_journal_damage_is_ignored() {
    let fx = fixture();
    let j = fx.older_journal;
    let n = fx.file(j).len() as u64;
    let mut t = Tally::default();
    // Its header and records (the file may extend, as zeros, far beyond them).
    for at in (0..(fx.older_records_end + PAGE).min(n)).step_by(89) {
        t.run(fx, &format!("{j} byte {at}"), Allow::Exact, |d| {
            d.flip_bit(j, at, (at % 8) as u8)
        });
    }
    t.run(fx, &format!("{j} emptied"), Allow::Exact, |d| {
        d.write_file(j, &[])
    });
    t.run(fx, &format!("{j} garbage"), Allow::Exact, |d| {
        d.write_file(j, &garbage(8, n as usize))
    });
    t.finish("older journal damage");
}

/// Map nodes written home by the checkpoint: every header byte of every page,
/// a stride through the entries, truncation, garbage and wrong magic.
#[test]
fn nodes_damage() {
    let fx = fixture();
    let mut t = Tally::default();
    for p in 0..fx.node_pages {
        for off in (0..16).chain((16..PAGE).step_by(61)) {
            let at = p * PAGE + off;
            let bit = ((at / 3) % 8) as u8;
            t.run(
                fx,
                &format!("nodes page {p} byte {off} bit {bit}"),
                Allow::ExactOrError,
                |d| d.flip_bit(NODES, at, bit),
            );
        }
        t.run(
            fx,
            &format!("nodes page {p} magic"),
            Allow::ExactOrError,
            |d| with_bytes(d, NODES, (p * PAGE) as usize, b"XSN"),
        );
        t.run(
            fx,
            &format!("nodes page {p} zeroed"),
            Allow::ExactOrError,
            |d| with_bytes(d, NODES, (p * PAGE) as usize, &[0; PAGE as usize]),
        );
        t.run(
            fx,
            &format!("nodes page {p} garbage"),
            Allow::ExactOrError,
            |d| {
                with_bytes(
                    d,
                    NODES,
                    (p * PAGE) as usize,
                    &garbage(20 + p, PAGE as usize),
                )
            },
        );
        // Another page's (valid, sealed) bytes: a misdirected write.
        let other = (p + 1) % fx.node_pages;
        let src = fx.file(NODES)[(other * PAGE) as usize..((other + 1) * PAGE) as usize].to_vec();
        t.run(
            fx,
            &format!("nodes page {p} holds page {other}"),
            Allow::ExactOrError,
            |d| with_bytes(d, NODES, (p * PAGE) as usize, &src),
        );
    }
    let n = fx.file(NODES).len() as u64;
    for len in [0, 1, PAGE, PAGE + 100, 2 * PAGE, n / 2, n - PAGE, n - 1] {
        t.run(
            fx,
            &format!("nodes truncated to {len}"),
            Allow::ExactOrError,
            |d| d.truncate_file(NODES, len),
        );
    }
    t.run(fx, "nodes garbage", Allow::ExactOrError, |d| {
        d.write_file(NODES, &garbage(9, n as usize))
    });
    t.finish("nodes damage");
}

/// The first page of a file as read (bytes past the end read as zeros).
fn page0(f: &[u8]) -> Vec<u8> {
    let mut p = f[..f.len().min(PAGE as usize)].to_vec();
    p.resize(PAGE as usize, 0);
    p
}

/// Refcount tables: reads do not consult them, but no damage to a page in use
/// may go unnoticed by both open and check.
#[test]
fn refcount_tables_damage() {
    let fx = fixture();
    for name in [NODE_REFS, DATA_REFS] {
        let n = fx.file(name).len() as u64;
        let mut t = Tally::default();
        let mut unnoticed = Vec::new();
        let pristine_page0 = page0(fx.file(name));
        let mut probe = |t: &mut Tally, case: String, damage: &dyn Fn(&SimDisk)| {
            t.run(fx, &case, Allow::ExactOrError, |d| damage(d));
            // Page 0 holds every entry in use: any change to it must be caught.
            let disk = fx.copy();
            damage(&disk);
            if page0(&disk.read_file(name).unwrap()) == pristine_page0 {
                return; // e.g. truncation that only cut zeros
            }
            if let Ok(pool) = Pool::open_in(Arc::new(disk)) {
                if matches!(pool.check(false), Ok(r) if r.ok) {
                    unnoticed.push(case);
                }
            }
        };
        for at in (0..PAGE.min(n)).step_by(7) {
            let bit = (at % 8) as u8;
            probe(&mut t, format!("{name} byte {at} bit {bit}"), &|d| {
                d.flip_bit(name, at, bit)
            });
        }
        probe(&mut t, format!("{name} page 0 garbage"), &|d| {
            with_bytes(d, name, 0, &garbage(11, PAGE as usize))
        });
        probe(&mut t, format!("{name} page 0 zeroed"), &|d| {
            with_bytes(d, name, 0, &[0; PAGE as usize])
        });
        for len in [0, 1, 512, PAGE - 1] {
            probe(&mut t, format!("{name} truncated to {len}"), &|d| {
                d.truncate_file(name, len)
            });
        }
        t.finish(name);
        assert!(
            unnoticed.is_empty(),
            "{name}: damage neither open nor check(false) noticed:\n{}",
            unnoticed.join("\n")
        );
    }
}

/// The data file has no checksums: damage there may change what reads return,
/// but must never panic or make open fail with an untyped error.
#[test]
fn data_damage_never_panics() {
    let fx = fixture();
    let n = fx.file(DATA).len() as u64;
    let mut t = Tally::default();
    for at in (0..n).step_by(4099) {
        t.run(fx, &format!("data byte {at}"), Allow::NoPanic, |d| {
            d.flip_bit(DATA, at, (at % 8) as u8)
        });
    }
    for len in [0, 1, BS as u64, n / 2, n - 1] {
        t.run(
            fx,
            &format!("data truncated to {len}"),
            Allow::NoPanic,
            |d| d.truncate_file(DATA, len),
        );
    }
    t.run(fx, "data garbage", Allow::NoPanic, |d| {
        d.write_file(DATA, &garbage(12, n as usize))
    });
    t.finish("data damage");
}

// ---------------------------------------------------------------------------
// Minimal reproductions of what the sweeps above found.

/// A pool whose deleted snapshot's only block was reused by another volume
/// after the checkpoint: generation g-1 (older superblock slot, older journal)
/// still describes the snapshot.
fn reuse_after_checkpoint() -> (SimDisk, u64, u64) {
    let disk = SimDisk::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), BS).unwrap();
    pool.create_volume("a", 4 * BS as u64).unwrap();
    pool.create_volume("b", 4 * BS as u64).unwrap();
    let a = pool.volume("a").unwrap();
    a.write_at(&[0xAA; BS as usize], 0).unwrap();
    let s = pool.create_snapshot("a", "s", "").unwrap();
    a.write_at(&[0xA2; BS as usize], 0).unwrap(); // the 0xAA block is now the snapshot's alone
    pool.checkpoint().unwrap();
    pool.delete_snapshot(s.id).unwrap(); // frees the 0xAA block
    pool.volume("b")
        .unwrap()
        .write_at(&[0xBB; BS as usize], 0)
        .unwrap(); // reuses it
    drop(a);
    pool.close().unwrap();
    let sb = disk.read_file(SB).unwrap();
    let gens: Vec<u64> = (0..2u64)
        .map(|i| {
            let at = (i * PAGE) as usize;
            Superblock::decode(&sb[at..at + PAGE as usize], i * PAGE)
                .unwrap()
                .unwrap()
                .generation
        })
        .collect();
    let current_slot = if gens[0] > gens[1] { 0 } else { 1 };
    (disk, current_slot, s.id)
}

/// After opening a damaged `reuse_after_checkpoint` pool: it must hold no
/// snapshot, and nothing may read another volume's bytes.
fn assert_not_rolled_back(pool: &Pool, snap: u64, how: &str) {
    let snaps: Vec<(u64, String)> = pool
        .list_snapshots(None)
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let mut buf = vec![0u8; BS as usize];
    let resurrected = pool
        .snapshot_reader(snap)
        .and_then(|r| r.read_at(&mut buf, 0))
        .is_ok();
    assert!(
        snaps.is_empty(),
        "{how}: the pool opened silently in an older state: deleted snapshot(s) {snaps:?} are back{}",
        if resurrected {
            format!(", and snapshot {snap} of volume a reads {:#04x} (volume b's bytes, not its own 0xaa)", buf[0])
        } else {
            String::new()
        }
    );
}

/// Bug: one bit flip in the newest superblock slot makes `Pool::open` fall
/// back to the older slot and replay the older journal, silently: committed
/// work since the last checkpoint is lost, deleted snapshots come back, and
/// since their freed blocks were reused, they read other volumes' data.
#[test]
fn repro_flip_in_newest_superblock_slot_silently_rolls_back() {
    let (disk, current_slot, snap) = reuse_after_checkpoint();
    disk.flip_bit(SB, current_slot * PAGE + 20, 0); // a generation bit; the crc no longer matches
    match Pool::open_in(Arc::new(disk)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
        Ok(pool) => assert_not_rolled_back(&pool, snap, "newest superblock slot damaged"),
    }
}

/// Same outcome when the current journal loses its tail at a transaction
/// boundary (here: everything after the checkpoint's catalog record).
#[test]
fn repro_journal_cut_at_a_transaction_boundary_silently_rolls_back() {
    let (disk, current_slot, snap) = reuse_after_checkpoint();
    let j = ["journal-0", "journal-1"][current_slot as usize];
    let recs = parse_records(&disk.read_file(j).unwrap());
    let first_commit = recs.iter().find(|r| r.kind == RecordKind::Commit).unwrap();
    disk.truncate_file(j, first_commit.at + first_commit.padded);
    match Pool::open_in(Arc::new(disk)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
        Ok(pool) => assert_not_rolled_back(&pool, snap, "journal cut after its first transaction"),
    }
}

/// Hardening gap: a record with a valid crc whose length field claims the
/// bytes of the records after it (a Commit record, which never has a
/// payload, here) hides those committed transactions: the pool opens
/// silently in an older state. Rejecting payloads of the wrong size for the
/// record kind, or looking for intact records inside a swallowed range,
/// would turn this into Corrupt.
#[test]
fn repro_crc_valid_commit_with_inflated_length_hides_later_transactions() {
    let disk = SimDisk::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), BS).unwrap();
    pool.create_volume("v", 4 * BS as u64).unwrap();
    let v = pool.volume("v").unwrap();
    for (i, byte) in [1u8, 2, 3, 4].into_iter().enumerate() {
        v.write_at(&[byte; BS as usize], (i as u64) * BS as u64)
            .unwrap();
        v.flush().unwrap();
    }
    drop(v);
    pool.close().unwrap();
    let j = "journal-1"; // generation 1: no checkpoint happened
    let bytes = disk.read_file(j).unwrap();
    let recs = parse_records(&bytes);
    let end = recs.last().unwrap().at + recs.last().unwrap().padded;
    // The Commit of the first write's transaction: three more follow it.
    let commits: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.kind == RecordKind::Commit)
        .collect();
    let c = commits[commits.len() - 4];
    let at = c.at as usize;
    let len = (end - c.at) as usize - RECORD_HEADER_LEN;
    let mut rec = bytes[at..at + RECORD_HEADER_LEN + len].to_vec();
    rec[28..32].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc_with_hole(&rec, 4);
    rec[4..8].copy_from_slice(&crc.to_le_bytes());
    with_bytes(&disk, j, at, &rec[..RECORD_HEADER_LEN]);
    match Pool::open_in(Arc::new(disk)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
        Ok(pool) => {
            let mut got = vec![0u8; 4 * BS as usize];
            pool.volume("v").unwrap().read_at(&mut got, 0).unwrap();
            let blocks: Vec<u8> = got.chunks(BS as usize).map(|b| b[0]).collect();
            assert_eq!(
                blocks,
                [1, 2, 3, 4],
                "opened silently without the committed writes after the inflated Commit record"
            );
        }
    }
}
