//! `cowsnap server create|list|delete`: the servers whose disks the service
//! snapshots.

use super::service_session::with_service;
use crate::fail::CliResult;
use crate::output::{print_json, print_text};
use crate::size::format_size;
use cowsnap::service::{AdminServerView, Disk, NewServer};
use std::path::{Path, PathBuf};

pub fn create(
    path: &Path,
    account: &str,
    id: u64,
    name: &str,
    size: Option<u64>,
    image: Option<PathBuf>,
    json: bool,
) -> CliResult<()> {
    // clap's group makes exactly one of them present.
    let disk = match image {
        Some(file) => Disk::Image(file),
        None => Disk::Size(size.unwrap_or_default()),
    };
    let new = NewServer {
        id,
        name: name.to_string(),
        account: account.to_string(),
        disk,
    };
    let server = with_service(path, |svc| svc.create_server(new))?;
    if json {
        return print_json(&server);
    }
    print_text(&format!(
        "created server {} (id {}, account {}, disk {})\n",
        server.server.name,
        server.server.id,
        server.account,
        format_size(server.server.disk_size_bytes)
    ))
}

pub fn list(path: &Path, json: bool) -> CliResult<()> {
    let servers = with_service(path, |svc| Ok(svc.list_all_servers()))?;
    if json {
        return print_json(&servers);
    }
    print_text(&table(&servers))
}

/// The server, its disk and its snapshots go in one engine commit.
pub fn delete(path: &Path, id: u64) -> CliResult<()> {
    let gone = with_service(path, |svc| svc.delete_server(id))?;
    print_text(&format!(
        "deleted server {} (id {}, account {}) with its disk {} and {} snapshots\n",
        gone.server.name, gone.server.id, gone.account, gone.volume, gone.server.snapshot_count
    ))
}

fn table(servers: &[AdminServerView]) -> String {
    let mut out = format!(
        "{:<10}  {:<24}  {:<16}  {:<9}  {:>10}  {}\n",
        "ID", "NAME", "ACCOUNT", "STATUS", "DISK", "SNAPSHOTS"
    );
    for s in servers {
        out.push_str(&format!(
            "{:<10}  {:<24}  {:<16}  {:<9}  {:>10}  {}/{}\n",
            s.server.id,
            s.server.name,
            s.account,
            s.server.status,
            format_size(s.server.disk_size_bytes),
            s.server.snapshot_count,
            s.server.snapshot_limit
        ));
    }
    out
}
