//! What `serve --demo` sets up: an account with a fresh token and the server
//! the API documentation's examples use. Whatever is missing is created in
//! one commit, so a crash leaves all of it or none.

use super::core::Service;
use super::error::ServiceError;
use super::servers::{admin_view, Disk, NewServer};
use super::store;
use super::{AdminServerView, NewToken};

pub const DEMO_ACCOUNT: &str = "demo";
pub const DEMO_SERVER_ID: u64 = 12345;
pub const DEMO_SERVER_NAME: &str = "web-server-01";
pub const DEMO_DISK_BYTES: u64 = 64 << 20;

pub struct Demo {
    /// A new token on every run, so the examples work without digging out
    /// the first run's output. Earlier demo tokens stay valid.
    pub token: NewToken,
    pub server: AdminServerView,
    /// False when an earlier run made the server.
    pub server_created: bool,
}

impl Service {
    /// Create the demo account and server if missing, and a new demo token.
    /// Refused, changing nothing, when server 12345 belongs to another
    /// account: the examples would then act on someone else's server.
    pub fn ensure_demo(&self) -> Result<Demo, ServiceError> {
        let _admin = self.admin.lock();
        let (has_account, owner) = {
            let reg = self.reg.lock();
            let owner = reg
                .servers
                .get(&DEMO_SERVER_ID)
                .map(|s| s.rec.account.clone());
            (reg.accounts.contains_key(DEMO_ACCOUNT), owner)
        };
        if let Some(owner) = owner.as_deref().filter(|o| *o != DEMO_ACCOUNT) {
            return Err(ServiceError::BadRequest {
                code: "demo_server_taken",
                detail: format!(
                    "server {DEMO_SERVER_ID} belongs to account {owner}, but --demo needs that id \
                     for account {DEMO_ACCOUNT}'s server {DEMO_SERVER_NAME}; serve without --demo, \
                     or delete server {DEMO_SERVER_ID} first"
                ),
            });
        }
        let mut changes = Vec::new();
        let account = match has_account {
            true => None,
            false => Some(self.draft_account(DEMO_ACCOUNT)?),
        };
        if let Some(a) = &account {
            changes.push(store::put(&store::account_key(DEMO_ACCOUNT), a)?);
        }
        let token = self.draft_token(DEMO_ACCOUNT)?;
        changes.push(token.change()?);
        let created = match owner {
            Some(_) => {
                store::commit(&self.pool, changes)?;
                None
            }
            None => {
                let new = NewServer {
                    id: DEMO_SERVER_ID,
                    name: DEMO_SERVER_NAME.into(),
                    account: DEMO_ACCOUNT.into(),
                    disk: Disk::Size(DEMO_DISK_BYTES),
                };
                Some(self.create_sized_server(&new, DEMO_DISK_BYTES, changes)?)
            }
        };
        if let Some(a) = account {
            self.reg.lock().accounts.insert(DEMO_ACCOUNT.to_string(), a);
        }
        self.keep_token(&token.rec);
        let server_created = created.is_some();
        let server = match created {
            Some(rec) => self.install_server(rec),
            None => {
                let reg = self.reg.lock();
                let slot = reg.servers.get(&DEMO_SERVER_ID);
                slot.map(admin_view)
                    .ok_or_else(|| ServiceError::Internal("demo server vanished".into()))?
            }
        };
        Ok(Demo {
            token: token.issued(),
            server,
            server_created,
        })
    }
}
