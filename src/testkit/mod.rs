//! Shared by the model-based proptest and the fuzz targets: one operation
//! enum, a plain in-memory model, and a runner that checks the engine
//! against the model, with and without power cuts.
//!
//! - [`op`]: [`Op`] and the fuzzers' byte decoder [`decode_ops`].
//! - [`model`]: [`Model`], the expected bytes of every volume and snapshot.
//! - [`runner`]: [`run_model`] (fault-free, exact) and [`run_crash`] (power
//!   cut at a sync or disk op, torn writes, recovery verified).
//! - [`fuzz`]: the bodies of the cargo-fuzz targets in `fuzz/`.

pub mod fuzz;
pub mod model;
pub mod op;
pub mod runner;

pub use model::Model;
pub use op::{decode_ops, encode_ops, Op};
pub use runner::{
    run_crash, run_crash_on, run_crash_with, run_model, run_model_on, CrashRun, Cut, Harness,
    Layout, ModelRun,
};
