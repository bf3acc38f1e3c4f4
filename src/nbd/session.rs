//! The transmission phase of one connection: read requests, run each on a
//! blocking thread (many in flight), and hand the replies to the writer.
//! When the server closes the connection, requests not yet started and
//! requests still arriving get `NBD_ESHUTDOWN`; those running finish.

use super::budget::{Charge, ConnBudget};
use super::exec;
use super::export::Export;
use super::frames::RequestReader;
use super::handshake::{Negotiated, Opened};
use super::listener::Ctx;
use super::negotiation::Chosen;
use super::request::{classify, Command, RequestHeader, Shape};
use super::status;
use super::writer::{self, Outgoing, Reply};
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

/// After a close, once nothing is in flight: how long the connection waits
/// for more requests to refuse before it hangs up. Short: a client that got
/// `ESHUTDOWN` disconnects at once, and one that sent nothing is not owed
/// anything.
const QUIET: Duration = Duration::from_millis(50);

/// Why the request loop stopped.
#[derive(Debug)]
enum End {
    /// The server closes the connection (stop, restore, shutdown).
    Closed(Resume),
    /// `NBD_CMD_DISC`.
    Disconnect,
    /// The reply writer failed: the client is gone.
    WriterGone,
    /// End of stream, a read error, or a request with a bad magic.
    Broken(io::Error),
}

/// Where the request stream stands when the server closes.
#[derive(Debug)]
enum Resume {
    /// At the next request header.
    AtHeader,
    /// A refused WRITE's payload comes first.
    Skip(u32),
    /// In the middle of a payload: nothing after it can be framed.
    Lost,
}

/// What tells a connection to close: the server's shutdown, or (read-write
/// exports) the volume being withdrawn. A dropped sender counts: whoever
/// could have asked is gone.
struct CloseSignal {
    shutdown: watch::Receiver<bool>,
    lease: Option<watch::Receiver<bool>>,
}

impl CloseSignal {
    async fn wait(&mut self) {
        let lease = async {
            match &mut self.lease {
                Some(rx) => {
                    let _ = rx.wait_for(|&v| v).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.shutdown.wait_for(|&v| v) => {}
            _ = lease => {}
        }
    }
}

/// Per-connection state the request loop needs.
struct Conn {
    export: Arc<Export>,
    block_size: u32,
    shape: Shape,
    budget: ConnBudget,
    tx: UnboundedSender<Outgoing>,
    ops: JoinSet<()>,
    /// Set once the server closes: requests not started yet are answered
    /// `ESHUTDOWN` instead of run.
    closing: Arc<AtomicBool>,
}

pub(crate) async fn run<R, W>(
    reader: R,
    writer: W,
    neg: Negotiated,
    ctx: &Ctx,
    shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Chosen {
        opened: Opened {
            export,
            lease,
            _slot,
        },
        name,
        info,
        structured,
        block_status,
    } = neg;
    let shape = Shape {
        size: info.size,
        writable: info.writable,
        structured,
        block_status,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let mut replies = tokio::spawn(writer::run(writer, rx, structured));
    let mut conn = Conn {
        export: Arc::new(export),
        block_size: ctx.pool.inner.block_size,
        shape,
        budget: ConnBudget::new(&ctx.budget, &ctx.limits),
        tx,
        ops: JoinSet::new(),
        closing: Arc::new(AtomicBool::new(false)),
    };
    let mut close = CloseSignal {
        shutdown,
        lease: lease.as_ref().map(|l| l.close.clone()),
    };
    let mut frames = RequestReader::new(reader);
    tracing::debug!(export = %name, "nbd transmission started");
    let end = conn.serve(&mut frames, &mut close).await;
    let grace = Instant::now() + ctx.limits.close_grace;
    match &end {
        End::Closed(resume) => conn.wind_down(&mut frames, resume, grace, &name).await,
        // Requests already read finish: each write is applied whole or not at all.
        _ => while conn.ops.join_next().await.is_some() {},
    }
    drop(conn);
    // Replies already computed go out, unless the client will not take them.
    if timeout_at(grace, &mut replies).await.is_err() {
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

impl Conn {
    /// Serve requests until the connection ends.
    async fn serve<R: AsyncRead + Unpin>(
        &mut self,
        frames: &mut RequestReader<R>,
        close: &mut CloseSignal,
    ) -> End {
        loop {
            while self.ops.try_join_next().is_some() {}
            let tx = self.tx.clone();
            let header = tokio::select! {
                biased;
                _ = close.wait() => return End::Closed(Resume::AtHeader),
                _ = tx.closed() => return End::WriterGone,
                h = frames.header() => match h {
                    Ok(h) => h,
                    Err(e) => return End::Broken(e),
                },
            };
            let Some(h) = RequestHeader::decode(&header) else {
                // Nothing after a bad magic can be framed: hang up.
                return End::Broken(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "request with a bad magic",
                ));
            };
            // From here on the request is answered, whatever happens.
            if let Err(end) = self.dispatch(h, frames, close).await {
                return end;
            }
        }
    }

    /// Check one request, then refuse it or start it.
    async fn dispatch<R: AsyncRead + Unpin>(
        &mut self,
        h: RequestHeader,
        frames: &mut RequestReader<R>,
        close: &mut CloseSignal,
    ) -> Result<(), End> {
        let cmd = match classify(&h, &self.shape) {
            Ok(Command::Disconnect) => return Err(End::Disconnect),
            Ok(cmd) => cmd,
            Err(refusal) => {
                // The payload is skipped, never buffered, whatever its size;
                // a close does not wait for a payload that never comes.
                tokio::select! {
                    biased;
                    _ = close.wait() => {
                        self.send(Reply::shutting_down(h.cookie), Charge::none());
                        return Err(End::Closed(Resume::Lost));
                    }
                    r = frames.skip(h.payload_len()) => r.map_err(End::Broken)?,
                }
                let charge = tokio::select! {
                    biased;
                    _ = close.wait() => Charge::none(),
                    c = self.budget.charge(0) => c.map_err(End::Broken)?,
                };
                let message = refusal.message.to_string();
                self.send(Reply::error(h.cookie, refusal.errno, message), charge);
                return Ok(());
            }
        };
        // Taken before the payload is read: a connection over its budget
        // stops reading, and the client waits.
        let tx = self.tx.clone();
        let charge = tokio::select! {
            biased;
            _ = close.wait() => {
                self.send(Reply::shutting_down(h.cookie), Charge::none());
                return Err(End::Closed(Resume::Skip(h.payload_len())));
            }
            // A client that left needs no more budget.
            _ = tx.closed() => return Err(End::WriterGone),
            c = self.budget.charge(self.cost(&cmd)) => c.map_err(End::Broken)?,
        };
        let mut payload = Vec::new();
        if let Command::Write { len, .. } = cmd {
            payload.resize(len as usize, 0);
            tokio::select! {
                biased;
                _ = close.wait() => {
                    self.send(Reply::shutting_down(h.cookie), Charge::none());
                    return Err(End::Closed(Resume::Lost));
                }
                r = frames.payload(&mut payload) => r.map_err(End::Broken)?,
            }
        }
        let export = self.export.clone();
        let tx = self.tx.clone();
        let closing = self.closing.clone();
        let block_size = self.block_size;
        self.ops.spawn_blocking(move || {
            let reply = exec::answer(&closing, h.cookie, || {
                exec::run(&export, block_size, h.cookie, cmd, payload)
            });
            // Fails only when the writer is gone, and the client with it.
            let _ = tx.send(Outgoing {
                reply,
                _charge: charge,
            });
        });
        Ok(())
    }

    /// Bytes a request holds until its reply is written.
    fn cost(&self, cmd: &Command) -> u32 {
        match *cmd {
            Command::Read { len, .. } | Command::Write { len, .. } => len,
            Command::BlockStatus {
                offset,
                len,
                req_one,
            } => status::reply_bound(self.block_size, offset, len, req_one),
            _ => 0,
        }
    }

    fn send(&self, reply: Reply, charge: Charge) {
        // Fails only when the writer is gone, and the client with it.
        let _ = self.tx.send(Outgoing {
            reply,
            _charge: charge,
        });
    }

    /// The server closed the connection: requests not started are refused,
    /// those running finish, a read-write export flushes, and requests that
    /// arrive meanwhile get `ESHUTDOWN` so the client knows to disconnect.
    async fn wind_down<R: AsyncRead + Unpin>(
        &mut self,
        frames: &mut RequestReader<R>,
        resume: &Resume,
        grace: Instant,
        name: &str,
    ) {
        self.closing.store(true, Ordering::SeqCst);
        let mut ops = std::mem::replace(&mut self.ops, JoinSet::new());
        let export = self.export.clone();
        let writable = self.shape.writable;
        let mut refuser = Refuser {
            frames,
            conn: self,
            reading: true,
            grace,
        };
        match resume {
            Resume::AtHeader => {}
            Resume::Skip(n) => refuser.skip(*n).await,
            Resume::Lost => refuser.reading = false,
        }
        refuser
            .during(async move { while ops.join_next().await.is_some() {} })
            .await;
        if writable {
            let flushed = refuser
                .during(tokio::task::spawn_blocking(move || export.flush()))
                .await;
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(export = %name, "flush before closing failed: {e}"),
                Err(e) => tracing::warn!(export = %name, "flush before closing failed: {e}"),
            }
        }
        refuser.until_quiet().await;
    }
}

/// Answers requests with `ESHUTDOWN` while a closing connection waits for
/// its work to finish.
struct Refuser<'a, R> {
    frames: &'a mut RequestReader<R>,
    conn: &'a Conn,
    /// False once the stream cannot be framed, the client left, or the
    /// grace period is over.
    reading: bool,
    grace: Instant,
}

impl<R: AsyncRead + Unpin> Refuser<'_, R> {
    /// Await `work`, refusing whatever arrives meanwhile.
    async fn during<F: Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                v = &mut work => return v,
                h = self.frames.header(), if self.reading => self.refuse(h).await,
                _ = sleep_until(self.grace), if self.reading => self.reading = false,
            }
        }
    }

    /// Refuse requests until the client has been quiet for [`QUIET`].
    async fn until_quiet(&mut self) {
        while self.reading {
            tokio::select! {
                h = self.frames.header() => self.refuse(h).await,
                _ = sleep(QUIET) => return,
                _ = sleep_until(self.grace) => return,
            }
        }
    }

    async fn refuse(&mut self, header: io::Result<[u8; super::request::REQUEST_LEN]>) {
        let Some(h) = header.ok().and_then(|b| RequestHeader::decode(&b)) else {
            self.reading = false;
            return;
        };
        if h.kind == super::consts::CMD_DISC {
            self.reading = false;
            return;
        }
        // A slot per reply, as ever: a client that does not read its
        // replies cannot grow the queue; it is cut off at the grace.
        match timeout_at(self.grace, self.conn.budget.charge(0)).await {
            Ok(Ok(charge)) => self.conn.send(Reply::shutting_down(h.cookie), charge),
            _ => {
                self.reading = false;
                return;
            }
        }
        self.skip(h.payload_len()).await;
    }

    async fn skip(&mut self, n: u32) {
        if !matches!(
            timeout_at(self.grace, self.frames.skip(n)).await,
            Ok(Ok(()))
        ) {
            self.reading = false;
        }
    }
}
