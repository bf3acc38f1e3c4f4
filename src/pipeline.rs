//! Bulk copies into a volume with reading and writing overlapped: the caller's
//! thread fills chunk buffers from the source while writer threads put the
//! previous chunks into the engine. Direct writes of a chunk wait on the
//! device, so a sequential read-then-write loop would leave the device idle
//! while it reads, and the reader idle while the device writes.

use crate::storage::AlignedBuf;
use parking_lot::Mutex;
use std::sync::mpsc::{sync_channel, Receiver};

/// Chunks being written at once; one more is being filled.
pub const WRITERS: usize = 2;

/// What the producer made of one buffer.
pub enum Filled {
    /// `len` bytes of the buffer belong at volume offset `pos`.
    Data { pos: u64, len: usize },
    /// Nothing to write this time (a hole was handled, say); call again.
    Skip,
    /// The source is done.
    End,
}

/// Copy with overlap. `fill` runs on the calling thread and fills a
/// buffer of `chunk` bytes; `write` runs on [`WRITERS`] threads, each on
/// its own chunk. A `write` error stops the copy (chunks not yet started
/// are dropped) and is returned. A `fill` error stops the filling and is
/// returned once every chunk handed out before it has been written.
pub fn copy_overlapped<E: Send>(
    chunk: usize,
    fill: impl FnMut(&mut [u8]) -> Result<Filled, E>,
    write: impl Fn(&[u8], u64) -> Result<(), E> + Sync,
) -> Result<(), E> {
    copy_overlapped_with(WRITERS, chunk, fill, write)
}

/// [`copy_overlapped`] with `writers` writer threads (at least one). One
/// suits a destination whose writes serialize anyway (buffered writes to
/// one file take its inode lock), where a second writer only spins.
pub fn copy_overlapped_with<E: Send>(
    writers: usize,
    chunk: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<Filled, E>,
    write: impl Fn(&[u8], u64) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let writers = writers.max(1);
    // A write error stops the writers; a fill error only stops the filling,
    // so the chunks handed out before it are still written.
    let write_error: Mutex<Option<E>> = Mutex::new(None);
    let mut fill_error: Option<E> = None;
    let (to_writers, work) = sync_channel::<(AlignedBuf, u64, usize)>(writers);
    let (give_back, free) = sync_channel::<AlignedBuf>(writers + 2);
    for _ in 0..writers + 2 {
        // Cannot fail: the channel holds every buffer.
        let _ = give_back.send(AlignedBuf::zeroed(chunk));
    }
    let work = Mutex::new(work);
    std::thread::scope(|s| {
        for _ in 0..writers {
            let (work, give_back, write, write_error) =
                (&work, give_back.clone(), &write, &write_error);
            s.spawn(move || {
                while let Some((buf, pos, len)) = next(work) {
                    if write_error.lock().is_none() {
                        if let Err(e) = write(&buf[..len], pos) {
                            write_error.lock().get_or_insert(e);
                        }
                    }
                    let _ = give_back.send(buf);
                }
            });
        }
        drop(give_back);
        // A buffer `fill` did not use, kept for the next fill.
        let mut spare: Option<AlignedBuf> = None;
        loop {
            if write_error.lock().is_some() {
                break;
            }
            // Writers hand every buffer back until they all stop.
            let mut buf = match spare.take() {
                Some(buf) => buf,
                None => match free.recv() {
                    Ok(buf) => buf,
                    Err(_) => break,
                },
            };
            match fill(&mut buf) {
                Ok(Filled::Data { pos, len }) => {
                    if to_writers.send((buf, pos, len)).is_err() {
                        break;
                    }
                }
                Ok(Filled::Skip) => spare = Some(buf),
                Ok(Filled::End) => break,
                Err(e) => {
                    fill_error = Some(e);
                    break;
                }
            }
        }
        drop(to_writers);
    });
    match write_error.into_inner().or(fill_error) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The next chunk for a writer; None once the producer has finished.
fn next(work: &Mutex<Receiver<(AlignedBuf, u64, usize)>>) -> Option<(AlignedBuf, u64, usize)> {
    work.lock().recv().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A producer of `n` chunks of `chunk` bytes, chunk i filled with byte i,
    /// with every third call a Skip.
    fn producer(n: u64, chunk: usize) -> impl FnMut(&mut [u8]) -> Result<Filled, String> {
        let (mut i, mut calls) = (0u64, 0u64);
        move |buf| {
            calls += 1;
            if calls % 3 == 0 {
                return Ok(Filled::Skip);
            }
            if i == n {
                return Ok(Filled::End);
            }
            buf.fill(i as u8);
            i += 1;
            Ok(Filled::Data {
                pos: (i - 1) * chunk as u64,
                len: chunk,
            })
        }
    }

    #[test]
    fn every_chunk_is_written_once_with_its_bytes() {
        for writers in [0, 1, WRITERS, 5] {
            let seen = Mutex::new(BTreeMap::new());
            copy_overlapped_with(writers, 4096, producer(50, 4096), |data, pos| {
                let prev = seen.lock().insert(pos, data.to_vec());
                assert!(prev.is_none(), "chunk at {pos} written twice");
                Ok::<(), String>(())
            })
            .unwrap();
            let seen = seen.into_inner();
            assert_eq!(seen.len(), 50, "{writers} writers");
            for (i, (pos, data)) in seen.iter().enumerate() {
                assert_eq!(*pos, i as u64 * 4096);
                assert!(data.iter().all(|&b| b == i as u8));
            }
        }
    }

    #[test]
    fn a_fill_error_comes_after_every_earlier_chunk_is_written() {
        let written = Mutex::new(Vec::new());
        let mut inner = producer(u64::MAX, 512);
        let mut made = 0;
        let r = copy_overlapped(
            512,
            |buf| {
                let f = inner(buf)?;
                if let Filled::Data { .. } = f {
                    made += 1;
                    if made == 10 {
                        return Err("source broke".to_string());
                    }
                }
                Ok(f)
            },
            |_, pos| {
                written.lock().push(pos);
                Ok(())
            },
        );
        assert_eq!(r, Err("source broke".to_string()));
        let mut w = written.into_inner();
        w.sort();
        assert_eq!(w, (0..9).map(|i| i * 512).collect::<Vec<u64>>());
    }

    #[test]
    fn a_write_error_stops_the_copy_and_is_returned() {
        let calls = Mutex::new(0u64);
        let r = copy_overlapped(512, producer(u64::MAX, 512), |_, pos| {
            *calls.lock() += 1;
            if pos == 5 * 512 {
                Err(format!("disk full at {pos}"))
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err("disk full at 2560".to_string()));
        // The producer stops soon after: at most the chunks already handed out.
        assert!(*calls.lock() <= 6 + (WRITERS as u64 + 2));
    }
}
