//! Block export over the Network Block Device protocol, so hypervisors
//! (QEMU, the kernel's `nbd` client, libnbd tools, fio) read and write
//! volumes, and copy snapshots, from the process that owns the pool.
//!
//! - A volume is exported read-write under its name; a snapshot read-only
//!   as `<volume>@<snapshot_id>`.
//! - [`ExportControl`] lets the service withdraw a volume's read-write
//!   export (server stop, restore): its connections flush and close first.
//! - [`serve`] runs the listener inside a Tokio runtime; [`BackgroundServer`]
//!   runs it on its own thread.
//!
//! The wire codecs ([`option`], [`request`], [`reply`], [`consts`]) and the
//! option-negotiation state machine ([`negotiation`]) are pure functions
//! over bytes and build without the `server` feature, so they can be fuzzed
//! ([`fuzz`]). See `docs/NBD.md`.

pub mod consts;
pub mod fuzz;
pub mod negotiation;
pub mod option;
pub mod reply;
pub mod request;

#[cfg(feature = "server")]
mod admission;
#[cfg(feature = "server")]
mod background;
#[cfg(feature = "server")]
mod budget;
#[cfg(feature = "server")]
mod control;
#[cfg(feature = "server")]
mod exec;
#[cfg(feature = "server")]
mod export;
#[cfg(feature = "server")]
mod frames;
#[cfg(feature = "server")]
mod handshake;
#[cfg(feature = "server")]
mod limits;
#[cfg(feature = "server")]
mod listener;
#[cfg(feature = "server")]
mod session;
#[cfg(feature = "server")]
mod status;
#[cfg(feature = "server")]
mod writer;

#[cfg(feature = "server")]
pub use background::BackgroundServer;
#[cfg(feature = "server")]
pub use control::ExportControl;
#[cfg(feature = "server")]
pub use limits::Limits;
#[cfg(feature = "server")]
pub use listener::{serve, serve_with, Address, Listener, SocketFile};
