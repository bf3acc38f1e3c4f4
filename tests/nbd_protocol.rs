//! The NBD server against a raw-socket client written from the spec: the
//! handshake, every command, misbehaving clients (bad magic, truncated and
//! oversized requests, unknown options and commands, abrupt disconnects,
//! clients that never read), durability of FLUSH/FUA across connections,
//! and the service closing a disk's connections on stop and restore.
//!
//! Constants are spelled out here rather than taken from the crate, so a
//! wrong constant there cannot agree with itself.

use cowsnap::nbd::{BackgroundServer, ExportControl, Limits};
use cowsnap::service::{Disk, NewServer, Service};
use cowsnap::storage::sim::SimDisk;
use cowsnap::Pool;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1 << 20;
const VOL_SIZE: u64 = 8 * MIB;
const BS: u32 = 4096;

const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_SET_META_CONTEXT: u32 = 10;
const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_META_CONTEXT: u32 = 4;
const REP_ERR_UNSUP: u32 = 0x8000_0001;
const REP_ERR_POLICY: u32 = 0x8000_0002;
const REP_ERR_INVALID: u32 = 0x8000_0003;
const REP_ERR_UNKNOWN: u32 = 0x8000_0006;

const READ: u16 = 0;
const WRITE: u16 = 1;
const DISC: u16 = 2;
const FLUSH: u16 = 3;
const TRIM: u16 = 4;
const WRITE_ZEROES: u16 = 6;
const BLOCK_STATUS: u16 = 7;
const FLAG_FUA: u16 = 1;
const FLAG_NO_HOLE: u16 = 2;
const FLAG_REQ_ONE: u16 = 8;

const EPERM: u32 = 1;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

const TF_READ_ONLY: u16 = 2;
const TF_CAN_MULTI_CONN: u16 = 1 << 8;

// ---------------------------------------------------------------------------
// A raw client.

enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Sock {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(b),
            Sock::Unix(s) => s.read(b),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(b),
            Sock::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn connect(addr: &str) -> Sock {
    // The timeout only keeps a broken server from hanging the test run.
    let guard = Some(Duration::from_secs(60));
    match addr.strip_prefix("unix:") {
        Some(path) => {
            let s = UnixStream::connect(path).unwrap();
            s.set_read_timeout(guard).unwrap();
            Sock::Unix(s)
        }
        None => {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(guard).unwrap();
            Sock::Tcp(s)
        }
    }
}

/// One answer to a transmission request.
#[derive(Debug, Default)]
struct Answer {
    cookie: u64,
    errno: u32,
    data: Vec<u8>,
    extents: Vec<(u32, u32)>,
}

struct Client {
    s: Sock,
    structured: bool,
    /// Lengths of READs sent and not yet answered (simple replies need them).
    reads: HashMap<u64, u32>,
    next_cookie: u64,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

impl Client {
    /// Connect, check the greeting, send client flags.
    fn greet_with(addr: &str, client_flags: u32) -> Client {
        let mut s = connect(addr);
        let mut g = [0u8; 18];
        s.read_exact(&mut g).unwrap();
        assert_eq!(&g[..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(
            u16::from_be_bytes([g[16], g[17]]) & 3,
            3,
            "fixed newstyle, no zeroes"
        );
        s.write_all(&client_flags.to_be_bytes()).unwrap();
        Client {
            s,
            structured: false,
            reads: HashMap::new(),
            next_cookie: 1,
        }
    }

    fn greet(addr: &str) -> Client {
        Client::greet_with(addr, 3)
    }

    /// A handshake done: structured replies, base:allocation, GO.
    fn open(addr: &str, name: &str) -> Client {
        let mut c = Client::greet(addr);
        c.structured_replies();
        let meta = c.set_meta(name);
        assert_eq!(meta[0].0, REP_META_CONTEXT);
        assert_eq!(&meta[0].1[4..], b"base:allocation");
        assert_eq!(meta[1].0, REP_ACK);
        c.go(name).unwrap_or_else(|e| panic!("GO {name}: {e:?}"));
        c
    }

    /// A handshake with simple replies only.
    fn open_simple(addr: &str, name: &str) -> Client {
        let mut c = Client::greet(addr);
        c.go(name).unwrap();
        c
    }

    fn send_option(&mut self, code: u32, data: &[u8]) {
        let mut b = b"IHAVEOPT".to_vec();
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        self.s.write_all(&b).unwrap();
    }

    /// One option reply: (type, data).
    fn option_reply(&mut self, code: u32) -> (u32, Vec<u8>) {
        let mut h = [0u8; 20];
        self.s.read_exact(&mut h).unwrap();
        assert_eq!(be64(&h), 0x0003_e889_0455_65a9, "option reply magic");
        assert_eq!(be32(&h[8..]), code, "reply names the option");
        let mut data = vec![0u8; be32(&h[16..]) as usize];
        self.s.read_exact(&mut data).unwrap();
        (be32(&h[12..]), data)
    }

    /// Send an option and collect replies up to the final one.
    fn option(&mut self, code: u32, data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        self.send_option(code, data);
        let mut all = Vec::new();
        loop {
            let (t, d) = self.option_reply(code);
            let last = t == REP_ACK || t & 0x8000_0000 != 0;
            all.push((t, d));
            if last {
                return all;
            }
        }
    }

    fn structured_replies(&mut self) {
        assert_eq!(self.option(OPT_STRUCTURED_REPLY, &[])[0].0, REP_ACK);
        self.structured = true;
    }

    fn set_meta(&mut self, name: &str) -> Vec<(u32, Vec<u8>)> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&1u32.to_be_bytes());
        let q = b"base:allocation";
        d.extend_from_slice(&(q.len() as u32).to_be_bytes());
        d.extend_from_slice(q);
        self.option(OPT_SET_META_CONTEXT, &d)
    }

    /// GO: Ok((size, flags)), or the error reply's type and message.
    fn go(&mut self, name: &str) -> Result<(u64, u16), (u32, String)> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&0u16.to_be_bytes());
        let replies = self.option(OPT_GO, &d);
        let (last, msg) = replies.last().unwrap();
        if *last != REP_ACK {
            return Err((*last, String::from_utf8_lossy(msg).into_owned()));
        }
        let export = replies
            .iter()
            .find(|(t, d)| *t == REP_INFO && d[..2] == [0, 0])
            .expect("NBD_INFO_EXPORT before the ACK");
        Ok((
            be64(&export.1[2..]),
            u16::from_be_bytes([export.1[10], export.1[11]]),
        ))
    }

    fn cookie(&mut self) -> u64 {
        self.next_cookie += 1;
        self.next_cookie
    }

    fn send(&mut self, kind: u16, flags: u16, cookie: u64, offset: u64, len: u32, payload: &[u8]) {
        let mut b = 0x2560_9513u32.to_be_bytes().to_vec();
        b.extend_from_slice(&flags.to_be_bytes());
        b.extend_from_slice(&kind.to_be_bytes());
        b.extend_from_slice(&cookie.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(payload);
        self.s.write_all(&b).unwrap();
        if kind == READ {
            self.reads.insert(cookie, len);
        }
    }

    /// Read one whole reply (all chunks of a structured one).
    fn answer(&mut self) -> Answer {
        let mut a = Answer::default();
        loop {
            let mut magic = [0u8; 4];
            self.s.read_exact(&mut magic).unwrap();
            match be32(&magic) {
                0x6744_6698 => {
                    let mut h = [0u8; 12];
                    self.s.read_exact(&mut h).unwrap();
                    a.errno = be32(&h);
                    a.cookie = be64(&h[4..]);
                    let len = self.reads.remove(&a.cookie).unwrap_or(0);
                    if a.errno == 0 && len > 0 {
                        assert!(!self.structured, "READ data in a simple reply");
                        a.data = vec![0; len as usize];
                        self.s.read_exact(&mut a.data).unwrap();
                    }
                    return a;
                }
                0x668e_33ef => {
                    let mut h = [0u8; 16];
                    self.s.read_exact(&mut h).unwrap();
                    let flags = u16::from_be_bytes([h[0], h[1]]);
                    let kind = u16::from_be_bytes([h[2], h[3]]);
                    a.cookie = be64(&h[4..]);
                    let mut p = vec![0u8; be32(&h[12..]) as usize];
                    self.s.read_exact(&mut p).unwrap();
                    match kind {
                        0 => assert!(p.is_empty()),
                        1 => a.data.extend_from_slice(&p[8..]),
                        5 => a
                            .extents
                            .extend(p[4..].chunks(8).map(|e| (be32(e), be32(&e[4..])))),
                        0x8001 => a.errno = be32(&p),
                        other => panic!("unexpected chunk type {other}"),
                    }
                    if flags & 1 != 0 {
                        self.reads.remove(&a.cookie);
                        return a;
                    }
                }
                other => panic!("bad reply magic {other:#x}"),
            }
        }
    }

    fn call(&mut self, kind: u16, flags: u16, offset: u64, len: u32, payload: &[u8]) -> Answer {
        let cookie = self.cookie();
        self.send(kind, flags, cookie, offset, len, payload);
        let a = self.answer();
        assert_eq!(a.cookie, cookie, "the reply answers the request");
        a
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> u32 {
        self.call(WRITE, 0, offset, data.len() as u32, data).errno
    }

    fn read(&mut self, offset: u64, len: u32) -> Vec<u8> {
        let a = self.call(READ, 0, offset, len, &[]);
        assert_eq!(a.errno, 0, "read at {offset}");
        assert_eq!(a.data.len(), len as usize);
        a.data
    }

    /// True once the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0) | Err(_))
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed ^ (i as u8).wrapping_mul(31) | 1)
        .collect()
}

// ---------------------------------------------------------------------------
// Fixtures.

struct Fixture {
    pool: Pool,
    control: ExportControl,
    server: Option<BackgroundServer>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// A pool with volumes `vol` and `other`, a snapshot of `vol`, served.
    fn new() -> Fixture {
        Fixture::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::create(dir.path().join("pool"), BS).unwrap();
        let sock = dir.path().join("nbd.sock");
        Fixture::serve(pool, &format!("unix:{}", sock.display()), limits, Some(dir))
    }

    /// On a simulated disk, for durability checks; served over TCP.
    fn on_sim(disk: &SimDisk) -> Fixture {
        let pool = Pool::create_in(Arc::new(disk.clone()), BS).unwrap();
        Fixture::serve(pool, "127.0.0.1:0", Limits::default(), None)
    }

    fn serve(pool: Pool, addr: &str, limits: Limits, dir: Option<tempfile::TempDir>) -> Fixture {
        pool.create_volume("vol", VOL_SIZE).unwrap();
        pool.create_volume("other", VOL_SIZE).unwrap();
        let control = ExportControl::new();
        let server = BackgroundServer::start(pool.clone(), addr, control.clone(), limits).unwrap();
        Fixture {
            pool,
            control,
            server: Some(server),
            _dir: dir,
        }
    }

    fn addr(&self) -> String {
        self.server.as_ref().unwrap().address().to_string()
    }

    fn snapshot(&self) -> u64 {
        self.pool
            .create_snapshot("vol", &format!("s{}", rand_id()), "")
            .unwrap()
            .id
    }

    /// Another client, on another export, still gets full service.
    fn assert_others_work(&self) {
        let mut c = Client::open(&self.addr(), "other");
        let data = pattern(0x3c, 4096);
        assert_eq!(c.write(8192, &data), 0);
        assert_eq!(c.read(8192, 4096), data);
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// Handshake.

#[test]
fn unknown_client_flags_drop_the_connection() {
    let fx = Fixture::new();
    let mut c = Client::greet_with(&fx.addr(), 1 | 0x80);
    assert!(c.closed());
    fx.assert_others_work();
}

#[test]
fn bad_option_magic_drops_only_that_connection() {
    let fx = Fixture::new();
    let mut bystander = Client::open(&fx.addr(), "other");
    let mut c = Client::greet(&fx.addr());
    c.s.write_all(b"NOTMAGIC\0\0\0\x07\0\0\0\0").unwrap();
    assert!(c.closed());
    assert_eq!(bystander.write(0, &[7; 512]), 0);
    fx.assert_others_work();
}

#[test]
fn unknown_options_are_unsupported_and_negotiation_continues() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    let r = c.option(0xdead, b"whatever");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, REP_ERR_UNSUP);
    // STARTTLS: no TLS here, said plainly.
    assert_eq!(c.option(5, &[])[0].0, REP_ERR_UNSUP);
    assert!(c.go("vol").is_ok());
    assert_eq!(c.write(0, b"still fine"), 0);
}

#[test]
fn malformed_option_payloads_are_invalid() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    assert_eq!(c.option(OPT_LIST, b"junk")[0].0, REP_ERR_INVALID);
    // GO whose name length runs past the option.
    let mut d = 200u32.to_be_bytes().to_vec();
    d.extend_from_slice(b"vol\0\0");
    assert_eq!(c.option(OPT_GO, &d)[0].0, REP_ERR_INVALID);
    // SET_META_CONTEXT before structured replies.
    assert_eq!(c.set_meta("vol")[0].0, REP_ERR_INVALID);
    assert!(c.go("vol").is_ok());
}

#[test]
fn an_oversized_option_drops_the_connection_without_reading_it() {
    let fx = Fixture::new();
    let mut c = Client::greet(&fx.addr());
    let mut h = b"IHAVEOPT".to_vec();
    h.extend_from_slice(&OPT_GO.to_be_bytes());
    h.extend_from_slice(&u32::MAX.to_be_bytes());
    c.s.write_all(&h).unwrap();
    assert!(c.closed());
    fx.assert_others_work();
}

#[test]
fn unknown_exports_and_foreign_snapshots_are_unknown() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::greet(&fx.addr());
    for name in [
        "nope".to_string(),
        "".to_string(),
        format!("other@{snap}"),
        format!("vol@+{snap}"),
        "vol@99999".to_string(),
    ] {
        let (t, msg) = c.go(&name).unwrap_err();
        assert_eq!(t, REP_ERR_UNKNOWN, "{name:?}");
        assert!(!msg.is_empty(), "a message for {name:?}");
    }
    let (_, flags) = c.go(&format!("vol@{snap}")).unwrap();
    assert_ne!(flags & TF_READ_ONLY, 0);
}

#[test]
fn list_shows_volumes_and_snapshots() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::greet(&fx.addr());
    let replies = c.option(OPT_LIST, &[]);
    assert_eq!(replies.last().unwrap().0, REP_ACK);
    let names: Vec<String> = replies
        .iter()
        .filter(|(t, _)| *t == REP_SERVER)
        .map(|(_, d)| String::from_utf8(d[4..4 + be32(d) as usize].to_vec()).unwrap())
        .collect();
    assert!(names.contains(&"vol".to_string()), "{names:?}");
    assert!(names.contains(&"other".to_string()), "{names:?}");
    assert!(names.contains(&format!("vol@{snap}")), "{names:?}");
    assert_eq!(c.option(OPT_ABORT, &[])[0].0, REP_ACK);
    assert!(c.closed());
}

#[test]
fn old_style_export_name_works_and_unknown_names_hang_up() {
    let fx = Fixture::new();
    // Without NO_ZEROES: size, flags, then 124 zero bytes.
    let mut c = Client::greet_with(&fx.addr(), 1);
    c.send_option(OPT_EXPORT_NAME, b"vol");
    let mut r = [0u8; 134];
    c.s.read_exact(&mut r).unwrap();
    assert_eq!(be64(&r), VOL_SIZE);
    assert_eq!(u16::from_be_bytes([r[8], r[9]]) & TF_READ_ONLY, 0);
    assert!(r[10..].iter().all(|&b| b == 0));
    assert_eq!(c.write(4096, &[9; 100]), 0);
    assert_eq!(c.read(4096, 100), vec![9; 100]);

    let mut bad = Client::greet(&fx.addr());
    bad.send_option(OPT_EXPORT_NAME, b"missing");
    assert!(bad.closed());
}

// ---------------------------------------------------------------------------
// Transmission.

#[test]
fn byte_granular_io_round_trips_with_simple_and_structured_replies() {
    let fx = Fixture::new();
    let data = pattern(0x5a, 777);
    let mut s = Client::open_simple(&fx.addr(), "vol");
    assert_eq!(s.write(12_345, &data), 0);
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.read(12_345, 777), data);
    assert_eq!(s.read(12_344, 779)[1..778], data[..]);
    // A zero-length read is answered without data.
    let a = c.call(READ, 0, 0, 0, &[]);
    assert_eq!((a.errno, a.data.len()), (0, 0));
}

#[test]
fn writes_to_a_snapshot_are_eperm_and_their_payload_is_skipped() {
    let fx = Fixture::new();
    let snap = fx.snapshot();
    let mut c = Client::open(&fx.addr(), &format!("vol@{snap}"));
    assert_eq!(c.write(0, &[1; 4096]), EPERM);
    assert_eq!(c.call(TRIM, 0, 0, 4096, &[]).errno, EPERM);
    assert_eq!(c.call(WRITE_ZEROES, 0, 0, 4096, &[]).errno, EPERM);
    // The connection stays in step: the payload was not taken as a request.
    assert_eq!(c.read(0, 4096), vec![0; 4096]);
    assert_eq!(c.call(FLUSH, 0, 0, 0, &[]).errno, 0);
}

#[test]
fn out_of_range_requests_get_the_specs_errors() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.call(READ, 0, VOL_SIZE - 10, 11, &[]).errno, EINVAL);
    assert_eq!(c.write(VOL_SIZE - 10, &[1; 11]), ENOSPC);
    assert_eq!(c.call(WRITE_ZEROES, 0, VOL_SIZE, 1, &[]).errno, ENOSPC);
    assert_eq!(c.call(TRIM, 0, u64::MAX, 2, &[]).errno, EINVAL);
    assert_eq!(c.call(BLOCK_STATUS, 0, VOL_SIZE, 1, &[]).errno, EINVAL);
    assert_eq!(c.call(FLUSH, 0, 1, 0, &[]).errno, EINVAL);
    assert_eq!(c.write(VOL_SIZE - 10, &[2; 10]), 0);
    assert_eq!(c.read(VOL_SIZE - 10, 10), vec![2; 10]);
}

#[test]
fn requests_over_32_mib_are_refused_and_the_connection_survives() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    let over = (32 << 20) + 1;
    assert_eq!(c.call(READ, 0, 0, over, &[]).errno, EINVAL);
    // The payload is read past, so the next request is understood.
    let payload = vec![0xee; over as usize];
    assert_eq!(c.call(WRITE, 0, 0, over, &payload).errno, EINVAL);
    assert_eq!(c.read(0, 16), vec![0; 16]);

    // A 4 GiB write that never comes: the client leaves mid-payload.
    let mut liar = Client::open(&fx.addr(), "vol");
    liar.send(WRITE, 0, 1, 0, u32::MAX, &[1; 4096]);
    drop(liar);
    assert_eq!(c.read(0, 16), vec![0; 16]);
    fx.assert_others_work();
}

#[test]
fn unknown_commands_and_stray_flags_are_einval() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.call(5, 0, 0, 4096, &[]).errno, EINVAL);
    assert_eq!(c.call(42, 0, 0, 0, &[]).errno, EINVAL);
    assert_eq!(c.call(READ, FLAG_NO_HOLE, 0, 4096, &[]).errno, EINVAL);
    assert_eq!(c.call(FLUSH, 0x40, 0, 0, &[]).errno, EINVAL);
    assert_eq!(c.read(0, 4), vec![0; 4]);
}

#[test]
fn a_bad_request_magic_or_truncated_request_ends_only_that_connection() {
    let fx = Fixture::new();
    let mut bystander = Client::open(&fx.addr(), "vol");
    let mut c = Client::open(&fx.addr(), "vol");
    c.s.write_all(&[0xff; 28]).unwrap();
    assert!(c.closed());

    let mut t = Client::open(&fx.addr(), "vol");
    t.s.write_all(&0x2560_9513u32.to_be_bytes()).unwrap();
    t.s.write_all(&[0; 10]).unwrap();
    drop(t);
    assert_eq!(bystander.write(0, &[4; 4096]), 0);
    assert_eq!(bystander.read(0, 4096), vec![4; 4096]);
    fx.assert_others_work();
}

#[test]
fn a_client_that_leaves_mid_write_loses_only_that_write() {
    let fx = Fixture::new();
    let mut bystander = Client::open(&fx.addr(), "vol");
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.write(0, &pattern(1, 65536)), 0);
    // Half of a 64 KiB write, then gone.
    c.send(WRITE, 0, 99, 65536, 65536, &pattern(2, 32768));
    drop(c);
    // Its acknowledged write stands; the torn one was never applied.
    assert_eq!(bystander.read(0, 65536), pattern(1, 65536));
    assert_eq!(bystander.read(65536, 65536), vec![0; 65536]);
    assert_eq!(bystander.write(65536, &[8; 512]), 0);
}

#[test]
fn many_requests_in_flight_are_each_answered_once() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    let depth = 48u64;
    for i in 0..depth {
        c.send(WRITE, 0, 1000 + i, i * 8192, 8192, &pattern(i as u8, 8192));
    }
    let mut seen: Vec<u64> = (0..depth)
        .map(|_| c.answer())
        .map(|a| {
            assert_eq!(a.errno, 0);
            a.cookie
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1000..1000 + depth).collect::<Vec<_>>());
    for i in 0..depth {
        c.send(READ, 0, 2000 + i, i * 8192, 8192, &[]);
    }
    for _ in 0..depth {
        let a = c.answer();
        let i = a.cookie - 2000;
        assert_eq!(a.data, pattern(i as u8, 8192), "read {i}");
    }
}

#[test]
fn trim_and_write_zeroes_free_blocks_and_read_as_zeros() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.write(0, &pattern(3, 256 * 1024)), 0);
    let allocated = || fx.pool.volume_info("vol").unwrap().allocated_bytes;
    assert_eq!(allocated(), 256 * 1024);
    assert_eq!(c.call(TRIM, FLAG_FUA, 0, 64 * 1024, &[]).errno, 0);
    assert_eq!(
        c.call(WRITE_ZEROES, FLAG_NO_HOLE, 64 * 1024, 64 * 1024, &[])
            .errno,
        0
    );
    // Unaligned: whole blocks inside are freed, the edges zeroed.
    assert_eq!(
        c.call(WRITE_ZEROES, 0, 128 * 1024 + 100, 8192, &[]).errno,
        0
    );
    assert_eq!(c.read(0, 128 * 1024), vec![0; 128 * 1024]);
    let edge = c.read(128 * 1024, 12288);
    assert_eq!(
        edge[..100],
        pattern(3, 256 * 1024)[128 * 1024..128 * 1024 + 100]
    );
    assert!(edge[100..8292].iter().all(|&b| b == 0));
    assert_eq!(allocated(), 256 * 1024 - 128 * 1024 - 4096);
}

#[test]
fn block_status_reports_holes_and_data() {
    let fx = Fixture::new();
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.write(3 * 4096, &[1; 2 * 4096]), 0);
    let a = c.call(BLOCK_STATUS, 0, 0, 8 * 4096, &[]);
    assert_eq!(a.errno, 0);
    assert_eq!(a.extents, vec![(3 * 4096, 3), (2 * 4096, 0), (3 * 4096, 3)]);
    let one = c.call(BLOCK_STATUS, FLAG_REQ_ONE, 4096, 8 * 4096, &[]);
    assert_eq!(one.extents, vec![(2 * 4096, 3)]);

    // Without base:allocation selected, block status is refused.
    let mut plain = Client::greet(&fx.addr());
    plain.structured_replies();
    plain.go("vol").unwrap();
    assert_eq!(plain.call(BLOCK_STATUS, 0, 0, 4096, &[]).errno, EINVAL);
}

#[test]
fn a_client_that_never_reads_replies_does_not_stall_others() {
    let fx = Fixture::new();
    let mut hog = Client::open(&fx.addr(), "vol");
    // Far more reply bytes than any socket buffer holds, never read.
    for i in 0..400 {
        hog.send(READ, 0, i, 0, 1 << 20, &[]);
    }
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
    let mut buf = [0u8; 18];
    assert!(
        matches!(extra.read(&mut buf), Ok(0) | Err(_)),
        "no greeting"
    );
    assert_eq!(a.write(0, &[1; 512]), 0);
    // DISC has no reply; the server closes, and the slot comes back.
    a.send(DISC, 0, 9, 0, 0, &[]);
    assert!(a.closed());
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
    assert!(c.closed());
    fx.assert_others_work();
}

// ---------------------------------------------------------------------------
// Durability, proven on a simulated disk that loses what was not synced.

fn read_after_crash(disk: &SimDisk, seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let pool = Pool::open_in(Arc::new(disk.crash(seed))).unwrap();
    let mut buf = vec![0u8; len];
    pool.volume("vol")
        .unwrap()
        .read_at(&mut buf, offset)
        .unwrap();
    buf
}

#[test]
fn a_fua_write_is_durable_when_acknowledged_and_a_plain_one_is_not() {
    let disk = SimDisk::new();
    let fx = Fixture::on_sim(&disk);
    let mut c = Client::open(&fx.addr(), "vol");
    assert_eq!(c.write(0, &pattern(6, 8192)), 0);
    // Not flushed: a power cut now loses it (the simulation is not lenient).
    assert_eq!(read_after_crash(&disk, 0, 0, 8192), vec![0; 8192]);
    let data = pattern(7, 8192);
    assert_eq!(c.call(WRITE, FLAG_FUA, 65536, 8192, &data).errno, 0);
    for seed in 0..6 {
        assert_eq!(
            read_after_crash(&disk, seed, 65536, 8192),
            data,
            "seed {seed}"
        );
    }
}

#[test]
fn a_flush_covers_writes_acknowledged_on_other_connections() {
    let disk = SimDisk::new();
    let fx = Fixture::on_sim(&disk);
    let mut writer = Client::open(&fx.addr(), "vol");
    let mut flusher = Client::open(&fx.addr(), "vol");
    let (_, flags) = Client::greet(&fx.addr()).go("vol").unwrap();
    assert_ne!(flags & TF_CAN_MULTI_CONN, 0, "multi-conn is advertised");
    let data = pattern(9, 12288);
    assert_eq!(writer.write(4096, &data), 0);
    assert_eq!(flusher.call(FLUSH, 0, 0, 0, &[]).errno, 0);
    for seed in 0..6 {
        assert_eq!(
            read_after_crash(&disk, seed, 4096, 12288),
            data,
            "seed {seed}"
        );
    }
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
    assert!(rw.closed());
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

impl Client {
    /// A WRITE on a simple-reply connection that reports a closed socket
    /// instead of panicking.
    fn try_write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<u32> {
        let mut b = 0x2560_9513u32.to_be_bytes().to_vec();
        b.extend_from_slice(&[0, 0, 0, 1]);
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        self.s.write_all(&b)?;
        let mut r = [0u8; 16];
        self.s.read_exact(&mut r)?;
        Ok(be32(&r[4..]))
    }
}

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
    assert!(c.closed(), "stop closes the disk's connection");
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
