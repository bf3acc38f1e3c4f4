//! Where service records live in the pool's app data, and their encoding.
//! Records change only through engine commits (fsync'd), and a change that
//! spans several records, or a record and an engine operation, is one
//! commit: the service's state is exactly as crash-safe as the pool's own
//! metadata.

use super::error::ServiceError;
use crate::{AppDataChange, Pool};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub const ACCOUNTS: &str = "svc/account/";
pub const TOKENS: &str = "svc/token/";
pub const SERVERS: &str = "svc/server/";
pub const IDEM: &str = "svc/idem/";
/// Servers whose disk is still being filled from an image.
pub const CREATING: &str = "svc/creating/";

pub fn account_key(name: &str) -> String {
    format!("{ACCOUNTS}{name}")
}

pub fn token_key(hash_hex: &str) -> String {
    format!("{TOKENS}{hash_hex}")
}

pub fn server_key(id: u64) -> String {
    format!("{SERVERS}{id}")
}

pub fn creating_key(id: u64) -> String {
    format!("{CREATING}{id}")
}

/// Keys are hashed so any client-chosen string makes a well-formed key.
pub fn idem_key(account: &str, key_hash_hex: &str) -> String {
    format!("{IDEM}{account}/{key_hash_hex}")
}

/// The change that stores `value` under `key`, for a commit of its own or
/// one shared with an engine operation.
pub fn put<T: Serialize>(key: &str, value: &T) -> Result<AppDataChange, ServiceError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ServiceError::Internal(format!("encoding {key}: {e}")))?;
    Ok(AppDataChange::Put(key.to_string(), bytes))
}

pub fn delete(key: &str) -> AppDataChange {
    AppDataChange::Delete(key.to_string())
}

/// Commit `changes` together: after a crash, all of them or none.
pub fn commit(pool: &Pool, changes: Vec<AppDataChange>) -> Result<(), ServiceError> {
    Ok(pool.change_app_data(changes)?)
}

/// Every record under `prefix`, decoded. A record that does not decode is
/// reported, not skipped: silently dropping an account or token is worse.
pub fn load_all<T: DeserializeOwned>(
    pool: &Pool,
    prefix: &str,
) -> Result<Vec<(String, T)>, ServiceError> {
    let mut out = Vec::new();
    for key in pool.app_data_keys(prefix) {
        let Some(bytes) = pool.app_data(&key) else {
            continue;
        };
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ServiceError::Internal(format!("service record {key} does not decode: {e}"))
        })?;
        out.push((key, value));
    }
    Ok(out)
}
