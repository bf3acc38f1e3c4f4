//! Ten thousand snapshots of one volume stay listable, addressable by id,
//! deletable and exact across reopen, and leave no leaked block behind.

use cowsnap::storage::sim::SimDisk;
use cowsnap::Pool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BS: usize = 4096;
const BLOCKS: usize = 16;
const VOL_SIZE: u64 = (BS * BLOCKS) as u64;
const SNAPSHOTS: usize = 10_000;

/// Content of a volume: per block, the version last written there (0 = never).
type Versions = [u32; BLOCKS];

/// The bytes block `block` holds at version `version` (never all zeros for version > 0).
fn block_bytes(block: usize, version: u32) -> Vec<u8> {
    if version == 0 {
        return vec![0u8; BS];
    }
    let mut b = vec![0u8; BS];
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        let word = ((version as u64) << 32) | ((block as u64) << 16) | (i as u64 & 0xffff);
        chunk.copy_from_slice(&(word ^ 0x5a5a_0000_0000_0001).to_le_bytes());
    }
    b
}

/// First differing block, for a readable failure message.
fn first_diff(got: &[u8], want: &Versions) -> Option<usize> {
    (0..BLOCKS).find(|&b| got[b * BS..(b + 1) * BS] != block_bytes(b, want[b])[..])
}

/// A tiny deterministic generator (no timing or OS randomness in the test).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Phase {
    name: &'static str,
    ops: usize,
    took: Duration,
}

fn print_phases(phases: &[Phase]) {
    for p in phases {
        let per = if p.ops > 0 {
            p.took / p.ops as u32
        } else {
            Duration::ZERO
        };
        eprintln!(
            "scale: {:<34} {:>6} ops in {:>9.3?} ({:?}/op)",
            p.name, p.ops, p.took, per
        );
    }
}

#[test]
fn ten_thousand_snapshots_list_fetch_delete_reopen() {
    let disk = SimDisk::new();
    let mut phases = Vec::new();
    let pool = Pool::create_in(Arc::new(disk.clone()), BS as u32).unwrap();
    pool.create_volume("v", VOL_SIZE).unwrap();
    let vol = pool.volume("v").unwrap();
    let mut rng = Rng(0xC0FFEE);
    let mut live: Versions = [0; BLOCKS];
    let mut next_version = 1u32;
    // snapshot id -> (name, content at creation)
    let mut snaps: BTreeMap<u64, (String, Versions)> = BTreeMap::new();
    let mut order: Vec<u64> = Vec::with_capacity(SNAPSHOTS);

    let t = Instant::now();
    let mut writes = 0usize;
    for i in 0..SNAPSHOTS {
        // A few writes between some snapshots: whole blocks, so content is a
        // function of per-block versions; sometimes a block is zeroed (unmapped).
        if i % 5 == 0 {
            for _ in 0..1 + rng.below(3) {
                let b = rng.below(BLOCKS as u64) as usize;
                let v = if rng.below(20) == 0 { 0 } else { next_version };
                next_version += 1;
                vol.write_at(&block_bytes(b, v), (b * BS) as u64).unwrap();
                live[b] = v;
                writes += 1;
            }
        }
        let name = format!("s{i:05}");
        let info = pool.create_snapshot("v", &name, "").unwrap();
        assert_eq!(info.name, name);
        assert!(
            order.last().is_none_or(|&prev| info.id > prev),
            "snapshot ids must increase"
        );
        order.push(info.id);
        snaps.insert(info.id, (name, live));
    }
    phases.push(Phase {
        name: "create_snapshot (+writes)",
        ops: SNAPSHOTS,
        took: t.elapsed(),
    });
    eprintln!("scale: {writes} block writes interleaved");

    let t = Instant::now();
    let listed = pool.list_snapshots(Some("v")).unwrap();
    phases.push(Phase {
        name: "list_snapshots(volume)",
        ops: 1,
        took: t.elapsed(),
    });
    assert_eq!(listed.len(), SNAPSHOTS);
    let listed_ids: Vec<u64> = listed.iter().map(|s| s.id).collect();
    let newest_first: Vec<u64> = order.iter().rev().copied().collect();
    assert_eq!(
        listed_ids, newest_first,
        "list must hold every snapshot, newest first"
    );
    for s in &listed {
        assert_eq!(s.name, snaps[&s.id].0);
        assert_eq!(s.volume_name, "v");
        let allocated = snaps[&s.id].1.iter().filter(|&&v| v != 0).count() as u64;
        assert_eq!(
            s.size_bytes,
            allocated * BS as u64,
            "snapshot {} size",
            s.id
        );
    }
    assert_eq!(pool.list_snapshots(None).unwrap().len(), SNAPSHOTS);
    assert_eq!(pool.stats().snapshots, SNAPSHOTS as u64);

    // Fetch a few by id: first, last, and some in between.
    let t = Instant::now();
    let picks = [0, 1, 2, 4999, 5000, 7777, SNAPSHOTS - 2, SNAPSHOTS - 1];
    for &k in &picks {
        let id = order[k];
        let info = pool.snapshot(id).unwrap();
        assert_eq!(info.id, id);
        assert_eq!(info.name, snaps[&id].0);
        let mut buf = vec![0u8; VOL_SIZE as usize];
        pool.snapshot_reader(id)
            .unwrap()
            .read_at(&mut buf, 0)
            .unwrap();
        assert_eq!(
            first_diff(&buf, &snaps[&id].1),
            None,
            "snapshot #{k} (id {id}) content"
        );
    }
    phases.push(Phase {
        name: "snapshot(id) + full read",
        ops: picks.len(),
        took: t.elapsed(),
    });

    // Delete half: every other one, so deletes interleave with survivors.
    let t = Instant::now();
    let mut deleted = 0;
    for (k, id) in order.iter().enumerate() {
        if k % 2 == 0 {
            pool.delete_snapshot(*id).unwrap();
            snaps.remove(id);
            deleted += 1;
        }
    }
    phases.push(Phase {
        name: "delete_snapshot",
        ops: deleted,
        took: t.elapsed(),
    });
    assert_eq!(pool.list_snapshots(Some("v")).unwrap().len(), SNAPSHOTS / 2);
    assert_eq!(
        pool.snapshot(order[0]).unwrap_err().kind(),
        cowsnap::ErrorKind::NotFound,
        "a deleted snapshot is gone"
    );

    // Reopen twice: first after a plain drop (open replays every one of the
    // ~15,000 transactions), then after close (a checkpoint writes the catalog whole).
    drop(vol);
    drop(pool);
    let t = Instant::now();
    let pool = Pool::open_in(Arc::new(disk.clone())).unwrap();
    phases.push(Phase {
        name: "open (replay whole journal)",
        ops: 1,
        took: t.elapsed(),
    });
    verify_reopened(&pool, &snaps, &live, &mut phases);

    let t = Instant::now();
    pool.close().unwrap();
    phases.push(Phase {
        name: "close (checkpoint)",
        ops: 1,
        took: t.elapsed(),
    });
    let t = Instant::now();
    let pool = Pool::open_in(Arc::new(disk.clone())).unwrap();
    phases.push(Phase {
        name: "open (after checkpoint)",
        ops: 1,
        took: t.elapsed(),
    });
    verify_reopened(&pool, &snaps, &live, &mut phases);
    print_phases(&phases);
}

fn verify_reopened(
    pool: &Pool,
    snaps: &BTreeMap<u64, (String, Versions)>,
    live: &Versions,
    phases: &mut Vec<Phase>,
) {
    let listed = pool.list_snapshots(Some("v")).unwrap();
    assert_eq!(listed.len(), SNAPSHOTS / 2);
    let want: Vec<u64> = snaps.keys().rev().copied().collect();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        want,
        "survivors after reopen, newest first"
    );
    for s in &listed {
        assert_eq!(s.name, snaps[&s.id].0);
    }
    let vol = pool.volume("v").unwrap();
    let mut buf = vec![0u8; VOL_SIZE as usize];
    vol.read_at(&mut buf, 0).unwrap();
    assert_eq!(first_diff(&buf, live), None, "live volume after reopen");

    // Every surviving snapshot's content, not just a sample.
    let t = Instant::now();
    for (id, (_, content)) in snaps {
        pool.snapshot_reader(*id)
            .unwrap()
            .read_at(&mut buf, 0)
            .unwrap();
        assert_eq!(
            first_diff(&buf, content),
            None,
            "snapshot {id} after reopen"
        );
    }
    phases.push(Phase {
        name: "read every surviving snapshot",
        ops: snaps.len(),
        took: t.elapsed(),
    });

    let t = Instant::now();
    let report = pool.check(false).unwrap();
    phases.push(Phase {
        name: "check(false)",
        ops: 1,
        took: t.elapsed(),
    });
    assert!(report.ok, "{report:?}");
    assert_eq!(report.leaked_blocks, 0, "{report:?}");

    // Used blocks are exactly the distinct (block, version) pairs still referenced:
    // each version was written once, to one block, and is shared by every map holding it.
    let mut referenced = std::collections::BTreeSet::new();
    for content in snaps.values().map(|(_, c)| c).chain(std::iter::once(live)) {
        for (b, &v) in content.iter().enumerate() {
            if v != 0 {
                referenced.insert((b, v));
            }
        }
    }
    let stats = pool.stats();
    assert_eq!(
        stats.used_blocks,
        referenced.len() as u64,
        "no block leaked or double-freed"
    );
    assert_eq!(stats.snapshots, (SNAPSHOTS / 2) as u64);
}
