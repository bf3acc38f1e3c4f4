//! Listening on TCP or a Unix socket, and serving connections until told
//! to stop.

use super::admission::ExportSlots;
use super::budget::Budget;
use super::control::ExportControl;
use super::handshake;
use super::limits::Limits;
use super::session;
use crate::Pool;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// What every connection shares.
pub(crate) struct Ctx {
    pub pool: Pool,
    pub control: ExportControl,
    pub limits: Limits,
    pub export_slots: Arc<ExportSlots>,
    pub budget: Arc<Budget>,
}

/// A bound NBD listening socket.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, SocketFile),
}

/// The socket file of a Unix listener; removed when the listener goes.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where to listen: `unix:<PATH>`, `HOST:PORT`, or a bare port (on
/// 127.0.0.1, since NBD has no authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl Address {
    pub fn parse(s: &str) -> Address {
        if let Some(path) = s.strip_prefix("unix:") {
            Address::Unix(PathBuf::from(path))
        } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            Address::Tcp(format!("127.0.0.1:{s}"))
        } else {
            Address::Tcp(s.to_string())
        }
    }
}

impl Listener {
    /// Bind `addr` (see [`Address::parse`]). Call inside a Tokio runtime.
    pub async fn bind(addr: &str) -> io::Result<Listener> {
        match Address::parse(addr) {
            Address::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a).await?)),
            Address::Unix(path) => bind_unix(&path),
        }
    }

    /// The bound address, as `HOST:PORT` or `unix:<PATH>`.
    pub fn local_addr(&self) -> io::Result<String> {
        match self {
            Listener::Tcp(l) => Ok(l.local_addr()?.to_string()),
            Listener::Unix(_, file) => Ok(format!("unix:{}", file.0.display())),
        }
    }
}

fn bind_unix(path: &Path) -> io::Result<Listener> {
    if path.as_os_str().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty Unix socket path",
        ));
    }
    match UnixListener::bind(path) {
        Ok(l) => Ok(Listener::Unix(l, SocketFile(path.to_path_buf()))),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && stale_socket(path) => {
            // Left by a process that died: nobody answers on it.
            std::fs::remove_file(path)?;
            let l = UnixListener::bind(path)?;
            Ok(Listener::Unix(l, SocketFile(path.to_path_buf())))
        }
        Err(e) => Err(e),
    }
}

/// A socket file nobody listens on. Other kinds of file are never removed.
fn stale_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    is_socket
        && matches!(
            std::os::unix::net::UnixStream::connect(path),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
        )
}

/// Serve NBD on `listener` until `shutdown` completes, with default
/// [`Limits`]. Then every connection finishes its requests in flight, flushes
/// if it was read-write, and closes, before this returns.
pub async fn serve(
    pool: Pool,
    listener: Listener,
    control: ExportControl,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(pool, listener, control, Limits::default(), shutdown).await
}

/// As [`serve`], with explicit limits.
pub async fn serve_with(
    pool: Pool,
    listener: Listener,
    control: ExportControl,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let budget = Budget::new(&limits);
    serve_in_budget(pool, listener, control, limits, budget, shutdown).await
}

/// As [`serve_with`], charging requests to `budget` (which the caller may
/// watch).
pub(crate) async fn serve_in_budget(
    pool: Pool,
    listener: Listener,
    control: ExportControl,
    limits: Limits,
    budget: Arc<Budget>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let ctx = Arc::new(Ctx {
        pool,
        control,
        export_slots: ExportSlots::new(limits.max_connections_per_export.max(1)),
        budget,
        limits,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = accept(&listener) => a,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors, usually: wait, and keep serving.
                tracing::warn!("nbd accept failed: {e}");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                "nbd connection refused: {} connections already open",
                ctx.limits.max_connections
            );
            continue;
        };
        let (ctx, stop) = (ctx.clone(), stop_rx.clone());
        conns.spawn(async move {
            match stream {
                Stream::Tcp(s) => connection(s, ctx, stop, permit).await,
                Stream::Unix(s) => connection(s, ctx, stop, permit).await,
            }
        });
    }
    // Connections hear of the stop before the socket goes away, so a client
    // that cannot connect any more knows its handshake will be refused.
    let _ = stop_tx.send(true);
    drop(listener);
    while conns.join_next().await.is_some() {}
    Ok(())
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

async fn accept(l: &Listener) -> io::Result<Stream> {
    match l {
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            // Small replies must not wait for Nagle.
            s.set_nodelay(true)?;
            Ok(Stream::Tcp(s))
        }
        Listener::Unix(l, _) => Ok(Stream::Unix(l.accept().await?.0)),
    }
}

/// A stream that splits into halves owned by separate tasks.
pub(crate) trait Halves: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type R: AsyncRead + Unpin + Send + 'static;
    type W: AsyncWrite + Unpin + Send + 'static;
    fn halves(self) -> (Self::R, Self::W);
}

impl Halves for TcpStream {
    type R = tokio::net::tcp::OwnedReadHalf;
    type W = tokio::net::tcp::OwnedWriteHalf;
    fn halves(self) -> (Self::R, Self::W) {
        self.into_split()
    }
}

impl Halves for UnixStream {
    type R = tokio::net::unix::OwnedReadHalf;
    type W = tokio::net::unix::OwnedWriteHalf;
    fn halves(self) -> (Self::R, Self::W) {
        self.into_split()
    }
}

async fn connection<S: Halves>(
    mut s: S,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let negotiated = tokio::time::timeout(
        ctx.limits.handshake_timeout,
        handshake::negotiate(&mut s, &ctx, &mut stop),
    )
    .await;
    let neg = match negotiated {
        Ok(Ok(Some(neg))) => neg,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!("nbd handshake ended: {e}");
            return;
        }
        Err(_) => {
            tracing::info!("nbd handshake timed out");
            return;
        }
    };
    let (r, w) = s.halves();
    session::run(r, w, neg, &ctx, stop).await;
}
