//! The outermost layer: one line per request with method, path (no query),
//! status and latency. Neither headers nor the query are logged, so neither
//! is a token, wherever a client put it.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    tracing::info!(
        target: "cowsnap::http",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = format!("{:.3}", started.elapsed().as_secs_f64() * 1e3),
        "request"
    );
    response
}
