//! The operations a model-based test or a fuzz target drives a pool with,
//! and a deterministic byte decoder (and its inverse) for fuzzers.
//!
//! Indices (`vol`, `snap`) pick among the *live* volumes or snapshots, in
//! creation order, modulo their count; offsets and lengths are reduced to
//! the chosen volume by the runner. So every `Op` is meaningful in every
//! state, and shrinking or mutating a sequence never makes it invalid.

/// One step of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write `len` bytes of a pattern derived from `seed` (all zeros when
    /// `seed % 16 == 0`, to exercise the zero-block path).
    Write {
        vol: u8,
        offset: u32,
        len: u32,
        seed: u8,
    },
    /// `Volume::write_zeroes`.
    WriteZeroes { vol: u8, offset: u32, len: u32 },
    /// `Volume::discard`.
    Discard { vol: u8, offset: u32, len: u32 },
    /// `Pool::flush`.
    Flush,
    /// Snapshot a volume under a fresh name.
    CreateSnapshot { vol: u8 },
    /// Restore a snapshot onto its volume.
    Restore { snap: u8 },
    /// Delete a snapshot.
    DeleteSnapshot { snap: u8 },
    /// Clone a snapshot into a new volume (skipped at [`super::runner::MAX_VOLUMES`]).
    Clone { snap: u8 },
    /// Delete a volume and its snapshots (skipped when it is the last one).
    DeleteVolume { vol: u8 },
    /// Clean `close` and `open` again.
    Reopen,
    /// `Pool::checkpoint`.
    Checkpoint,
}

/// Most ops [`decode_ops`] returns.
pub const MAX_DECODED_OPS: usize = 64;

/// Opcode of each variant in the byte format (low 4 bits of the tag byte).
const T_WRITE: u8 = 0;
const T_ZEROES: u8 = 1;
const T_DISCARD: u8 = 2;
const T_FLUSH: u8 = 3;
const T_SNAP: u8 = 4;
const T_RESTORE: u8 = 5;
const T_DELSNAP: u8 = 6;
const T_CLONE: u8 = 7;
const T_DELVOL: u8 = 8;
const T_REOPEN: u8 = 9;
const T_CHECKPOINT: u8 = 10;

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.bytes.get(self.at..self.at + N)?;
        self.at += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Some(a)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    /// 3-byte little-endian offset.
    fn u24(&mut self) -> Option<u32> {
        self.take::<3>()
            .map(|[a, b, c]| u32::from_le_bytes([a, b, c, 0]))
    }

    fn u16(&mut self) -> Option<u32> {
        self.take::<2>().map(|b| u16::from_le_bytes(b) as u32)
    }
}

/// Decode a fuzzer's bytes into at most [`MAX_DECODED_OPS`] ops. Each op is
/// a tag byte (low 4 bits: opcode, see [`encode_ops`]) followed by its fields
/// in fixed widths: `vol`/`snap`/`seed` one byte, `offset` three bytes and
/// `len` two bytes, little-endian. Decoding stops at the first op whose
/// fields run past the end. Total and deterministic: any input is valid.
pub fn decode_ops(bytes: &[u8]) -> Vec<Op> {
    let mut c = Cursor { bytes, at: 0 };
    let mut ops = Vec::new();
    while ops.len() < MAX_DECODED_OPS {
        let Some(tag) = c.u8() else { break };
        let op = match tag & 0x0f {
            T_ZEROES => (|| {
                Some(Op::WriteZeroes {
                    vol: c.u8()?,
                    offset: c.u24()?,
                    len: c.u16()?,
                })
            })(),
            T_DISCARD => (|| {
                Some(Op::Discard {
                    vol: c.u8()?,
                    offset: c.u24()?,
                    len: c.u16()?,
                })
            })(),
            T_FLUSH => Some(Op::Flush),
            T_SNAP => c.u8().map(|vol| Op::CreateSnapshot { vol }),
            T_RESTORE => c.u8().map(|snap| Op::Restore { snap }),
            T_DELSNAP => c.u8().map(|snap| Op::DeleteSnapshot { snap }),
            T_CLONE => c.u8().map(|snap| Op::Clone { snap }),
            T_DELVOL => c.u8().map(|vol| Op::DeleteVolume { vol }),
            T_REOPEN => Some(Op::Reopen),
            T_CHECKPOINT => Some(Op::Checkpoint),
            // 0 and the unused opcodes 11..=15: random bytes favour data I/O.
            _ => (|| {
                Some(Op::Write {
                    vol: c.u8()?,
                    offset: c.u24()?,
                    len: c.u16()?,
                    seed: c.u8()?,
                })
            })(),
        };
        match op {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    ops
}

/// The inverse of [`decode_ops`] for ops whose `offset < 2^24` and
/// `len < 2^16` (larger values are truncated to those widths), so seed
/// corpora can be written as readable workloads.
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    let io = |out: &mut Vec<u8>, tag: u8, vol: u8, offset: u32, len: u32| {
        out.push(tag);
        out.push(vol);
        out.extend_from_slice(&offset.to_le_bytes()[..3]);
        out.extend_from_slice(&(len as u16).to_le_bytes());
    };
    for op in ops {
        match *op {
            Op::Write {
                vol,
                offset,
                len,
                seed,
            } => {
                io(&mut out, T_WRITE, vol, offset, len);
                out.push(seed);
            }
            Op::WriteZeroes { vol, offset, len } => io(&mut out, T_ZEROES, vol, offset, len),
            Op::Discard { vol, offset, len } => io(&mut out, T_DISCARD, vol, offset, len),
            Op::Flush => out.push(T_FLUSH),
            Op::CreateSnapshot { vol } => out.extend_from_slice(&[T_SNAP, vol]),
            Op::Restore { snap } => out.extend_from_slice(&[T_RESTORE, snap]),
            Op::DeleteSnapshot { snap } => out.extend_from_slice(&[T_DELSNAP, snap]),
            Op::Clone { snap } => out.extend_from_slice(&[T_CLONE, snap]),
            Op::DeleteVolume { vol } => out.extend_from_slice(&[T_DELVOL, vol]),
            Op::Reopen => out.push(T_REOPEN),
            Op::Checkpoint => out.push(T_CHECKPOINT),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let ops = vec![
            Op::Write {
                vol: 1,
                offset: 70_000,
                len: 9000,
                seed: 3,
            },
            Op::WriteZeroes {
                vol: 0,
                offset: 4096,
                len: 8192,
            },
            Op::Discard {
                vol: 2,
                offset: 1,
                len: 65_535,
            },
            Op::Flush,
            Op::CreateSnapshot { vol: 9 },
            Op::Restore { snap: 1 },
            Op::DeleteSnapshot { snap: 2 },
            Op::Clone { snap: 3 },
            Op::DeleteVolume { vol: 4 },
            Op::Reopen,
            Op::Checkpoint,
        ];
        assert_eq!(decode_ops(&encode_ops(&ops)), ops);
    }

    #[test]
    fn decoding_is_bounded_and_stops_at_a_short_op() {
        assert_eq!(decode_ops(&[T_FLUSH; 1000]).len(), MAX_DECODED_OPS);
        // A write needs 7 more bytes; the checkpoint before it survives.
        assert_eq!(decode_ops(&[T_CHECKPOINT, 15, 1, 2]), vec![Op::Checkpoint]);
        assert!(decode_ops(&[]).is_empty());
    }
}
