//! The transmission phase of one connection: read requests, run each on a
//! blocking thread (many in flight), and hand the replies to the writer.

use super::exec;
use super::export::Export;
use super::handshake::Negotiated;
use super::limits::Limits;
use super::request::{classify, Command, RequestHeader, Shape, REQUEST_LEN};
use super::writer::{self, Outgoing, Reply};
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Why the request loop stopped.
#[derive(Debug)]
enum End {
    /// The server closes the connection (stop, restore, shutdown).
    Closed,
    /// `NBD_CMD_DISC`.
    Disconnect,
    /// The reply writer failed: the client is gone.
    WriterGone,
    /// End of stream, a read error, or a request with a bad magic.
    Broken(io::Error),
}

/// Per-connection state the request loop needs.
struct Conn {
    export: Arc<Export>,
    block_size: u32,
    shape: Shape,
    slots: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    tx: UnboundedSender<Outgoing>,
    ops: JoinSet<()>,
}

pub(crate) async fn run<R, W>(
    reader: R,
    writer: W,
    neg: Negotiated,
    block_size: u32,
    mut shutdown: watch::Receiver<bool>,
    limits: &Limits,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Negotiated {
        export,
        name,
        structured,
        block_status,
        lease,
    } = neg;
    let shape = Shape {
        size: export.size(),
        writable: export.writable(),
        structured,
        block_status,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let mut replies = tokio::spawn(writer::run(writer, rx, structured));
    let mut conn = Conn {
        export: Arc::new(export),
        block_size,
        shape,
        slots: Arc::new(Semaphore::new(limits.slots())),
        bytes: Arc::new(Semaphore::new(limits.byte_permits())),
        tx,
        ops: JoinSet::new(),
    };
    let mut lease_close = lease.as_ref().map(|l| l.close.clone());
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    tracing::debug!(export = %name, "nbd transmission started");
    let end = loop {
        while conn.ops.try_join_next().is_some() {}
        let tx = conn.tx.clone();
        tokio::select! {
            biased;
            _ = closing(&mut shutdown, lease_close.as_mut()) => break End::Closed,
            _ = tx.closed() => break End::WriterGone,
            step = conn.next(&mut reader) => match step {
                Ok(true) => {}
                Ok(false) => break End::Disconnect,
                Err(e) => break End::Broken(e),
            },
        }
    };
    // Requests already read finish: each write is applied whole or not at all.
    while conn.ops.join_next().await.is_some() {}
    if matches!(end, End::Closed) && conn.shape.writable {
        let export = conn.export.clone();
        match tokio::task::spawn_blocking(move || export.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(export = %name, "flush before closing failed: {e}"),
            Err(e) => tracing::warn!(export = %name, "flush before closing failed: {e}"),
        }
    }
    drop(conn);
    // Replies already computed go out, unless the client will not take them.
    if tokio::time::timeout(limits.close_grace, &mut replies)
        .await
        .is_err()
    {
        replies.abort();
    }
    match end {
        End::Broken(e) if e.kind() != io::ErrorKind::UnexpectedEof => {
            tracing::info!(export = %name, "nbd connection dropped: {e}")
        }
        other => tracing::debug!(export = %name, "nbd connection ended: {other:?}"),
    }
    drop(lease);
}

/// Resolves when the server wants this connection closed. A dropped sender
/// counts: whoever could have asked is gone.
async fn closing(shutdown: &mut watch::Receiver<bool>, lease: Option<&mut watch::Receiver<bool>>) {
    let lease = async {
        match lease {
            Some(rx) => {
                let _ = rx.wait_for(|&v| v).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown.wait_for(|&v| v) => {}
        _ = lease => {}
    }
}

impl Conn {
    /// Read and dispatch one request; false on `NBD_CMD_DISC`.
    async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<bool> {
        let mut header = [0u8; REQUEST_LEN];
        r.read_exact(&mut header).await?;
        let Some(h) = RequestHeader::decode(&header) else {
            // Nothing after a bad magic can be framed: hang up.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request with a bad magic",
            ));
        };
        let cmd = match classify(&h, &self.shape) {
            Ok(Command::Disconnect) => return Ok(false),
            Ok(cmd) => cmd,
            Err(refusal) => {
                // The payload is skipped, never buffered, whatever its size.
                skip(r, h.payload_len()).await?;
                let permits = self.permits(0).await?;
                let reply = Reply::Error {
                    cookie: h.cookie,
                    errno: refusal.errno,
                    message: refusal.message.to_string(),
                };
                let _ = self.tx.send(Outgoing {
                    reply,
                    _permits: permits,
                });
                return Ok(true);
            }
        };
        let len = match cmd {
            Command::Read { len, .. } | Command::Write { len, .. } => len,
            _ => 0,
        };
        // Taken before the payload is read: a connection over its budget
        // stops reading, and the client waits.
        let permits = self.permits(len).await?;
        let mut payload = Vec::new();
        if let Command::Write { len, .. } = cmd {
            payload.resize(len as usize, 0);
            r.read_exact(&mut payload).await?;
        }
        let export = self.export.clone();
        let tx = self.tx.clone();
        let block_size = self.block_size;
        self.ops.spawn_blocking(move || {
            let reply = exec::run(&export, block_size, h.cookie, cmd, payload);
            // Fails only when the writer is gone, and the client with it.
            let _ = tx.send(Outgoing {
                reply,
                _permits: permits,
            });
        });
        Ok(true)
    }

    async fn permits(
        &self,
        bytes: u32,
    ) -> io::Result<(
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    )> {
        let closed = |_| io::Error::other("connection closing");
        let slot = self.slots.clone().acquire_owned().await.map_err(closed)?;
        let bytes = self
            .bytes
            .clone()
            .acquire_many_owned(bytes)
            .await
            .map_err(closed)?;
        Ok((slot, bytes))
    }
}

/// Read and discard `n` bytes through a small buffer.
async fn skip<R: AsyncRead + Unpin>(r: &mut R, n: u32) -> io::Result<()> {
    let mut left = u64::from(n);
    let mut scratch = [0u8; 16 << 10];
    while left > 0 {
        let want = scratch.len().min(left as usize);
        let got = r.read(&mut scratch[..want]).await?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        left -= got as u64;
    }
    Ok(())
}
