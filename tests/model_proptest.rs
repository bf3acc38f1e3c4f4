//! Invariant: for any sequence of writes, zeroes, discards, flushes, snapshot
//! create/restore/delete/clone, volume deletes, checkpoints and reopens, every
//! volume and snapshot reads exactly as a plain in-memory model says, and
//! `check(false)` is clean (ok, no leaks); with a power cut anywhere, the
//! recovered pool honours the durability contract. The fuzz targets' entry
//! points never panic on random input, and their seed corpus stays valid.
//!
//! Cases: 64 by default (crash cases: a quarter of that); set
//! PROPTEST_CASES to run more. Set COWSNAP_WRITE_SEEDS=1 to (re)write the
//! fuzz seed corpus under fuzz/corpus/ (see fuzz/make_seeds.sh).

use cowsnap::format::journal::{
    decode_record_header, padded_len, RecordKind, FIRST_RECORD_AT, RECORD_HEADER_LEN,
};
use cowsnap::format::superblock::Superblock;
use cowsnap::format::{files, node, refpage, PAGE_SIZE};
use cowsnap::testkit::fuzz::{
    base_pool_files, damaged_pool_disk, fuzz_decode_structures, fuzz_open_pool, fuzz_ops_with_crash,
};
use cowsnap::testkit::{
    decode_ops, encode_ops, run_crash, run_crash_on, run_model, run_model_on, Cut, Layout, Op,
};
use cowsnap::Pool;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::path::PathBuf;
use std::sync::Arc;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> Config {
    config_share(default_cases, 1)
}

/// A config running `1/share` of PROPTEST_CASES when that is set: for the
/// larger layouts, whose cases cost several times more.
fn config_share(default_cases: u32, share: u32) -> Config {
    let cases = match std::env::var("PROPTEST_CASES") {
        Ok(_) => (cases(default_cases) / share).max(1),
        Err(_) => default_cases,
    };
    Config {
        cases,
        // Only this file is ours to write; the failing input is printed.
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

/// (offset, len): block-aligned whole blocks, arbitrary, or tiny.
fn io() -> BoxedStrategy<(u32, u32)> {
    prop_oneof![
        (0u32..64, 1u32..=8).prop_map(|(b, n)| (b * 4096, n * 4096)),
        (0u32..262_144, 1u32..20_000),
        (0u32..262_144, 1u32..600),
    ]
    .boxed()
}

/// (offset, len) over volumes of a few MiB: whole 64 KiB and 4 KiB blocks,
/// runs of them, arbitrary ranges, or tiny ones, anywhere in the volume.
fn wide_io() -> BoxedStrategy<(u32, u32)> {
    prop_oneof![
        (0u32..64, 1u32..=4).prop_map(|(b, n)| (b * 65_536, n * 65_536)),
        (0u32..800, 1u32..=8).prop_map(|(b, n)| (b * 4096, n * 4096)),
        (0u32..4_194_304, 1u32..150_000),
        (0u32..4_194_304, 1u32..600),
    ]
    .boxed()
}

fn op() -> impl Strategy<Value = Op> {
    op_with(io())
}

fn op_with(io: BoxedStrategy<(u32, u32)>) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), io.clone(), any::<u8>()).prop_map(|(vol, (offset, len), seed)| Op::Write { vol, offset, len, seed }),
        1 => (any::<u8>(), io.clone()).prop_map(|(vol, (offset, len))| Op::WriteZeroes { vol, offset, len }),
        2 => (any::<u8>(), io).prop_map(|(vol, (offset, len))| Op::Discard { vol, offset, len }),
        2 => Just(Op::Flush),
        3 => any::<u8>().prop_map(|vol| Op::CreateSnapshot { vol }),
        2 => any::<u8>().prop_map(|snap| Op::Restore { snap }),
        2 => any::<u8>().prop_map(|snap| Op::DeleteSnapshot { snap }),
        1 => any::<u8>().prop_map(|snap| Op::Clone { snap }),
        1 => any::<u8>().prop_map(|vol| Op::DeleteVolume { vol }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Checkpoint),
    ]
}

fn cut() -> impl Strategy<Value = Cut> {
    prop_oneof![
        (0u64..48).prop_map(Cut::AtSync),
        (0u64..600).prop_map(Cut::AfterOps),
        Just(Cut::Never),
    ]
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn engine_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let run = run_model(&ops, true);
        prop_assert!(run.is_ok(), "{}", run.unwrap_err());
    }

    #[test]
    fn fuzz_byte_format_round_trips(ops in proptest::collection::vec(op(), 0..64)) {
        // Proptest offsets and lengths fit the byte format's widths.
        prop_assert_eq!(decode_ops(&encode_ops(&ops)), ops);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        fuzz_decode_structures(&bytes);
        let ops = decode_ops(&bytes);
        prop_assert!(ops.len() <= cowsnap::testkit::op::MAX_DECODED_OPS);
    }

    #[test]
    fn damaged_pools_never_panic(mode in 0u8..6, pick in any::<u8>(), off in 0u32..70_000, rest in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut input = vec![mode, pick];
        input.extend_from_slice(&off.to_le_bytes()[..3]);
        input.extend_from_slice(&rest);
        fuzz_open_pool(&input);
    }
}

proptest! {
    #![proptest_config(config_share(16, 4))]

    /// Maps with an inner level: the root is shadowed, shared and freed
    /// above the leaves.
    #[test]
    fn engine_matches_model_on_two_level_maps(ops in proptest::collection::vec(op_with(wide_io()), 1..40)) {
        let run = run_model_on(&Layout::two_level(), &ops, true);
        prop_assert!(run.is_ok(), "{}", run.unwrap_err());
    }

    /// The default 64 KiB blocks: partial-block copy-on-write everywhere.
    #[test]
    fn engine_matches_model_with_64k_blocks(ops in proptest::collection::vec(op_with(wide_io()), 1..40)) {
        let run = run_model_on(&Layout::big_blocks(), &ops, true);
        prop_assert!(run.is_ok(), "{}", run.unwrap_err());
    }

    #[test]
    fn crash_anywhere_keeps_the_contract_on_two_level_maps(
        ops in proptest::collection::vec(op_with(wide_io()), 1..24),
        cut in cut(),
        seeds in proptest::collection::vec(any::<u64>(), 1..3),
    ) {
        let run = run_crash_on(&Layout::two_level(), &ops, cut, &seeds, true);
        prop_assert!(run.is_ok(), "{}", run.unwrap_err());
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn crash_anywhere_keeps_the_contract(
        ops in proptest::collection::vec(op(), 1..24),
        cut in cut(),
        seeds in proptest::collection::vec(any::<u64>(), 1..3),
    ) {
        let run = run_crash(&ops, cut, &seeds);
        prop_assert!(run.is_ok(), "{}", run.unwrap_err());
    }
}

/// A hand-written sequence through every op kind, so a regression in the
/// runner itself (e.g. everything skipped) cannot pass silently.
#[test]
fn every_op_kind_is_exercised_and_verified() {
    let ops = vec![
        Op::Write {
            vol: 0,
            offset: 0,
            len: 20_000,
            seed: 1,
        },
        Op::Write {
            vol: 1,
            offset: 99_000,
            len: 5000,
            seed: 2,
        }, // clamped at the unaligned end
        Op::CreateSnapshot { vol: 0 },
        Op::Write {
            vol: 0,
            offset: 4096,
            len: 4096,
            seed: 16,
        }, // a whole zero block
        Op::WriteZeroes {
            vol: 0,
            offset: 100,
            len: 300,
        },
        Op::Discard {
            vol: 0,
            offset: 8192,
            len: 8192,
        },
        Op::Flush,
        Op::CreateSnapshot { vol: 1 },
        Op::Clone { snap: 0 },
        Op::Write {
            vol: 3,
            offset: 0,
            len: 4096,
            seed: 3,
        },
        Op::Restore { snap: 0 },
        Op::Checkpoint,
        Op::DeleteSnapshot { snap: 1 },
        Op::DeleteVolume { vol: 0 },
        Op::Reopen,
        Op::Write {
            vol: 0,
            offset: 1,
            len: 1,
            seed: 4,
        },
    ];
    let run = run_model(&ops, true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run.applied,
        ops.len(),
        "no op may be skipped in this sequence"
    );
    assert!(
        run.syncs > 10,
        "flushes, snapshots and checkpoints sync: {}",
        run.syncs
    );
}

/// The verifier really compares bytes: a model that is wrong must fail.
#[test]
fn verifier_catches_a_wrong_model() {
    use cowsnap::storage::sim::SimDisk;
    let mut h = cowsnap::testkit::Harness::new(SimDisk::new()).unwrap_or_else(|e| panic!("{e}"));
    h.apply(&Op::Write {
        vol: 0,
        offset: 0,
        len: 100,
        seed: 5,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    h.verify().unwrap_or_else(|e| panic!("{e}"));
    h.model.volumes[0].data[50] ^= 1;
    let err = h
        .verify()
        .expect_err("a flipped model byte must be reported");
    assert!(err.contains("byte 50"), "{err}");
}

/// The crash verifier really checks: a committed snapshot that is missing,
/// one that should be gone, and a byte nobody wrote are all reported.
#[test]
fn crash_verifier_catches_missing_snapshots_and_foreign_bytes() {
    use cowsnap::storage::sim::SimDisk;
    use cowsnap::testkit::runner::verify_after_crash;
    let ok = |r: Result<(), String>| r.unwrap_or_else(|e| panic!("{e}"));
    let mut h = cowsnap::testkit::Harness::new(SimDisk::new()).unwrap_or_else(|e| panic!("{e}"));
    ok(h.apply(&Op::Write {
        vol: 0,
        offset: 0,
        len: 5000,
        seed: 3,
    }));
    ok(h.apply(&Op::CreateSnapshot { vol: 0 }));
    ok(h.apply(&Op::Write {
        vol: 0,
        offset: 100,
        len: 10,
        seed: 4,
    })); // pending
    let pool = h.pool().unwrap_or_else(|e| panic!("{e}"));
    assert!(verify_after_crash(pool, &h.model).is_ok());

    let mut renamed = h.model.clone();
    renamed.snapshots[0].name = "other".into();
    let err = verify_after_crash(pool, &renamed).expect_err("unknown snapshot");
    assert!(err.contains("exists after the crash"), "{err}");
    let mut maybe = renamed.clone();
    maybe.snapshots[0].maybe = true; // the real one is still unexplained
    assert!(verify_after_crash(pool, &maybe).is_err());

    let mut lost = h.model.clone();
    lost.snapshots.push(cowsnap::testkit::model::SnapshotModel {
        name: "committed".into(),
        volume: lost.volumes[0].name.clone(),
        id: 99,
        data: lost.volumes[0].data.clone(),
        maybe: false,
    });
    let err = verify_after_crash(pool, &lost).expect_err("missing committed snapshot");
    assert!(err.contains("is missing"), "{err}");

    let mut foreign = h.model.clone();
    foreign.volumes[0].durable[4000] ^= 0xff; // not pending either
    let err = verify_after_crash(pool, &foreign).expect_err("foreign byte");
    assert!(err.contains("byte 4000"), "{err}");
}

// ---- fuzz seed corpus ---------------------------------------------------

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

/// Sample ops for crash seeds: data, snapshot, restore, clone, checkpoint.
fn sample_workload() -> Vec<Op> {
    vec![
        Op::Write {
            vol: 0,
            offset: 0,
            len: 12_288,
            seed: 1,
        },
        Op::Flush,
        Op::Write {
            vol: 1,
            offset: 5000,
            len: 3000,
            seed: 2,
        },
        Op::CreateSnapshot { vol: 0 },
        Op::Write {
            vol: 0,
            offset: 4096,
            len: 4096,
            seed: 3,
        },
        Op::Checkpoint,
        Op::Clone { snap: 0 },
        Op::Discard {
            vol: 0,
            offset: 0,
            len: 4096,
        },
        Op::Restore { snap: 0 },
        Op::DeleteSnapshot { snap: 0 },
        Op::Reopen,
        Op::Write {
            vol: 2,
            offset: 70_000,
            len: 700,
            seed: 4,
        },
    ]
}

fn seeds_decode_structures() -> Vec<(&'static str, Vec<u8>)> {
    let sb = Superblock {
        generation: 3,
        pool_id: 0xfeed,
        block_size: 4096,
        created_unix: 1_700_000_000,
    };
    let mut nodep = [0u8; PAGE_SIZE];
    node::init(&mut nodep, 5, 0);
    node::set_entry(&mut nodep, 0, 7);
    node::set_entry(&mut nodep, 9, 8);
    node::seal(&mut nodep);
    let mut refp = [0u8; PAGE_SIZE];
    let (_, at) = refpage::locate(3);
    refpage::set(&mut refp, at, 2);
    refpage::seal(&mut refp, 0);
    let journal = base_pool_files()
        .iter()
        .find(|(n, _)| n == files::JOURNALS[0] || n == files::JOURNALS[1])
        .map(|(_, b)| b.clone())
        .unwrap_or_default();
    // The header page, then the first records (catalog and commit).
    let head = journal[..journal.len().min(PAGE_SIZE)].to_vec();
    let mut records = Vec::new();
    let mut at = FIRST_RECORD_AT as usize;
    while records.len() < 1500 {
        let Some(Ok(h)) = journal.get(at..).map(decode_record_header) else {
            break;
        };
        let end = (at + padded_len(h.len as usize)).min(journal.len());
        records.extend_from_slice(&journal[at..end]);
        at = end;
    }
    vec![
        ("superblock", sb.encode()[..64].to_vec()),
        ("node-page", nodep.to_vec()),
        ("refcount-page", refp.to_vec()),
        ("journal-header", head[..64.min(head.len())].to_vec()),
        ("journal-records", records),
        ("short", vec![0x43, 0x53, 0x4a, 0x52, 1, 2, 3]),
    ]
}

fn seeds_open_fuzzed_pool() -> Vec<(&'static str, Vec<u8>)> {
    let files_ = base_pool_files();
    let sb = files_
        .iter()
        .find(|(n, _)| n == files::SUPERBLOCK)
        .map(|(_, b)| b.clone())
        .unwrap_or_default();
    let generation = [0, PAGE_SIZE]
        .iter()
        .filter_map(|&o| {
            Superblock::decode(sb.get(o..).unwrap_or(&[]), 0)
                .ok()
                .flatten()
        })
        .map(|s| s.generation)
        .max()
        .unwrap_or(0);
    let journal = files_
        .iter()
        .find(|(n, _)| n == files::JOURNALS[(generation % 2) as usize])
        .map(|(_, b)| b.clone())
        .unwrap_or_default();
    // The live journal's records as (kind, len u16, payload), and the catalog payload.
    let mut catalog = Vec::new();
    let mut stream = Vec::new();
    let mut at = FIRST_RECORD_AT as usize;
    while let Some(Ok(h)) = journal.get(at..).map(decode_record_header) {
        let payload = &journal[at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + h.len as usize];
        match h.kind {
            RecordKind::Base => catalog = payload.to_vec(),
            RecordKind::Commit => {}
            kind if stream.len() + payload.len() < 12_000 => {
                stream.push(kind as u8 - 1);
                stream.extend_from_slice(&(payload.len() as u16).to_le_bytes());
                stream.extend_from_slice(payload);
            }
            _ => {}
        }
        at += padded_len(h.len as usize);
    }
    let with = |mode: u8, pick: u8, off: u32, rest: &[u8]| {
        let mut v = vec![mode, pick];
        v.extend_from_slice(&off.to_le_bytes()[..3]);
        v.extend_from_slice(rest);
        v
    };
    let mut entries = vec![0u8; 64];
    entries[..8].copy_from_slice(&3u64.to_le_bytes());
    entries[8..16].copy_from_slice(&5u64.to_le_bytes());
    let mut refs = vec![0u8; 16];
    refs[4..8].copy_from_slice(&1u32.to_le_bytes());
    vec![
        ("overlay-nothing", with(0, 0, 0, &[])),
        ("overlay-superblock-slot", with(0, 5, 4096, &[0x42; 16])),
        ("truncate-journal-tail", with(1, 1, 5000, &[])),
        ("catalog-as-is", with(2, 0, 0, &catalog)),
        ("replay-records-again", with(3, 0, 0, &stream)),
        ("sealed-node-page", with(4, 1, 0, &entries)),
        ("sealed-refcount-page", with(5, 0, 0, &refs)),
    ]
}

fn seeds_ops_with_crash() -> Vec<(&'static str, Vec<u8>)> {
    let ops = encode_ops(&sample_workload());
    let with = |head: [u8; 4]| {
        let mut v = head.to_vec();
        v.extend_from_slice(&ops);
        v
    };
    vec![
        ("cut-at-sync-3", with([0, 3, 0, 1])),
        ("cut-at-sync-9", with([0, 9, 0, 2])),
        ("cut-after-40-ops", with([1, 40, 0, 3])),
        ("cut-after-300-ops", with([1, 44, 1, 4])),
        ("no-cut", with([2, 0, 0, 5])),
    ]
}

type Seeds = Vec<(&'static str, Vec<u8>)>;

/// A fuzz target: its name, its seeds, and its body.
type Target = (&'static str, Seeds, fn(&[u8]));

fn all_seeds() -> Vec<Target> {
    vec![
        (
            "decode_structures",
            seeds_decode_structures(),
            fuzz_decode_structures as fn(&[u8]),
        ),
        ("open_fuzzed_pool", seeds_open_fuzzed_pool(), fuzz_open_pool),
        (
            "ops_with_crash",
            seeds_ops_with_crash(),
            fuzz_ops_with_crash,
        ),
        // The NBD wire and handshake (src/nbd/fuzz): codecs and real clients' option sequences.
        (
            "nbd_parser",
            cowsnap::nbd::fuzz::seeds(),
            cowsnap::nbd::fuzz::wire,
        ),
    ]
}

/// The generated seeds are meaningful (the crash workload really runs and
/// crashes, the damaged pools built from the seeds open), and the
/// checked-in corpus under fuzz/corpus/ runs clean through every target.
#[test]
fn fuzz_seed_corpus_is_valid() {
    let write = std::env::var_os("COWSNAP_WRITE_SEEDS").is_some();
    for (target, seeds, run) in all_seeds() {
        let dir = corpus_dir(target);
        if write {
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for (name, bytes) in &seeds {
                std::fs::write(dir.join(format!("seed-{name}")), bytes)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        for (_, bytes) in &seeds {
            run(bytes);
        }
        let mut n = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("seed-"))
            {
                let bytes = std::fs::read(entry.path())
                    .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
                run(&bytes);
                n += 1;
            }
        }
        assert!(
            n >= 3,
            "{}: expected a checked-in seed corpus (run fuzz/make_seeds.sh)",
            dir.display()
        );
    }
    // The sample crash workload does not skip ops and really gets cut.
    let ops = sample_workload();
    let full = run_crash(&ops, Cut::Never, &[0]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(full.completed, ops.len());
    assert!(!full.cut_hit);
    let cut = run_crash(&ops, Cut::AtSync(3), &[1]).unwrap_or_else(|e| panic!("{e}"));
    assert!(cut.cut_hit && cut.completed < ops.len(), "{cut:?}");
    // Seeds that keep the pool's meaning (nothing overlaid, the catalog as
    // it was, the journal's records replayed again) must open and check ok.
    for (name, bytes) in seeds_open_fuzzed_pool() {
        // The catalog seed replaces the whole journal, so the pool is as of
        // its checkpoint (volumes a and b); the others keep clone c too.
        let volumes = match name {
            "overlay-nothing" | "replay-records-again" => 3,
            "catalog-as-is" => 2,
            _ => continue,
        };
        let disk = damaged_pool_disk(&bytes).unwrap_or_else(|| panic!("{name}: no disk"));
        let pool =
            Pool::open_in(Arc::new(disk)).unwrap_or_else(|e| panic!("{name}: does not open: {e}"));
        let report = pool.check(false).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.ok && report.leaked_blocks == 0, "{name}: {report:?}");
        assert_eq!(pool.list_volumes().len(), volumes, "{name}");
    }
}

// ---- engine bugs found by the fuzz harness --------------------------------

/// Engine bug repro (src/format/node.rs, `verify`): the error offsets are
/// computed as `page_no.saturating_mul(PAGE_SIZE) + CRC_AT` (and
/// `+ PAGE_NO_AT`, `+ LEVEL_AT`), which overflows, so a page number of 2^52
/// or more panics under overflow checks instead of returning `Corrupt`.
/// Reachable from disk: journal replay (`MetaState::replay`, NodeImage)
/// passes the record's page number unchecked.
#[test]
fn node_verify_rejects_huge_page_numbers_without_panicking() {
    let mut page = [0u8; PAGE_SIZE];
    node::init(&mut page, 1, 0);
    node::seal(&mut page);
    assert!(node::verify(&page, 1, files::NODES).is_ok());
    // Right magic, but it claims another page number.
    assert!(node::verify(&page, 1 << 60, files::NODES).is_err());
    // The same through a pool: a (correctly framed) journal record holding
    // a node image for page 2^60. Opening must fail cleanly.
    let mut payload = (1u64 << 60).to_le_bytes().to_vec();
    payload.extend_from_slice(&page);
    let mut input = vec![3u8, 0, 0, 0, 0, RecordKind::NodeImage as u8 - 1];
    input.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    input.extend_from_slice(&payload);
    // Control: the same builder with an empty transaction opens.
    let control = damaged_pool_disk(&[3, 0, 0, 0, 0]).expect("a disk");
    if let Err(e) = Pool::open_in(Arc::new(control)) {
        panic!("an appended empty transaction must open: {e}");
    }
    let disk = damaged_pool_disk(&input).expect("a disk");
    assert!(
        Pool::open_in(Arc::new(disk)).is_err(),
        "a node image for page 2^60 must be rejected"
    );
}

/// Engine bug repro (src/catalog.rs, `Catalog::validate`, whose job is to
/// reject values that "would break the engine's arithmetic"): it only checks
/// the counters are nonzero. A catalog (correctly checksummed) with a huge
/// `data_hw`, `node_hw`, `data_used` or `nodes_used` opens, and then
/// `Pool::stats` overflows (src/pool/api.rs: `refs_bytes`, `data_used * bs`,
/// `nodes_used * PAGE_SIZE`); with `next_volume_id`/`next_snapshot_id` at
/// u64::MAX the next create overflows (src/meta/ops.rs). Each must either
/// be refused at open or work without panicking.
#[test]
fn checksummed_catalog_with_absurd_counters_does_not_panic() {
    let (_, seed) = seeds_open_fuzzed_pool()
        .into_iter()
        .find(|(n, _)| *n == "catalog-as-is")
        .expect("seed");
    // The catalog is bincode (fixed-width little-endian); its counters come
    // first: next_volume_id, next_snapshot_id, data_hw, node_hw, data_used,
    // nodes_used. Pin that layout, so the patches below hit what they mean to.
    let counter =
        |i: usize| u64::from_le_bytes(seed[5 + 8 * i..13 + 8 * i].try_into().expect("8 bytes"));
    assert_eq!(
        (counter(0), counter(1)),
        (3, 2),
        "the base pool's checkpointed catalog: volumes a, b; snapshot s1"
    );
    if let Err(e) = Pool::open_in(Arc::new(damaged_pool_disk(&seed).expect("a disk"))) {
        panic!("control: the unpatched catalog must open: {e}");
    }
    for field in 0..6 {
        for value in [u64::MAX, 1 << 62] {
            let mut input = seed.clone();
            input[5 + 8 * field..13 + 8 * field].copy_from_slice(&value.to_le_bytes());
            let disk = damaged_pool_disk(&input).expect("a disk");
            let Ok(pool) = Pool::open_in(Arc::new(disk)) else {
                continue;
            };
            let _ = pool.stats();
            let _ = pool.create_volume("new", 4096);
            let _ = pool.create_snapshot("a", "new", "");
        }
    }
}
