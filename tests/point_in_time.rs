//! A snapshot is a point in time: for every writer it holds exactly the first
//! k of that writer's writes, with every write that completed before create
//! was called and none that started after create returned — never a torn or
//! reordered mix, whatever the writes' alignment.

use cowsnap::storage::sim::SimDisk;
use cowsnap::{Pool, Volume};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const BS: u32 = 4096;

/// One writer: write number i goes to slot i % slots of its region.
#[derive(Clone, Copy, Debug)]
struct Writer {
    id: u8,
    volume: usize,
    /// Byte offset of the region in the volume.
    base: u64,
    slot_len: usize,
    slots: u64,
}

impl Writer {
    fn region_len(&self) -> usize {
        self.slot_len * self.slots as usize
    }

    fn slot_offset(&self, slot: u64) -> u64 {
        self.base + slot * self.slot_len as u64
    }

    /// The distinct, recognisable bytes of write number `i`: a header naming
    /// the writer and `i`, then a body that depends on both (never zero).
    fn tag(&self, i: u64) -> Vec<u8> {
        let mut b: Vec<u8> = (0..self.slot_len)
            .map(|p| {
                ((i as usize).wrapping_mul(31) ^ p.wrapping_mul(7) ^ self.id as usize) as u8 | 1
            })
            .collect();
        b[0] = 0xA5;
        b[1] = self.id;
        b[2..10].copy_from_slice(&i.to_le_bytes());
        b[10] = 0x5A;
        b[11] = !self.id;
        b
    }

    /// Which write a slot holds: Ok(None) when never written, Err when the
    /// bytes are not any write's header.
    fn decode(&self, slot: &[u8]) -> Result<Option<u64>, String> {
        if slot.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if slot[0] != 0xA5 || slot[1] != self.id || slot[10] != 0x5A || slot[11] != !self.id {
            return Err(format!(
                "slot header {:02x?} is no write of writer {}",
                &slot[..12],
                self.id
            ));
        }
        Ok(Some(u64::from_le_bytes(slot[2..10].try_into().unwrap())))
    }

    /// Region content after exactly the first `k` writes.
    fn state_after(&self, k: u64) -> Vec<u8> {
        let mut r = vec![0u8; self.region_len()];
        for j in 0..self.slots.min(k) {
            let last = j + (k - 1 - j) / self.slots * self.slots;
            let at = j as usize * self.slot_len;
            r[at..at + self.slot_len].copy_from_slice(&self.tag(last));
        }
        r
    }

    /// The k for which `region == state_after(k)`, or why there is none.
    fn prefix_of(&self, region: &[u8]) -> Result<u64, String> {
        let mut k = 0;
        for (j, slot) in region.chunks(self.slot_len).enumerate() {
            match self.decode(slot).map_err(|e| format!("slot {j}: {e}"))? {
                Some(i) if i % self.slots != j as u64 => {
                    return Err(format!(
                        "slot {j} holds write {i}, which belongs in slot {}",
                        i % self.slots
                    ))
                }
                Some(i) => k = k.max(i + 1),
                None => {}
            }
        }
        let want = self.state_after(k);
        if region != want {
            let first = region.iter().zip(&want).position(|(a, b)| a != b).unwrap();
            return Err(format!(
                "newest write is {} but the region is not the state after {k} writes (first difference at region byte {first}, slot {}): torn or mixed",
                k as i64 - 1,
                first / self.slot_len
            ));
        }
        Ok(k)
    }
}

/// Per writer: writes started (bumped before `write_at`) and completed (after it returns).
struct Progress {
    started: AtomicU64,
    completed: AtomicU64,
}

struct SnapRecord {
    id: u64,
    volume: usize,
    /// Per writer of that volume: (writer index, completed before create, started before it returned).
    bounds: Vec<(usize, u64, u64)>,
}

/// Ends the run when any thread leaves, normally or by panicking, so one
/// failure cannot leave the others spinning forever.
struct StopOnDrop<'a>(&'a AtomicBool);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Check one snapshot against its bounds; returns the k found per writer.
fn verify_snapshot(pool: &Pool, writers: &[Writer], rec: &SnapRecord) -> Vec<u64> {
    let reader = pool.snapshot_reader(rec.id).unwrap();
    let mut ks = Vec::new();
    for &(w, lower, upper) in &rec.bounds {
        let spec = writers[w];
        let mut region = vec![0u8; spec.region_len()];
        reader.read_at(&mut region, spec.base).unwrap();
        let k = spec
            .prefix_of(&region)
            .unwrap_or_else(|e| panic!("snapshot {} writer {} ({spec:?}): {e}", rec.id, spec.id));
        assert!(
            (lower..=upper).contains(&k),
            "snapshot {} holds the first {k} writes of writer {}, but {lower} had completed before create and only {upper} had started before it returned",
            rec.id,
            spec.id
        );
        ks.push(k);
    }
    ks
}

/// Run `writers` against `volumes` while one thread takes `snapshots` snapshots,
/// cycling over the volumes. Before each snapshot it waits until every writer
/// of that volume has completed a write since the previous snapshot of it, so
/// the snapshots really interleave with writes (no timing involved).
fn run(pool: &Pool, volumes: &[Volume], writers: &[Writer], snapshots: usize) -> Vec<SnapRecord> {
    for (x, a) in writers.iter().enumerate() {
        for b in &writers[x + 1..] {
            let disjoint = a.base + a.region_len() as u64 <= b.base
                || b.base + b.region_len() as u64 <= a.base;
            assert!(
                a.volume != b.volume || disjoint,
                "test setup: regions of {a:?} and {b:?} overlap"
            );
        }
    }
    let progress: Vec<Progress> = writers
        .iter()
        .map(|_| Progress {
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        })
        .collect();
    let stop = AtomicBool::new(false);
    let records = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for (w, spec) in writers.iter().enumerate() {
            let (vol, p, stop) = (&volumes[spec.volume], &progress[w], &stop);
            s.spawn(move || {
                let _stop = StopOnDrop(stop);
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let data = spec.tag(i);
                    p.started.fetch_add(1, Ordering::SeqCst);
                    vol.write_at(&data, spec.slot_offset(i % spec.slots))
                        .unwrap();
                    p.completed.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            });
        }
        let (progress, stop, records) = (&progress, &stop, &records);
        s.spawn(move || {
            let _stop = StopOnDrop(stop);
            let mut last_upper = vec![0u64; writers.len()];
            for n in 0..snapshots {
                let v = n % volumes.len();
                let mine: Vec<usize> = (0..writers.len())
                    .filter(|&w| writers[w].volume == v)
                    .collect();
                for &w in &mine {
                    while progress[w].completed.load(Ordering::SeqCst) <= last_upper[w] {
                        if stop.load(Ordering::SeqCst) {
                            return; // a writer failed; its panic fails the test
                        }
                        std::thread::yield_now();
                    }
                }
                let lower: Vec<u64> = mine
                    .iter()
                    .map(|&w| progress[w].completed.load(Ordering::SeqCst))
                    .collect();
                let info = pool
                    .create_snapshot(volumes[v].name(), &format!("s{n}"), "")
                    .unwrap();
                let upper: Vec<u64> = mine
                    .iter()
                    .map(|&w| progress[w].started.load(Ordering::SeqCst))
                    .collect();
                let rec = SnapRecord {
                    id: info.id,
                    volume: v,
                    bounds: mine
                        .iter()
                        .enumerate()
                        .map(|(x, &w)| (w, lower[x], upper[x]))
                        .collect(),
                };
                for &(w, _, upper) in &rec.bounds {
                    last_upper[w] = upper;
                }
                // Read it back at once, while the writers keep overwriting the volume.
                if n % 4 == 0 {
                    verify_snapshot(pool, writers, &rec);
                }
                records.lock().unwrap().push(rec);
            }
        });
    });
    records.into_inner().unwrap()
}

/// Verify every snapshot after the run, and that each writer's k strictly grows
/// from one snapshot of its volume to the next (the harness waits for progress).
fn verify_all(pool: &Pool, writers: &[Writer], records: &[SnapRecord]) {
    let mut last_k: Vec<Option<u64>> = vec![None; writers.len()];
    for rec in records {
        assert_eq!(
            pool.snapshot(rec.id).unwrap().volume_id,
            pool.list_volumes()[rec.volume].id
        );
        let ks = verify_snapshot(pool, writers, rec);
        for (&(w, ..), k) in rec.bounds.iter().zip(ks) {
            if let Some(prev) = last_k[w] {
                assert!(
                    k > prev,
                    "writer {w}: snapshot {} holds {k} writes, an older one held {prev}",
                    rec.id
                );
            }
            last_k[w] = Some(k);
        }
    }
}

fn final_checks(pool: &Pool, volumes: &[Volume], writers: &[Writer]) {
    // The live volumes hold each writer's complete history, nothing torn.
    for spec in writers {
        let mut region = vec![0u8; spec.region_len()];
        volumes[spec.volume]
            .read_at(&mut region, spec.base)
            .unwrap();
        spec.prefix_of(&region)
            .unwrap_or_else(|e| panic!("live volume, writer {}: {e}", spec.id));
    }
    let report = pool.check(false).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.leaked_blocks, 0, "{report:?}");
}

#[test]
fn snapshots_of_one_volume_hold_a_prefix_of_every_writer() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("pool"), BS).unwrap();
    pool.create_volume("v", 1 << 20).unwrap();
    let volumes = vec![pool.volume("v").unwrap()];
    // Four writers with 512-byte slots, 24 per region (three blocks each),
    // so a write is always a partial-block write, and the regions are adjacent.
    let writers: Vec<Writer> = (0..4)
        .map(|w| Writer {
            id: w as u8 + 1,
            volume: 0,
            base: w * 3 * BS as u64,
            slot_len: 512,
            slots: 24,
        })
        .collect();
    let records = run(&pool, &volumes, &writers, 100);
    assert_eq!(records.len(), 100);
    verify_all(&pool, &writers, &records);
    final_checks(&pool, &volumes, &writers);

    // And the same after reopening from the files.
    drop(volumes);
    pool.close().unwrap();
    let pool = Pool::open(dir.path().join("pool")).unwrap();
    verify_all(&pool, &writers, &records);
    final_checks(&pool, &[pool.volume("v").unwrap()], &writers);
}

#[test]
fn snapshots_of_several_volumes_with_unaligned_multi_block_writes() {
    let disk = SimDisk::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), BS).unwrap();
    let names = ["a", "b", "c"];
    for n in names {
        pool.create_volume(n, 1 << 20).unwrap();
    }
    let volumes: Vec<Volume> = names.iter().map(|n| pool.volume(n).unwrap()).collect();
    let mut writers = Vec::new();
    for v in 0..names.len() {
        let id = |x: usize| (v * 3 + x + 1) as u8;
        // Sub-block slots in blocks 0 and 1 (bytes 0..6144).
        writers.push(Writer {
            id: id(0),
            volume: v,
            base: 0,
            slot_len: 512,
            slots: 12,
        });
        // 6000-byte slots starting mid-block: every write covers parts of two
        // or three blocks, and the region shares its first block with the one above.
        writers.push(Writer {
            id: id(1),
            volume: v,
            base: 2 * BS as u64 - 700,
            slot_len: 6000,
            slots: 7,
        });
        // Whole, block-aligned two-block writes (no merge with old bytes).
        writers.push(Writer {
            id: id(2),
            volume: v,
            base: 16 * BS as u64,
            slot_len: 2 * BS as usize,
            slots: 5,
        });
    }
    let records = run(&pool, &volumes, &writers, 150);
    verify_all(&pool, &writers, &records);
    final_checks(&pool, &volumes, &writers);

    drop(volumes);
    drop(pool);
    let pool = Pool::open_in(Arc::new(disk.clone())).unwrap();
    verify_all(&pool, &writers, &records);
    let volumes: Vec<Volume> = names.iter().map(|n| pool.volume(n).unwrap()).collect();
    final_checks(&pool, &volumes, &writers);
}

#[test]
fn prefix_checker_rejects_torn_and_mixed_regions() {
    // The checker itself must be able to fail, or the tests above prove nothing.
    let w = Writer {
        id: 7,
        volume: 0,
        base: 0,
        slot_len: 100,
        slots: 4,
    };
    assert_eq!(w.prefix_of(&w.state_after(0)), Ok(0));
    assert_eq!(w.prefix_of(&w.state_after(9)), Ok(9));
    // Write 9 present but write 8 (slot 0) missing: not a prefix.
    let mut mixed = w.state_after(10);
    mixed[..100].copy_from_slice(&w.tag(4));
    assert!(w.prefix_of(&mixed).is_err());
    // Half of write 9 (slot 1) torn back to write 5.
    let mut torn = w.state_after(10);
    torn[150..200].copy_from_slice(&w.tag(5)[50..]);
    assert!(w.prefix_of(&torn).is_err());
    // Another writer's bytes.
    let other = Writer { id: 8, ..w };
    assert!(w.prefix_of(&other.state_after(3)).is_err());
}
