//! Invariant: the service's state is as crash-safe as the engine. Whatever
//! sync the power fails at, the reopened service holds each record exactly
//! when the change it records happened: an account with its first token,
//! the demo account with its server and token, a server with its volume, a
//! keyed create or restore with its idempotency answer, and a server made
//! from an image either whole or not at all.

use cowsnap::service::{
    Answer, Disk, IdemStart, Keyed, NewServer, Restored, Service, ServiceError, SnapshotView,
};
use cowsnap::storage::sim::SimDisk;
use cowsnap::Pool;
use std::path::Path;
use std::sync::Arc;

const SEEDS: [u64; 3] = [0, 7, 0xDEAD_BEEF];
const MIB: u64 = 1 << 20;

fn snapshot_answer(v: &SnapshotView) -> Result<Answer, ServiceError> {
    Answer::json(201, v)
}

fn restore_answer(r: &Restored) -> Result<Answer, ServiceError> {
    Answer::json(200, &r.server)
}

fn fingerprint(what: &str) -> String {
    cowsnap::service::idempotency_fingerprint("POST", what, "")
}

/// Whether `key` of the demo account has an answer on record.
fn answered(svc: &Service, key: &str, what: &str) -> bool {
    match svc.idem_begin("demo", key, fingerprint(what)) {
        Ok(IdemStart::Replay(_)) => true,
        Ok(IdemStart::Proceed(_)) => false,
        Err(e) => panic!("{key}: {e}"),
    }
}

fn read(pool: &Pool, volume: &str, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    pool.volume(volume).unwrap().read_at(&mut buf, 0).unwrap();
    buf
}

/// The steps, in order; stops at the first failure (the power cut).
fn workload(svc: &Service, pool: &Pool, image: &Path) -> Result<(), ServiceError> {
    svc.ensure_admin()?;
    svc.ensure_demo()?;
    svc.create_server(NewServer {
        id: 7,
        name: "spare".into(),
        account: "demo".into(),
        disk: Disk::Size(MIB),
    })?;
    let disk = pool.volume("srv-12345")?;
    disk.write_at(b"AAAA", 0)?;
    disk.flush()?;
    let snap = {
        let IdemStart::Proceed(ticket) = svc.idem_begin("demo", "k1", fingerprint("create"))?
        else {
            panic!("k1 is new");
        };
        let keyed = Keyed {
            ticket: &ticket,
            answer: snapshot_answer,
        };
        svc.create_snapshot_keyed("demo", 12345, "s", "", Some(keyed))?
    };
    disk.write_at(b"BBBB", 0)?;
    disk.flush()?;
    // A mark that B is durable, which the restore does not undo.
    svc.set_power("demo", 12345, false)?;
    {
        let IdemStart::Proceed(ticket) = svc.idem_begin("demo", "k2", fingerprint("restore"))?
        else {
            panic!("k2 is new");
        };
        let keyed = Keyed {
            ticket: &ticket,
            answer: restore_answer,
        };
        svc.restore_snapshot_keyed("demo", snap.id, Some(keyed))?;
    }
    svc.create_server(NewServer {
        id: 8,
        name: "imaged".into(),
        account: "demo".into(),
        disk: Disk::Image(image.to_path_buf()),
    })?;
    svc.delete_server(7)?;
    Ok(())
}

/// What a reopened service shows, checking on the way that the records of
/// each step agree with each other and with the engine.
fn observe(pool: &Pool, image: &[u8]) -> State {
    let svc = Service::open(pool.clone()).expect("the service reopens after any crash");
    let accounts: Vec<String> = svc.list_accounts().into_iter().map(|a| a.name).collect();
    let admin = accounts.iter().any(|a| a == "admin");
    assert_eq!(
        admin,
        svc.list_tokens("admin").is_ok_and(|t| t.len() == 1),
        "the admin account comes with its token"
    );
    let servers = svc.list_all_servers();
    let has = |id: u64| servers.iter().any(|s| s.server.id == id);
    let demo = accounts.iter().any(|a| a == "demo");
    assert_eq!(demo, has(12345), "the demo account comes with its server");
    assert_eq!(
        demo,
        svc.list_tokens("demo").is_ok_and(|t| !t.is_empty()),
        "and its token"
    );
    for id in [12345, 7, 8] {
        let volume = format!("srv-{id}");
        assert_eq!(has(id), pool.volume_info(&volume).is_ok(), "{volume}");
    }
    let data = if !demo {
        "none"
    } else {
        match read(pool, "srv-12345", 4).as_slice() {
            b"AAAA" => "A",
            b"BBBB" => "B",
            [0, 0, 0, 0] => "zero",
            other => panic!("torn data {other:?}"),
        }
    };
    let stopped = servers
        .iter()
        .any(|s| s.server.id == 12345 && s.server.status == "stopped");
    let snaps = pool.list_snapshots(None).unwrap();
    let snapshot = !snaps.is_empty();
    let restored = demo && answered(&svc, "k2", "restore");
    if demo {
        assert_eq!(
            snapshot,
            answered(&svc, "k1", "create"),
            "a keyed create is on record exactly when its snapshot exists"
        );
    }
    if has(8) {
        assert_eq!(read(pool, "srv-8", image.len()), image, "a whole image");
    }
    assert!(
        pool.app_data_keys("svc/creating/").is_empty(),
        "an interrupted creation is removed at open"
    );
    State {
        admin,
        demo,
        spare: has(7),
        data,
        snapshot,
        stopped,
        restored,
        imaged: has(8),
    }
}

/// What the reopened service shows, one field per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    admin: bool,
    demo: bool,
    spare: bool,
    data: &'static str,
    snapshot: bool,
    stopped: bool,
    restored: bool,
    imaged: bool,
}

const fn state(
    (admin, demo, spare): (bool, bool, bool),
    data: &'static str,
    (snapshot, stopped, restored, imaged): (bool, bool, bool, bool),
) -> State {
    State {
        admin,
        demo,
        spare,
        data,
        snapshot,
        stopped,
        restored,
        imaged,
    }
}

#[test]
fn service_records_commit_with_what_they_record() {
    let dir = tempfile::tempdir().unwrap();
    let image_path = dir.path().join("image.raw");
    let mut image = vec![0u8; 256 * 1024];
    for (i, b) in image.iter_mut().enumerate().step_by(4096) {
        *b = (i / 4096) as u8 | 1;
    }
    std::fs::write(&image_path, &image).unwrap();

    let run = |cut: Option<u64>| -> (SimDisk, bool) {
        let disk = SimDisk::new();
        let pool = Pool::create_in(Arc::new(disk.clone()), 4096).unwrap();
        if let Some(k) = cut {
            disk.cut_power_at_sync(disk.sync_count() + k);
        }
        let finished = {
            let svc = Service::open(pool.clone()).unwrap();
            workload(&svc, &pool, &image_path).is_ok()
        };
        drop(pool);
        (disk, finished)
    };
    const F: bool = false;
    const T: bool = true;
    // Each state the workload passes through, and only those.
    let allowed = [
        state((F, F, F), "none", (F, F, F, F)),
        state((T, F, F), "none", (F, F, F, F)),
        state((T, T, F), "zero", (F, F, F, F)),
        state((T, T, T), "zero", (F, F, F, F)),
        state((T, T, T), "A", (F, F, F, F)),
        state((T, T, T), "A", (T, F, F, F)),
        state((T, T, T), "B", (T, F, F, F)),
        state((T, T, T), "B", (T, T, F, F)),
        state((T, T, T), "A", (T, T, T, F)),
        state((T, T, T), "A", (T, T, T, T)),
        state((T, T, F), "A", (T, T, T, T)),
    ];
    let (whole, finished) = run(None);
    assert!(finished);
    let total = whole.sync_count();
    let mut seen = std::collections::BTreeSet::new();
    for k in 0..=total {
        let (disk, finished) = run(Some(k));
        for seed in SEEDS {
            let pool = Pool::open_in(Arc::new(disk.crash(seed))).unwrap();
            let state = observe(&pool, &image);
            assert!(
                allowed.contains(&state),
                "cut at sync {k} of {total}, seed {seed}: {state:?}"
            );
            if finished {
                assert_eq!(state, allowed[allowed.len() - 1]);
            }
            seen.insert(allowed.iter().position(|s| *s == state));
            let report = pool.check(false).unwrap();
            assert!(report.ok, "cut at sync {k}, seed {seed}: {report:?}");
        }
    }
    // Every step was cut somewhere, so each intermediate state was checked.
    assert_eq!(seen.len(), allowed.len(), "states reached: {seen:?}");
}
