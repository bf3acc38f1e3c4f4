//! `cowsnap`: a thin command-line front end to the cowsnap library.
//!
//! Output contract: results on stdout (JSON with `--json`), errors on stderr
//! as one `cowsnap: error: ...` line. Exit 0 on success, 1 when the engine or
//! a file fails (or `check` finds corruption), 2 for usage errors.

#![forbid(unsafe_code)]

mod args;
mod chunks;
mod commands;
mod fail;
mod output;
mod progress;
mod session;
mod size;
mod usage;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage::exit_with(e),
    };
    session::set_data_cache(cli.data_cache.into());
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            fail::report(&e.to_string());
            ExitCode::FAILURE
        }
    }
}
