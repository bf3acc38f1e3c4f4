//! A raw NBD client written from the spec (doc/proto.md), and a served pool,
//! for the raw-socket NBD tests.
//!
//! Constants are spelled out here rather than taken from the crate, so a
//! wrong constant there cannot agree with itself.

#![allow(dead_code)]

use cowsnap::nbd::{BackgroundServer, ExportControl, Limits};
use cowsnap::storage::sim::SimDisk;
use cowsnap::Pool;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

pub const MIB: u64 = 1 << 20;
pub const VOL_SIZE: u64 = 8 * MIB;
pub const BS: u32 = 4096;

pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;
pub const OPT_LIST_META_CONTEXT: u32 = 9;
pub const OPT_SET_META_CONTEXT: u32 = 10;
pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_META_CONTEXT: u32 = 4;
pub const REP_ERR_UNSUP: u32 = 0x8000_0001;
pub const REP_ERR_POLICY: u32 = 0x8000_0002;
pub const REP_ERR_INVALID: u32 = 0x8000_0003;
pub const REP_ERR_UNKNOWN: u32 = 0x8000_0006;
pub const REP_ERR_SHUTDOWN: u32 = 0x8000_0007;
pub const INFO_EXPORT: u16 = 0;
pub const INFO_NAME: u16 = 1;
pub const INFO_DESCRIPTION: u16 = 2;
pub const INFO_BLOCK_SIZE: u16 = 3;

pub const READ: u16 = 0;
pub const WRITE: u16 = 1;
pub const DISC: u16 = 2;
pub const FLUSH: u16 = 3;
pub const TRIM: u16 = 4;
pub const WRITE_ZEROES: u16 = 6;
pub const BLOCK_STATUS: u16 = 7;
pub const FLAG_FUA: u16 = 1;
pub const FLAG_NO_HOLE: u16 = 2;
pub const FLAG_DF: u16 = 4;
pub const FLAG_REQ_ONE: u16 = 8;
pub const FLAG_FAST_ZERO: u16 = 16;

pub const CHUNK_NONE: u16 = 0;
pub const CHUNK_OFFSET_DATA: u16 = 1;
pub const CHUNK_BLOCK_STATUS: u16 = 5;
pub const CHUNK_ERROR: u16 = 0x8001;

pub const EPERM: u32 = 1;
pub const EIO: u32 = 5;
pub const EINVAL: u32 = 22;
pub const ENOSPC: u32 = 28;
pub const ENOTSUP: u32 = 95;
pub const ESHUTDOWN: u32 = 108;

pub const TF_HAS_FLAGS: u16 = 1;
pub const TF_READ_ONLY: u16 = 2;
pub const TF_SEND_DF: u16 = 1 << 7;
pub const TF_CAN_MULTI_CONN: u16 = 1 << 8;
pub const TF_SEND_FAST_ZERO: u16 = 1 << 11;

/// Keeps a broken server from hanging the test run; never part of a check.
const GUARD: Duration = Duration::from_secs(60);
/// How long a server that should hang up may take to do so.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Sockets.

pub enum Sock {
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

impl Sock {
    pub fn set_read_timeout(&self, d: Duration) {
        match self {
            Sock::Tcp(s) => s.set_read_timeout(Some(d)).unwrap(),
            Sock::Unix(s) => s.set_read_timeout(Some(d)).unwrap(),
        }
    }

    /// Whether the server hung up within [`CLOSE_WAIT`]: end of stream, or
    /// a reset (TCP, when it dropped bytes it had not read). Data instead,
    /// or silence until the deadline, is an error saying which.
    pub fn hung_up(&mut self) -> Result<(), String> {
        self.set_read_timeout(CLOSE_WAIT);
        let mut b = [0u8; 64];
        let r = self.read(&mut b);
        self.set_read_timeout(GUARD);
        match r {
            Ok(0) => Ok(()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
            Ok(n) => Err(format!(
                "the server sent {:02x?} instead of closing",
                &b[..n]
            )),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(
                format!("the server kept the connection open for {CLOSE_WAIT:?}"),
            ),
            Err(e) => Err(format!("reading failed, not a close: {e}")),
        }
    }

    /// True when nothing arrives within `d` (and the connection stays open).
    pub fn silent_for(&mut self, d: Duration) -> bool {
        self.set_read_timeout(d);
        let mut b = [0u8; 1];
        let r = self.read(&mut b);
        self.set_read_timeout(GUARD);
        matches!(r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
    }
}

pub fn connect(addr: &str) -> Sock {
    let s = match addr.strip_prefix("unix:") {
        Some(path) => Sock::Unix(UnixStream::connect(path).unwrap()),
        None => Sock::Tcp(TcpStream::connect(addr).unwrap()),
    };
    s.set_read_timeout(GUARD);
    s
}

pub fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes(b[..2].try_into().unwrap())
}

pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

pub fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// A string as the protocol frames it: 32-bit length, bytes.
pub fn string(s: &str) -> Vec<u8> {
    let mut d = (s.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(s.as_bytes());
    d
}

// ---------------------------------------------------------------------------
// A raw client.

/// One answer to a transmission request.
#[derive(Debug, Default)]
pub struct Answer {
    pub cookie: u64,
    pub errno: u32,
    pub data: Vec<u8>,
    pub extents: Vec<(u32, u32)>,
    /// The message of a structured error chunk.
    pub message: String,
    /// Structured chunk types, in order.
    pub chunks: Vec<u16>,
}

pub struct Client {
    pub s: Sock,
    pub structured: bool,
    /// Lengths of READs sent and not yet answered (simple replies need them).
    reads: HashMap<u64, u32>,
    next_cookie: u64,
}

/// The NBD_INFO_EXPORT of an INFO or GO reply.
pub fn export_info(replies: &[(u32, Vec<u8>)]) -> Option<(u64, u16)> {
    replies
        .iter()
        .find(|(t, d)| *t == REP_INFO && be16(d) == INFO_EXPORT)
        .map(|(_, d)| (be64(&d[2..]), be16(&d[10..])))
}

impl Client {
    /// Connect, check the greeting, send client flags.
    pub fn greet_with(addr: &str, client_flags: u32) -> Client {
        let mut s = connect(addr);
        let mut g = [0u8; 18];
        s.read_exact(&mut g).unwrap();
        assert_eq!(&g[..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(be16(&g[16..]) & 3, 3, "fixed newstyle, no zeroes");
        s.write_all(&client_flags.to_be_bytes()).unwrap();
        Client {
            s,
            structured: false,
            reads: HashMap::new(),
            next_cookie: 1,
        }
    }

    pub fn greet(addr: &str) -> Client {
        Client::greet_with(addr, 3)
    }

    /// A handshake done: structured replies, base:allocation, GO.
    pub fn open(addr: &str, name: &str) -> Client {
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
    pub fn open_simple(addr: &str, name: &str) -> Client {
        let mut c = Client::greet(addr);
        c.go(name).unwrap();
        c
    }

    pub fn send_option(&mut self, code: u32, data: &[u8]) {
        let mut b = b"IHAVEOPT".to_vec();
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        self.s.write_all(&b).unwrap();
    }

    /// One option reply: (type, data).
    pub fn option_reply(&mut self, code: u32) -> (u32, Vec<u8>) {
        let mut h = [0u8; 20];
        self.s.read_exact(&mut h).unwrap();
        assert_eq!(be64(&h), 0x0003_e889_0455_65a9, "option reply magic");
        assert_eq!(be32(&h[8..]), code, "reply names the option");
        let mut data = vec![0u8; be32(&h[16..]) as usize];
        self.s.read_exact(&mut data).unwrap();
        (be32(&h[12..]), data)
    }

    /// Collect replies to `code` up to the final one.
    pub fn option_replies(&mut self, code: u32) -> Vec<(u32, Vec<u8>)> {
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

    /// Send an option and collect replies up to the final one.
    pub fn option(&mut self, code: u32, data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        self.send_option(code, data);
        self.option_replies(code)
    }

    pub fn structured_replies(&mut self) {
        assert_eq!(self.option(OPT_STRUCTURED_REPLY, &[])[0].0, REP_ACK);
        self.structured = true;
    }

    /// SET_META_CONTEXT or LIST_META_CONTEXT payload.
    pub fn meta_payload(name: &str, queries: &[&str]) -> Vec<u8> {
        let mut d = string(name);
        d.extend_from_slice(&(queries.len() as u32).to_be_bytes());
        for q in queries {
            d.extend_from_slice(&string(q));
        }
        d
    }

    pub fn set_meta(&mut self, name: &str) -> Vec<(u32, Vec<u8>)> {
        let d = Client::meta_payload(name, &["base:allocation"]);
        self.option(OPT_SET_META_CONTEXT, &d)
    }

    /// INFO or GO payload asking for `items`.
    pub fn info_payload(name: &str, items: &[u16]) -> Vec<u8> {
        let mut d = string(name);
        d.extend_from_slice(&(items.len() as u16).to_be_bytes());
        for i in items {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    /// GO: Ok((size, flags)), or the error reply's type and message.
    pub fn go(&mut self, name: &str) -> Result<(u64, u16), (u32, String)> {
        let replies = self.option(OPT_GO, &Client::info_payload(name, &[]));
        let (last, msg) = replies.last().unwrap();
        if *last != REP_ACK {
            return Err((*last, String::from_utf8_lossy(msg).into_owned()));
        }
        Ok(export_info(&replies).expect("NBD_INFO_EXPORT before the ACK"))
    }

    pub fn cookie(&mut self) -> u64 {
        self.next_cookie += 1;
        self.next_cookie
    }

    pub fn send(
        &mut self,
        kind: u16,
        flags: u16,
        cookie: u64,
        offset: u64,
        len: u32,
        payload: &[u8],
    ) {
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

    /// READs of `len` at `offset`, one per cookie, in one write: a server
    /// that stops reading requests (its budget is full, as it should be)
    /// cannot block the test on a socket buffer full of small writes.
    pub fn send_reads(&mut self, cookies: std::ops::Range<u64>, offset: u64, len: u32) {
        let mut b = Vec::new();
        for cookie in cookies {
            b.extend_from_slice(&0x2560_9513u32.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, READ as u8]);
            b.extend_from_slice(&cookie.to_be_bytes());
            b.extend_from_slice(&offset.to_be_bytes());
            b.extend_from_slice(&len.to_be_bytes());
            self.reads.insert(cookie, len);
        }
        self.s.write_all(&b).unwrap();
    }

    /// Read one whole reply (all chunks of a structured one).
    pub fn answer(&mut self) -> Answer {
        self.try_answer().unwrap()
    }

    /// As [`answer`](Self::answer), reporting a closed or failed socket.
    pub fn try_answer(&mut self) -> std::io::Result<Answer> {
        let mut a = Answer::default();
        loop {
            let mut magic = [0u8; 4];
            self.s.read_exact(&mut magic)?;
            match be32(&magic) {
                0x6744_6698 => {
                    let mut h = [0u8; 12];
                    self.s.read_exact(&mut h)?;
                    a.errno = be32(&h);
                    a.cookie = be64(&h[4..]);
                    let len = self.reads.remove(&a.cookie).unwrap_or(0);
                    if a.errno == 0 && len > 0 {
                        assert!(!self.structured, "READ data in a simple reply");
                        a.data = vec![0; len as usize];
                        self.s.read_exact(&mut a.data)?;
                    }
                    return Ok(a);
                }
                0x668e_33ef => {
                    let mut h = [0u8; 16];
                    self.s.read_exact(&mut h)?;
                    let flags = be16(&h);
                    let kind = be16(&h[2..]);
                    a.cookie = be64(&h[4..]);
                    let mut p = vec![0u8; be32(&h[12..]) as usize];
                    self.s.read_exact(&mut p)?;
                    a.chunks.push(kind);
                    match kind {
                        CHUNK_NONE => assert!(p.is_empty()),
                        CHUNK_OFFSET_DATA => a.data.extend_from_slice(&p[8..]),
                        CHUNK_BLOCK_STATUS => a
                            .extents
                            .extend(p[4..].chunks(8).map(|e| (be32(e), be32(&e[4..])))),
                        CHUNK_ERROR => {
                            a.errno = be32(&p);
                            let len = be16(&p[4..]) as usize;
                            assert_eq!(6 + len, p.len(), "error chunk lengths agree");
                            a.message = String::from_utf8(p[6..].to_vec()).unwrap();
                        }
                        other => panic!("unexpected chunk type {other}"),
                    }
                    if flags & 1 != 0 {
                        self.reads.remove(&a.cookie);
                        return Ok(a);
                    }
                }
                other => panic!("bad reply magic {other:#x}"),
            }
        }
    }

    pub fn call(&mut self, kind: u16, flags: u16, offset: u64, len: u32, payload: &[u8]) -> Answer {
        let cookie = self.cookie();
        self.send(kind, flags, cookie, offset, len, payload);
        let a = self.answer();
        assert_eq!(a.cookie, cookie, "the reply answers the request");
        a
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> u32 {
        self.call(WRITE, 0, offset, data.len() as u32, data).errno
    }

    pub fn read(&mut self, offset: u64, len: u32) -> Vec<u8> {
        let a = self.call(READ, 0, offset, len, &[]);
        assert_eq!(a.errno, 0, "read at {offset}");
        assert_eq!(a.data.len(), len as usize);
        a.data
    }

    /// The server has closed the connection (see [`Sock::hung_up`]).
    pub fn assert_closed(&mut self) {
        if let Err(why) = self.s.hung_up() {
            panic!("expected the server to close the connection: {why}");
        }
    }

    /// A WRITE that reports a closed socket instead of panicking; the errno.
    pub fn try_write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<u32> {
        let cookie = self.cookie();
        let mut b = 0x2560_9513u32.to_be_bytes().to_vec();
        b.extend_from_slice(&[0, 0, 0, 1]);
        b.extend_from_slice(&cookie.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
        self.s.write_all(&b)?;
        let a = self.try_answer()?;
        assert_eq!(a.cookie, cookie, "the reply answers the request");
        Ok(a.errno)
    }
}

pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed ^ (i as u8).wrapping_mul(31) | 1)
        .collect()
}

// ---------------------------------------------------------------------------
// Fixtures.

pub struct Fixture {
    pub pool: Pool,
    pub control: ExportControl,
    pub server: Option<BackgroundServer>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// A pool with volumes `vol` and `other`, served on a Unix socket.
    pub fn new() -> Fixture {
        Fixture::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::create(dir.path().join("pool"), BS).unwrap();
        let sock = dir.path().join("nbd.sock");
        Fixture::serve(pool, &format!("unix:{}", sock.display()), limits, Some(dir))
    }

    /// On a simulated disk, for durability checks; served over TCP.
    pub fn on_sim(disk: &SimDisk) -> Fixture {
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

    pub fn addr(&self) -> String {
        self.server.as_ref().unwrap().address().to_string()
    }

    pub fn server(&self) -> &BackgroundServer {
        self.server.as_ref().unwrap()
    }

    pub fn snapshot(&self) -> u64 {
        self.pool
            .create_snapshot("vol", &format!("s{}", rand_id()), "")
            .unwrap()
            .id
    }

    /// Another client, on another export, still gets full service.
    pub fn assert_others_work(&self) {
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

/// Poll `cond` until it holds, for at most `secs` seconds.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Volume `vol` on `disk` after a power cut (torn writes from `seed`).
pub fn read_after_crash(disk: &SimDisk, seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let pool = Pool::open_in(Arc::new(disk.crash(seed))).unwrap();
    let mut buf = vec![0u8; len];
    pool.volume("vol")
        .unwrap()
        .read_at(&mut buf, offset)
        .unwrap();
    buf
}
