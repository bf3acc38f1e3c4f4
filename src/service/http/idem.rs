//! `Idempotency-Key` at the HTTP edge: claim the key before the operation
//! runs, or answer at once with a replay or a refusal. The claim (ticket)
//! then moves into the blocking operation, which commits its answer with
//! itself, so a client that disconnects cancels neither.

use super::App;
use crate::service::{Answer, Caller, IdemStart, IdemTicket, ServiceError};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub const HEADER: &str = "idempotency-key";
/// Set on an answer that is a replay of the first one.
pub const REPLAYED: &str = "idempotent-replayed";

/// A keyed request answered without running: a replay, or a refusal.
pub enum Answered {
    Replay(Answer),
    Refused(ServiceError),
}

impl IntoResponse for Answered {
    fn into_response(self) -> Response {
        match self {
            Answered::Replay(answer) => send(answer, true),
            Answered::Refused(e) => e.into_response(),
        }
    }
}

/// Claim the request's key. `Ok(None)`: the request has no key.
/// `Ok(Some(ticket))`: first use, run the operation with the ticket.
pub fn claim(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    body: Option<&Value>,
) -> Result<Option<IdemTicket>, Answered> {
    let Some(key) = headers.get(HEADER) else {
        return Ok(None);
    };
    let Ok(key) = key.to_str() else {
        return Err(Answered::Refused(ServiceError::BadRequest {
            code: "invalid_idempotency_key",
            detail: "Idempotency-Key must be visible ASCII.".into(),
        }));
    };
    let body_text = body.map(canonical).unwrap_or_default();
    let fingerprint = crate::service::idempotency_fingerprint("POST", route, &body_text);
    match app.svc.idem_begin(&caller.account, key, fingerprint) {
        Err(e) => Err(Answered::Refused(e)),
        Ok(IdemStart::Replay(answer)) => Err(Answered::Replay(answer)),
        Ok(IdemStart::Proceed(ticket)) => Ok(Some(ticket)),
    }
}

/// An answer as a response; a replay says so in a header.
pub fn send(answer: Answer, replayed: bool) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut r = (status, answer.body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        h.insert(REPLAYED, HeaderValue::from_static("true"));
    }
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
