//! Request extractors: the caller, path ids, and JSON bodies with the size,
//! time and media-type rules.

use super::auth::caller_of;
use super::errors::{detail, payload_too_large};
use super::App;
use crate::service::{Caller, ServiceError};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The authenticated caller, as the route layer ([`super::auth`]) found it.
pub struct Auth(pub Caller);

impl FromRequestParts<App> for Auth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Auth, Response> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(Auth(caller.clone())),
            // Outside the route layer: authenticate here.
            None => caller_of(&parts.headers, app)
                .map(Auth)
                .map_err(IntoResponse::into_response),
        }
    }
}

/// An authenticated caller of the admin account.
pub struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Admin, Response> {
        let Auth(caller) = Auth::from_request_parts(parts, app).await?;
        if !caller.is_admin() {
            return Err(ServiceError::Forbidden.into_response());
        }
        Ok(Admin)
    }
}

/// A numeric id in the path. Anything else names no object: 404, as an
/// integer URL converter would.
pub struct Id(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Id, Response> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| super::errors::not_found_response())?;
        text.parse()
            .map(Id)
            .map_err(|_| super::errors::not_found_response())
    }
}

/// A string parameter in the path.
pub struct Name(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Name, Response> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(s)| Name(s))
            .map_err(|_| super::errors::not_found_response())
    }
}

/// The request body as JSON; None when it is empty. A non-empty body must
/// fit in [`super::MAX_BODY`] (413, before reading when its length is
/// declared), arrive within the body read timeout (408), say it is JSON
/// (415) and parse (400).
pub struct JsonBody(pub Option<Value>);

impl FromRequest<App> for JsonBody {
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<JsonBody, Response> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > super::MAX_BODY as u64) {
            return Err(payload_too_large());
        }
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(is_json_media_type);
        // A client that stalls mid-body must not hold a worker, or a
        // shutdown's drain, for ever.
        let read = axum::body::to_bytes(req.into_body(), super::MAX_BODY);
        let bytes = tokio::time::timeout(app.body_read_timeout, read)
            .await
            .map_err(|_| request_timeout(app.body_read_timeout))?
            .map_err(|_| payload_too_large())?;
        // An empty body is no body, whatever it claims to be.
        if bytes.is_empty() {
            return Ok(JsonBody(None));
        }
        if is_json != Some(true) {
            return Err(detail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type in request; send 'Content-Type: application/json'.",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(|v| JsonBody(Some(v)))
            .map_err(|e| {
                detail(
                    StatusCode::BAD_REQUEST,
                    "parse_error",
                    &format!("JSON parse error - {e}"),
                )
            })
    }
}

fn request_timeout(limit: std::time::Duration) -> Response {
    detail(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        &format!(
            "The request body did not arrive within {} seconds.",
            limit.as_secs_f64()
        ),
    )
}

/// `application/json`, any parameters, any case; or a `+json` type.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5
            && essence.is_char_boundary(essence.len() - 5)
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
}

#[cfg(test)]
mod tests {
    use super::is_json_media_type;

    #[test]
    fn media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/merge-patch+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/x-www-form-urlencoded"));
        assert!(!is_json_media_type("+json"));
        assert!(!is_json_media_type("ééé"));
    }
}
