//! What `serve --demo` sets up: an account with a fresh token and the server
//! the API documentation's examples use.

use super::core::Service;
use super::error::ServiceError;
use super::servers::{Disk, NewServer};
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
    pub fn ensure_demo(&self) -> Result<Demo, ServiceError> {
        if !self.reg.lock().accounts.contains_key(DEMO_ACCOUNT) {
            self.create_account(DEMO_ACCOUNT)?;
        }
        let existing = self
            .list_all_servers()
            .into_iter()
            .find(|s| s.server.id == DEMO_SERVER_ID);
        let (server, server_created) = match existing {
            Some(s) => (s, false),
            None => (
                self.create_server(NewServer {
                    id: DEMO_SERVER_ID,
                    name: DEMO_SERVER_NAME.into(),
                    account: DEMO_ACCOUNT.into(),
                    disk: Disk::Size(DEMO_DISK_BYTES),
                })?,
                true,
            ),
        };
        let token = self.create_token(DEMO_ACCOUNT)?;
        Ok(Demo {
            token,
            server,
            server_created,
        })
    }
}
