//! `cowsnap snapshot create|list|show|rename|restore|delete`.

use crate::fail::CliResult;
use crate::output::{print_json, print_text, snapshot_details, snapshot_json, snapshot_table};
use crate::session::with_pool;
use cowsnap::SnapshotInfo;
use std::path::Path;

/// Print one snapshot as JSON or as labelled lines.
fn print_one(info: &SnapshotInfo, json: bool) -> CliResult<()> {
    if json {
        print_json(&snapshot_json(info))
    } else {
        print_text(&snapshot_details(info))
    }
}

pub fn create(
    path: &Path,
    volume: &str,
    name: &str,
    description: &str,
    json: bool,
) -> CliResult<()> {
    let info = with_pool(path, |pool| {
        Ok(pool.create_snapshot(volume, name, description)?)
    })?;
    if json {
        print_json(&snapshot_json(&info))
    } else {
        print_text(&format!(
            "created snapshot {} ({}) of volume {}\n",
            info.id, info.name, info.volume_name
        ))
    }
}

pub fn list(path: &Path, volume: Option<&str>, json: bool) -> CliResult<()> {
    let snapshots = with_pool(path, |pool| Ok(pool.list_snapshots(volume)?))?;
    if json {
        print_json(&snapshots.iter().map(snapshot_json).collect::<Vec<_>>())
    } else {
        print_text(&snapshot_table(&snapshots))
    }
}

pub fn show(path: &Path, id: u64, json: bool) -> CliResult<()> {
    let info = with_pool(path, |pool| Ok(pool.snapshot(id)?))?;
    print_one(&info, json)
}

pub fn rename(
    path: &Path,
    id: u64,
    name: Option<&str>,
    description: Option<&str>,
    json: bool,
) -> CliResult<()> {
    let info = with_pool(path, |pool| {
        Ok(pool.update_snapshot(id, name, description)?)
    })?;
    print_one(&info, json)
}

pub fn restore(path: &Path, id: u64) -> CliResult<()> {
    let (snap, volume) = with_pool(path, |pool| {
        let snap = pool.snapshot(id)?;
        let volume = pool.restore_snapshot(id)?;
        Ok((snap, volume))
    })?;
    print_text(&format!(
        "restored volume {} to snapshot {} ({})\n",
        volume.name, snap.id, snap.name
    ))
}

pub fn delete(path: &Path, id: u64) -> CliResult<()> {
    with_pool(path, |pool| Ok(pool.delete_snapshot(id)?))?;
    print_text(&format!("deleted snapshot {id}\n"))
}
