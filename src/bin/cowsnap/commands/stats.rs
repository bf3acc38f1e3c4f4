//! `cowsnap stats`: pool-wide usage.

use crate::fail::CliResult;
use crate::output::{print_json, print_text, stats_json, stats_summary};
use crate::session::with_pool;
use std::path::Path;

pub fn run(path: &Path, json: bool) -> CliResult<()> {
    let stats = with_pool(path, |pool| Ok(pool.stats()))?;
    if json {
        print_json(&stats_json(&stats))
    } else {
        print_text(&stats_summary(&stats))
    }
}
