//! [`Service`]: the snapshot service's state over one pool, loaded at open
//! and written through on every change. All methods block (engine commits
//! fsync); async callers run them on a blocking thread.

use super::error::ServiceError;
use super::model::{AccountRec, CreatingRec, IdemRec, ServerRec, ServerStatus, TokenRec};
use super::registry::{Registry, ServerSlot, SnapMeta};
use super::settings::Settings;
use super::store;
use crate::info::{now_unix, rfc3339};
use crate::{ErrorKind, Pool};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The snapshot service over one pool.
pub struct Service {
    pub(crate) pool: Pool,
    pub(crate) reg: Mutex<Registry>,
    /// Serializes account, token and server creation and deletion, so their
    /// uniqueness checks and writes are atomic together.
    pub(crate) admin: Mutex<()>,
    /// Idempotency keys whose first request is still running.
    pub(crate) in_flight: Arc<Mutex<HashSet<String>>>,
    /// Read-write NBD exports: only running servers' disks have one.
    pub(crate) exports: crate::nbd::ExportControl,
    pub(crate) settings: Settings,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    pub token_id: String,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.account == super::model::ADMIN_ACCOUNT
    }
}

impl Service {
    /// Load the service's state from the pool, with the default settings.
    pub fn open(pool: Pool) -> Result<Service, ServiceError> {
        Service::open_with(pool, Settings::default())
    }

    /// Load the service's state from the pool. Finishes what a crash, or a
    /// change made outside the service, left behind: a server creation from
    /// an image that did not finish is removed, a server whose volume is
    /// gone is dropped, and expired idempotency records are pruned.
    pub fn open_with(pool: Pool, settings: Settings) -> Result<Service, ServiceError> {
        remove_interrupted_creations(&pool)?;
        let mut reg = Registry::default();
        for (_, a) in store::load_all::<AccountRec>(&pool, store::ACCOUNTS)? {
            reg.accounts.insert(a.name.clone(), a);
        }
        for (_, t) in store::load_all::<TokenRec>(&pool, store::TOKENS)? {
            reg.tokens.insert(t.id.clone(), t);
        }
        let exports = crate::nbd::ExportControl::new();
        let mut by_volume = HashMap::new();
        for (key, mut s) in store::load_all::<ServerRec>(&pool, store::SERVERS)? {
            match pool.volume_info(&s.volume) {
                Ok(_) => {}
                // The service deletes a volume and its server in one commit,
                // so only `cowsnap volume delete` (or a library caller) can
                // have left this.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    tracing::warn!(server = s.id, volume = %s.volume, "server's volume is gone; dropping the server");
                    store::commit(&pool, vec![store::delete(&key)])?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // A restore is atomic in the engine; its in-memory state is not kept.
            if s.status == ServerStatus::Restoring {
                s.status = ServerStatus::Stopped;
            }
            if s.status != ServerStatus::Running {
                exports.disable_rw(&s.volume);
            }
            by_volume.insert(s.volume.clone(), s.id);
            reg.servers.insert(s.id, ServerSlot::new(s));
        }
        for info in pool.list_snapshots(None)? {
            if let Some(&server) = by_volume.get(&info.volume_name) {
                reg.index_snapshot(SnapMeta::from_info(server, &info));
            }
        }
        for (key, rec) in store::load_all::<IdemRec>(&pool, store::IDEM)? {
            reg.put_idem(key, rec);
        }
        let svc = Service {
            pool,
            reg: Mutex::new(reg),
            admin: Mutex::new(()),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            exports,
            settings,
        };
        svc.prune_expired_idempotency(now_unix())?;
        Ok(svc)
    }

    /// The pool underneath.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// What the NBD listener may export read-write; pass it to
    /// [`crate::nbd::serve`] so server stops and restores close connections.
    pub fn exports(&self) -> &crate::nbd::ExportControl {
        &self.exports
    }

    /// The caller a bearer token stands for; None for an unknown or
    /// revoked token.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        if !super::token::well_formed(token) {
            return None;
        }
        let hash = super::token::sha256(token.as_bytes());
        let id = super::token::id_of(&hash);
        let reg = self.reg.lock();
        let rec = reg.tokens.get(&id)?;
        let stored = super::token::unhex32(&rec.hash)?;
        let valid = super::token::same_hash(&stored, &hash)
            && !rec.revoked
            && reg.accounts.contains_key(&rec.account);
        valid.then(|| Caller {
            account: rec.account.clone(),
            token_id: rec.id.clone(),
        })
    }

    pub(crate) fn account_view(a: &AccountRec) -> super::AccountView {
        super::AccountView {
            name: a.name.clone(),
            created_at: rfc3339(a.created_unix),
        }
    }
}

/// A creation record at startup is a server whose image import did not
/// finish: its volume holds part of the image and no server owns it. The
/// volume and the record go in one commit.
fn remove_interrupted_creations(pool: &Pool) -> Result<(), ServiceError> {
    for (key, rec) in store::load_all::<CreatingRec>(pool, store::CREATING)? {
        tracing::warn!(server = rec.id, volume = %rec.volume, image = %rec.image,
            "removing a server creation that did not finish");
        match pool.delete_volume_with(&rec.volume, vec![store::delete(&key)]) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                store::commit(pool, vec![store::delete(&key)])?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
