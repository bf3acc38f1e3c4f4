//! A snapshot taken while NBD clients write holds exactly the writes that
//! were acknowledged before it: for each writer (one request in flight at
//! a time), a prefix of its writes, at least those acknowledged before the
//! snapshot started and at most those sent before it returned, and no
//! write half in.

mod nbd_support;

use nbd_support::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const WRITERS: u64 = 4;
/// Blocks each writer owns: its writes go to them in order, one each.
const BLOCKS: u64 = 1024;

/// The bytes writer `w` puts in its `i`-th block: unique per write.
fn block(w: u64, i: u64) -> Vec<u8> {
    let mut b = pattern((w * 37 + i) as u8, BS as usize);
    b[..16].copy_from_slice(&[w.to_be_bytes(), i.to_be_bytes()].concat());
    b
}

fn offset(w: u64, i: u64) -> u64 {
    (w * BLOCKS + i) * u64::from(BS)
}

struct Progress {
    /// Writes sent (counted before sending) and acknowledged, per writer.
    sent: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    stop: AtomicBool,
}

impl Progress {
    fn sent(&self) -> Vec<u64> {
        self.sent.iter().map(|n| n.load(Ordering::SeqCst)).collect()
    }
    fn acked(&self) -> Vec<u64> {
        self.acked
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect()
    }
}

/// How many of writer `w`'s writes the image holds; panics unless they are
/// a prefix of its writes, each whole.
fn prefix_len(image: &[u8], w: u64) -> u64 {
    let bs = BS as usize;
    let at = |i: u64| &image[(w * BLOCKS + i) as usize * bs..][..bs];
    let k = (0..BLOCKS).take_while(|&i| at(i) == block(w, i)).count() as u64;
    for i in k..BLOCKS {
        assert!(
            at(i).iter().all(|&b| b == 0),
            "writer {w}: block {i} holds data after the prefix of {k}"
        );
    }
    k
}

#[test]
fn a_snapshot_taken_during_writes_holds_a_prefix_per_writer() {
    let fx = Fixture::new();
    let size = WRITERS * BLOCKS * u64::from(BS);
    fx.pool.create_volume("busy", size).unwrap();
    let progress = Arc::new(Progress {
        sent: (0..WRITERS).map(|_| AtomicU64::new(0)).collect(),
        acked: (0..WRITERS).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (addr, p) = (fx.addr(), progress.clone());
            std::thread::spawn(move || {
                let mut c = Client::open(&addr, "busy");
                for i in 0..BLOCKS {
                    if p.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    p.sent[w as usize].fetch_add(1, Ordering::SeqCst);
                    assert_eq!(c.write(offset(w, i), &block(w, i)), 0);
                    p.acked[w as usize].fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Snapshots at several points while all writers are busy.
    let mut taken = Vec::new();
    for round in 1..=3u64 {
        let goal = round * BLOCKS / 5;
        assert!(eventually(60, || progress
            .acked()
            .iter()
            .all(|&n| n >= goal)));
        let before = progress.acked();
        let snap = fx
            .pool
            .create_snapshot("busy", &format!("r{round}"), "")
            .unwrap();
        let after = progress.sent();
        taken.push((snap.id, before, after));
    }
    progress.stop.store(true, Ordering::SeqCst);
    for t in writers {
        t.join().unwrap();
    }
    let mut raced = false;
    for (id, before, after) in taken {
        // Read through NBD, as a backup tool would.
        let mut c = Client::open(&fx.addr(), &format!("busy@{id}"));
        let image: Vec<u8> = (0..size / MIB)
            .flat_map(|m| c.read(m * MIB, MIB as u32))
            .collect();
        for w in 0..WRITERS as usize {
            let k = prefix_len(&image, w as u64);
            assert!(
                before[w] <= k && k <= after[w],
                "snapshot {id}, writer {w}: holds {k} writes, acknowledged before: {}, sent by the end: {}",
                before[w],
                after[w]
            );
            raced |= before[w] < after[w];
        }
    }
    // The check means something only if writes were in flight at a snapshot.
    assert!(raced, "no write was in flight at any snapshot");
}
