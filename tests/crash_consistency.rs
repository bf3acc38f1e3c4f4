//! Invariant: power may fail at any sync or disk operation (un-synced writes
//! then survive whole, vanish or tear by sector) and the pool still opens
//! without repair, every committed snapshot reads exactly its point-in-time
//! content, flushed data is intact, newer bytes are old-or-new, the op in
//! flight is all-or-nothing, and `check(false)` is ok; a failed write or sync
//! poisons the pool until reopen, and the reopened pool keeps flushed data.

use cowsnap::storage::sim::{SimDisk, INJECTED_FAILURE_MSG};
use cowsnap::testkit::{run_crash, CrashRun, Cut, Op};
use cowsnap::{ErrorKind, Pool};
use std::sync::Arc;

/// Crash seeds tried at every sync cut: each gives different torn writes.
const SEEDS: [u64; 4] = [0, 1, 0xDEAD_BEEF, 42];

/// Writes, flushes, every snapshot operation, a volume delete, a reopen and a
/// forced checkpoint in the middle, ending with unflushed writes.
fn workload() -> Vec<Op> {
    vec![
        Op::Write {
            vol: 0,
            offset: 0,
            len: 16_384,
            seed: 1,
        },
        Op::Write {
            vol: 1,
            offset: 3000,
            len: 9000,
            seed: 2,
        },
        Op::Flush,
        // Overwrites a flushed, exclusively owned block in place.
        Op::Write {
            vol: 0,
            offset: 4096 + 100,
            len: 1000,
            seed: 3,
        },
        Op::Write {
            vol: 2,
            offset: 100_000,
            len: 20_000,
            seed: 4,
        },
        Op::CreateSnapshot { vol: 0 },
        // Copy-on-write: the snapshot must keep the old bytes.
        Op::Write {
            vol: 0,
            offset: 0,
            len: 8192,
            seed: 5,
        },
        Op::Discard {
            vol: 1,
            offset: 0,
            len: 8192,
        },
        Op::CreateSnapshot { vol: 1 },
        Op::Write {
            vol: 1,
            offset: 4000,
            len: 3000,
            seed: 6,
        },
        Op::Checkpoint,
        Op::Write {
            vol: 0,
            offset: 12_000,
            len: 5000,
            seed: 7,
        },
        Op::Clone { snap: 0 },
        Op::Write {
            vol: 3,
            offset: 0,
            len: 4096,
            seed: 8,
        },
        Op::Flush,
        Op::Restore { snap: 0 },
        Op::Write {
            vol: 0,
            offset: 2048,
            len: 4096,
            seed: 9,
        },
        Op::WriteZeroes {
            vol: 2,
            offset: 102_400,
            len: 4096,
        },
        Op::DeleteSnapshot { snap: 1 },
        Op::Write {
            vol: 2,
            offset: 0,
            len: 12_288,
            seed: 10,
        },
        Op::CreateSnapshot { vol: 2 },
        Op::Reopen,
        Op::DeleteVolume { vol: 1 },
        Op::Write {
            vol: 0,
            offset: 40_000,
            len: 6000,
            seed: 11,
        },
        Op::Flush,
        Op::Write {
            vol: 0,
            offset: 0,
            len: 4096,
            seed: 12,
        },
        Op::Write {
            vol: 1,
            offset: 60_000,
            len: 3000,
            seed: 13,
        },
    ]
}

fn run(cut: Cut, seeds: &[u64]) -> CrashRun {
    run_crash(&workload(), cut, seeds).unwrap_or_else(|e| panic!("{e}"))
}

/// Deterministic pseudo-random numbers for picking cut points.
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Origins and clones sharing blocks after the snapshots between them are
/// deleted, then unflushed partial and whole-block overwrites on both sides:
/// neither may ever reach the other's committed content.
fn clone_workload() -> Vec<Op> {
    let w = |vol, offset, len, seed| Op::Write {
        vol,
        offset,
        len,
        seed,
    };
    vec![
        w(0, 0, 32_768, 21),
        w(2, 65_536, 32_768, 22),
        Op::CreateSnapshot { vol: 0 },
        Op::Clone { snap: 0 }, // volume 3: clone of volume 0
        Op::CreateSnapshot { vol: 2 },
        Op::Clone { snap: 1 }, // volume 4: clone of volume 2
        Op::DeleteSnapshot { snap: 0 },
        Op::DeleteSnapshot { snap: 0 }, // origins and clones now share maps alone
        w(0, 4096, 8192, 23),           // copy-on-write in the origin
        w(3, 4096 + 512, 4096, 24),     // the clone, over the same blocks
        w(4, 65_536, 4096, 25),
        w(2, 65_536 + 100, 5000, 26),
        Op::Discard {
            vol: 3,
            offset: 16_384,
            len: 8192,
        },
        Op::Flush,
        w(3, 0, 4096, 27),
        w(0, 0, 4096, 28),
        Op::CreateSnapshot { vol: 3 },
        w(0, 20_000, 3000, 29),
        w(3, 20_000, 3000, 30),
        w(4, 70_000, 3000, 31),
    ]
}

#[test]
fn workload_runs_whole_without_a_cut() {
    let full = run(Cut::Never, &SEEDS);
    assert!(!full.cut_hit);
    assert_eq!(
        full.completed,
        workload().len(),
        "no op of the workload may be skipped"
    );
    assert!(
        full.syncs >= 20,
        "the workload should sync often, did {}",
        full.syncs
    );
    // Un-synced trailing writes are not a leak: recovery must be clean.
    assert_eq!(full.leaked_blocks, vec![0; SEEDS.len()]);
}

#[test]
fn power_cut_at_every_sync() {
    let total = run(Cut::Never, &[]).syncs;
    let mut in_flight_kinds = std::collections::BTreeSet::new();
    for k in 0..total {
        let r = run(Cut::AtSync(k), &SEEDS);
        assert!(r.cut_hit, "sync {k} of {total} was never reached");
        // "op #N Kind { .. }: error": keep Kind.
        let what = r.in_flight.as_deref().unwrap_or("");
        let kind = what.split(' ').nth(2).unwrap_or("");
        in_flight_kinds.insert(kind.trim_end_matches(':').to_string());
    }
    // Each kind of committing op got crashed at least once (a clean reopen
    // after a flush has nothing left to sync).
    for kind in [
        "Flush",
        "CreateSnapshot",
        "Restore",
        "DeleteSnapshot",
        "Clone",
        "Checkpoint",
        "DeleteVolume",
    ] {
        assert!(
            in_flight_kinds.contains(kind),
            "no sync cut hit {kind}: {in_flight_kinds:?}"
        );
    }
}

#[test]
fn power_cut_at_random_disk_ops() {
    let total = run(Cut::Never, &[]).disk_ops;
    assert!(total > 50, "{total}");
    let mut rng = 0x5EED_u64;
    let mut points: Vec<u64> = (0..48).map(|_| splitmix(&mut rng) % total).collect();
    points.extend([0, 1, total - 1]);
    for n in points {
        let r = run(Cut::AfterOps(n), &[splitmix(&mut rng), splitmix(&mut rng)]);
        assert!(
            r.cut_hit,
            "cut after {n} of {total} disk ops was never reached"
        );
    }
}

#[test]
fn injected_failure_at_random_disk_ops_poisons_then_recovers() {
    let total = run(Cut::Never, &[]).disk_ops;
    let mut rng = 0xFA11_u64;
    let mut poisoned = 0;
    for _ in 0..40 {
        let n = splitmix(&mut rng) % total;
        let r = run(Cut::FailOp(n), &[splitmix(&mut rng)]);
        // A failed hole punch is harmless and stays silent; anything else
        // must surface (the runner then checks the pool is poisoned).
        poisoned += r.cut_hit as usize;
    }
    assert!(
        poisoned >= 20,
        "only {poisoned} of 40 injected failures surfaced"
    );
}

/// A fresh pool of 4 KiB blocks on a simulated disk, with one 64 KiB volume.
fn pool_with_volume(name: &str) -> (SimDisk, Pool) {
    let disk = SimDisk::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), 4096).unwrap();
    pool.create_volume(name, 64 * 1024).unwrap();
    (disk, pool)
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add((i % 253) as u8) | 1)
        .collect()
}

fn read(pool: &Pool, vol: &str, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    pool.volume(vol).unwrap().read_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn failed_sync_poisons_until_reopen_and_keeps_flushed_data() {
    let (disk, pool) = pool_with_volume("v");
    let v = pool.volume("v").unwrap();
    let flushed = pattern(1, 32 * 1024);
    v.write_at(&flushed, 0).unwrap();
    v.flush().unwrap();
    let newer = pattern(2, 8192);
    v.write_at(&newer, 4096).unwrap(); // in place: the blocks are this volume's alone

    disk.fail_next_sync();
    let err = v.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains(INJECTED_FAILURE_MSG), "{err}");
    // The disk is fine now, but the pool must not pretend the failure away.
    for (what, r) in [
        ("write_at", v.write_at(&[9; 10], 0)),
        ("flush", v.flush()),
        ("discard", v.discard(0, 4096)),
        (
            "create_snapshot",
            pool.create_snapshot("v", "s", "").map(drop),
        ),
        ("create_volume", pool.create_volume("w", 4096).map(drop)),
    ] {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Poisoned, "{what}: {e}");
    }
    let disk_ops = disk.op_count();
    drop(v);
    drop(pool); // must not commit on the way out
    assert_eq!(
        disk.op_count(),
        disk_ops,
        "dropping a poisoned pool must not write"
    );

    // Reopen the same disk: flushed bytes intact, the unflushed range old or new.
    let pool = Pool::open_in(Arc::new(disk.clone())).unwrap();
    let got = read(&pool, "v", 32 * 1024);
    assert_eq!(got[..4096], flushed[..4096]);
    assert_eq!(got[12_288..], flushed[12_288..]);
    for i in 4096..12_288 {
        assert!(
            got[i] == flushed[i] || got[i] == newer[i - 4096],
            "byte {i}"
        );
    }
    assert!(pool.check(false).unwrap().ok);
    // ... and it is writable again.
    let v = pool.volume("v").unwrap();
    v.write_at(&pattern(3, 4096), 0).unwrap();
    v.flush().unwrap();
    pool.create_snapshot("v", "after", "").unwrap();
    drop(v);
    pool.close().unwrap();
    let pool = Pool::open_in(Arc::new(disk.crash(7))).unwrap();
    assert_eq!(read(&pool, "v", 4096), pattern(3, 4096));
    assert!(pool.check(false).unwrap().ok);
}

#[test]
fn failed_data_write_poisons_and_changes_nothing_durable() {
    let (disk, pool) = pool_with_volume("v");
    let v = pool.volume("v").unwrap();
    let flushed = pattern(4, 20_000);
    v.write_at(&flushed, 0).unwrap();
    pool.flush().unwrap();
    let snap = pool.create_snapshot("v", "s", "").unwrap();

    disk.fail_op_after(0); // the next disk op is the data write below
    let err = v.write_at(&pattern(5, 6000), 1000).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    let e = v.write_at(&[1; 10], 30_000).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Poisoned, "{e}");
    assert_eq!(pool.flush().unwrap_err().kind(), ErrorKind::Poisoned);
    assert_eq!(
        pool.delete_snapshot(snap.id).unwrap_err().kind(),
        ErrorKind::Poisoned
    );
    drop(v);
    drop(pool);

    for seed in [0, 1, 2] {
        let pool = Pool::open_in(Arc::new(disk.crash(seed))).unwrap();
        assert_eq!(read(&pool, "v", 20_000), flushed, "seed {seed}");
        let mut buf = vec![0u8; 20_000];
        pool.snapshot_reader(snap.id)
            .unwrap()
            .read_at(&mut buf, 0)
            .unwrap();
        assert_eq!(buf, flushed, "seed {seed}: snapshot");
        let report = pool.check(false).unwrap();
        assert!(report.ok, "seed {seed}: {report:?}");
    }
}

/// Engine bug repro (src/journal.rs, `Journal::recover` / `find_later_record`):
/// a power cut during a commit's journal sync may tear the un-synced append
/// so that the sector holding its first record is lost while a later sector
/// (holding a later record of the same, never-committed transaction)
/// survives. That is a legal crash outcome (sector-atomic, unordered), but
/// recovery calls it "damaged record followed by intact later ones" and the
/// pool no longer opens.
#[test]
fn torn_uncommitted_journal_append_still_opens() {
    let (disk, pool) = pool_with_volume("v");
    let v = pool.volume("v").unwrap();
    let flushed = pattern(6, 8192);
    v.write_at(&flushed, 0).unwrap();
    v.flush().unwrap();
    // Unflushed writes to new blocks: the next commit journals node images,
    // so its append spans many sectors.
    v.write_at(&pattern(7, 16_384), 16_384).unwrap();
    // The snapshot's commit syncs the data file, appends to the journal,
    // then dies at the journal sync.
    disk.cut_power_at_sync(disk.sync_count() + 1);
    let err = pool.create_snapshot("v", "s", "").unwrap_err();
    assert!(disk.is_powered_off(), "{err}");
    drop(v);
    drop(pool);

    // One legal outcome: everything durable, plus the journal append with
    // its first (partial) sector lost and the rest kept.
    let journal = ["journal-0", "journal-1"]
        .into_iter()
        .find(|j| disk.read_file(j) != disk.read_durable_file(j))
        .expect("the commit appended to a journal");
    let after = SimDisk::new();
    for name in disk.file_names() {
        after.write_file(&name, &disk.read_durable_file(&name).unwrap());
    }
    let durable = disk.read_durable_file(journal).unwrap();
    let mut torn = disk.read_file(journal).unwrap();
    // The journal file is preallocated, so the append is where the bytes first differ.
    let start = torn
        .iter()
        .zip(durable.iter())
        .position(|(a, b)| a != b)
        .expect("the append changed the journal");
    let append_end = torn.iter().rposition(|&b| b != 0).unwrap() + 1;
    let first_sector_end = (start / 512 + 1) * 512;
    assert!(
        append_end > first_sector_end + 512,
        "the append must span several sectors"
    );
    torn[start..first_sector_end].fill(0);
    after.write_file(journal, &torn);

    let pool = Pool::open_in(Arc::new(after))
        .unwrap_or_else(|e| panic!("pool must open after a torn, uncommitted journal append: {e}"));
    assert_eq!(read(&pool, "v", 8192), flushed);
    assert!(
        pool.list_snapshots(None).unwrap().is_empty(),
        "the snapshot never committed"
    );
    assert!(pool.check(false).unwrap().ok);
}

/// A crash outcome: every file as durably synced, except `data`, which keeps
/// every write (synced or not). Legal: un-synced writes may all survive.
fn crash_keeping_data_writes(disk: &SimDisk) -> SimDisk {
    let after = SimDisk::new();
    for name in disk.file_names() {
        let bytes = if name == "data" {
            disk.read_file(&name)
        } else {
            disk.read_durable_file(&name)
        };
        after.write_file(&name, &bytes.unwrap());
    }
    after
}

/// Engine bug repro (src/meta/tree.rs, `MetaState::prepare_write`): a
/// block is written in place when its *in-memory* refcount is 1, but an
/// uncommitted copy-on-write by another map can have dropped it to 1 while
/// the durable (committed) state still shares it. Here volume `a` and its
/// clone `b` share a block; `a` overwrites it (copy-on-write, not yet
/// committed), then `b`'s write goes in place into the block that `a`'s
/// committed map still points at. After a power cut, `a`'s flushed bytes
/// hold `b`'s data: neither what `a` flushed nor what `a` wrote since.
#[test]
fn unflushed_write_to_a_clone_never_changes_its_origins_flushed_data() {
    let (disk, pool) = pool_with_volume("a");
    let flushed = pattern(1, 4096);
    pool.volume("a").unwrap().write_at(&flushed, 0).unwrap();
    let s = pool.create_snapshot("a", "s", "").unwrap();
    pool.clone_snapshot(s.id, "b").unwrap();
    pool.delete_snapshot(s.id).unwrap(); // commits: `a` and `b` share one map
    let a_new = pattern(2, 4096);
    pool.volume("a").unwrap().write_at(&a_new, 0).unwrap(); // copy-on-write, unflushed
    pool.volume("b")
        .unwrap()
        .write_at(&pattern(3, 4096), 0)
        .unwrap(); // unflushed
    disk.cut_power_now();
    drop(pool);

    let pool = Pool::open_in(Arc::new(crash_keeping_data_writes(&disk))).unwrap();
    let got = read(&pool, "a", 4096);
    assert!(
        got == flushed || got == a_new,
        "volume a's committed block was overwritten by a write to its clone b"
    );
    assert!(pool.check(false).unwrap().ok);
}

#[test]
fn clones_sharing_blocks_survive_power_cuts() {
    let ops = clone_workload();
    let full = run_crash(&ops, Cut::Never, &SEEDS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        full.completed,
        ops.len(),
        "no op of the workload may be skipped"
    );
    let mut cuts: Vec<Cut> = (0..full.syncs).map(Cut::AtSync).collect();
    let mut rng = 0xC10E_u64;
    cuts.extend((0..32).map(|_| Cut::AfterOps(splitmix(&mut rng) % full.disk_ops)));
    for cut in cuts {
        let r = run_crash(&ops, cut, &SEEDS).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.cut_hit, "{cut:?} was never reached");
    }
}

/// Like the test above, one level up: `a`'s copy-on-write shadows the map
/// node it shares with `b`, dropping that node's in-memory count to 1. A
/// write by `b` to a *different* block under that node must not go in
/// place: `a`'s committed map still reaches the block through the node.
#[test]
fn unflushed_write_to_a_clone_never_changes_a_block_its_origin_shares_through_a_node() {
    let (disk, pool) = pool_with_volume("a");
    let flushed = pattern(1, 8192);
    pool.volume("a").unwrap().write_at(&flushed, 0).unwrap();
    let s = pool.create_snapshot("a", "s", "").unwrap();
    pool.clone_snapshot(s.id, "b").unwrap();
    pool.delete_snapshot(s.id).unwrap(); // commits: `a` and `b` share one map
    let a_new = pattern(2, 4096);
    pool.volume("a").unwrap().write_at(&a_new, 0).unwrap(); // shadows the shared node
    pool.volume("b")
        .unwrap()
        .write_at(&pattern(3, 4096), 4096)
        .unwrap(); // block 1, which only the (shared) node points at
    disk.cut_power_now();
    drop(pool);

    let pool = Pool::open_in(Arc::new(crash_keeping_data_writes(&disk))).unwrap();
    let got = read(&pool, "a", 8192);
    assert_eq!(
        got[4096..],
        flushed[4096..],
        "volume a's committed block 1 was overwritten by a write to its clone b"
    );
    assert!(got[..4096] == flushed[..4096] || got[..4096] == a_new[..]);
    assert!(pool.check(false).unwrap().ok);
}

/// A volume delete drops the count of the map it shares with a clone to 1
/// in memory before its commit is durable. A write to the clone inside that
/// window must still copy: if power fails before the delete commits, the
/// volume survives, and its committed blocks must be untouched.
#[test]
fn a_clone_write_inside_an_uncommitted_delete_never_reaches_the_deleted_volume() {
    let (disk, pool) = pool_with_volume("a");
    let flushed = pattern(1, 8192);
    pool.volume("a").unwrap().write_at(&flushed, 0).unwrap();
    let s = pool.create_snapshot("a", "s", "").unwrap();
    pool.clone_snapshot(s.id, "b").unwrap();
    pool.delete_snapshot(s.id).unwrap(); // `a` and `b` share one map alone
    let b = pool.volume("b").unwrap();
    let (hook_disk, wrote) = (
        disk.clone(),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let hook_wrote = wrote.clone();
    disk.before_sync(move |file| {
        if file.starts_with("journal")
            && !hook_wrote.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            // The delete's transaction is captured, not yet durable.
            b.write_at(&pattern(3, 4096), 4096).unwrap();
            hook_disk.cut_power_now();
        }
    });
    assert!(
        pool.delete_volume("a").is_err(),
        "power was cut in its commit"
    );
    assert!(wrote.load(std::sync::atomic::Ordering::SeqCst));
    drop(pool);

    let pool = Pool::open_in(Arc::new(crash_keeping_data_writes(&disk))).unwrap();
    assert_eq!(
        read(&pool, "a", 8192),
        flushed,
        "the undeleted volume's committed block was overwritten by its clone's write"
    );
    assert!(pool.check(false).unwrap().ok);
}

/// An embedder's records committed with an operation (`*_with`) survive a
/// power cut exactly when the operation does, at every sync.
#[test]
fn records_commit_with_their_operation_or_not_at_all() {
    use cowsnap::AppDataChange::{Delete, Put};
    let run = |cut: Option<u64>| -> (SimDisk, bool) {
        let (disk, pool) = pool_with_volume("v");
        pool.volume("v")
            .unwrap()
            .write_at(&pattern(1, 8192), 0)
            .unwrap();
        pool.flush().unwrap();
        if let Some(k) = cut {
            disk.cut_power_at_sync(disk.sync_count() + k);
        }
        let steps = || -> cowsnap::Result<()> {
            let s = pool.create_snapshot_with("v", "s", "", None, |i| {
                vec![Put("snap".into(), i.id.to_le_bytes().to_vec())]
            })?;
            pool.restore_snapshot_with(s.id, |_| vec![Put("restored".into(), vec![1])])?;
            pool.create_volume_with("w", 4096, |_| vec![Put("w".into(), vec![])])?;
            pool.delete_snapshot_with(s.id, vec![Delete("snap".into())])?;
            pool.delete_volume_with("w", vec![Delete("w".into())])?;
            pool.change_app_data(vec![Put("a".into(), vec![]), Put("b".into(), vec![])])
        };
        let finished = steps().is_ok();
        drop(pool);
        (disk, finished)
    };
    let (_, finished) = run(None);
    assert!(finished);
    for k in 0..16 {
        let (disk, finished) = run(Some(k));
        for seed in SEEDS {
            let pool = Pool::open_in(Arc::new(disk.crash(seed))).unwrap();
            let snap = pool.list_snapshots(Some("v")).unwrap();
            let has = |key: &str| pool.app_data(key).is_some();
            let w_exists = pool.volume("w").is_ok();
            // Each state the sequence passes through, and only those.
            let state = (
                snap.len(),
                has("snap"),
                has("restored"),
                w_exists,
                has("w"),
                has("a"),
                has("b"),
            );
            let allowed = [
                (0, false, false, false, false, false, false),
                (1, true, false, false, false, false, false),
                (1, true, true, false, false, false, false),
                (1, true, true, true, true, false, false),
                (0, false, true, true, true, false, false),
                (0, false, true, false, false, false, false),
                (0, false, true, false, false, true, true),
            ];
            assert!(
                allowed.contains(&state),
                "cut at sync {k}, seed {seed}: {state:?}"
            );
            if finished {
                assert_eq!(state, allowed[6]);
            }
        }
    }
}

/// A checkpoint writes its page images without the metadata lock. Pages it
/// took count as clean but must stay cached until written: evicted and read
/// back from their stale home copies, a refcount page would show blocks in
/// use as free, and the allocator would hand one out again.
#[test]
fn pages_a_checkpoint_is_writing_are_never_read_back_stale() {
    let (disk, pool) = pool_with_volume("v");
    let v = pool.volume("v").unwrap();
    v.write_at(&pattern(1, 4096), 0).unwrap();
    pool.checkpoint().unwrap(); // home copies now know block 0 only
    let b = pattern(2, 4096);
    v.write_at(&b, 4096).unwrap();
    pool.flush().unwrap(); // block 1 allocated: committed, not yet home
    pool.set_metadata_cache_pages(0); // every read trims all clean pages
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (hv, hook_armed) = (v.clone(), armed.clone());
    disk.before_sync(move |file| {
        // The nodes file syncs first: the refcount pages are not home yet.
        if file == "nodes" && hook_armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let mut buf = vec![0u8; 4096];
            hv.read_at(&mut buf, 0).unwrap();
            hv.write_at(&pattern(3, 4096), 8192).unwrap();
        }
    });
    pool.checkpoint().unwrap();
    assert!(
        !armed.load(std::sync::atomic::Ordering::SeqCst),
        "the hook ran"
    );
    let mut got = vec![0u8; 4096];
    v.read_at(&mut got, 4096).unwrap();
    assert_eq!(
        got, b,
        "block 1's data was handed out again and overwritten"
    );
    v.read_at(&mut got, 8192).unwrap();
    assert_eq!(got, pattern(3, 4096));
    assert!(pool.check(false).unwrap().ok);
}
