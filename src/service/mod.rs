//! The REST snapshot service: multi-tenant accounts, servers and snapshots
//! over one pool, served as the JSON API documented in `docs/SERVICE.md`.
//!
//! [`Service`] holds the state and blocking operations (the CLI uses it
//! directly); [`http`] puts the API on top; [`run`] serves it until asked to
//! stop.

mod accounts;
mod connections;
mod core;
mod demo;
mod error;
pub mod http;
mod idempotency;
mod model;
mod registry;
pub mod run;
mod server_create;
mod servers;
mod settings;
mod snapshots;
mod store;
mod token;
mod views;

pub use self::core::{Caller, Service};
pub use demo::{Demo, DEMO_ACCOUNT, DEMO_DISK_BYTES, DEMO_SERVER_ID, DEMO_SERVER_NAME};
pub use error::{FieldErrors, ServiceError};
pub use idempotency::{
    fingerprint as idempotency_fingerprint, Answer, IdemStart, IdemTicket, Keyed,
};
pub use model::{ServerStatus, ADMIN_ACCOUNT, MAX_SERVER_ID, SNAPSHOT_LIMIT};
pub use servers::{Disk, NewServer, ServerHold};
pub use settings::Settings;
pub use snapshots::Page;
pub use views::{
    AccountView, AdminServerView, NewToken, Restored, ServerRef, ServerView, SnapshotView,
    TokenView,
};
