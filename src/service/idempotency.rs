//! `Idempotency-Key`: the first successful answer to a keyed request is
//! committed in the same engine transaction as the operation it answers, and
//! replayed to retries with the same key and request. So after any crash the
//! answer is on record exactly when the operation happened. Failures are not
//! stored: they changed nothing, so a retry runs afresh.

use super::core::Service;
use super::error::ServiceError;
use super::model::IdemRec;
use super::store;
use super::token::{hex, sha256};
use crate::info::now_unix;
use crate::AppDataChange;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Expired records removed per commit when pruning.
const PRUNE_BATCH: usize = 256;

/// How a keyed request proceeds.
pub enum IdemStart {
    /// A request with this key and the same content already succeeded.
    Replay(Answer),
    /// First use: run the operation with the ticket, which records its answer.
    Proceed(IdemTicket),
}

/// A keyed request's answer: sent the first time, replayed after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// JSON text.
    pub body: String,
}

impl Answer {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Result<Answer, ServiceError> {
        let body = serde_json::to_string(value)
            .map_err(|e| ServiceError::Internal(format!("encoding an answer: {e}")))?;
        Ok(Answer { status, body })
    }
}

/// A keyed operation's claim on its key, and how to render its answer from
/// the operation's result; the operation commits that answer with itself.
pub struct Keyed<'a, T> {
    pub ticket: &'a IdemTicket,
    pub answer: fn(&T) -> Result<Answer, ServiceError>,
}

/// An answer ready to commit: the engine change, and what the registry
/// learns once the commit is durable.
pub(crate) struct Recording {
    pub change: AppDataChange,
    key: String,
    rec: IdemRec,
}

impl<T> Keyed<'_, T> {
    pub(crate) fn recording(&self, result: &T) -> Result<Recording, ServiceError> {
        let answer = (self.answer)(result)?;
        let rec = IdemRec {
            fingerprint: self.ticket.fingerprint.clone(),
            status: answer.status,
            body: answer.body,
            created_unix: now_unix(),
        };
        Ok(Recording {
            change: store::put(&self.ticket.store_key, &rec)?,
            key: self.ticket.store_key.clone(),
            rec,
        })
    }
}

/// Marks a key as in flight until dropped. The operation owns it, so a
/// client that disconnects does not release the key while the operation
/// still runs.
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

fn in_use() -> ServiceError {
    ServiceError::Conflict {
        code: "idempotency_key_in_use",
        detail: "A request with this Idempotency-Key is still being processed.".into(),
    }
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
        // Checked under the in-flight lock: an operation records its answer
        // before its ticket leaves the set, so we see one or the other.
        let mut in_flight = self.in_flight.lock();
        if in_flight.contains(&store_key) {
            return Err(in_use());
        }
        let existing = self.reg.lock().idem(&store_key).cloned();
        if let Some(rec) = existing.filter(|r| !self.idem_expired(r, now_unix())) {
            if rec.fingerprint != fingerprint {
                return Err(ServiceError::Unprocessable {
                    code: "idempotency_key_reused",
                    detail: "This Idempotency-Key was used for a different request.".into(),
                });
            }
            return Ok(IdemStart::Replay(Answer {
                status: rec.status,
                body: rec.body,
            }));
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

    /// Stored answers to keyed requests, expired or not (for tests).
    pub fn idempotency_records(&self) -> usize {
        self.pool.app_data_keys(store::IDEM).len()
    }

    fn idem_expired(&self, rec: &IdemRec, now: u64) -> bool {
        now.saturating_sub(rec.created_unix) > self.settings.idempotency_ttl_secs
    }

    /// Make a committed answer replayable.
    pub(crate) fn keep_answer(&self, recording: Recording) {
        self.reg.lock().put_idem(recording.key, recording.rec);
    }

    /// Drop the records that expired by `now`, a batch per commit; returns
    /// how many went. A key is claimed while its record is deleted, so a
    /// new request with it cannot have its fresh answer deleted too: it
    /// waits (409) for the moment the delete takes.
    pub fn prune_expired_idempotency(&self, now: u64) -> Result<usize, ServiceError> {
        let cutoff = now.saturating_sub(self.settings.idempotency_ttl_secs);
        let mut pruned = 0;
        loop {
            let tickets: Vec<IdemTicket> = {
                let mut in_flight = self.in_flight.lock();
                let candidates = self.reg.lock().idem_created_before(cutoff, PRUNE_BATCH);
                candidates
                    .into_iter()
                    .filter(|key| in_flight.insert(key.clone()))
                    .map(|store_key| IdemTicket {
                        store_key,
                        fingerprint: String::new(),
                        in_flight: self.in_flight.clone(),
                    })
                    .collect()
            };
            if tickets.is_empty() {
                return Ok(pruned);
            }
            let changes = tickets
                .iter()
                .map(|t| store::delete(&t.store_key))
                .collect();
            store::commit(&self.pool, changes)?;
            let mut reg = self.reg.lock();
            for t in &tickets {
                reg.remove_idem(&t.store_key);
            }
            pruned += tickets.len();
        }
    }
}
