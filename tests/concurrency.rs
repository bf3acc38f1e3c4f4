//! Concurrent I/O on shared `Volume` handles loses no update: racing readers,
//! writers, snapshot create/delete and flushes leave every private region
//! exact, overlapping writes linearizable, snapshot reads exact or NotFound,
//! and the pool consistent with nothing leaked.

use cowsnap::storage::sim::SimDisk;
use cowsnap::{ErrorKind, Pool, SnapshotReader, Volume};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const BS: u32 = 4096;
const BSU: u64 = BS as u64;

const fn assert_send_sync<T: Send + Sync>() {}
const _: () = {
    assert_send_sync::<Volume>();
    assert_send_sync::<SnapshotReader>();
    assert_send_sync::<Pool>();
};

/// Raises the flag when its thread panics, so the other threads stop instead
/// of waiting forever for one that died.
struct FailFlag<'a>(&'a AtomicBool);
impl Drop for FailFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Bytes of write `gid` for the range starting at absolute volume offset `at`.
fn pattern(gid: u64, at: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let o = at + i;
            (gid.wrapping_mul(0x9e37_79b9) ^ o.wrapping_mul(131) ^ (o >> 9)) as u8
        })
        .collect()
}

fn first_diff(got: &[u8], want: &[u8]) -> Option<usize> {
    got.iter().zip(want).position(|(a, b)| a != b)
}

/// A region of a volume that one thread alone writes, with its model.
struct Region {
    vol: Volume,
    base: u64,
    model: Vec<u8>,
    steps: u64,
}

impl Region {
    /// A random partial write, zeroing or read-back check.
    fn step(&mut self, rng: &mut StdRng, gid: u64, what: &str) {
        self.steps += 1;
        if self.steps.is_multiple_of(8) {
            self.verify(&self.vol, what); // also catches bytes a neighbour's write undid later
        }
        let len = rng.gen_range(1..=self.model.len().min(3 * BS as usize));
        let off = rng.gen_range(0..=self.model.len() - len);
        let at = self.base + off as u64;
        match rng.gen_range(0..10) {
            0..=5 => {
                let data = pattern(gid, at, len);
                self.vol.write_at(&data, at).unwrap();
                self.model[off..off + len].copy_from_slice(&data);
            }
            6 => {
                self.vol.write_zeroes(at, len as u64).unwrap();
                self.model[off..off + len].fill(0);
            }
            _ => {
                let mut got = vec![0u8; len];
                self.vol.read_at(&mut got, at).unwrap();
                if let Some(d) = first_diff(&got, &self.model[off..off + len]) {
                    panic!(
                        "{what}: read at volume byte {} differs from the last write there",
                        at + d as u64
                    );
                }
            }
        }
    }

    fn verify(&self, vol: &Volume, what: &str) {
        let mut got = vec![0u8; self.model.len()];
        vol.read_at(&mut got, self.base).unwrap();
        if let Some(d) = first_diff(&got, &self.model) {
            panic!(
                "{what}: volume byte {} is {:#04x}, the last write there put {:#04x}",
                self.base + d as u64,
                got[d],
                self.model[d]
            );
        }
    }
}

/// One write to the zone of the shared volume that every thread overwrites.
/// Each 8-byte word it writes holds (gid << 32 | absolute word index), so the
/// final content names, per word, the write it came from.
#[derive(Clone, Copy, Debug)]
struct ZoneWrite {
    gid: u64,
    first_word: u64,
    words: u64,
    /// Global clock ticks taken just before `write_at` and just after it returned.
    start: u64,
    end: u64,
}

fn zone_bytes(gid: u64, first_word: u64, words: u64) -> Vec<u8> {
    (first_word..first_word + words)
        .flat_map(|w| ((gid << 32) | w).to_le_bytes())
        .collect()
}

/// Right after `me` completed, the zone words it wrote must each hold `me` or a
/// write that was still in flight when `me` started (not yet logged, or
/// completed after `me` started); a write that had completed before is a
/// lost update.
fn check_zone_read_back(back: &[u8], me: &ZoneWrite, log: &HashMap<u64, ZoneWrite>) {
    for (k, w) in back.chunks(8).enumerate() {
        let word = me.first_word + k as u64;
        let v = u64::from_le_bytes(w.try_into().unwrap());
        let (gid, idx) = (v >> 32, v & 0xffff_ffff);
        assert!(
            v != 0 && idx == word,
            "zone word {word} read back as {v:#x} right after write {} covered it",
            me.gid
        );
        if gid != me.gid {
            if let Some(other) = log.get(&gid) {
                assert!(
                    other.end > me.start,
                    "lost update: zone word {word} reads write {gid} (completed at tick {}) right after write {} (started at tick {}) covered it",
                    other.end,
                    me.gid,
                    me.start
                );
            }
        }
    }
}

/// The zone's final content must be what applying the writes one at a time,
/// in an order consistent with real time, produces: every word holds its own
/// index and the id of a write that covered it, the write on top of each word
/// comes after every other write covering it, and a write that completed
/// before another started comes before it. Any lost or torn update breaks this.
fn check_zone_linearizable(zone: &[u8], zone_first_word: u64, writes: &[ZoneWrite]) {
    let nwords = zone.len() / 8;
    let by_gid: std::collections::HashMap<u64, usize> =
        writes.iter().enumerate().map(|(i, w)| (w.gid, i)).collect();
    let mut covering: Vec<Vec<usize>> = vec![Vec::new(); nwords];
    for (i, w) in writes.iter().enumerate() {
        for word in w.first_word..w.first_word + w.words {
            covering[(word - zone_first_word) as usize].push(i);
        }
    }
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); writes.len()];
    for (k, cov) in covering.iter().enumerate() {
        let word = zone_first_word + k as u64;
        let v = u64::from_le_bytes(zone[k * 8..k * 8 + 8].try_into().unwrap());
        if v == 0 {
            assert!(
                cov.is_empty(),
                "zone word {word} reads zero but {} writes covered it",
                cov.len()
            );
            continue;
        }
        let (gid, idx) = (v >> 32, v & 0xffff_ffff);
        assert_eq!(
            idx, word,
            "zone word {word} holds the bytes meant for word {idx} (gid {gid})"
        );
        let owner = *by_gid
            .get(&gid)
            .unwrap_or_else(|| panic!("zone word {word} holds unknown write {gid}"));
        assert!(
            cov.contains(&owner),
            "zone word {word} holds write {gid}, which did not cover it"
        );
        for &y in cov {
            if y != owner {
                let (wy, wo) = (&writes[y], &writes[owner]);
                assert!(
                    wo.end >= wy.start,
                    "lost update at zone word {word}: write {} (completed at tick {}) is on top, but write {} covering the word started later (tick {})",
                    wo.gid,
                    wo.end,
                    wy.gid,
                    wy.start
                );
                after[y].push(owner);
            }
        }
    }
    for (i, a) in writes.iter().enumerate() {
        for (j, b) in writes.iter().enumerate() {
            let overlap =
                a.first_word < b.first_word + b.words && b.first_word < a.first_word + a.words;
            if i != j && overlap && a.end < b.start {
                after[i].push(j);
            }
        }
    }
    // Kahn: the "must come before" relation has to be acyclic.
    let mut indeg = vec![0usize; writes.len()];
    for outs in &after {
        for &j in outs {
            indeg[j] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..writes.len()).filter(|&i| indeg[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &j in &after[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.push(j);
            }
        }
    }
    assert_eq!(
        done,
        writes.len(),
        "overlapping writes are not linearizable: no serial order explains the zone's content"
    );
}

const WORKERS: usize = 3;
const OPS_PER_WORKER: usize = 3000;
const PRIVATE_SIZE: u64 = 256 << 10;
/// Shared volume: worker t owns bytes [t*SHARED_REGION + 1000, +SHARED_REGION - 1000)
/// (regions are unaligned, so neighbours share blocks); the zone lies after them.
const SHARED_REGION: u64 = 10 * BSU + 300;
const ZONE_AT: u64 = (WORKERS as u64 * SHARED_REGION + 4000).div_ceil(8) * 8; // not block-aligned
const ZONE_LEN: u64 = 5 * BSU;
const SHARED_SIZE: u64 = ZONE_AT + ZONE_LEN + 5000;
const EPOCH_SIZE: u64 = 64 << 10;

fn shared_region(t: usize) -> (u64, usize) {
    (
        t as u64 * SHARED_REGION + 1000,
        (SHARED_REGION - 1000) as usize,
    )
}

#[test]
fn racing_io_snapshots_and_flushes_keep_every_write() {
    assert_eq!(ZONE_AT % 8, 0);
    let disk = SimDisk::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), BS).unwrap();
    for t in 0..WORKERS {
        pool.create_volume(&format!("p{t}"), PRIVATE_SIZE).unwrap();
    }
    pool.create_volume("shared", SHARED_SIZE).unwrap();
    pool.create_volume("epochs", EPOCH_SIZE).unwrap();
    let shared = pool.volume("shared").unwrap();
    let epochs_vol = pool.volume("epochs").unwrap();

    let clock = AtomicU64::new(1);
    let next_gid = AtomicU64::new(1);
    let stop = AtomicBool::new(false); // set when a thread panics
    let workers_done = AtomicUsize::new(0);
    let zone_log: Mutex<HashMap<u64, ZoneWrite>> = Mutex::new(HashMap::new());
    // (snapshot id, epoch) of the epoch volume's snapshots still expected to exist.
    let epoch_snaps: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
    let snap_reads_ok = AtomicU64::new(0);
    let snap_reads_gone = AtomicU64::new(0);

    let regions: Vec<(Region, Region)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for t in 0..WORKERS {
            let (pool, shared, clock, next_gid, stop, done, zone_log) = (
                &pool,
                &shared,
                &clock,
                &next_gid,
                &stop,
                &workers_done,
                &zone_log,
            );
            handles.push(s.spawn(move || {
                let _stop = FailFlag(stop);
                let mut rng = StdRng::seed_from_u64(1000 + t as u64);
                let mut private = Region {
                    vol: pool.volume(&format!("p{t}")).unwrap(),
                    base: 0,
                    model: vec![0; PRIVATE_SIZE as usize],
                    steps: 0,
                };
                let (base, len) = shared_region(t);
                let mut mine = Region {
                    vol: shared.clone(),
                    base,
                    model: vec![0; len],
                    steps: 0,
                };
                for _ in 0..OPS_PER_WORKER {
                    if stop.load(Ordering::SeqCst) {
                        break; // another thread failed; its panic fails the test
                    }
                    let gid = next_gid.fetch_add(1, Ordering::SeqCst);
                    match rng.gen_range(0..3) {
                        0 => private.step(&mut rng, gid, &format!("volume p{t}")),
                        1 => mine.step(
                            &mut rng,
                            gid,
                            &format!("shared volume, region of worker {t}"),
                        ),
                        _ => {
                            let zone_words = ZONE_LEN / 8;
                            let words = rng.gen_range(1..=600.min(zone_words));
                            let first_word = ZONE_AT / 8 + rng.gen_range(0..=zone_words - words);
                            let data = zone_bytes(gid, first_word, words);
                            let start = clock.fetch_add(1, Ordering::SeqCst);
                            shared.write_at(&data, first_word * 8).unwrap();
                            let end = clock.fetch_add(1, Ordering::SeqCst);
                            let me = ZoneWrite {
                                gid,
                                first_word,
                                words,
                                start,
                                end,
                            };
                            zone_log.lock().unwrap().insert(gid, me);
                            // Read it back at once: every word is ours or comes from a
                            // write that had not completed when ours started.
                            let mut back = vec![0u8; data.len()];
                            shared.read_at(&mut back, first_word * 8).unwrap();
                            check_zone_read_back(&back, &me, &zone_log.lock().unwrap());
                        }
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                (private, mine)
            }));
        }

        // Snapshots of every volume created and deleted, and flushes, while the workers run.
        let (pool, stop, done, epoch_snaps, epochs_vol) =
            (&pool, &stop, &workers_done, &epoch_snaps, &epochs_vol);
        s.spawn(move || {
            let _stop = FailFlag(stop);
            let mut rng = StdRng::seed_from_u64(7);
            let names: Vec<String> = (0..WORKERS)
                .map(|t| format!("p{t}"))
                .chain(["shared".to_string()])
                .collect();
            let mut others: Vec<u64> = Vec::new();
            let mut n = 0u64;
            while (done.load(Ordering::SeqCst) < WORKERS || n < 50) && !stop.load(Ordering::SeqCst)
            {
                n += 1;
                match rng.gen_range(0..6) {
                    0 | 1 => {
                        // The shared volume half the time: a snapshot makes its
                        // blocks shared, so the next partial writes take the
                        // copy-on-write merge path, where racing writes could lose bytes.
                        let v = if rng.gen_bool(0.5) {
                            "shared"
                        } else {
                            &names[rng.gen_range(0..names.len())]
                        };
                        others.push(pool.create_snapshot(v, &format!("x{n}"), "").unwrap().id);
                    }
                    2 if !others.is_empty() => {
                        let id = others.swap_remove(rng.gen_range(0..others.len()));
                        pool.delete_snapshot(id).unwrap();
                    }
                    3 => pool.flush().unwrap(),
                    // Checkpoints write pages home while I/O goes on.
                    4 if n.is_multiple_of(4) => pool.checkpoint().unwrap(),
                    _ => {
                        // A new epoch: rewrite the whole volume, snapshot it; drop an old epoch.
                        epochs_vol
                            .write_at(&pattern(n << 20, 0, EPOCH_SIZE as usize), 0)
                            .unwrap();
                        let id = pool
                            .create_snapshot("epochs", &format!("e{n}"), "")
                            .unwrap()
                            .id;
                        let mut list = epoch_snaps.lock().unwrap();
                        list.push((id, n));
                        if list.len() > 3 {
                            let victim = rng.gen_range(0..list.len() - 1);
                            let (old, _) = list.remove(victim);
                            drop(list);
                            pool.delete_snapshot(old).unwrap();
                        }
                    }
                }
            }
            for id in others {
                pool.delete_snapshot(id).unwrap();
            }
        });

        // Snapshots of the shared volume back to back (each deleted by the next), so
        // its partial writes keep taking the copy-on-write merge path.
        s.spawn(move || {
            let _stop = FailFlag(stop);
            let mut prev: Option<u64> = None;
            let mut n = 0;
            while done.load(Ordering::SeqCst) < WORKERS && !stop.load(Ordering::SeqCst) {
                n += 1;
                let id = pool
                    .create_snapshot("shared", &format!("y{n}"), "")
                    .unwrap()
                    .id;
                if let Some(p) = prev.replace(id) {
                    pool.delete_snapshot(p).unwrap();
                }
            }
            if let Some(p) = prev {
                pool.delete_snapshot(p).unwrap();
            }
        });

        // Readers of the epoch snapshots, racing their deletion and the reuse of their blocks.
        for r in 0..2u64 {
            let (pool, stop, done, epoch_snaps, ok, gone) = (
                pool,
                stop,
                done,
                epoch_snaps,
                &snap_reads_ok,
                &snap_reads_gone,
            );
            s.spawn(move || {
                let _stop = FailFlag(stop);
                let mut rng = StdRng::seed_from_u64(99 + r);
                let mut buf = vec![0u8; EPOCH_SIZE as usize];
                while done.load(Ordering::SeqCst) < WORKERS && !stop.load(Ordering::SeqCst) {
                    let pick = {
                        let list = epoch_snaps.lock().unwrap();
                        if list.is_empty() {
                            None
                        } else {
                            Some(list[rng.gen_range(0..list.len())])
                        }
                    };
                    let Some((id, epoch)) = pick else {
                        std::thread::yield_now();
                        continue;
                    };
                    let len = rng.gen_range(1..=EPOCH_SIZE as usize);
                    let off = rng.gen_range(0..=EPOCH_SIZE as usize - len);
                    let res = pool
                        .snapshot_reader(id)
                        .and_then(|rd: SnapshotReader| rd.read_at(&mut buf[..len], off as u64));
                    match res {
                        Ok(()) => {
                            let want = pattern(epoch << 20, off as u64, len);
                            if let Some(d) = first_diff(&buf[..len], &want) {
                                panic!(
                                    "snapshot {id} (epoch {epoch}) read wrong byte at {}",
                                    off + d
                                );
                            }
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            gone.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("reading snapshot {id}: {e}"),
                    }
                }
            });
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!(
        "concurrency: {} epoch-snapshot reads exact, {} found the snapshot deleted",
        snap_reads_ok.load(Ordering::SeqCst),
        snap_reads_gone.load(Ordering::SeqCst)
    );
    let mut zone_log: Vec<ZoneWrite> = zone_log.into_inner().unwrap().into_values().collect();
    zone_log.sort_by_key(|w| w.gid);
    assert!(
        zone_log.len() > 100,
        "the zone saw {} writes",
        zone_log.len()
    );

    let verify = |pool: &Pool, when: &str| {
        for (t, (private, mine)) in regions.iter().enumerate() {
            private.verify(
                &pool.volume(&format!("p{t}")).unwrap(),
                &format!("{when}: volume p{t}"),
            );
            mine.verify(
                &pool.volume("shared").unwrap(),
                &format!("{when}: shared volume, region of worker {t}"),
            );
        }
        let mut zone = vec![0u8; ZONE_LEN as usize];
        pool.volume("shared")
            .unwrap()
            .read_at(&mut zone, ZONE_AT)
            .unwrap();
        check_zone_linearizable(&zone, ZONE_AT / 8, &zone_log);
        let report = pool.check(false).unwrap();
        assert!(report.ok, "{when}: {report:?}");
        assert_eq!(report.leaked_blocks, 0, "{when}: {report:?}");
    };
    verify(&pool, "after the race");

    // Without snapshots, every used block belongs to exactly one volume.
    for s in pool.list_snapshots(None).unwrap() {
        pool.delete_snapshot(s.id).unwrap();
    }
    let allocated: u64 = pool
        .list_volumes()
        .iter()
        .map(|v| v.allocated_bytes / BSU)
        .sum();
    assert_eq!(
        pool.stats().used_blocks,
        allocated,
        "blocks used beyond what the volumes map"
    );
    verify(&pool, "after deleting every snapshot");

    drop((shared, epochs_vol));
    drop(pool);
    let pool = Pool::open_in(Arc::new(disk.clone())).unwrap();
    verify(&pool, "after reopen");
}

/// Two threads writing the two halves of one block, over and over, while
/// snapshots keep the block shared: neither may lose the other's bytes.
#[test]
fn two_threads_writing_halves_of_one_block_both_survive() {
    let half = BS as usize / 2;
    same_block_race(&[(BSU, half), (BSU + half as u64, half)], 2000);
}

/// Four threads owning disjoint ranges of blocks 1 and 2, two of them
/// straddling the boundary (one write locks two blocks).
#[test]
fn disjoint_ranges_across_a_block_boundary_all_survive() {
    let q = BS as usize / 4;
    same_block_race(
        &[
            (BSU, q),                    // block 1, first quarter
            (BSU + q as u64, 2 * q),     // block 1, second and third quarter
            (BSU + 3 * q as u64, 2 * q), // block 1 last quarter + block 2 first quarter
            (2 * BSU + q as u64, 3 * q), // block 2, the rest
        ],
        1500,
    );
}

/// Each thread rewrites its own range `rounds` times and reads it straight
/// back, while another thread takes a snapshot of the volume (deleting the
/// previous one) back to back, so nearly every write takes the copy-on-write
/// merge path: read the old block, patch in the new bytes, write a fresh
/// block. A write racing another on the same block must not copy the old
/// bytes over the other's update.
fn same_block_race(ranges: &[(u64, usize)], rounds: u64) {
    let pool = Pool::create_in(Arc::new(SimDisk::new()), BS).unwrap();
    pool.create_volume("v", 4 * BSU).unwrap();
    let vol = pool.volume("v").unwrap();
    let stop = AtomicBool::new(false); // set when a thread panics
    let done = AtomicUsize::new(0);
    let snaps = AtomicU64::new(0);
    let last: Vec<Vec<u8>> = std::thread::scope(|s| {
        let mut hs = Vec::new();
        for (p, &(at, len)) in ranges.iter().enumerate() {
            let (vol, stop, done) = (&vol, &stop, &done);
            hs.push(s.spawn(move || {
                let _stop = FailFlag(stop);
                let mut data = Vec::new();
                let mut got = vec![0u8; len];
                for n in 1..=rounds {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    data = pattern((p as u64) << 32 | n, at, len);
                    vol.write_at(&data, at).unwrap();
                    vol.read_at(&mut got, at).unwrap();
                    if let Some(d) = first_diff(&got, &data) {
                        panic!(
                            "thread {p}, round {n}: its own write was lost at volume byte {}",
                            at + d as u64
                        );
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                data
            }));
        }
        let (pool, stop, done, snaps) = (&pool, &stop, &done, &snaps);
        s.spawn(move || {
            let _stop = FailFlag(stop);
            let mut prev: Option<u64> = None;
            let mut n = 0;
            while done.load(Ordering::SeqCst) < ranges.len() && !stop.load(Ordering::SeqCst) {
                n += 1;
                let id = pool.create_snapshot("v", &format!("s{n}"), "").unwrap().id;
                if let Some(p) = prev.replace(id) {
                    pool.delete_snapshot(p).unwrap();
                }
                snaps.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(p) = prev {
                pool.delete_snapshot(p).unwrap();
            }
        });
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!(
        "same-block writers: {} snapshots taken during the race",
        snaps.load(Ordering::SeqCst)
    );
    for (p, &(at, len)) in ranges.iter().enumerate() {
        let mut got = vec![0u8; len];
        vol.read_at(&mut got, at).unwrap();
        assert_eq!(
            first_diff(&got, &last[p]),
            None,
            "thread {p}'s last write is not what the volume holds"
        );
    }
    // Bytes nobody wrote stay zero.
    let mut b0 = vec![0u8; BS as usize];
    vol.read_at(&mut b0, 0).unwrap();
    assert!(b0.iter().all(|&b| b == 0));
    let report = pool.check(false).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.leaked_blocks, 0, "{report:?}");
    let blocks: std::collections::BTreeSet<u64> = ranges
        .iter()
        .flat_map(|&(at, len)| at / BSU..=(at + len as u64 - 1) / BSU)
        .collect();
    assert_eq!(
        pool.stats().used_blocks,
        blocks.len() as u64,
        "only the written blocks stay allocated"
    );
}

/// The linearizability checker must be able to fail.
#[test]
fn zone_checker_detects_a_lost_update() {
    let a = ZoneWrite {
        gid: 1,
        first_word: 10,
        words: 4,
        start: 1,
        end: 2,
    };
    let b = ZoneWrite {
        gid: 2,
        first_word: 12,
        words: 4,
        start: 3,
        end: 4,
    };
    let mut zone = vec![0u8; 8 * 8];
    let put = |zone: &mut Vec<u8>, w: &ZoneWrite| {
        let bytes = zone_bytes(w.gid, w.first_word, w.words);
        let at = ((w.first_word - 10) * 8) as usize;
        zone[at..at + bytes.len()].copy_from_slice(&bytes);
    };
    put(&mut zone, &a);
    put(&mut zone, &b);
    check_zone_linearizable(&zone, 10, &[a, b]); // a then b: fine
    let mut lost = vec![0u8; 8 * 8];
    put(&mut lost, &b);
    put(&mut lost, &a); // a on top although b started after a completed
    let r = std::panic::catch_unwind(|| check_zone_linearizable(&lost, 10, &[a, b]));
    assert!(r.is_err(), "a lost update must be reported");
}
