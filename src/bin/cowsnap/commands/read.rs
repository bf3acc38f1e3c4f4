//! `cowsnap volume read`: copy a byte range of a volume to a file or stdout
//! in 4 MiB chunks.

use crate::chunks::{aligned_len, CHUNK};
use crate::fail::{CliError, CliResult};
use crate::progress::Progress;
use crate::session::with_pool;
use std::fs::File;
use std::io::Write;
use std::path::Path;

pub fn run(
    path: &Path,
    volume: &str,
    offset: u64,
    length: u64,
    out_file: Option<&Path>,
) -> CliResult<()> {
    let out_file = out_file.filter(|p| *p != Path::new("-"));
    with_pool(path, |pool| {
        let vol = pool.volume(volume)?;
        let size = vol.size();
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(CliError::Message(format!(
                "{length} bytes at offset {offset} go past the end of volume {volume} ({size} bytes)"
            )));
        }
        let (mut out, out_name): (Box<dyn Write>, String) = match out_file {
            Some(p) => {
                let name = p.display().to_string();
                let f = File::create(p).map_err(|e| CliError::io(format!("creating {name}"), e))?;
                (Box::new(f), name)
            }
            None => (Box::new(std::io::stdout().lock()), "stdout".to_string()),
        };
        let write_err = |e| CliError::io(format!("writing {out_name}"), e);
        // A progress line would garble a terminal that also shows the data.
        let mut progress = out_file.map(|_| Progress::new(format!("reading volume {volume}")));
        let block_size = pool.block_size() as u64;
        let mut buf = vec![0u8; CHUNK];
        let mut pos = offset;
        let end = offset + length;
        while pos < end {
            let n = (aligned_len(pos, block_size) as u64).min(end - pos) as usize;
            vol.read_at(&mut buf[..n], pos)?;
            out.write_all(&buf[..n]).map_err(write_err)?;
            pos += n as u64;
            if let Some(p) = progress.as_mut() {
                p.update(pos - offset, length);
            }
        }
        out.flush().map_err(write_err)?;
        if let Some(p) = progress.as_mut() {
            p.finish();
        }
        Ok(())
    })
}
