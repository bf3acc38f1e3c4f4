//! Running one checked command against the engine. Blocking (engine calls
//! may fsync): called on a blocking thread, never on the async reactor.

use super::consts::*;
use super::export::{errno_of, Export};
use super::request::Command;
use super::status;
use super::writer::Reply;
use crate::Result;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// Answer one request: run it, unless the connection started closing
/// before it began (then `ESHUTDOWN`, and nothing was applied), and turn a
/// panic into `EIO`, so every request gets exactly one reply.
pub(crate) fn answer(closing: &AtomicBool, cookie: u64, run: impl FnOnce() -> Reply) -> Reply {
    // Checked before any engine call: a request that started runs whole.
    if closing.load(Ordering::SeqCst) {
        return Reply::shutting_down(cookie);
    }
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(cookie, "nbd request panicked: {what}");
        Reply::Error {
            cookie,
            errno: EIO,
            message: "internal error in the server (logged)".into(),
        }
    })
}

pub(crate) fn run(
    export: &Export,
    block_size: u32,
    cookie: u64,
    cmd: Command,
    payload: Vec<u8>,
) -> Reply {
    let done = |r: Result<()>| r.map(|()| Reply::Ok { cookie });
    let result = match cmd {
        Command::Read { offset, len } => {
            // Aligned, so a direct read of aligned blocks lands in it
            // without a bounce buffer.
            let mut data = crate::storage::AlignedBuf::zeroed(len as usize);
            export.read_at(&mut data, offset).map(|()| Reply::Data {
                cookie,
                offset,
                data,
            })
        }
        Command::Write { offset, fua, .. } => done(with_fua(export, fua, || {
            export.volume()?.write_at(&payload, offset)
        })),
        Command::Trim { offset, len, fua } => done(with_fua(export, fua, || {
            export.volume()?.discard(offset, u64::from(len))
        })),
        Command::WriteZeroes {
            offset,
            len,
            fua,
            fast,
        } => {
            if fast && needs_copy(export, block_size, offset, len).unwrap_or(true) {
                return Reply::Error {
                    cookie,
                    errno: ENOTSUP,
                    message: "fast zero refused: a partial block at an edge holds data, and \
                              zeroing it is a read-modify-write, no faster than a write"
                        .into(),
                };
            }
            // The engine never stores a block of zeros, so NO_HOLE cannot
            // provision space; the range reads as zeros either way (docs/NBD.md).
            done(with_fua(export, fua, || {
                export.volume()?.write_zeroes(offset, u64::from(len))
            }))
        }
        Command::Flush => done(export.flush()),
        Command::BlockStatus {
            offset,
            len,
            req_one,
        } => status::extents(
            |o, n| export.allocation(o, n),
            block_size,
            offset,
            len,
            req_one,
        )
        .map(|extents| Reply::Status { cookie, extents }),
        // The session ends the connection before anything would run.
        Command::Disconnect => done(Ok(())),
    };
    result.unwrap_or_else(|e| Reply::Error {
        cookie,
        errno: errno_of(&e),
        message: e.to_string(),
    })
}

/// Run `op`, then flush if the client asked for FUA: the reply is sent only
/// once the data is durable.
fn with_fua(export: &Export, fua: bool, op: impl FnOnce() -> Result<()>) -> Result<()> {
    op()?;
    if fua {
        export.flush()?;
    }
    Ok(())
}

/// Whether zeroing the range writes data: whole blocks are unmapped (a
/// metadata change, faster than any write), but a partial block at either
/// edge that holds data is rewritten with zeros, copy-on-write included.
/// A partial edge over a hole costs nothing. Checked before zeroing, so a
/// concurrent write can still make an edge slow; the result stays correct.
fn needs_copy(export: &Export, block_size: u32, offset: u64, len: u32) -> Result<bool> {
    let bs = u64::from(block_size.max(1));
    let size = export.size();
    let end = offset + u64::from(len);
    // The export's last block may be shorter than a pool block.
    let partial = |at: u64| {
        let start = at / bs * bs;
        let block_end = (start + bs).min(size);
        offset > start || end < block_end
    };
    let mut edges = Vec::with_capacity(2);
    if len > 0 && partial(offset) {
        edges.push(offset / bs);
    }
    if len > 0 && partial(end - 1) && edges.last() != Some(&((end - 1) / bs)) {
        edges.push((end - 1) / bs);
    }
    for block in edges {
        let start = block * bs;
        let mapped = export.allocation(start, bs.min(size - start))?;
        if mapped.iter().any(|e| e.2) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pool;

    fn volume() -> (tempfile::TempDir, Export) {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::create(dir.path().join("pool"), 4096).unwrap();
        pool.create_volume("v", 10 * 4096 + 100).unwrap();
        (dir, Export::Volume(pool.volume("v").unwrap()))
    }

    #[test]
    fn a_panicking_request_is_answered_eio() {
        let closing = AtomicBool::new(false);
        let reply = answer(&closing, 42, || panic!("engine bug"));
        assert!(
            matches!(
                reply,
                Reply::Error {
                    cookie: 42,
                    errno: EIO,
                    ..
                }
            ),
            "{reply:?}"
        );
    }

    #[test]
    fn a_request_not_started_when_closing_begins_is_eshutdown_and_not_run() {
        let (_dir, export) = volume();
        let closing = AtomicBool::new(true);
        let cmd = Command::Write {
            offset: 0,
            len: 4,
            fua: false,
        };
        let reply = answer(&closing, 5, || run(&export, 4096, 5, cmd, vec![1; 4]));
        assert!(
            matches!(
                reply,
                Reply::Error {
                    cookie: 5,
                    errno: ESHUTDOWN,
                    ..
                }
            ),
            "{reply:?}"
        );
        let mut buf = [9u8; 4];
        export.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [0; 4], "the write was not applied");
    }

    #[test]
    fn fast_zero_needs_no_copy_only_when_edges_are_whole_or_holes() {
        let (_dir, export) = volume();
        let v = export.volume().unwrap();
        v.write_at(&[1; 4096], 4096).unwrap(); // block 1 holds data
                                               // Whole blocks, even over data: no copy.
        assert!(!needs_copy(&export, 4096, 4096, 4096).unwrap());
        // A partial edge over data: a copy.
        assert!(needs_copy(&export, 4096, 4096 + 1, 4095).unwrap());
        assert!(needs_copy(&export, 4096, 0, 4097).unwrap());
        // Partial edges over holes: no copy.
        assert!(!needs_copy(&export, 4096, 100, 3000).unwrap());
        assert!(!needs_copy(&export, 4096, 8192 + 5, 3 * 4096).unwrap());
        // The short last block, zeroed to the end, is whole.
        v.write_at(&[2; 100], 10 * 4096).unwrap();
        assert!(!needs_copy(&export, 4096, 10 * 4096, 100).unwrap());
        assert!(needs_copy(&export, 4096, 10 * 4096, 99).unwrap());
    }
}
