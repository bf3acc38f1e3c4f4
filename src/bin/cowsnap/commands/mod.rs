//! One module per command family; `run` dispatches the parsed command line.

mod account;
mod check;
mod init;
mod nbd;
mod read;
mod serve;
mod server;
mod service_session;
mod snapshot;
mod stats;
mod token;
mod transfer;
mod volume;
mod write;

use crate::args::{
    AccountCommand, Command, ServerCommand, SnapshotCommand, TokenCommand, VolumeCommand,
};
use crate::fail::CliResult;
use std::process::ExitCode;

pub fn run(command: Command) -> CliResult<ExitCode> {
    let done = |r: CliResult<()>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Init { pool, block_size } => done(init::run(&pool, block_size)),
        Command::Volume(v) => done(match v {
            VolumeCommand::Create { pool, volume, size } => volume::create(&pool, &volume, size),
            VolumeCommand::List { pool, json } => volume::list(&pool, json.json),
            VolumeCommand::Delete { pool, volume } => volume::delete(&pool, &volume),
            VolumeCommand::Import {
                pool,
                volume,
                raw_file,
            } => transfer::import(&pool, &volume, &raw_file),
            VolumeCommand::Export {
                pool,
                volume,
                raw_file,
            } => transfer::export_volume(&pool, &volume, &raw_file),
            VolumeCommand::Write {
                pool,
                volume,
                offset,
                file,
            } => write::run(&pool, &volume, offset, &file),
            VolumeCommand::Read {
                pool,
                volume,
                offset,
                length,
                out_file,
            } => read::run(&pool, &volume, offset, length, out_file.as_deref()),
            VolumeCommand::Clone {
                pool,
                snapshot_id,
                new_volume,
            } => volume::clone(&pool, snapshot_id, &new_volume),
        }),
        Command::Snapshot(s) => done(match s {
            SnapshotCommand::Create {
                pool,
                volume,
                name,
                description,
                json,
            } => snapshot::create(&pool, &volume, &name, &description, json.json),
            SnapshotCommand::List { pool, volume, json } => {
                snapshot::list(&pool, volume.as_deref(), json.json)
            }
            SnapshotCommand::Show {
                pool,
                snapshot_id,
                json,
            } => snapshot::show(&pool, snapshot_id, json.json),
            SnapshotCommand::Rename {
                pool,
                snapshot_id,
                name,
                description,
                json,
            } => snapshot::rename(
                &pool,
                snapshot_id,
                name.as_deref(),
                description.as_deref(),
                json.json,
            ),
            SnapshotCommand::Restore { pool, snapshot_id } => snapshot::restore(&pool, snapshot_id),
            SnapshotCommand::Delete { pool, snapshot_id } => snapshot::delete(&pool, snapshot_id),
            SnapshotCommand::Export {
                pool,
                snapshot_id,
                raw_file,
            } => transfer::export_snapshot(&pool, snapshot_id, &raw_file),
        }),
        Command::Check { pool, repair, json } => check::run(&pool, repair, json.json),
        Command::Stats { pool, json } => done(stats::run(&pool, json.json)),
        Command::Serve {
            pool,
            listen,
            demo,
            nbd,
        } => done(serve::run(&pool, &listen, demo, nbd.as_deref())),
        Command::Nbd { pool, listen } => done(nbd::run(&pool, &listen)),
        Command::Account(AccountCommand::Create { pool, account }) => {
            done(account::create(&pool, &account))
        }
        Command::Token(t) => done(match t {
            TokenCommand::Create { pool, account } => token::create(&pool, &account),
            TokenCommand::Revoke { pool, token } => token::revoke(&pool, &token),
            TokenCommand::List {
                pool,
                account,
                json,
            } => token::list(&pool, account.as_deref(), json.json),
        }),
        Command::Server(s) => done(match s {
            ServerCommand::Create {
                pool,
                account,
                id,
                name,
                size,
                image,
                json,
            } => server::create(&pool, &account, id, &name, size, image, json.json),
            ServerCommand::List { pool, json } => server::list(&pool, json.json),
            ServerCommand::Delete { pool, id } => server::delete(&pool, id),
        }),
    }
}
