//! `cowsnap volume write`: stream a file (or stdin) into a volume at an
//! offset in block-aligned 4 MiB chunks, then flush.

use crate::chunks::{aligned_len, read_full, CHUNK};
use crate::fail::{CliError, CliResult};
use crate::output::print_text;
use crate::progress::Progress;
use crate::session::with_pool;
use cowsnap::pipeline::{copy_overlapped, Filled};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The bytes to write, and their length when known up front.
struct Input {
    reader: Box<dyn Read>,
    len: Option<u64>,
    name: String,
}

fn open_input(file: &Path) -> CliResult<Input> {
    if file == Path::new("-") {
        return Ok(Input {
            reader: Box::new(std::io::stdin().lock()),
            len: None,
            name: "stdin".into(),
        });
    }
    let name = file.display().to_string();
    let f = File::open(file).map_err(|e| CliError::io(format!("opening {name}"), e))?;
    let meta = f
        .metadata()
        .map_err(|e| CliError::io(format!("reading {name}"), e))?;
    let len = meta.is_file().then_some(meta.len());
    Ok(Input {
        reader: Box::new(f),
        len,
        name,
    })
}

pub fn run(path: &Path, volume: &str, offset: u64, file: &Path) -> CliResult<()> {
    let mut input = open_input(file)?;
    let written = with_pool(path, |pool| {
        let vol = pool.volume(volume)?;
        let size = vol.size();
        let past_end = |len: u64| offset.checked_add(len).is_none_or(|end| end > size);
        if past_end(input.len.unwrap_or(0)) {
            let len = input.len.unwrap_or(0);
            return Err(CliError::Message(format!(
                "{len} bytes at offset {offset} go past the end of volume {volume} ({size} bytes)"
            )));
        }
        let block_size = pool.block_size() as u64;
        let mut progress = Progress::new(format!("writing {}", input.name));
        let mut pos = offset;
        let mut ended = false;
        // Reading the next chunk overlaps writing the previous ones.
        copy_overlapped(
            CHUNK,
            |buf| {
                if ended {
                    return Ok(Filled::End);
                }
                let want = aligned_len(pos, block_size);
                let n = read_full(&mut input.reader, &mut buf[..want])
                    .map_err(|e| CliError::io(format!("reading {}", input.name), e))?;
                if n == 0 {
                    return Ok(Filled::End);
                }
                if past_end(pos - offset + n as u64) {
                    // Returned once every earlier chunk is written.
                    return Err(CliError::Message(format!(
                        "{} is longer than the {} bytes from offset {offset} to the end of volume {volume}; \
                         {} bytes were written before stopping",
                        input.name,
                        size - offset,
                        pos - offset
                    )));
                }
                let at = pos;
                pos += n as u64;
                ended = n < want;
                progress.update(pos - offset, input.len.unwrap_or(0));
                Ok(Filled::Data { pos: at, len: n })
            },
            |data, at| vol.write_at(data, at).map_err(CliError::from),
        )?;
        vol.flush()?;
        progress.finish();
        Ok(pos - offset)
    })?;
    print_text(&format!(
        "wrote {written} bytes to volume {volume} at offset {offset}\n"
    ))
}
