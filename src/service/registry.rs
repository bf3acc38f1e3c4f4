//! The service's state in memory: the durable records plus indexes that keep
//! every request's work proportional to its answer, not to the pool.

use super::model::{AccountRec, IdemRec, ServerRec, ServerStatus, TokenRec};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What the service shows of a snapshot. Snapshots are immutable apart from
/// name and description, so this is cached from the engine's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapMeta {
    pub id: u64,
    pub server_id: u64,
    pub name: String,
    pub description: String,
    pub status: &'static str,
    pub size_mb: Option<u64>,
    pub created_at: String,
}

impl SnapMeta {
    pub fn from_info(server_id: u64, info: &crate::SnapshotInfo) -> SnapMeta {
        SnapMeta {
            id: info.id,
            server_id,
            name: info.name.clone(),
            description: info.description.clone(),
            status: info.status,
            // Only a completed snapshot has a size to report.
            size_mb: (info.status == "completed").then(|| info.size_mb()),
            created_at: info.created_at.clone(),
        }
    }
}

pub struct ServerSlot {
    pub rec: ServerRec,
    /// Snapshot ids of this server's volume.
    pub snapshots: BTreeSet<u64>,
    /// Set while a restore runs; the status the API reports then.
    pub restoring: bool,
    /// Serializes operations that change the server or its snapshots.
    pub ops: Arc<Mutex<()>>,
}

impl ServerSlot {
    pub fn new(rec: ServerRec) -> ServerSlot {
        ServerSlot {
            rec,
            snapshots: BTreeSet::new(),
            restoring: false,
            ops: Arc::new(Mutex::new(())),
        }
    }

    pub fn status(&self) -> ServerStatus {
        if self.restoring {
            ServerStatus::Restoring
        } else {
            self.rec.status
        }
    }
}

#[derive(Default)]
pub struct Registry {
    pub accounts: BTreeMap<String, AccountRec>,
    /// By token id.
    pub tokens: BTreeMap<String, TokenRec>,
    pub servers: BTreeMap<u64, ServerSlot>,
    pub snapshots: HashMap<u64, SnapMeta>,
    /// Account → its snapshots' ids, for paging newest first.
    pub by_account: HashMap<String, BTreeSet<u64>>,
    /// By store key (account and hashed idempotency key).
    idem: HashMap<String, IdemRec>,
    /// The same keys oldest first, so pruning expired ones costs what it
    /// removes.
    idem_by_age: BTreeSet<(u64, String)>,
}

impl Registry {
    /// The server if it exists and `account` owns it.
    pub fn owned_server(&self, account: &str, id: u64) -> Option<&ServerSlot> {
        self.servers.get(&id).filter(|s| s.rec.account == account)
    }

    /// The snapshot if it exists and `account` owns its server.
    pub fn owned_snapshot(&self, account: &str, id: u64) -> Option<&SnapMeta> {
        self.snapshots
            .get(&id)
            .filter(|s| self.owned_server(account, s.server_id).is_some())
    }

    pub fn index_snapshot(&mut self, meta: SnapMeta) {
        let Some(server) = self.servers.get_mut(&meta.server_id) else {
            return;
        };
        server.snapshots.insert(meta.id);
        self.by_account
            .entry(server.rec.account.clone())
            .or_default()
            .insert(meta.id);
        self.snapshots.insert(meta.id, meta);
    }

    pub fn unindex_snapshot(&mut self, id: u64) {
        let Some(meta) = self.snapshots.remove(&id) else {
            return;
        };
        if let Some(server) = self.servers.get_mut(&meta.server_id) {
            server.snapshots.remove(&id);
            if let Some(ids) = self.by_account.get_mut(&server.rec.account) {
                ids.remove(&id);
            }
        }
    }

    pub fn idem(&self, key: &str) -> Option<&IdemRec> {
        self.idem.get(key)
    }

    pub fn put_idem(&mut self, key: String, rec: IdemRec) {
        self.remove_idem(&key);
        self.idem_by_age.insert((rec.created_unix, key.clone()));
        self.idem.insert(key, rec);
    }

    pub fn remove_idem(&mut self, key: &str) {
        if let Some(old) = self.idem.remove(key) {
            self.idem_by_age
                .remove(&(old.created_unix, key.to_string()));
        }
    }

    /// Up to `max` keys whose records were created before `cutoff`, oldest
    /// first.
    pub fn idem_created_before(&self, cutoff: u64, max: usize) -> Vec<String> {
        self.idem_by_age
            .iter()
            .take_while(|(created, _)| *created < cutoff)
            .take(max)
            .map(|(_, key)| key.clone())
            .collect()
    }

    pub fn unindex_server(&mut self, id: u64) {
        let Some(server) = self.servers.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_account.get_mut(&server.rec.account) {
            for snap in &server.snapshots {
                ids.remove(snap);
            }
        }
        for snap in &server.snapshots {
            self.snapshots.remove(snap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(created_unix: u64) -> IdemRec {
        IdemRec {
            fingerprint: String::new(),
            status: 201,
            body: String::new(),
            created_unix,
        }
    }

    #[test]
    fn idempotency_records_are_found_oldest_first() {
        let mut reg = Registry::default();
        reg.put_idem("b".into(), rec(20));
        reg.put_idem("a".into(), rec(10));
        reg.put_idem("c".into(), rec(30));
        assert_eq!(reg.idem_created_before(25, 10), ["a", "b"]);
        assert_eq!(reg.idem_created_before(25, 1), ["a"]);
        // A key used again is indexed by its new record only.
        reg.put_idem("a".into(), rec(40));
        assert_eq!(reg.idem_created_before(35, 10), ["b", "c"]);
        reg.remove_idem("b");
        assert_eq!(reg.idem_created_before(100, 10), ["c", "a"]);
        assert!(reg.idem("b").is_none());
        assert_eq!(reg.idem("a").map(|r| r.created_unix), Some(40));
    }
}
