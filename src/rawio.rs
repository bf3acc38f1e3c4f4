//! Raw disk images in and out. Import skips holes (SEEK_DATA) and zero
//! blocks; export writes only non-zero blocks into a pre-sized file, so the
//! result is sparse. Both move data in large chunks.

use crate::error::{Error, Result};
use crate::info::VolumeInfo;
use crate::pipeline::{copy_overlapped, copy_overlapped_with, Filled};
use crate::pool::Pool;
use crate::volume::is_zero;
use rustix::fs::{seek, SeekFrom};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes moved per step: large enough to amortize syscalls and metadata
/// work; [`crate::pipeline::WRITERS`] + 2 of them are in memory at once.
const CHUNK: u64 = 4 << 20;

fn chunk_size(block_size: u32) -> u64 {
    CHUNK.max(block_size as u64) / block_size as u64 * block_size as u64
}

/// Start of the next data region at or after `at`, or None if only a hole remains.
fn next_data(file: &File, at: u64, len: u64) -> u64 {
    match seek(file, SeekFrom::Data(at)) {
        Ok(pos) => pos,
        // ENXIO: no data past `at`. Any other error: treat everything as data.
        Err(rustix::io::Errno::NXIO) => len,
        Err(_) => at,
    }
}

fn next_hole(file: &File, at: u64, len: u64) -> u64 {
    seek(file, SeekFrom::Hole(at)).unwrap_or(len).min(len)
}

impl Pool {
    /// Load a raw image into a new volume sized to the file, or over an
    /// existing volume of exactly that size. Zero blocks are not stored.
    /// Flushed before it returns.
    pub fn import_raw(
        &self,
        volume: &str,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<VolumeInfo> {
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .len();
        if len == 0 {
            return Err(Error::invalid(
                "image",
                format!("{} is empty", path.display()),
            ));
        }
        let existing = match self.volume_info(volume) {
            Ok(info) if info.size_bytes == len => true,
            Ok(info) => {
                return Err(Error::invalid(
                    "image",
                    format!(
                        "{} has {len} bytes but volume {volume} has {}",
                        path.display(),
                        info.size_bytes
                    ),
                ))
            }
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                self.create_volume(volume, len)?;
                false
            }
            Err(e) => return Err(e),
        };
        let vol = self.volume(volume)?;
        let bs = self.block_size() as u64;
        let chunk = chunk_size(self.block_size());
        let mut pos = 0u64;
        // Reading the next chunk overlaps writing the previous ones.
        copy_overlapped(
            chunk as usize,
            |buf| {
                if pos >= len {
                    return Ok(Filled::End);
                }
                let data_at = next_data(&file, pos, len).min(len);
                // Skip whole blocks of hole; an existing volume must read zeros there too.
                let hole_end = data_at / bs * bs;
                if hole_end > pos {
                    if existing {
                        vol.discard(pos, hole_end - pos)?;
                    }
                    pos = hole_end;
                    progress(pos, len);
                    return Ok(Filled::Skip);
                }
                let data_end = next_hole(&file, data_at, len).max(pos + 1);
                let end = (pos + chunk).min(data_end.div_ceil(bs) * bs).min(len);
                let n = (end - pos) as usize;
                file.read_exact_at(&mut buf[..n], pos)
                    .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                let at = pos;
                pos = end;
                progress(pos, len);
                // The write path unmaps whole zero blocks itself.
                if existing || !is_zero(&buf[..n]) {
                    Ok(Filled::Data { pos: at, len: n })
                } else {
                    Ok(Filled::Skip)
                }
            },
            |data, at| vol.write_at(data, at),
        )?;
        vol.flush()?;
        vol.info()
    }

    /// Write a volume out as a sparse raw file.
    pub fn export_volume(
        &self,
        volume: &str,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let vol = self.volume(volume)?;
        export(
            vol.size(),
            self.block_size(),
            path,
            &|buf, off| vol.read_at(buf, off),
            &|off, len| vol.allocation(off, len),
            progress,
        )
    }

    /// Write a snapshot out as a sparse raw file.
    pub fn export_snapshot(
        &self,
        id: u64,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let snap = self.snapshot_reader(id)?;
        export(
            snap.size(),
            self.block_size(),
            path,
            &|buf, off| snap.read_at(buf, off),
            &|off, len| snap.allocation(off, len),
            progress,
        )
    }
}

/// Reads a range of the source (holes as zeros).
type ReadRange<'a> = dyn Fn(&mut [u8], u64) -> Result<()> + 'a;
/// The source's allocation map: (offset, length, allocated) extents.
type MapRange<'a> = dyn Fn(u64, u64) -> Result<Vec<(u64, u64, bool)>> + 'a;

/// Pre-size the output so what is never written stays a hole, then copy
/// every chunk holding mapped blocks, writing only its non-zero 4 KiB runs.
/// Reading the next chunk overlaps writing the previous ones.
fn export(
    size: u64,
    block_size: u32,
    path: &Path,
    read: &ReadRange,
    map: &MapRange,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let out = OutputFile::create(path)?;
    out.file
        .set_len(size)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    let chunk = chunk_size(block_size);
    let mut pos = 0u64;
    // One writer: buffered writes to one output file serialize on its
    // inode lock, and a second writer spun on it (perf).
    copy_overlapped_with(
        1,
        chunk as usize,
        |buf| {
            if pos >= size {
                return Ok(Filled::End);
            }
            let n = chunk.min(size - pos);
            let at = pos;
            pos += n;
            progress(pos, size);
            if !map(at, n)?.iter().any(|&(_, _, allocated)| allocated) {
                return Ok(Filled::Skip);
            }
            read(&mut buf[..n as usize], at)?;
            Ok(Filled::Data {
                pos: at,
                len: n as usize,
            })
        },
        |data, at| out.write_nonzero(data, at),
    )
}

/// An export's output file. Written buffered, like `cp`: an export need not
/// be durable when it returns, and recycled page-cache pages are the cheapest
/// place to put it (writing it direct measured 2-3x slower here).
struct OutputFile {
    file: File,
    name: String,
}

impl OutputFile {
    fn create(path: &Path) -> Result<OutputFile> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(format!("creating {name}"), e))?;
        Ok(OutputFile { file, name })
    }

    /// Write the 4 KiB runs of `data` that are not all zeros at `at + offset`;
    /// zero runs stay holes.
    fn write_nonzero(&self, data: &[u8], at: u64) -> Result<()> {
        const RUN: usize = 4096;
        let zero_at = |i: usize| is_zero(&data[i..(i + RUN).min(data.len())]);
        let mut i = 0;
        while i < data.len() {
            if zero_at(i) {
                i += RUN;
                continue;
            }
            let mut j = i + RUN;
            while j < data.len() && !zero_at(j) {
                j += RUN;
            }
            let j = j.min(data.len());
            self.file
                .write_all_at(&data[i..j], at + i as u64)
                .map_err(|e| Error::io(format!("writing {}", self.name), e))?;
            i = j;
        }
        Ok(())
    }
}
