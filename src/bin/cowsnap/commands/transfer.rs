//! `cowsnap volume import|export` and `snapshot export`: whole raw images,
//! through the library's sparse-aware import and export.

use crate::fail::CliResult;
use crate::output::print_text;
use crate::progress::Progress;
use crate::session::with_pool;
use crate::size::format_size;
use std::path::Path;

pub fn import(path: &Path, volume: &str, raw_file: &Path) -> CliResult<()> {
    let info = with_pool(path, |pool| {
        let mut progress = Progress::new(format!("importing {}", raw_file.display()));
        let info = pool.import_raw(volume, raw_file, &mut |done, total| {
            progress.update(done, total)
        })?;
        progress.finish();
        Ok(info)
    })?;
    print_text(&format!(
        "imported {} into volume {} ({}, {} allocated)\n",
        raw_file.display(),
        info.name,
        format_size(info.size_bytes),
        format_size(info.allocated_bytes)
    ))
}

pub fn export_volume(path: &Path, volume: &str, raw_file: &Path) -> CliResult<()> {
    with_pool(path, |pool| {
        let mut progress = Progress::new(format!("exporting volume {volume}"));
        pool.export_volume(volume, raw_file, &mut |done, total| {
            progress.update(done, total)
        })?;
        progress.finish();
        Ok(())
    })?;
    print_text(&format!(
        "exported volume {volume} to {}\n",
        raw_file.display()
    ))
}

pub fn export_snapshot(path: &Path, id: u64, raw_file: &Path) -> CliResult<()> {
    with_pool(path, |pool| {
        let mut progress = Progress::new(format!("exporting snapshot {id}"));
        pool.export_snapshot(id, raw_file, &mut |done, total| {
            progress.update(done, total)
        })?;
        progress.finish();
        Ok(())
    })?;
    print_text(&format!(
        "exported snapshot {id} to {}\n",
        raw_file.display()
    ))
}
