//! Snapshots are point-in-time images: create, read, restore, clone and
//! delete behave as documented, on real files and across reopen.

use cowsnap::storage::sim::SimDisk;
use cowsnap::{ErrorKind, Pool};
use std::sync::Arc;

const BS: u32 = 4096;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

#[test]
fn write_snapshot_overwrite_restore_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("p"), BS).unwrap();
    pool.create_volume("vm1", 1 << 20).unwrap();
    let vol = pool.volume("vm1").unwrap();
    let a = pattern(1, 10_000);
    vol.write_at(&a, 1234).unwrap();
    let snap = pool.create_snapshot("vm1", "before", "first").unwrap();
    assert_eq!(
        snap.size_bytes,
        3 * BS as u64,
        "10000 bytes at 1234 touch blocks 0..=2"
    );
    let b = pattern(9, 5000);
    vol.write_at(&b, 3000).unwrap();

    let mut got = vec![0u8; 10_000];
    pool.snapshot_reader(snap.id)
        .unwrap()
        .read_at(&mut got, 1234)
        .unwrap();
    assert_eq!(got, a, "snapshot keeps its point-in-time content");

    let mut live = vec![0u8; 5000];
    vol.read_at(&mut live, 3000).unwrap();
    assert_eq!(live, b);

    pool.restore_snapshot(snap.id).unwrap();
    vol.read_at(&mut got, 1234).unwrap();
    assert_eq!(got, a, "restore brings the snapshot's bytes back");
    assert!(pool.snapshot(snap.id).is_ok(), "restore keeps the snapshot");
    drop(vol);
    pool.close().unwrap();

    let pool = Pool::open(dir.path().join("p")).unwrap();
    let vol = pool.volume("vm1").unwrap();
    let mut got = vec![0u8; 10_000];
    vol.read_at(&mut got, 1234).unwrap();
    assert_eq!(got, a, "content survives reopen");
    assert_eq!(pool.list_snapshots(None).unwrap().len(), 1);
    let report = pool.check(false).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.leaked_blocks, 0);
}

#[test]
fn unwritten_ranges_read_zero_and_take_no_space() {
    let pool = Pool::create_in(Arc::new(SimDisk::new()), BS).unwrap();
    let info = pool.create_volume("v", 64 << 20).unwrap();
    assert_eq!(info.allocated_bytes, 0);
    let vol = pool.volume("v").unwrap();
    let mut buf = vec![0xffu8; 100_000];
    vol.read_at(&mut buf, 12345).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    vol.write_at(&[7u8; 1], (64 << 20) - 1).unwrap();
    assert_eq!(vol.info().unwrap().allocated_bytes, BS as u64);
    assert_eq!(
        vol.write_at(&[1u8; 2], (64 << 20) - 1).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn delete_frees_exclusive_blocks_and_reports_exclusive_bytes() {
    let pool = Pool::create_in(Arc::new(SimDisk::new()), BS).unwrap();
    pool.create_volume("v", 1 << 20).unwrap();
    let vol = pool.volume("v").unwrap();
    vol.write_at(&pattern(3, 8 * BS as usize), 0).unwrap();
    let s1 = pool.create_snapshot("v", "s1", "").unwrap();
    assert_eq!(
        s1.exclusive_bytes, 0,
        "everything is shared with the volume"
    );
    vol.write_at(&pattern(4, 2 * BS as usize), 0).unwrap();
    let s1 = pool.snapshot(s1.id).unwrap();
    assert_eq!(
        s1.exclusive_bytes,
        2 * BS as u64,
        "two blocks were overwritten in the volume"
    );
    let used_before = pool.stats().used_blocks;
    pool.delete_snapshot(s1.id).unwrap();
    assert_eq!(pool.stats().used_blocks, used_before - 2);
    assert!(pool.check(false).unwrap().ok);
}

#[test]
fn clone_shares_then_diverges() {
    let pool = Pool::create_in(Arc::new(SimDisk::new()), BS).unwrap();
    pool.create_volume("base", 1 << 20).unwrap();
    let base = pool.volume("base").unwrap();
    base.write_at(&pattern(5, 50_000), 0).unwrap();
    let s = pool.create_snapshot("base", "gold", "").unwrap();
    let used = pool.stats().used_blocks;
    let c = pool.clone_snapshot(s.id, "copy").unwrap();
    assert_eq!(c.allocated_bytes, s.size_bytes);
    assert_eq!(pool.stats().used_blocks, used, "a clone copies no data");
    let copy = pool.volume("copy").unwrap();
    copy.write_at(&[0xee; 10], 0).unwrap();
    let mut b = vec![0u8; 10];
    base.read_at(&mut b, 0).unwrap();
    assert_eq!(b, pattern(5, 10));
    copy.read_at(&mut b, 0).unwrap();
    assert_eq!(b, vec![0xee; 10]);
    pool.delete_volume("base").unwrap();
    copy.read_at(&mut b, 10).unwrap();
    assert_eq!(
        b,
        pattern(5, 20)[10..].to_vec(),
        "clone survives deletion of its origin"
    );
    assert!(pool.check(false).unwrap().ok);
}

#[test]
fn names_are_validated_and_unique_per_volume() {
    let pool = Pool::create_in(Arc::new(SimDisk::new()), BS).unwrap();
    pool.create_volume("a", 1 << 16).unwrap();
    pool.create_volume("b", 1 << 16).unwrap();
    pool.create_snapshot("a", "weekly-snapshot-2025-01-08", "")
        .unwrap();
    let e = pool
        .create_snapshot("a", "weekly-snapshot-2025-01-08", "")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    pool.create_snapshot("b", "weekly-snapshot-2025-01-08", "")
        .unwrap();
    for bad in ["", "has space", "slash/", &"x".repeat(65)] {
        assert_eq!(
            pool.create_snapshot("a", bad, "").unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad:?}"
        );
    }
    let lim = pool
        .create_snapshot_limited("b", "two", "", Some(1))
        .unwrap_err();
    assert_eq!(lim.kind(), ErrorKind::LimitReached);
}

#[test]
fn snapshot_ids_are_never_reused() {
    let pool = Pool::create_in(Arc::new(SimDisk::new()), BS).unwrap();
    pool.create_volume("a", 1 << 16).unwrap();
    let s1 = pool.create_snapshot("a", "one", "").unwrap();
    pool.delete_snapshot(s1.id).unwrap();
    let s2 = pool.create_snapshot("a", "one", "").unwrap();
    assert!(s2.id > s1.id);
}

#[test]
fn second_process_gets_a_lock_error_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let _pool = Pool::create(dir.path(), BS).unwrap();
    // A second open in the same process uses a second file description, so flock conflicts.
    let err = Pool::open(dir.path()).err().expect("second open must fail");
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}
