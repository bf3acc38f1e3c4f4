//! The one task that writes a connection's replies, so replies from
//! requests running in parallel never interleave on the wire.

use super::budget::Charge;
use super::consts::{EINVAL, ESHUTDOWN};
use super::negotiation::ALLOCATION_CONTEXT;
use super::reply;
use std::io;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc::UnboundedReceiver;

/// The answer to one request.
#[derive(Debug)]
pub(crate) enum Reply {
    Ok {
        cookie: u64,
    },
    Error {
        cookie: u64,
        errno: u32,
        message: String,
    },
    Data {
        cookie: u64,
        offset: u64,
        data: crate::storage::AlignedBuf,
    },
    Status {
        cookie: u64,
        extents: Vec<(u32, u32)>,
    },
}

impl Reply {
    pub fn error(cookie: u64, errno: u32, message: String) -> Reply {
        Reply::Error {
            cookie,
            errno,
            message,
        }
    }

    /// The server is closing the connection; the request was not run.
    pub fn shutting_down(cookie: u64) -> Reply {
        Reply::Error {
            cookie,
            errno: ESHUTDOWN,
            message: "the server is closing this connection (stop, restore or shutdown); \
                      the request was not run"
                .into(),
        }
    }
}

/// A reply and the budget it holds until it is written, so a client that
/// stops reading stops being served instead of growing a queue.
pub(crate) struct Outgoing {
    pub reply: Reply,
    /// The request slot and its bytes.
    pub _charge: Charge,
}

/// Write replies as they come; flush when none are waiting, so a burst of
/// small replies goes out in few system calls.
pub(crate) async fn run<W>(
    w: W,
    mut rx: UnboundedReceiver<Outgoing>,
    structured: bool,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut w = BufWriter::with_capacity(64 << 10, w);
    while let Some(first) = rx.recv().await {
        put(&mut w, first, structured).await?;
        while let Ok(next) = rx.try_recv() {
            put(&mut w, next, structured).await?;
        }
        w.flush().await?;
    }
    w.flush().await
}

async fn put<W: AsyncWrite + Unpin>(w: &mut W, out: Outgoing, structured: bool) -> io::Result<()> {
    match out.reply {
        Reply::Ok { cookie } => w.write_all(&reply::simple(cookie, 0)).await,
        Reply::Error {
            cookie,
            errno,
            message,
        } => {
            if structured {
                w.write_all(&reply::error(cookie, errno, &message)).await
            } else {
                w.write_all(&reply::simple(cookie, errno)).await
            }
        }
        Reply::Data {
            cookie,
            offset,
            data,
        } => {
            if !structured {
                w.write_all(&reply::simple(cookie, 0)).await?;
            } else if data.is_empty() {
                // A data chunk must carry at least one byte.
                return w.write_all(&reply::done(cookie)).await;
            } else {
                let len = data.len() as u32;
                w.write_all(&reply::offset_data(cookie, offset, len))
                    .await?;
            }
            w.write_all(&data).await
        }
        Reply::Status { cookie, extents } => {
            if structured {
                let b = reply::block_status(cookie, ALLOCATION_CONTEXT, &extents);
                w.write_all(&b).await
            } else {
                // Unreachable: block status requires structured replies.
                w.write_all(&reply::simple(cookie, EINVAL)).await
            }
        }
    }
}
