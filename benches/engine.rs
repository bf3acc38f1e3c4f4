//! Criterion benches for the engine's hot paths, each beside a plain-file
//! baseline measured in the same run (these machines are shared and noisy,
//! so ratios matter more than absolute times).
//!
//! `cargo bench --bench engine` for figures; under `cargo test` each bench
//! runs once on small sizes so it cannot rot.

use cowsnap::storage::AlignedBuf;
use cowsnap::{DataCache, Pool, Volume};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::{Duration, Instant};

const BS: u32 = 64 * 1024;

fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn mib(n: u64) -> u64 {
    n << 20
}

/// Sizes of "small" and "large" volumes (allocated bytes).
fn sizes() -> [u64; 2] {
    if full_run() {
        [mib(64), mib(1024)]
    } else {
        [mib(4), mib(16)]
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    pool: Pool,
    vol: Volume,
}

fn fixture(allocated: u64) -> Fixture {
    fixture_with(allocated, DataCache::Direct)
}

fn fixture_with(allocated: u64, cache: DataCache) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = Pool::create_with(dir.path().join("pool"), BS, cache).expect("pool");
    pool.create_volume("v", allocated).expect("volume");
    let vol = pool.volume("v").expect("volume");
    let chunk: Vec<u8> = (0..mib(4)).map(|i| (i % 251) as u8 + 1).collect();
    let mut off = 0;
    while off < allocated {
        let n = chunk.len().min((allocated - off) as usize);
        vol.write_at(&chunk[..n], off).expect("fill");
        off += n as u64;
    }
    vol.flush().expect("flush");
    Fixture {
        _dir: dir,
        pool,
        vol,
    }
}

/// The hot copy path: writes to blocks a snapshot shares.
fn cow_writes(c: &mut Criterion) {
    let size = sizes()[0];
    let fx = fixture(size);
    let blocks = size / BS as u64;
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let plain = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(plain_dir.path().join("plain"))
        .expect("plain file");
    plain.set_len(size).expect("size");
    let mut g = c.benchmark_group("cow_write");
    for (label, len) in [("full_block", BS as usize), ("partial_4k", 4096usize)] {
        let buf = vec![0x5au8; len];
        g.throughput(Throughput::Bytes(len as u64));
        let mut snap_no = 0u64;
        g.bench_function(BenchmarkId::new("shared", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // A fresh snapshot makes every block shared again (untimed).
                    snap_no += 1;
                    fx.pool
                        .create_snapshot("v", &format!("s{snap_no}"), "")
                        .expect("snapshot");
                    let n = (iters - done).min(blocks);
                    let start = Instant::now();
                    for i in 0..n {
                        fx.vol.write_at(&buf, i * BS as u64).expect("write");
                    }
                    total += start.elapsed();
                    done += n;
                    for s in fx.pool.list_snapshots(Some("v")).expect("list") {
                        fx.pool.delete_snapshot(s.id).expect("delete");
                    }
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new("plain_file", label), |b| {
            let mut i = 0u64;
            b.iter(|| {
                plain
                    .write_all_at(&buf, (i % blocks) * BS as u64)
                    .expect("write");
                i += 1;
            })
        });
    }
    g.finish();
}

/// Snapshot create, restore and delete at a small and a large allocation.
fn snapshot_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(20);
    for size in sizes() {
        let fx = fixture(size);
        let label = format!("{}MiB", size >> 20);
        let mut n = 0u64;
        g.bench_function(BenchmarkId::new("create", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let start = Instant::now();
                    let s = fx
                        .pool
                        .create_snapshot("v", &format!("c{n}"), "")
                        .expect("create");
                    total += start.elapsed();
                    fx.pool.delete_snapshot(s.id).expect("delete");
                }
                total
            })
        });
        let base = fx.pool.create_snapshot("v", "base", "").expect("base");
        g.bench_function(BenchmarkId::new("restore", &label), |b| {
            b.iter(|| fx.pool.restore_snapshot(base.id).expect("restore"))
        });
        // Delete of a snapshot that owns 1 MiB exclusively.
        g.bench_function(BenchmarkId::new("delete_1MiB_exclusive", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let data = vec![0x77u8; 1 << 20];
                for _ in 0..iters {
                    n += 1;
                    let s = fx
                        .pool
                        .create_snapshot("v", &format!("d{n}"), "")
                        .expect("create");
                    fx.vol.write_at(&data, 0).expect("write");
                    let start = Instant::now();
                    fx.pool.delete_snapshot(s.id).expect("delete");
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

/// Sequential throughput beside a plain file doing the same work: the
/// default direct pool beside a plain file opened `O_DIRECT`, and a pool
/// opened through the page cache beside a plain buffered file.
fn sequential(c: &mut Criterion) {
    let size = sizes()[0];
    let mut chunk = AlignedBuf::zeroed(1 << 20);
    chunk.fill(0x33);
    let mut g = c.benchmark_group("sequential");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(size));
    let direct = fixture(size);
    let cached = fixture_with(size, DataCache::PageCache);
    let dir = tempfile::tempdir().expect("tempdir");
    // Two files, so the baseline never mixes buffered and direct I/O either.
    let open = |name: &str, flags: i32| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(flags)
            .open(dir.path().join(name))
            .expect("plain")
    };
    let plain = open("plain", 0);
    let plain_direct = open("plain_direct", libc_o_direct());
    for (name, fx) in [("cowsnap", &direct), ("cowsnap_page_cache", &cached)] {
        g.bench_function(format!("write_flush/{name}"), |b| {
            b.iter(|| {
                for off in (0..size).step_by(chunk.len()) {
                    fx.vol.write_at(&chunk, off).expect("write");
                }
                fx.vol.flush().expect("flush");
            })
        });
    }
    for (name, file) in [("plain_file_direct", &plain_direct), ("plain_file", &plain)] {
        g.bench_function(format!("write_flush/{name}"), |b| {
            b.iter(|| {
                for off in (0..size).step_by(chunk.len()) {
                    file.write_all_at(&chunk, off).expect("write");
                }
                file.sync_data().expect("sync");
            })
        });
    }
    let mut buf = AlignedBuf::zeroed(1 << 20);
    for (name, fx) in [("cowsnap", &direct), ("cowsnap_page_cache", &cached)] {
        g.bench_function(format!("read/{name}"), |b| {
            b.iter(|| {
                for off in (0..size).step_by(buf.len()) {
                    fx.vol.read_at(&mut buf, off).expect("read");
                }
            })
        });
    }
    for (name, file) in [("plain_file_direct", &plain_direct), ("plain_file", &plain)] {
        g.bench_function(format!("read/{name}"), |b| {
            b.iter(|| {
                for off in (0..size).step_by(buf.len()) {
                    file.read_exact_at(&mut buf, off).expect("read");
                }
            })
        });
    }
    g.finish();
}

/// `O_DIRECT` on Linux x86-64 and aarch64 (the crate is Linux-only).
fn libc_o_direct() -> i32 {
    rustix::fs::OFlags::DIRECT.bits() as i32
}

criterion_group!(benches, cow_writes, snapshot_ops, sequential);
criterion_main!(benches);
