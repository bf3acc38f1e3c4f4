//! `cowsnap volume create|list|delete|clone`: the volume catalog.

use crate::fail::CliResult;
use crate::output::{print_json, print_text, volume_json, volume_table};
use crate::session::with_pool;
use crate::size::format_size;
use std::path::Path;

pub fn create(path: &Path, name: &str, size: u64) -> CliResult<()> {
    let info = with_pool(path, |pool| Ok(pool.create_volume(name, size)?))?;
    print_text(&format!(
        "created volume {} (id {}, {})\n",
        info.name,
        info.id,
        format_size(info.size_bytes)
    ))
}

pub fn list(path: &Path, json: bool) -> CliResult<()> {
    let volumes = with_pool(path, |pool| Ok(pool.list_volumes()))?;
    if json {
        print_json(&volumes.iter().map(volume_json).collect::<Vec<_>>())
    } else {
        print_text(&volume_table(&volumes))
    }
}

pub fn delete(path: &Path, name: &str) -> CliResult<()> {
    with_pool(path, |pool| Ok(pool.delete_volume(name)?))?;
    print_text(&format!("deleted volume {name} and its snapshots\n"))
}

pub fn clone(path: &Path, snapshot_id: u64, new_name: &str) -> CliResult<()> {
    let info = with_pool(path, |pool| Ok(pool.clone_snapshot(snapshot_id, new_name)?))?;
    print_text(&format!(
        "created volume {} (id {}, {}) from snapshot {snapshot_id}\n",
        info.name,
        info.id,
        format_size(info.size_bytes)
    ))
}
