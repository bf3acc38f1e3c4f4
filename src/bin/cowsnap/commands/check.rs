//! `cowsnap check`: the integrity check. The report is printed either way;
//! the exit code says whether corruption was found.

use crate::fail::CliResult;
use crate::output::{check_json, check_summary, print_json, print_text};
use crate::session::with_pool;
use std::path::Path;
use std::process::ExitCode;

pub fn run(path: &Path, repair: bool, json: bool) -> CliResult<ExitCode> {
    let report = with_pool(path, |pool| Ok(pool.check(repair)?))?;
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
