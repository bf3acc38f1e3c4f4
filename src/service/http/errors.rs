//! Errors as DRF-style JSON: `{"detail", "code"}` or per-field lists.

use crate::service::ServiceError;
use crate::ErrorKind;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub fn detail(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"detail": message, "code": code}))).into_response()
}

/// 401: always with the challenge that names the scheme.
pub fn unauthorized(code: &str, message: &str) -> Response {
    let mut r = detail(StatusCode::UNAUTHORIZED, code, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        match self {
            ServiceError::Fields(errors) => {
                (StatusCode::BAD_REQUEST, axum::Json(errors)).into_response()
            }
            ServiceError::BadRequest { code, detail: d } => {
                detail(StatusCode::BAD_REQUEST, code, &d)
            }
            ServiceError::LimitReached { limit } => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "detail": format!(
                        "This server already has {limit} snapshots, the limit. Delete one to make room."
                    ),
                    "code": "snapshot_limit_reached",
                    "limit": limit,
                })),
            )
                .into_response(),
            ServiceError::Busy(d) => detail(StatusCode::BAD_REQUEST, "server_busy", &d),
            ServiceError::NotFound(d) => detail(StatusCode::NOT_FOUND, "not_found", &d),
            ServiceError::Forbidden => detail(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "You do not have permission to perform this action.",
            ),
            ServiceError::Conflict { code, detail: d } => detail(StatusCode::CONFLICT, code, &d),
            ServiceError::Unprocessable { code, detail: d } => {
                detail(StatusCode::UNPROCESSABLE_ENTITY, code, &d)
            }
            ServiceError::Engine(e) => {
                tracing::error!(error = %e, "engine failure");
                match e.kind() {
                    ErrorKind::Poisoned | ErrorKind::ReadOnly => detail(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage_unavailable",
                        "Storage is unavailable; the operator has been alerted by the logs.",
                    ),
                    _ => internal(),
                }
            }
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "internal failure");
                internal()
            }
        }
    }
}

fn internal() -> Response {
    detail(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "Internal server error.",
    )
}

pub fn not_found_response() -> Response {
    detail(StatusCode::NOT_FOUND, "not_found", "Not found.")
}

/// Unknown routes.
pub async fn not_found() -> Response {
    not_found_response()
}

/// Known route, wrong method; the router adds the `Allow` header.
pub async fn method_not_allowed(method: Method) -> Response {
    detail(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("Method \"{method}\" not allowed."),
    )
}

pub fn payload_too_large() -> Response {
    detail(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("Request body is larger than {} bytes.", super::MAX_BODY),
    )
}
