//! Raw image import and export round-trip byte for byte, keep zeros out of
//! the pool, and produce sparse files.

use cowsnap::Pool;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

fn image(path: &std::path::Path, size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    // Data at the start, a hole in the middle, an unaligned tail.
    for (i, b) in data[..300_000].iter_mut().enumerate() {
        *b = (i * 7 % 253) as u8 + 1;
    }
    for b in &mut data[size - 5000..size - 10] {
        *b = 0xab;
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&data).unwrap();
    data
}

#[test]
fn import_export_round_trip_is_exact_and_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.raw");
    let size = 3 * 1024 * 1024 + 1234;
    let data = image(&src, size);
    let pool = Pool::create(dir.path().join("pool"), 4096).unwrap();
    let info = pool.import_raw("vm", &src, &mut |_, _| {}).unwrap();
    assert_eq!(info.size_bytes, size as u64);
    // 300000 bytes = 74 blocks; tail 4990 bytes spans 2 blocks.
    assert_eq!(info.allocated_bytes, (74 + 2) * 4096);

    let out = dir.path().join("out.raw");
    pool.export_volume("vm", &out, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let meta = std::fs::metadata(&out).unwrap();
    assert!(
        meta.blocks() * 512 < 1024 * 1024,
        "export must be sparse, uses {} bytes",
        meta.blocks() * 512
    );

    let snap = pool.create_snapshot("vm", "s", "").unwrap();
    pool.volume("vm").unwrap().write_at(&[9u8; 100], 0).unwrap();
    let sout = dir.path().join("snap.raw");
    pool.export_snapshot(snap.id, &sout, &mut |_, _| {})
        .unwrap();
    assert_eq!(
        std::fs::read(&sout).unwrap(),
        data,
        "snapshot export is point in time"
    );

    // Import over the existing same-size volume restores the image exactly.
    pool.import_raw("vm", &src, &mut |_, _| {}).unwrap();
    pool.export_volume("vm", &out, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert!(pool.check(false).unwrap().ok);
}

#[test]
fn import_over_wrong_size_volume_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.raw");
    image(&src, 1 << 20);
    let pool = Pool::create(dir.path().join("pool"), 4096).unwrap();
    pool.create_volume("vm", 2 << 20).unwrap();
    let err = pool.import_raw("vm", &src, &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), cowsnap::ErrorKind::InvalidArgument);
}
