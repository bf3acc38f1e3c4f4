//! Bounds that keep hostile clients from hurting others, against raw
//! sockets: connections (in all, and per export, so one export's clients
//! cannot lock a running server's disk out), the memory held for requests
//! in flight (per connection and across all of them, BLOCK_STATUS replies
//! included), and the handshake's time limit.

mod nbd_support;

use cowsnap::nbd::Limits;
use nbd_support::*;
use std::io::Read;
use std::time::Duration;

#[test]
fn a_client_that_never_reads_replies_does_not_stall_others() {
    let fx = Fixture::new();
    let mut hog = Client::open(&fx.addr(), "vol");
    // Far more reply bytes than any socket buffer holds, never read.
    hog.send_reads(0..400, 0, 1 << 20);
    let mut c = Client::open(&fx.addr(), "vol");
    for i in 0..20u8 {
        assert_eq!(c.write(u64::from(i) * 4096, &[i; 4096]), 0);
        assert_eq!(c.read(u64::from(i) * 4096, 4096), vec![i; 4096]);
    }
    drop(hog);
    fx.assert_others_work();
}

#[test]
fn connections_beyond_the_limit_are_closed_at_once() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let mut a = Client::open(&fx.addr(), "vol");
    let _b = Client::open(&fx.addr(), "other");
    let mut extra = connect(&fx.addr());
    if let Err(why) = extra.hung_up() {
        panic!("a third connection gets no greeting: {why}");
    }
    let mut buf = [0u8; 18];
    assert_eq!(a.write(0, &[1; 512]), 0);
    // DISC has no reply; the server closes, and the slot comes back.
    a.send(DISC, 0, 9, 0, 0, &[]);
    a.assert_closed();
    let greeted = (0..200).any(|_| {
        let mut s = connect(&fx.addr());
        let ok = s.read_exact(&mut buf).is_ok();
        if !ok {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok
    });
    assert!(greeted, "a freed slot takes a new connection");
}

#[test]
fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let mut c = Client::greet(&fx.addr());
    c.assert_closed();
    fx.assert_others_work();
}

// ---------------------------------------------------------------------------
// Connections per export.

#[test]
fn one_exports_clients_cannot_take_every_slot() {
    let limits = Limits {
        max_connections: 8,
        max_connections_per_export: 2,
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let snap = fx.snapshot();
    let copy = format!("vol@{snap}");
    // A hostile client of the snapshot export opens all it may...
    let mut hostile: Vec<Client> = (0..2).map(|_| Client::open(&fx.addr(), &copy)).collect();
    let mut third = Client::greet(&fx.addr());
    let (t, msg) = third.go(&copy).unwrap_err();
    assert_eq!(t, REP_ERR_POLICY);
    assert!(msg.contains("2 connections"), "{msg}");
    // ...and the old-style EXPORT_NAME, which cannot carry an error, hangs up.
    let mut old = Client::greet(&fx.addr());
    old.send_option(OPT_EXPORT_NAME, copy.as_bytes());
    old.assert_closed();
    // The running server's disk still takes connections, up to its own limit.
    let (_, flags) = third.go("vol").expect("the disk is not locked out");
    assert_eq!(flags & TF_READ_ONLY, 0);
    assert_eq!(third.write(0, &[5; 4096]), 0);
    let mut disk2 = Client::open(&fx.addr(), "vol");
    assert_eq!(disk2.read(0, 4096), vec![5; 4096]);
    assert_eq!(
        Client::greet(&fx.addr()).go("vol").unwrap_err().0,
        REP_ERR_POLICY
    );
    // A slot freed on the snapshot export can be taken again.
    let mut leaving = hostile.pop().unwrap();
    leaving.send(DISC, 0, 1, 0, 0, &[]);
    leaving.assert_closed();
    assert!(
        eventually(10, || Client::greet(&fx.addr()).go(&copy).is_ok()),
        "the freed slot comes back"
    );
    // The hostile client's remaining connection still works.
    assert_eq!(hostile[0].read(0, 4096), vec![0; 4096]);
}

#[test]
fn the_global_bound_still_covers_connections_in_the_handshake() {
    let limits = Limits {
        max_connections: 3,
        max_connections_per_export: 2,
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let _a = Client::open(&fx.addr(), "vol");
    let _b = Client::open(&fx.addr(), "other");
    let _idle = Client::greet(&fx.addr());
    if let Err(why) = connect(&fx.addr()).hung_up() {
        panic!("a fourth connection is refused at once: {why}");
    }
}

// ---------------------------------------------------------------------------
// Memory held for requests in flight.

/// Requests `n` READs of `len` at offset 0 and never reads the replies.
fn hog(addr: &str, n: u64, len: u32) -> Client {
    let mut c = Client::open(addr, "vol");
    c.send_reads(1000..1000 + n, 0, len);
    c
}

#[test]
fn clients_that_never_read_cannot_pin_more_than_the_total_budget() {
    let total = 48 * MIB as usize;
    let limits = Limits {
        in_flight_bytes: 32 * MIB as usize,
        total_in_flight_bytes: total,
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    // Two connections may hold 32 MiB each, 64 MiB together: more than the
    // total budget, so only the shared bound can stop them.
    let hogs = [
        hog(&fx.addr(), 48, MIB as u32),
        hog(&fx.addr(), 48, MIB as u32),
    ];
    let server = fx.server();
    assert!(
        eventually(30, || server.buffered_bytes() >= total - MIB as usize),
        "the hogs fill the budget: {} bytes held",
        server.buffered_bytes()
    );
    // Each connection has a 128 KiB reserve beyond the shared budget.
    let ceiling = total + 3 * (128 << 10);
    for _ in 0..20 {
        let held = server.buffered_bytes();
        assert!(held <= ceiling, "{held} bytes held, over {ceiling}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Small requests from others are still served, from their reserve...
    let mut c = Client::open(&fx.addr(), "vol");
    for i in 0..20u8 {
        assert_eq!(c.write(u64::from(i) * 4096, &[i; 4096]), 0);
        assert_eq!(c.read(u64::from(i) * 4096, 4096), vec![i; 4096]);
    }
    // ...but a large one waits for the shared budget.
    let cookie = c.cookie();
    c.send(READ, 0, cookie, 0, 2 * MIB as u32, &[]);
    assert!(
        c.s.silent_for(Duration::from_secs(1)),
        "a 2 MiB read ran while the budget was full"
    );
    assert!(server.buffered_bytes() <= ceiling);
    drop(hogs);
    let a = c.answer();
    assert_eq!(
        (a.cookie, a.errno, a.data.len()),
        (cookie, 0, 2 * MIB as usize)
    );
    assert!(eventually(10, || server.buffered_bytes() == 0));
    fx.assert_others_work();
}

#[test]
fn block_status_replies_count_against_the_budget() {
    let limits = Limits {
        max_in_flight: 9,
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    // A READ of the whole volume fills the socket and stalls the replies;
    // once its reply has begun, nothing overtakes it.
    let mut c = hog(&fx.addr(), 1, VOL_SIZE as u32);
    let mut head = [0u8; 28];
    c.s.read_exact(&mut head).unwrap();
    assert_eq!(be16(&head[6..]), CHUNK_OFFSET_DATA);
    // The block status replies behind it stay queued, charged their worst
    // case: a descriptor per block of the 8 MiB volume.
    for i in 0..8 {
        c.send(BLOCK_STATUS, 0, 2000 + i, 0, VOL_SIZE as u32, &[]);
    }
    let status_bound = 24 + 8 * (VOL_SIZE as usize / BS as usize);
    let expected = VOL_SIZE as usize + 8 * status_bound;
    let server = fx.server();
    assert!(
        eventually(20, || server.buffered_bytes() == expected),
        "{} bytes held, expected {expected}",
        server.buffered_bytes()
    );
    // Every reply still arrives once the client reads.
    let mut data = vec![0u8; VOL_SIZE as usize];
    c.s.read_exact(&mut data).unwrap();
    let mut cookies: Vec<u64> = (0..8).map(|_| c.answer().cookie).collect();
    cookies.sort_unstable();
    assert_eq!(cookies, (2000..2008).collect::<Vec<u64>>());
    assert!(eventually(10, || server.buffered_bytes() == 0));
}
