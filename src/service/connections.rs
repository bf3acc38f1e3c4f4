//! The HTTP connections the service has open, so that a shutdown whose
//! drain deadline passed can cut them. Each accepted socket is tracked by a
//! duplicate of its descriptor, which `shutdown(2)` ends for both sides;
//! the duplicate closes with the connection, so it never holds one open.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The open connections; clones share them.
#[derive(Clone, Default)]
pub struct Connections {
    open: Arc<Mutex<HashMap<u64, std::net::TcpStream>>>,
    next_id: Arc<AtomicU64>,
}

impl Connections {
    fn track(&self, stream: TcpStream) -> TrackedStream {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Without a spare descriptor the connection is served untracked: it
        // still ends when the runtime does.
        match stream.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                self.open.lock().insert(id, std::net::TcpStream::from(fd));
            }
            Err(e) => tracing::warn!("cannot track a connection for shutdown: {e}"),
        }
        TrackedStream {
            stream,
            _entry: Entry {
                id,
                open: self.open.clone(),
            },
        }
    }

    /// End every open connection now: reads see end of file, writes fail,
    /// and the client sees the connection close. Returns how many.
    pub fn cut_all(&self) -> usize {
        let open = self.open.lock();
        for stream in open.values() {
            // Already closed by the peer is fine: it is ending anyway.
            let _ = stream.shutdown(Shutdown::Both);
        }
        open.len()
    }
}

/// Removes its connection from the set when the connection is dropped.
struct Entry {
    id: u64,
    open: Arc<Mutex<HashMap<u64, std::net::TcpStream>>>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.open.lock().remove(&self.id);
    }
}

/// An accepted connection that [`Connections::cut_all`] can end.
pub struct TrackedStream {
    stream: TcpStream,
    _entry: Entry,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A TCP listener whose connections are tracked in a [`Connections`].
pub struct TrackedListener {
    listener: TcpListener,
    connections: Connections,
}

impl TrackedListener {
    pub fn new(listener: TcpListener, connections: Connections) -> TrackedListener {
        TrackedListener {
            listener,
            connections,
        }
    }
}

impl axum::serve::Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (TrackedStream, std::net::SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => return (self.connections.track(stream), addr),
                // One client's failed handshake is no reason to pause.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors, usually: wait for some to close.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
