//! Serving the API until a shutdown signal, then letting in-flight requests
//! finish.

use super::http::router;
use super::Service;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serve on `listener` until `shutdown` completes; requests already being
/// handled are finished before this returns.
pub async fn serve(
    svc: Arc<Service>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(svc))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A future that completes on Ctrl-C or SIGTERM. The handlers are installed
/// now, not when the future is first polled, so a signal that arrives while
/// startup is still printing is not lost (its default action would kill the
/// process without a clean pool close). Call inside a Tokio runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("interrupted; shutting down"),
            _ = terminate.recv() => tracing::info!("terminated; shutting down"),
        }
    })
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
