//! cowsnap: a copy-on-write block-storage snapshot engine.
//!
//! A [`Pool`] holds volumes: maps from logical blocks to refcounted physical
//! blocks. A snapshot shares every unchanged block with its volume; creating,
//! restoring and cloning one take constant time, and deleting one frees what
//! it owned alone. See `docs/DESIGN.md` and `docs/FORMAT.md`.

#![forbid(unsafe_code)]

mod catalog;
mod check;
mod codec;
mod error;
pub mod format;
mod info;
mod journal;
mod meta;
/// NBD block export; the wire codecs build without the `server` feature.
pub mod nbd;
/// Bulk copies into a volume with reading and writing overlapped.
pub mod pipeline;
mod pool;
mod rangelock;
mod rawio;
#[cfg(feature = "server")]
pub mod service;
pub mod storage;
pub mod testkit;
mod volume;

pub use catalog::validate_name;
pub use error::{Error, ErrorKind, Location, Result};
pub use format::DEFAULT_BLOCK_SIZE;
pub use info::{CheckReport, PoolStats, SnapshotInfo, VolumeInfo};
pub use pool::{AppDataChange, Pool};
pub use storage::DataCache;
pub use volume::{SnapshotReader, Volume};
