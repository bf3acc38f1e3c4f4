//! Closing connections without losing or half-applying anything: a
//! server stop during the handshake answers the pending option with
//! `NBD_REP_ERR_SHUTDOWN`; in transmission (server stop, the service's
//! stop and restore), requests received but not started get `NBD_ESHUTDOWN`
//! and are not applied, those running finish, and the disk is flushed
//! before its connections close.

mod nbd_support;

use cowsnap::nbd::{BackgroundServer, Limits};
use cowsnap::service::{Disk, NewServer, Service};
use cowsnap::storage::sim::SimDisk;
use cowsnap::Pool;
use nbd_support::*;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[test]
fn a_shutdown_answers_the_pending_option_with_err_shutdown() {
    let limits = Limits {
        close_grace: Duration::from_secs(2),
        ..Limits::default()
    };
    let mut fx = Fixture::with_limits(limits);
    let addr = fx.addr();
    let path = addr.strip_prefix("unix:").unwrap().to_string();
    let mut c = Client::greet(&addr);
    c.structured_replies();
    let mut idle = Client::greet(&addr);
    // Half of a GO when the server is told to stop.
    let payload = Client::info_payload("vol", &[]);
    let mut go = b"IHAVEOPT".to_vec();
    go.extend_from_slice(&OPT_GO.to_be_bytes());
    go.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    go.extend_from_slice(&payload);
    c.s.write_all(&go[..10]).unwrap();
    let server = fx.server.take().unwrap();
    let stopping = std::thread::spawn(move || server.stop());
    // The socket file goes once every connection has heard of the stop.
    assert!(
        eventually(10, || !Path::new(&path).exists()),
        "stopped listening"
    );
    c.s.write_all(&go[10..]).unwrap();
    let r = c.option_replies(OPT_GO);
    assert_eq!(r.len(), 1, "no export info, just the refusal");
    assert_eq!(r[0].0, REP_ERR_SHUTDOWN);
    assert!(String::from_utf8_lossy(&r[0].1).contains("shutting down"));
    // Every further option but ABORT gets the same answer.
    assert_eq!(c.option(OPT_LIST, &[])[0].0, REP_ERR_SHUTDOWN);
    assert_eq!(c.option(OPT_GO, &payload)[0].0, REP_ERR_SHUTDOWN);
    assert_eq!(c.option(OPT_ABORT, &[])[0].0, REP_ACK);
    c.assert_closed();
    // A client that says nothing is dropped once the grace is over.
    idle.assert_closed();
    stopping.join().unwrap().unwrap();
}

/// Fill one read-write connection's byte budget with READs (4 x 8 MiB of
/// the 32 MiB it may hold), queue a WRITE, a READ and a FLUSH behind them,
/// then close the connection with `close`: the queued requests are
/// answered `ESHUTDOWN`, each READ completes whole or (not yet begun) is
/// refused whole, and the refused WRITE is not applied.
fn queued_requests_get_eshutdown(close: impl FnOnce(&mut Fixture) -> JoinHandle<()>) {
    let limits = Limits {
        in_flight_bytes: 32 * MIB as usize,
        ..Limits::default()
    };
    let mut fx = Fixture::with_limits(limits);
    let mut c = Client::open_simple(&fx.addr(), "vol");
    assert_eq!(c.write(0, &[0x11; 4096]), 0);
    c.send_reads(100..104, 0, VOL_SIZE as u32);
    let server = fx.server();
    assert!(
        eventually(20, || server.buffered_bytes() == 32 * MIB as usize),
        "all four READs started"
    );
    // Received, but waiting for the budget: not started.
    c.send(WRITE, 0, 200, 0, 4096, &[0xee; 4096]);
    c.send(READ, 0, 201, 0, 4096, &[]);
    c.send(FLUSH, 0, 202, 0, 0, &[]);
    let closer = close(&mut fx);
    let mut answers: Vec<(u64, u32, usize)> = (0..7)
        .map(|_| c.answer())
        .map(|a| (a.cookie, a.errno, a.data.len()))
        .collect();
    answers.sort_unstable();
    let full = VOL_SIZE as usize;
    // A READ that holds its budget has been handed to a blocking thread; if
    // that thread had not begun it when the close came (a loaded machine),
    // it is refused whole, which is as good. Either way nothing is partial.
    for read in &answers[..4] {
        assert!(
            read.1 == 0 && read.2 == full || read.1 == ESHUTDOWN && read.2 == 0,
            "{answers:?}"
        );
    }
    assert_eq!(
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        [100, 101, 102, 103, 200, 201, 202]
    );
    assert_eq!(
        answers[4..],
        [
            (200, ESHUTDOWN, 0),
            (201, ESHUTDOWN, 0),
            (202, ESHUTDOWN, 0)
        ],
        "requests waiting for the budget never start"
    );
    // Told the server is going, the client disconnects softly (the server
    // may have hung up already).
    let _ = c.s.write_all(&{
        let mut d = 0x2560_9513u32.to_be_bytes().to_vec();
        d.extend_from_slice(&[0, 0, 0, DISC as u8]);
        d.extend_from_slice(&[0; 20]);
        d
    });
    c.assert_closed();
    closer.join().unwrap();
    let mut buf = [0u8; 4096];
    fx.pool.volume("vol").unwrap().read_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [0x11; 4096], "the refused write was not applied");
}

#[test]
fn requests_queued_when_the_disk_is_withdrawn_get_eshutdown() {
    queued_requests_get_eshutdown(|fx| {
        let control = fx.control.clone();
        std::thread::spawn(move || control.disable_rw("vol"))
    });
}

#[test]
fn requests_queued_when_the_server_stops_get_eshutdown() {
    queued_requests_get_eshutdown(|fx| {
        let server = fx.server.take().unwrap();
        std::thread::spawn(move || server.stop().unwrap())
    });
}

#[test]
fn disabling_a_volume_flushes_then_closes_its_connections() {
    let disk = SimDisk::new();
    let fx = Fixture::on_sim(&disk);
    let snap = fx.snapshot();
    let mut rw = Client::open(&fx.addr(), "vol");
    let mut ro = Client::open(&fx.addr(), &format!("vol@{snap}"));
    let mut bystander = Client::open(&fx.addr(), "other");
    let data = pattern(4, 4096);
    assert_eq!(rw.write(0, &data), 0);
    assert_eq!(fx.control.rw_connections("vol"), 1);

    fx.control.disable_rw("vol");
    assert_eq!(fx.control.rw_connections("vol"), 0);
    rw.assert_closed();
    assert_eq!(
        read_after_crash(&disk, 1, 0, 4096),
        data,
        "flushed before closing"
    );
    let (t, msg) = Client::greet(&fx.addr()).go("vol").unwrap_err();
    assert_eq!(t, REP_ERR_POLICY);
    assert!(msg.contains("vol"), "{msg}");
    // Snapshot exports and other volumes are untouched.
    assert_eq!(ro.read(0, 4096), vec![0; 4096]);
    assert_eq!(bystander.write(0, &[1; 512]), 0);

    fx.control.enable_rw("vol");
    assert_eq!(Client::open(&fx.addr(), "vol").read(0, 4096), data);
}

// ---------------------------------------------------------------------------
// The service: a server's stop and restore close its disk's connections.

#[test]
fn service_stop_and_restore_close_the_disks_connections_first() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("pool"), BS).unwrap();
    let svc = Arc::new(Service::open(pool.clone()).unwrap());
    svc.create_account("acme").unwrap();
    let new = NewServer {
        id: 7,
        name: "web".into(),
        account: "acme".into(),
        disk: Disk::Size(VOL_SIZE),
    };
    svc.create_server(new).unwrap();
    let server = BackgroundServer::start(
        pool.clone(),
        "127.0.0.1:0",
        svc.exports().clone(),
        Limits::default(),
    )
    .unwrap();
    let addr = server.address().to_string();
    let region = 64 * 1024;

    let mut c = Client::open(&addr, "srv-7");
    assert_eq!(c.write(0, &vec![0xaa; region]), 0);
    let snap = svc.create_snapshot("acme", 7, "before", "").unwrap().id;
    assert_eq!(c.write(0, &vec![0xbb; region]), 0);

    svc.set_power("acme", 7, false).unwrap();
    c.assert_closed(); // the stop closes the disk's connection
    let (t, msg) = Client::greet(&addr).go("srv-7").unwrap_err();
    assert_eq!(t, REP_ERR_POLICY);
    assert!(msg.contains("stopped"), "{msg}");
    assert!(!Service::open(pool.clone())
        .unwrap()
        .exports()
        .is_rw_enabled("srv-7"));
    let mut s = Client::open(&addr, &format!("srv-7@{snap}"));
    assert_eq!(s.read(0, 4096), vec![0xaa; 4096]);

    svc.set_power("acme", 7, true).unwrap();
    let c = Client::open_simple(&addr, "srv-7");
    // A writer keeps overwriting the region while the restore runs.
    let hammer = std::thread::spawn(move || {
        let mut c = c;
        let mut acked = 0u64;
        while let Ok(0) = c.try_write(0, &vec![0xcc; region]) {
            acked += 1;
        }
        acked
    });
    // Let some writes land first.
    while svc
        .pool()
        .volume("srv-7")
        .map(|v| {
            let mut b = [0u8; 1];
            v.read_at(&mut b, 0).map(|()| b[0]).unwrap_or(0)
        })
        .unwrap()
        != 0xcc
    {
        std::thread::yield_now();
    }
    svc.restore_snapshot("acme", snap).unwrap();
    assert!(hammer.join().unwrap() > 0);
    assert!(
        Client::greet(&addr).go("srv-7").is_err(),
        "restored server stays stopped"
    );
    svc.set_power("acme", 7, true).unwrap();
    let mut c = Client::open(&addr, "srv-7");
    assert_eq!(
        c.read(0, region as u32),
        vec![0xaa; region],
        "no write after the restore"
    );
}

/// A refused WRITE (past the end, or to a snapshot export) whose payload
/// never comes must not hold a close for longer than `close_grace`: the
/// skip of its payload watches the close like every other wait.
#[test]
fn a_refused_write_whose_payload_never_comes_does_not_hold_a_close() {
    let limits = Limits {
        close_grace: Duration::from_secs(2),
        ..Limits::default()
    };
    let mut fx = Fixture::with_limits(limits);
    let mut c = Client::open(&fx.addr(), "vol");
    c.send(WRITE, 0, 77, VOL_SIZE, 4096, &[]); // ENOSPC; no payload sent
    let snap = fx.snapshot();
    let mut ro = Client::open(&fx.addr(), &format!("vol@{snap}"));
    ro.send(WRITE, 0, 78, 0, 1 << 20, &[]); // EPERM; no payload sent
    std::thread::sleep(Duration::from_millis(200));

    let control = fx.control.clone();
    let disabling = std::thread::spawn(move || control.disable_rw("vol"));
    assert!(
        eventually(8, || disabling.is_finished()),
        "disable_rw still blocked after 8 s (close_grace 2 s)"
    );
    let server = fx.server.take().unwrap();
    let stopping = std::thread::spawn(move || server.stop());
    assert!(
        eventually(8, || stopping.is_finished()),
        "server stop still blocked after 8 s (close_grace 2 s)"
    );
    drop((c, ro));
}
