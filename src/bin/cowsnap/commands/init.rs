//! `cowsnap init`: create a pool.

use crate::fail::CliResult;
use crate::output::print_text;
use crate::size::format_size;
use cowsnap::Pool;
use std::path::Path;

pub fn run(path: &Path, block_size: u32) -> CliResult<()> {
    Pool::create_with(path, block_size, crate::session::data_cache())?.close()?;
    print_text(&format!(
        "created pool {} (block size {})\n",
        path.display(),
        format_size(block_size as u64)
    ))
}
