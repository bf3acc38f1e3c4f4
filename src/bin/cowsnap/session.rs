//! Opening a pool for one command and closing it (which checkpoints) afterwards.

use crate::fail::{CliError, CliResult};
use cowsnap::{DataCache, ErrorKind, Pool};
use std::path::Path;
use std::sync::OnceLock;

static DATA_CACHE: OnceLock<DataCache> = OnceLock::new();

/// The `--data-cache` choice, for every pool this process opens.
pub fn set_data_cache(mode: DataCache) {
    let _ = DATA_CACHE.set(mode);
}

pub fn data_cache() -> DataCache {
    DATA_CACHE.get().copied().unwrap_or_default()
}

/// Open the pool at `path`, run `body`, then close the pool whatever `body`
/// returned, so completed work is committed. `body`'s error wins over a
/// close error.
pub fn with_pool<T>(path: &Path, body: impl FnOnce(&Pool) -> CliResult<T>) -> CliResult<T> {
    let pool = open(path)?;
    let out = body(&pool);
    let closed = pool.close();
    let value = out?;
    closed?;
    Ok(value)
}

fn open(path: &Path) -> CliResult<Pool> {
    Pool::open_with(path, data_cache()).map_err(|e| match e.kind() {
        ErrorKind::NotFound => CliError::Message(format!(
            "no cowsnap pool at {} (create one with 'cowsnap init {}')",
            path.display(),
            path.display()
        )),
        _ => CliError::Engine(e),
    })
}
