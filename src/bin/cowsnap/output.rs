//! What commands print on stdout: the JSON shapes scripts parse, and short
//! human-readable lines and tables.

use crate::fail::{CliError, CliResult};
use crate::size::format_size;
use cowsnap::{CheckReport, PoolStats, SnapshotInfo, VolumeInfo};
use serde::Serialize;
use std::io::Write;

/// A volume in JSON. Field order is the documented one.
#[derive(Serialize)]
pub struct VolumeJson<'a> {
    id: u64,
    name: &'a str,
    size_bytes: u64,
    allocated_bytes: u64,
}

pub fn volume_json(v: &VolumeInfo) -> VolumeJson<'_> {
    VolumeJson {
        id: v.id,
        name: &v.name,
        size_bytes: v.size_bytes,
        allocated_bytes: v.allocated_bytes,
    }
}

#[derive(Serialize)]
pub struct VolumeRefJson<'a> {
    id: u64,
    name: &'a str,
}

/// A snapshot in JSON: `size_mb` is `size_bytes` in MiB rounded up.
#[derive(Serialize)]
pub struct SnapshotJson<'a> {
    id: u64,
    volume: VolumeRefJson<'a>,
    name: &'a str,
    description: &'a str,
    status: &'a str,
    size_bytes: u64,
    size_mb: u64,
    exclusive_bytes: u64,
    created_at: &'a str,
}

pub fn snapshot_json(s: &SnapshotInfo) -> SnapshotJson<'_> {
    SnapshotJson {
        id: s.id,
        volume: VolumeRefJson {
            id: s.volume_id,
            name: &s.volume_name,
        },
        name: &s.name,
        description: &s.description,
        status: s.status,
        size_bytes: s.size_bytes,
        size_mb: s.size_mb(),
        exclusive_bytes: s.exclusive_bytes,
        created_at: &s.created_at,
    }
}

#[derive(Serialize)]
pub struct CheckJson<'a> {
    ok: bool,
    errors: &'a [String],
    leaked_blocks: u64,
    repaired: u64,
}

pub fn check_json(r: &CheckReport) -> CheckJson<'_> {
    CheckJson {
        ok: r.ok,
        errors: &r.errors,
        leaked_blocks: r.leaked_blocks,
        repaired: r.repaired,
    }
}

#[derive(Serialize)]
pub struct StatsJson {
    block_size: u32,
    used_bytes: u64,
    used_blocks: u64,
    free_blocks: u64,
    metadata_bytes: u64,
    volumes: u64,
    snapshots: u64,
}

pub fn stats_json(s: &PoolStats) -> StatsJson {
    StatsJson {
        block_size: s.block_size,
        used_bytes: s.used_bytes,
        used_blocks: s.used_blocks,
        free_blocks: s.free_blocks,
        metadata_bytes: s.metadata_bytes,
        volumes: s.volumes,
        snapshots: s.snapshots,
    }
}

/// Print a JSON document on stdout.
pub fn print_json(value: &impl Serialize) -> CliResult<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Message(format!("encoding JSON: {e}")))?;
    print_text(&format!("{text}\n"))
}

/// Print text on stdout, reporting a closed or failing stdout as an error
/// instead of panicking the way `println!` does.
pub fn print_text(text: &str) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("writing to stdout", e))
}

pub fn volume_table(volumes: &[VolumeInfo]) -> String {
    let rows = volumes
        .iter()
        .map(|v| {
            vec![
                v.id.to_string(),
                v.name.clone(),
                format_size(v.size_bytes),
                format_size(v.allocated_bytes),
            ]
        })
        .collect();
    table(&["ID", "NAME", "SIZE", "ALLOCATED"], rows)
}

pub fn snapshot_table(snapshots: &[SnapshotInfo]) -> String {
    let rows = snapshots
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.volume_name.clone(),
                s.name.clone(),
                s.created_at.clone(),
                format_size(s.size_bytes),
                format_size(s.exclusive_bytes),
                s.description.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "VOLUME",
            "NAME",
            "CREATED",
            "SIZE",
            "EXCLUSIVE",
            "DESCRIPTION",
        ],
        rows,
    )
}

/// Several labelled lines describing one snapshot.
pub fn snapshot_details(s: &SnapshotInfo) -> String {
    let fields = [
        ("id", s.id.to_string()),
        ("volume", format!("{} (id {})", s.volume_name, s.volume_id)),
        ("name", s.name.clone()),
        ("description", s.description.clone()),
        ("status", s.status.to_string()),
        ("created", s.created_at.clone()),
        (
            "size",
            format!(
                "{} ({} bytes, {} MiB rounded up)",
                format_size(s.size_bytes),
                s.size_bytes,
                s.size_mb()
            ),
        ),
        (
            "exclusive",
            format!(
                "{} ({} bytes)",
                format_size(s.exclusive_bytes),
                s.exclusive_bytes
            ),
        ),
    ];
    fields
        .iter()
        .map(|(k, v)| format!("{k:<12} {v}\n"))
        .collect()
}

pub fn check_summary(r: &CheckReport) -> String {
    let mut out = String::new();
    for e in &r.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    if r.ok {
        out.push_str("ok: no corruption found");
    } else {
        out.push_str(&format!("CORRUPT: {} error(s) found", r.errors.len()));
    }
    out.push_str(&format!(", {} leaked block(s)", r.leaked_blocks));
    if r.repaired > 0 {
        out.push_str(&format!(", {} repaired", r.repaired));
    }
    out.push('\n');
    out
}

pub fn stats_summary(s: &PoolStats) -> String {
    let fields = [
        ("block size", format_size(s.block_size as u64)),
        (
            "used",
            format!("{} ({} blocks)", format_size(s.used_bytes), s.used_blocks),
        ),
        ("free blocks", s.free_blocks.to_string()),
        ("metadata", format_size(s.metadata_bytes)),
        ("volumes", s.volumes.to_string()),
        ("snapshots", s.snapshots.to_string()),
    ];
    fields
        .iter()
        .map(|(k, v)| format!("{k:<12} {v}\n"))
        .collect()
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["ID", "NAME"],
            vec![vec!["10".into(), "a".into()], vec!["2".into(), "bb".into()]],
        );
        assert_eq!(t, "ID  NAME\n10  a\n2   bb\n");
    }
}
