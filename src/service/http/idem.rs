//! Applying `Idempotency-Key` to a handler: replay the first success, refuse
//! a reused key with a different request.

use super::App;
use crate::service::{Caller, IdemStart, ServiceError};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::future::Future;

pub const HEADER: &str = "idempotency-key";
/// Set on an answer that is a replay of the first one.
pub const REPLAYED: &str = "idempotent-replayed";

pub async fn idempotent<F: Future<Output = Response>>(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    body: Option<&Value>,
    run: impl FnOnce() -> F,
) -> Response {
    let Some(key) = headers.get(HEADER) else {
        return run().await;
    };
    let Ok(key) = key.to_str() else {
        return ServiceError::BadRequest {
            code: "invalid_idempotency_key",
            detail: "Idempotency-Key must be visible ASCII.".into(),
        }
        .into_response();
    };
    let body_text = body.map(canonical).unwrap_or_default();
    let fingerprint = crate::service::idempotency_fingerprint("POST", route, &body_text);
    let ticket = match app.svc.idem_begin(&caller.account, key, fingerprint) {
        Err(e) => return e.into_response(),
        Ok(IdemStart::Replay { status, body }) => return replay(status, body),
        Ok(IdemStart::Proceed(ticket)) => ticket,
    };
    let (parts, body) = run().await.into_parts();
    // Our own JSON answer: small, and already in memory.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return ServiceError::Internal(format!("buffering a response: {e}")).into_response()
        }
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = parts.status.as_u16();
    let recorded = super::blocking(app, move |svc| svc.idem_finish(ticket, status, text)).await;
    if let Err(e) = recorded {
        // The operation itself succeeded: report that, and log that a retry
        // with this key would not be recognised.
        tracing::error!(error = %e, "could not record an idempotency key's answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(REPLAYED, HeaderValue::from_static("true"));
    r
}

/// JSON with object keys sorted at every level, so key order does not make
/// two equal bodies differ.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::canonical;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        let b = json!({"a": {"c": 3, "d": 2}, "b": 1});
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&json!({"a": 1})));
    }
}
