//! The authenticated no-op and the OpenAPI document.

use super::extract::Auth;
use super::json;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

/// Does nothing but authenticate: the baseline for latency measurements.
pub async fn ping(Auth(caller): Auth) -> Response {
    json(
        StatusCode::OK,
        &json!({"status": "ok", "account": caller.account}),
    )
}

pub async fn schema(Auth(_): Auth) -> Response {
    json(StatusCode::OK, &super::schema::openapi())
}
