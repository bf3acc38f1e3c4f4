//! The HTTP API over a [`Service`]: routes, extractors, error mapping.

mod admin;
mod auth;
mod errors;
mod extract;
mod form;
mod idem;
mod log;
mod misc;
mod paging;
mod routes;
pub mod schema;
mod servers;
mod snapshots;

use super::{Service, ServiceError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

pub use routes::{route_paths, router, router_with};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 << 10;

/// Shared by every handler.
#[derive(Clone)]
pub struct App {
    pub svc: Arc<Service>,
    /// How long a request body may take to arrive.
    pub body_read_timeout: std::time::Duration,
}

/// Run a blocking service operation (engine commits fsync) off the async
/// workers.
async fn blocking<T: Send + 'static>(
    app: &App,
    op: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let svc = app.svc.clone();
    tokio::task::spawn_blocking(move || op(&svc))
        .await
        .map_err(|e| ServiceError::Internal(format!("worker thread failed: {e}")))?
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}
