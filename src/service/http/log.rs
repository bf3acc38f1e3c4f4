//! The outermost layer: one line per request with method, path (no query),
//! status and latency. Neither headers nor the query are logged, so neither
//! is a token, wherever a client put it.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// Logs its request when dropped: also when the client went away and the
/// handler was cancelled before it answered (status 499, as nginx says).
struct RequestLine {
    started: Instant,
    method: Method,
    path: String,
    status: u16,
}

impl Drop for RequestLine {
    fn drop(&mut self) {
        tracing::info!(
            target: "cowsnap::http",
            method = %self.method,
            path = %self.path,
            status = self.status,
            latency_ms = format!("{:.3}", self.started.elapsed().as_secs_f64() * 1e3),
            "request"
        );
    }
}

/// Status logged for a request whose client closed the connection first.
const CLIENT_CLOSED: u16 = 499;

pub async fn log_request(req: Request, next: Next) -> Response {
    let mut line = RequestLine {
        started: Instant::now(),
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        status: CLIENT_CLOSED,
    };
    let response = next.run(req).await;
    line.status = response.status().as_u16();
    response
}
