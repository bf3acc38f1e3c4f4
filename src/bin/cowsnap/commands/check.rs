//! `cowsnap check`: the integrity check. The report is printed either way;
//! the exit code says whether corruption was found.

use crate::fail::{CliError, CliResult};
use crate::output::{check_json, check_summary, print_json, print_text};
use crate::session::with_pool;
use cowsnap::{CheckReport, ErrorKind};
use std::path::Path;
use std::process::ExitCode;

pub fn run(path: &Path, repair: bool, json: bool) -> CliResult<ExitCode> {
    let report = match with_pool(path, |pool| Ok(pool.check(repair)?)) {
        Ok(report) => report,
        // A pool too damaged to open is the check's finding, not a failure
        // to run it: scripts reading --json get a report either way.
        Err(CliError::Engine(e))
            if json && matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::UnsupportedVersion) =>
        {
            CheckReport {
                ok: false,
                errors: vec![e.to_string()],
                ..CheckReport::default()
            }
        }
        Err(e) => return Err(e),
    };
    if json {
        print_json(&check_json(&report))?;
    } else {
        print_text(&check_summary(&report))?;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
