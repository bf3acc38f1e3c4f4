//! The command-line grammar. Scripts depend on it: keep names, positions and
//! flags stable.

use crate::size::{parse_block_size, parse_size};
use clap::{ArgGroup, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cowsnap",
    version,
    about = "Copy-on-write block-storage snapshots: volumes, snapshots, restore, clone",
    after_help = "Sizes accept K, M, G and T suffixes (powers of 1024), optionally followed by iB or B: 4096, 64M, 16GiB."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How the pool's data file uses the kernel's page cache, like QEMU's
    /// cache=none / cache=writeback (docs/DESIGN.md).
    #[arg(long, global = true, value_enum, default_value = "direct")]
    pub data_cache: DataCacheArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DataCacheArg {
    /// Around the page cache (O_DIRECT).
    Direct,
    /// Through the page cache.
    PageCache,
}

impl From<DataCacheArg> for cowsnap::DataCache {
    fn from(a: DataCacheArg) -> Self {
        match a {
            DataCacheArg::Direct => cowsnap::DataCache::Direct,
            DataCacheArg::PageCache => cowsnap::DataCache::PageCache,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new, empty pool in a directory.
    Init {
        /// Pool directory (created if missing).
        pool: PathBuf,
        /// Data block size: a power of two from 4K to 1M.
        #[arg(long, value_name = "SIZE", default_value = "64K", value_parser = parse_block_size)]
        block_size: u32,
    },
    /// Create, list, delete, import, export, read, write and clone volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Create, list, show, rename, restore, delete and export snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Verify the pool's integrity; exits 1 when corruption is found.
    Check {
        pool: PathBuf,
        /// Reclaim leaked blocks (corruption is reported, never "repaired").
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Show pool-wide usage figures.
    Stats {
        pool: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Run the REST snapshot service (docs/SERVICE.md) until Ctrl-C or SIGTERM.
    Serve {
        /// Pool directory; created on first run.
        #[arg(long, value_name = "POOL", default_value = "./cowsnap-data")]
        pool: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Also set up account demo (a new token each run) and server web-server-01 (id 12345).
        #[arg(long)]
        demo: bool,
        /// Also export volumes over NBD (docs/NBD.md): HOST:PORT, a port (on 127.0.0.1), or unix:PATH.
        #[arg(long, value_name = "ADDR")]
        nbd: Option<String>,
    },
    /// Export the pool's volumes and snapshots over NBD alone, until Ctrl-C or SIGTERM (docs/NBD.md).
    Nbd {
        pool: PathBuf,
        /// HOST:PORT, a port (on 127.0.0.1), or unix:PATH.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:10809")]
        listen: String,
    },
    /// Create service accounts (while the service is stopped).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Create, list and revoke API tokens (while the service is stopped).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create, list and delete service servers (while the service is stopped).
    #[command(subcommand)]
    Server(ServerCommand),
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account.
    Create { pool: PathBuf, account: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for an account; prints only the token, once.
    Create {
        pool: PathBuf,
        #[arg(long, value_name = "ACCOUNT")]
        account: String,
    },
    /// Revoke a token: its id (tok_...), a unique prefix of the id, or the token itself.
    Revoke {
        pool: PathBuf,
        #[arg(value_name = "TOKEN_PREFIX_OR_ID")]
        token: String,
    },
    /// List tokens (ids, never secrets).
    List {
        pool: PathBuf,
        #[arg(long, value_name = "ACCOUNT")]
        account: Option<String>,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Create a server with an empty disk or from a raw image.
    #[command(group(ArgGroup::new("disk").required(true).args(["size", "image"])))]
    Create {
        pool: PathBuf,
        #[arg(long, value_name = "ACCOUNT")]
        account: String,
        #[arg(long, value_name = "ID")]
        id: u64,
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Disk size, e.g. 64M, 20G.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        size: Option<u64>,
        /// Raw image file; the disk takes its size.
        #[arg(long, value_name = "RAW_FILE")]
        image: Option<PathBuf>,
        #[command(flatten)]
        json: Json,
    },
    /// List servers.
    List {
        pool: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Delete a server, its disk and its snapshots, freeing their blocks.
    Delete {
        pool: PathBuf,
        #[arg(value_name = "ID")]
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create an empty volume.
    Create {
        pool: PathBuf,
        volume: String,
        /// Volume size, e.g. 4096, 64M, 16G.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        size: u64,
    },
    /// List volumes.
    List {
        pool: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Delete a volume and all its snapshots.
    Delete { pool: PathBuf, volume: String },
    /// Import a raw image: a new volume sized to the file, or overwrite a same-size one.
    Import {
        pool: PathBuf,
        volume: String,
        raw_file: PathBuf,
    },
    /// Export a volume to a sparse raw image.
    Export {
        pool: PathBuf,
        volume: String,
        raw_file: PathBuf,
    },
    /// Write a file's bytes into a volume at an offset ('-' reads stdin).
    Write {
        pool: PathBuf,
        volume: String,
        /// Byte offset in the volume (suffixes allowed).
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        offset: u64,
        /// Input file, or '-' for stdin.
        file: PathBuf,
    },
    /// Read bytes from a volume to a file or stdout.
    Read {
        pool: PathBuf,
        volume: String,
        /// Byte offset in the volume (suffixes allowed).
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        offset: u64,
        /// Number of bytes to read (suffixes allowed).
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        length: u64,
        /// Output file; stdout when absent or '-'.
        out_file: Option<PathBuf>,
    },
    /// Create a new volume from a snapshot, sharing its blocks.
    Clone {
        pool: PathBuf,
        snapshot_id: u64,
        new_volume: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a point-in-time snapshot of a volume.
    Create {
        pool: PathBuf,
        volume: String,
        name: String,
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        #[command(flatten)]
        json: Json,
    },
    /// List snapshots, newest first.
    List {
        pool: PathBuf,
        /// Only this volume's snapshots.
        #[arg(long, value_name = "VOLUME")]
        volume: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Show one snapshot.
    Show {
        pool: PathBuf,
        snapshot_id: u64,
        #[command(flatten)]
        json: Json,
    },
    /// Change a snapshot's name and/or description.
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["name", "description"])))]
    Rename {
        pool: PathBuf,
        snapshot_id: u64,
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Make the volume's content that of the snapshot (the snapshot stays).
    Restore { pool: PathBuf, snapshot_id: u64 },
    /// Delete a snapshot, freeing the blocks only it used.
    Delete { pool: PathBuf, snapshot_id: u64 },
    /// Export a snapshot to a sparse raw image.
    Export {
        pool: PathBuf,
        snapshot_id: u64,
        raw_file: PathBuf,
    },
}

/// The `--json` switch shared by commands that print objects.
#[derive(Debug, Clone, Copy, Args)]
pub struct Json {
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }
}
