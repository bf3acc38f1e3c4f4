//! The outermost layer: refuse declared oversize bodies before reading them,
//! and log one line per request — method, path (no query), status, latency.
//! Headers are never logged, so neither is a token.

use super::errors::payload_too_large;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub async fn log_and_limit(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let response = if declared.is_some_and(|n| n > super::MAX_BODY as u64) {
        payload_too_large()
    } else {
        next.run(req).await
    };
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
