//! `Idempotency-Key`: the first successful answer to a keyed request is
//! stored durably and replayed to retries with the same key and request.
//! Failures are not stored: they changed nothing, so a retry runs afresh.

use super::core::Service;
use super::error::ServiceError;
use super::model::{IdemRec, IDEM_TTL_SECS};
use super::store;
use super::token::{hex, sha256};
use crate::info::now_unix;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// How a keyed request proceeds.
pub enum IdemStart {
    /// A request with this key and the same content already succeeded.
    Replay { status: u16, body: String },
    /// First use: run the request, then record its answer with the ticket.
    Proceed(IdemTicket),
}

/// Marks a key as in flight until dropped.
pub struct IdemTicket {
    store_key: String,
    fingerprint: String,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Drop for IdemTicket {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.store_key);
    }
}

pub fn validate_key(key: &str) -> Result<(), ServiceError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ServiceError::BadRequest {
            code: "invalid_idempotency_key",
            detail: format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters."),
        });
    }
    Ok(())
}

/// What identifies a request for replay: method, path and canonical body.
pub fn fingerprint(method: &str, path: &str, canonical_body: &str) -> String {
    let text = format!("{method}\n{path}\n{canonical_body}");
    hex(&sha256(text.as_bytes()))
}

impl Service {
    pub fn idem_begin(
        &self,
        account: &str,
        key: &str,
        fingerprint: String,
    ) -> Result<IdemStart, ServiceError> {
        validate_key(key)?;
        let store_key = store::idem_key(account, &hex(&sha256(key.as_bytes())));
        // Checked under the in-flight lock: a finishing request records its
        // answer before it leaves the set, so we see one or the other.
        let mut in_flight = self.in_flight.lock();
        if in_flight.contains(&store_key) {
            return Err(ServiceError::Conflict {
                code: "idempotency_key_in_use",
                detail: "A request with this Idempotency-Key is still being processed.".into(),
            });
        }
        let existing = self.reg.lock().idem.get(&store_key).cloned();
        if let Some(rec) = existing {
            if now_unix().saturating_sub(rec.created_unix) <= IDEM_TTL_SECS {
                if rec.fingerprint != fingerprint {
                    return Err(ServiceError::Unprocessable {
                        code: "idempotency_key_reused",
                        detail: "This Idempotency-Key was used for a different request.".into(),
                    });
                }
                return Ok(IdemStart::Replay {
                    status: rec.status,
                    body: rec.body,
                });
            }
        }
        in_flight.insert(store_key.clone());
        Ok(IdemStart::Proceed(IdemTicket {
            store_key,
            fingerprint,
            in_flight: self.in_flight.clone(),
        }))
    }

    /// Keyed requests still running (a gauge for operators and tests).
    pub fn idempotency_keys_in_flight(&self) -> usize {
        self.in_flight.lock().len()
    }

    /// Record the answer to replay; only successful answers are kept.
    pub fn idem_finish(
        &self,
        ticket: IdemTicket,
        status: u16,
        body: String,
    ) -> Result<(), ServiceError> {
        if !(200..300).contains(&status) {
            return Ok(());
        }
        let rec = IdemRec {
            fingerprint: ticket.fingerprint.clone(),
            status,
            body,
            created_unix: now_unix(),
        };
        store::put(&self.pool, &ticket.store_key, &rec)?;
        self.reg.lock().idem.insert(ticket.store_key.clone(), rec);
        Ok(())
    }
}
