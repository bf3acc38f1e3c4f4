//! Invariant: `check` reports a leaked block (a refcount higher than the
//! references found) as a leak, not corruption; `check --repair` reclaims
//! it, after which the pool is clean and the block is reused; a refcount
//! *lower* than its references is corruption, which repair refuses to touch.
//! And deleting a snapshot gives its space back to the file system.

use cowsnap::format::refpage::{self, PER_PAGE};
use cowsnap::format::{files, PAGE_SIZE};
use cowsnap::storage::sim::SimDisk;
use cowsnap::Pool;
use std::sync::Arc;

const BS: u32 = 4096;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed ^ (i % 251) as u8 | 1).collect()
}

/// A checkpointed pool: volume `v` with blocks 0..4 written, a snapshot
/// sharing them, then block 0 overwritten (copy-on-write).
fn pool_on_disk() -> (SimDisk, u64) {
    let disk = SimDisk::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), BS).unwrap();
    pool.create_volume("v", 64 * 1024).unwrap();
    let v = pool.volume("v").unwrap();
    v.write_at(&pattern(1, 4 * BS as usize), 0).unwrap();
    let snap = pool.create_snapshot("v", "s", "").unwrap().id;
    v.write_at(&pattern(2, BS as usize), 0).unwrap();
    pool.checkpoint().unwrap();
    pool.close().unwrap();
    (disk, snap)
}

/// Data blocks whose refcount on disk is `value`.
fn blocks_with_count(disk: &SimDisk, value: u32) -> Vec<u64> {
    let file = disk.read_file(files::DATA_REFS).unwrap();
    let mut page = [0u8; PAGE_SIZE];
    page.copy_from_slice(&file[..PAGE_SIZE]);
    (1..PER_PAGE as u64)
        .filter(|&b| refpage::get(&page, refpage::locate(b).1) == value)
        .collect()
}

/// Rewrite data block `block`'s refcount on disk, with valid checksums.
fn set_count(disk: &SimDisk, block: u64, value: u32) {
    let mut file = disk.read_file(files::DATA_REFS).unwrap();
    let (page_no, at) = refpage::locate(block);
    assert_eq!(page_no, 0);
    let mut page = [0u8; PAGE_SIZE];
    page.copy_from_slice(&file[..PAGE_SIZE]);
    refpage::set(&mut page, at, value);
    refpage::seal(&mut page, 0);
    file[..PAGE_SIZE].copy_from_slice(&page);
    disk.write_file(files::DATA_REFS, &file);
}

fn read(pool: &Pool, vol: &str, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    pool.volume(vol).unwrap().read_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn a_leak_is_reported_then_repaired_and_the_block_is_reused() {
    let (disk, snap) = pool_on_disk();
    let shared = blocks_with_count(&disk, 2);
    assert_eq!(shared.len(), 3, "blocks 1..4 are shared with the snapshot");
    let exclusive = blocks_with_count(&disk, 1);
    assert_eq!(
        exclusive.len(),
        2,
        "the snapshot's block 0 and the live copy"
    );
    // A leak: one more count than references (a lost decrement).
    set_count(&disk, exclusive[0], 2);

    let pool = Pool::open_in(Arc::new(disk.clone())).unwrap();
    let r = pool.check(false).unwrap();
    assert!(r.ok, "a leak is not corruption: {:?}", r.errors);
    assert_eq!(r.leaked_blocks, 1);
    // A read-only check changes nothing.
    assert_eq!(pool.check(false).unwrap().leaked_blocks, 1);

    let r = pool.check(true).unwrap();
    assert!(r.ok);
    assert_eq!(r.repaired, 1);
    let r = pool.check(false).unwrap();
    assert_eq!((r.ok, r.leaked_blocks), (true, 0));

    // Deleting the snapshot now frees its exclusive block, which the leak
    // had pinned; the space is reused by the next fresh write.
    let before = read(&pool, "v", 4 * BS as usize);
    pool.delete_snapshot(snap).unwrap();
    let data_hw = pool.stats().used_blocks + pool.stats().free_blocks;
    pool.volume("v")
        .unwrap()
        .write_at(&pattern(3, BS as usize), 8 * BS as u64)
        .unwrap();
    pool.flush().unwrap();
    assert_eq!(
        pool.stats().used_blocks + pool.stats().free_blocks,
        data_hw,
        "the freed block was reused instead of growing the data file"
    );
    assert_eq!(read(&pool, "v", 4 * BS as usize), before);
    pool.close().unwrap();
    // The repair is durable.
    let pool = Pool::open_in(Arc::new(disk)).unwrap();
    let r = pool.check(false).unwrap();
    assert_eq!((r.ok, r.leaked_blocks), (true, 0), "{:?}", r.errors);
}

#[test]
fn a_count_below_its_references_is_corruption_that_repair_refuses() {
    let (disk, _) = pool_on_disk();
    let shared = blocks_with_count(&disk, 2);
    // Freeing it while the volume or the snapshot still maps it would hand
    // one's data to the next writer.
    set_count(&disk, shared[0], 1);
    let pool = Pool::open_in(Arc::new(disk.clone())).unwrap();
    let r = pool.check(false).unwrap();
    assert!(!r.ok);
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains(&format!("data block {}", shared[0]))
                && e.contains("refcount 1 but 2 references")),
        "{:?}",
        r.errors
    );
    let r = pool.check(true).unwrap();
    assert!(!r.ok);
    assert_eq!(r.repaired, 0, "corruption is never 'repaired'");
    drop(pool);
    assert_eq!(
        blocks_with_count(&disk, 1).len(),
        3,
        "repair wrote nothing to the refcount table"
    );
}

#[test]
fn deleting_snapshots_and_volumes_gives_space_back_to_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool");
    let pool = Pool::create(&path, 64 * 1024).unwrap();
    pool.create_volume("v", 32 << 20).unwrap();
    let v = pool.volume("v").unwrap();
    let data: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8 | 1).collect();
    v.write_at(&data, 0).unwrap();
    let snap = pool.create_snapshot("v", "s", "").unwrap().id;
    v.write_at(&data[..8 << 20], 0).unwrap(); // 8 MiB copied on write
    pool.flush().unwrap();
    let du = || allocated_bytes(&path.join(files::DATA));
    let full = du();
    assert!(full >= 24 << 20, "{full}");
    pool.delete_snapshot(snap).unwrap();
    let after_delete = du();
    assert!(
        after_delete <= full - (8 << 20),
        "the snapshot's 8 MiB are punched out: {full} -> {after_delete}"
    );
    pool.delete_volume("v").unwrap();
    // What stays: block 0 and the space allocated ahead of the data's end
    // (one step, 1 MiB at this size; see storage/ahead.rs).
    assert!(
        du() <= (2 << 20) + 4096,
        "{} bytes left after the volume went",
        du()
    );
}

/// Bytes the file occupies on disk (`du`), from st_blocks.
fn allocated_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}
