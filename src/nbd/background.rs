//! An NBD server on its own thread and runtime, for embedders and tests
//! that do not run Tokio themselves.

use super::control::ExportControl;
use super::limits::Limits;
use super::listener::{serve_with, Listener};
use crate::Pool;
use std::io;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// A running server; [`stop`](Self::stop) (or drop) shuts it down cleanly.
pub struct BackgroundServer {
    address: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl BackgroundServer {
    /// Bind `addr` (as [`Listener::bind`]) and serve the pool's exports.
    pub fn start(
        pool: Pool,
        addr: &str,
        control: ExportControl,
        limits: Limits,
    ) -> io::Result<BackgroundServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cowsnap-nbd")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(Listener::bind(addr))?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cowsnap-nbd".into())
            .spawn(move || {
                runtime.block_on(serve_with(pool, listener, control, limits, async {
                    let _ = stopped.await;
                }))
            })?;
        Ok(BackgroundServer {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `HOST:PORT` or `unix:<PATH>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stop accepting, let connections finish and flush, and wait for that.
    pub fn stop(mut self) -> io::Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("nbd server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}
