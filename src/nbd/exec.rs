//! Running one checked command against the engine. Blocking (engine calls
//! may fsync): called on a blocking thread, never on the async reactor.

use super::consts::*;
use super::export::{errno_of, Export};
use super::request::Command;
use super::writer::Reply;
use crate::Result;

/// Blocks one BLOCK_STATUS reply describes at most: the map is read under
/// the pool's metadata lock, which every other request also needs.
const STATUS_BLOCKS: u64 = 1 << 16;

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
            let mut data = vec![0u8; len as usize];
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
        // The engine never stores a block of zeros, so NO_HOLE cannot
        // provision space; the range reads as zeros either way (docs/NBD.md).
        Command::WriteZeroes { offset, len, fua } => done(with_fua(export, fua, || {
            export.volume()?.write_zeroes(offset, u64::from(len))
        })),
        Command::Flush => done(export.flush()),
        Command::BlockStatus {
            offset,
            len,
            req_one,
        } => block_status(export, block_size, offset, len, req_one)
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

/// `base:allocation` extents: holes read as zeros and take no space.
fn block_status(
    export: &Export,
    block_size: u32,
    offset: u64,
    len: u32,
    req_one: bool,
) -> Result<Vec<(u32, u32)>> {
    let span = u64::from(len).min(STATUS_BLOCKS * u64::from(block_size));
    let mut extents: Vec<(u32, u32)> = export
        .allocation(offset, span)?
        .into_iter()
        .map(|(_, n, allocated)| {
            // `n` is at most `len`, a u32.
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            (
                n,
                if allocated {
                    0
                } else {
                    STATE_HOLE | STATE_ZERO
                },
            )
        })
        .collect();
    if req_one {
        extents.truncate(1);
    }
    if extents.is_empty() {
        return Err(crate::Error::invalid("range", "no extent at that offset"));
    }
    Ok(extents)
}
