//! The data-cache mode is a property of one open, not of the pool: a pool
//! written through the page cache reads back exactly when opened direct, and
//! the other way round, with snapshots intact and `check` clean.

use cowsnap::{DataCache, Pool};

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed | 1)
        .collect()
}

fn read(pool: &Pool, volume: &str, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    pool.volume(volume)
        .unwrap()
        .read_at(&mut buf, offset)
        .unwrap();
    buf
}

fn read_snapshot(pool: &Pool, id: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    pool.snapshot_reader(id)
        .unwrap()
        .read_at(&mut buf, 0)
        .unwrap();
    buf
}

#[test]
fn pools_move_between_page_cache_and_direct_opens_intact() {
    for (first, second) in [
        (DataCache::PageCache, DataCache::Direct),
        (DataCache::Direct, DataCache::PageCache),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool");
        let size = 1 << 20;
        let base = pattern(1, size);
        let (snap, live) = {
            let pool = Pool::create_with(&path, 4096, first).unwrap();
            pool.create_volume("v", size as u64).unwrap();
            let v = pool.volume("v").unwrap();
            v.write_at(&base, 0).unwrap();
            let snap = pool.create_snapshot("v", "s", "").unwrap().id;
            // Unaligned writes over shared blocks: copy-on-write through
            // whichever path this open uses.
            let over = pattern(9, 10_007);
            v.write_at(&over, 4093).unwrap();
            v.write_at(&over[..5], size as u64 - 5).unwrap();
            let mut live = base.clone();
            live[4093..4093 + over.len()].copy_from_slice(&over);
            live[size - 5..].copy_from_slice(&over[..5]);
            assert_eq!(read(&pool, "v", 0, size), live, "{first:?}");
            pool.close().unwrap();
            (snap, live)
        };
        let pool = Pool::open_with(&path, second).unwrap();
        assert_eq!(read(&pool, "v", 0, size), live, "{first:?} then {second:?}");
        assert_eq!(
            read_snapshot(&pool, snap, size),
            base,
            "{first:?} then {second:?}"
        );
        // And writes in the second mode land where the first put data.
        let again = pattern(4, 3000);
        pool.volume("v").unwrap().write_at(&again, 100).unwrap();
        assert_eq!(read(&pool, "v", 100, 3000), again);
        assert_eq!(read_snapshot(&pool, snap, size), base);
        let report = pool.check(false).unwrap();
        assert!(report.ok && report.leaked_blocks == 0, "{report:?}");
    }
}
