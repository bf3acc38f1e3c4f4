//! An NBD server on its own thread and runtime, for embedders and tests
//! that do not run Tokio themselves.

use super::budget::Budget;
use super::control::ExportControl;
use super::limits::Limits;
use super::listener::{serve_in_budget, Listener};
use crate::Pool;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// A running server; [`stop`](Self::stop) (or drop) shuts it down cleanly.
pub struct BackgroundServer {
    address: String,
    budget: Arc<Budget>,
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
        let budget = Budget::new(&limits);
        let charged = budget.clone();
        let thread = std::thread::Builder::new()
            .name("cowsnap-nbd".into())
            .spawn(move || {
                let stopped = async {
                    let _ = stopped.await;
                };
                runtime.block_on(serve_in_budget(
                    pool, listener, control, limits, charged, stopped,
                ))
            })?;
        Ok(BackgroundServer {
            address,
            budget,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `HOST:PORT` or `unix:<PATH>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Bytes held now for requests in flight (READ buffers, WRITE payloads,
    /// BLOCK_STATUS replies) across all connections: at most
    /// `Limits::total_in_flight_bytes` plus each connection's 128 KiB reserve.
    pub fn buffered_bytes(&self) -> usize {
        self.budget.held()
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
