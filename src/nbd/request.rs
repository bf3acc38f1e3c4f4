//! Transmission requests: the 28-byte header, and the checks that turn it
//! into a command the export can run or an error reply. Pure functions over
//! bytes, so they can be fuzzed without sockets.

use super::consts::*;

pub const REQUEST_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub flags: u16,
    pub kind: u16,
    pub cookie: u64,
    pub offset: u64,
    pub length: u32,
}

impl RequestHeader {
    /// None when the magic is wrong: the stream cannot be trusted after that.
    pub fn decode(b: &[u8; REQUEST_LEN]) -> Option<RequestHeader> {
        let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let be64 = |i: usize| (u64::from(be32(i)) << 32) | u64::from(be32(i + 4));
        if be32(0) != REQUEST_MAGIC {
            return None;
        }
        Some(RequestHeader {
            flags: u16::from_be_bytes([b[4], b[5]]),
            kind: u16::from_be_bytes([b[6], b[7]]),
            cookie: be64(8),
            offset: be64(16),
            length: be32(24),
        })
    }

    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&self.flags.to_be_bytes());
        b[6..8].copy_from_slice(&self.kind.to_be_bytes());
        b[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        b[16..24].copy_from_slice(&self.offset.to_be_bytes());
        b[24..].copy_from_slice(&self.length.to_be_bytes());
        b
    }

    /// Payload bytes that follow this header on the wire.
    pub fn payload_len(&self) -> u32 {
        if self.kind == CMD_WRITE {
            self.length
        } else {
            0
        }
    }
}

/// What was negotiated for the connection's export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub size: u64,
    pub writable: bool,
    pub structured: bool,
    /// `base:allocation` was selected for this export.
    pub block_status: bool,
}

/// A request that passed every check: in range, allowed, sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        len: u32,
        fua: bool,
    },
    Flush,
    Trim {
        offset: u64,
        len: u32,
        fua: bool,
    },
    WriteZeroes {
        offset: u64,
        len: u32,
        fua: bool,
        /// `NBD_CMD_FLAG_FAST_ZERO`: fail with `ENOTSUP` unless zeroing
        /// is faster than writing.
        fast: bool,
    },
    BlockStatus {
        offset: u64,
        len: u32,
        req_one: bool,
    },
    Disconnect,
}

/// A refused request: the error to reply with. Any WRITE payload must be
/// skipped first ([`RequestHeader::payload_len`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub errno: u32,
    pub message: &'static str,
}

fn refuse(errno: u32, message: &'static str) -> Refusal {
    Refusal { errno, message }
}

/// Command flags each command accepts. FUA is accepted everywhere, as the
/// spec requires once `NBD_FLAG_SEND_FUA` is advertised.
fn allowed_flags(kind: u16, shape: &Shape) -> u16 {
    CMD_FLAG_FUA
        | match kind {
            CMD_READ if shape.structured => CMD_FLAG_DF,
            CMD_WRITE_ZEROES => CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO,
            CMD_BLOCK_STATUS => CMD_FLAG_REQ_ONE,
            _ => 0,
        }
}

/// Check a request against the export. Out-of-range writes are ENOSPC and
/// out-of-range reads EINVAL, as the spec recommends.
pub fn classify(h: &RequestHeader, shape: &Shape) -> Result<Command, Refusal> {
    let known = matches!(
        h.kind,
        CMD_READ
            | CMD_WRITE
            | CMD_DISC
            | CMD_FLUSH
            | CMD_TRIM
            | CMD_WRITE_ZEROES
            | CMD_BLOCK_STATUS
    );
    if !known {
        return Err(refuse(EINVAL, "unknown command"));
    }
    if h.flags & !allowed_flags(h.kind, shape) != 0 {
        return Err(refuse(EINVAL, "command flag not valid for this command"));
    }
    let fua = h.flags & CMD_FLAG_FUA != 0;
    let (offset, len) = (h.offset, h.length);
    let in_range = offset
        .checked_add(u64::from(len))
        .is_some_and(|end| end <= shape.size);
    let writes = matches!(h.kind, CMD_WRITE | CMD_TRIM | CMD_WRITE_ZEROES);
    if writes && !shape.writable {
        return Err(refuse(EPERM, "the export is read-only"));
    }
    match h.kind {
        CMD_DISC => return Ok(Command::Disconnect),
        CMD_FLUSH if offset != 0 || len != 0 => {
            return Err(refuse(EINVAL, "flush offset and length must be zero"))
        }
        CMD_FLUSH => return Ok(Command::Flush),
        CMD_READ | CMD_WRITE if len > MAX_PAYLOAD => {
            return Err(refuse(EINVAL, "payload larger than 32 MiB"))
        }
        CMD_BLOCK_STATUS if !shape.block_status => {
            return Err(refuse(
                EINVAL,
                "block status needs base:allocation selected for this export",
            ))
        }
        CMD_BLOCK_STATUS if len == 0 => return Err(refuse(EINVAL, "block status of zero bytes")),
        _ => {}
    }
    if !in_range {
        let errno = if matches!(h.kind, CMD_WRITE | CMD_WRITE_ZEROES) {
            ENOSPC
        } else {
            EINVAL
        };
        return Err(refuse(errno, "request goes past the end of the export"));
    }
    Ok(match h.kind {
        CMD_READ => Command::Read { offset, len },
        CMD_WRITE => Command::Write { offset, len, fua },
        CMD_TRIM => Command::Trim { offset, len, fua },
        CMD_WRITE_ZEROES => Command::WriteZeroes {
            offset,
            len,
            fua,
            fast: h.flags & CMD_FLAG_FAST_ZERO != 0,
        },
        _ => Command::BlockStatus {
            offset,
            len,
            req_one: h.flags & CMD_FLAG_REQ_ONE != 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: Shape = Shape {
        size: 1 << 20,
        writable: true,
        structured: true,
        block_status: true,
    };

    fn req(kind: u16, flags: u16, offset: u64, length: u32) -> RequestHeader {
        RequestHeader {
            flags,
            kind,
            cookie: 7,
            offset,
            length,
        }
    }

    #[test]
    fn header_round_trips_and_bad_magic_is_refused() {
        let h = req(CMD_WRITE, CMD_FLAG_FUA, 4096, 512);
        let mut b = h.encode();
        assert_eq!(RequestHeader::decode(&b), Some(h));
        b[0] ^= 1;
        assert_eq!(RequestHeader::decode(&b), None);
    }

    #[test]
    fn ranges_are_checked_without_overflow() {
        let r = classify(&req(CMD_READ, 0, u64::MAX, 2), &RW).unwrap_err();
        assert_eq!(r.errno, EINVAL);
        let w = classify(&req(CMD_WRITE, 0, (1 << 20) - 1, 2), &RW).unwrap_err();
        assert_eq!(w.errno, ENOSPC);
        assert_eq!(
            classify(&req(CMD_READ, 0, (1 << 20) - 1, 1), &RW),
            Ok(Command::Read {
                offset: (1 << 20) - 1,
                len: 1
            })
        );
    }

    #[test]
    fn read_only_exports_refuse_every_kind_of_write() {
        let ro = Shape {
            writable: false,
            ..RW
        };
        for kind in [CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES] {
            assert_eq!(classify(&req(kind, 0, 0, 1), &ro).unwrap_err().errno, EPERM);
        }
        assert!(classify(&req(CMD_READ, 0, 0, 1), &ro).is_ok());
    }

    #[test]
    fn oversized_payloads_and_stray_flags_are_invalid() {
        let big = classify(&req(CMD_WRITE, 0, 0, MAX_PAYLOAD + 1), &RW).unwrap_err();
        assert_eq!(big.errno, EINVAL);
        // Trim has no payload, so a large one is fine.
        assert!(classify(&req(CMD_TRIM, 0, 0, 1 << 20), &RW).is_ok());
        let flag = classify(&req(CMD_READ, CMD_FLAG_NO_HOLE, 0, 1), &RW).unwrap_err();
        assert_eq!(flag.errno, EINVAL);
        assert_eq!(classify(&req(99, 0, 0, 0), &RW).unwrap_err().errno, EINVAL);
    }

    #[test]
    fn block_status_needs_the_context() {
        let plain = Shape {
            block_status: false,
            ..RW
        };
        assert!(classify(&req(CMD_BLOCK_STATUS, 0, 0, 512), &plain).is_err());
        assert_eq!(
            classify(&req(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 0, 512), &RW),
            Ok(Command::BlockStatus {
                offset: 0,
                len: 512,
                req_one: true
            })
        );
    }
}
