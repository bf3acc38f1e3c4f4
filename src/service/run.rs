//! Serving the API until asked to stop. The first stop request drains: no
//! new connections, and requests in flight finish, for at most the drain
//! deadline, after which the connections still open are cut. A second stop
//! request cuts them at once. Either way the caller then flushes the pool.

use super::connections::{Connections, TrackedListener};
use super::http::router_with;
use super::Service;
use crate::info::now_unix;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long the service waits, and how often it tidies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// After the first stop request, how long requests in flight may take.
    pub drain_deadline: Duration,
    /// How long a request body may take to arrive (408 after that).
    pub body_read_timeout: Duration,
    /// How often expired idempotency records are pruned.
    pub prune_interval: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            drain_deadline: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(15),
            prune_interval: Duration::from_secs(600),
        }
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every request in flight finished.
    Drained,
    /// The drain deadline passed; this many connections were cut.
    DeadlinePassed { cut: usize },
    /// A second stop request came; this many connections were cut.
    StoppedAtOnce { cut: usize },
}

/// Requests to stop, counted: the first drains, the second stops at once.
#[derive(Clone)]
pub struct StopRequests(watch::Receiver<u32>);

/// Makes [`StopRequests`]; dropping it makes no request.
pub struct StopSender(watch::Sender<u32>);

pub fn stop_channel() -> (StopSender, StopRequests) {
    let (tx, rx) = watch::channel(0);
    (StopSender(tx), StopRequests(rx))
}

impl StopSender {
    pub fn request(&self) {
        self.0.send_modify(|n| *n = n.saturating_add(1));
    }
}

impl StopRequests {
    /// Completes once `n` stops have been requested; never, if the sender
    /// is gone first.
    pub async fn reached(&self, n: u32) {
        let mut rx = self.0.clone();
        if rx.wait_for(|&count| count >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Serve on `listener` until `shutdown` completes, then drain as
/// [`serve_with`] does with the default options.
pub async fn serve(
    svc: Arc<Service>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (sender, stop) = stop_channel();
    tokio::spawn(async move {
        shutdown.await;
        sender.request();
    });
    serve_with(svc, listener, stop, ServeOptions::default())
        .await
        .map(|_| ())
}

/// Serve on `listener` until `stop` asks; see the module docs.
pub async fn serve_with(
    svc: Arc<Service>,
    listener: TcpListener,
    stop: StopRequests,
    options: ServeOptions,
) -> std::io::Result<Ending> {
    let connections = Connections::default();
    let draining = {
        let stop = stop.clone();
        async move { stop.reached(1).await }
    };
    let server = axum::serve(
        TrackedListener::new(listener, connections.clone()),
        router_with(svc.clone(), options),
    )
    .with_graceful_shutdown(draining)
    .into_future();
    tokio::pin!(server);
    let deadline = async {
        stop.reached(1).await;
        tracing::info!(
            "draining requests in flight for up to {:?}; a second Ctrl-C or SIGTERM stops at once",
            options.drain_deadline
        );
        tokio::time::sleep(options.drain_deadline).await;
    };
    let cut = tokio::select! {
        served = &mut server => return served.map(|()| Ending::Drained),
        () = deadline => {
            let cut = connections.cut_all();
            tracing::warn!(connections = cut, "drain deadline passed; cutting the connections still open");
            Ending::DeadlinePassed { cut }
        }
        () = stop.reached(2) => {
            let cut = connections.cut_all();
            tracing::warn!(connections = cut, "second stop request; cutting every connection now");
            Ending::StoppedAtOnce { cut }
        }
        never = prune_periodically(svc, options.prune_interval) => match never {},
    };
    // Cut connections end at once; bounded all the same, since a request
    // that never polls its connection would keep it.
    let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
    Ok(cut)
}

/// Drop expired idempotency records every `interval`, on a blocking thread
/// (a prune commits). Failures are logged and retried at the next tick.
async fn prune_periodically(svc: Arc<Service>, interval: Duration) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(interval).await;
        let svc = svc.clone();
        match tokio::task::spawn_blocking(move || svc.prune_expired_idempotency(now_unix())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(records = n, "pruned expired idempotency records"),
            Ok(Err(e)) => tracing::error!(error = %e, "pruning idempotency records failed"),
            Err(e) => tracing::error!(error = %e, "pruning idempotency records failed"),
        }
    }
}

/// Ctrl-C and SIGTERM as stop requests. The handlers are installed now,
/// not when first awaited, so a signal that arrives while startup is still
/// printing is not lost (its default action would kill the process without
/// a clean pool close). Call inside a Tokio runtime.
pub fn stop_on_signals() -> std::io::Result<StopRequests> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (sender, stop) = stop_channel();
    tokio::spawn(async move {
        for n in 1u32.. {
            let what = tokio::select! {
                Some(()) = interrupt.recv() => "interrupted",
                Some(()) = terminate.recv() => "terminated",
                else => return,
            };
            match n {
                1 => tracing::info!("{what}; shutting down"),
                _ => tracing::warn!("{what} again; stopping at once"),
            }
            sender.request();
        }
    });
    Ok(stop)
}

/// One log line per event on stderr; `COWSNAP_LOG` (as `RUST_LOG`) filters,
/// `info` by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COWSNAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
