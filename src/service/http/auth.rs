//! Authentication comes before anything else a route checks, in Django REST
//! framework's order: a request to a known route without a valid token gets
//! 401 whatever its method or body, then admin routes refuse other accounts
//! (403), and only then do the method (405) and the body (413, 415, 408,
//! 400) count. Unknown routes never get here: they are 404 for everyone.

use super::errors::unauthorized;
use super::App;
use crate::service::{Caller, ServiceError};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Routes under this prefix are for admin tokens only.
pub const ADMIN_PREFIX: &str = "/api/v1/admin/";

/// The route layer: authenticate, authorize admin routes, and hand the
/// caller to the handler's extractors.
pub async fn authenticate(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let caller = match caller_of(req.headers(), &app) {
        Ok(c) => c,
        Err(refused) => return refused.into_response(),
    };
    let path = req.uri().path();
    // Both spellings of an admin route: with and without the trailing slash.
    let admin_route = path.starts_with(ADMIN_PREFIX) || path == ADMIN_PREFIX.trim_end_matches('/');
    if admin_route && !caller.is_admin() {
        return ServiceError::Forbidden.into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Why a request is not authenticated: a 401 with this code and detail.
pub struct Unauthenticated {
    code: &'static str,
    detail: &'static str,
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        unauthorized(self.code, self.detail)
    }
}

/// The caller a request's bearer token stands for.
pub fn caller_of(headers: &HeaderMap, app: &App) -> Result<Caller, Unauthenticated> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Unauthenticated {
            code: "not_authenticated",
            detail: "Authentication credentials were not provided.",
        });
    };
    let malformed = || Unauthenticated {
        code: "authentication_failed",
        detail: "Invalid token header. Use 'Authorization: Bearer <token>'.",
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let mut words = text.split_ascii_whitespace();
    let (Some(scheme), Some(token), None) = (words.next(), words.next(), words.next()) else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    app.svc.authenticate(token).ok_or(Unauthenticated {
        code: "authentication_failed",
        detail: "Invalid token.",
    })
}
