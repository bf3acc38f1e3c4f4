//! Transmission replies: simple replies and structured reply chunks. Each
//! function returns the bytes that go before any data payload.

use super::consts::*;

/// A simple reply header; READ data (when `errno` is 0) follows it.
pub fn simple(cookie: u64, errno: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&errno.to_be_bytes());
    b[8..].copy_from_slice(&cookie.to_be_bytes());
    b
}

/// A structured reply chunk header for `len` bytes of payload.
pub fn chunk(flags: u16, kind: u16, cookie: u64, len: u32) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    b[4..6].copy_from_slice(&flags.to_be_bytes());
    b[6..8].copy_from_slice(&kind.to_be_bytes());
    b[8..16].copy_from_slice(&cookie.to_be_bytes());
    b[16..].copy_from_slice(&len.to_be_bytes());
    b
}

/// The final, empty chunk of a successful structured reply.
pub fn done(cookie: u64) -> [u8; 20] {
    chunk(REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, 0)
}

/// An `NBD_REPLY_TYPE_OFFSET_DATA` chunk header (with its offset field) for
/// `data_len` bytes that follow; it is the final chunk.
pub fn offset_data(cookie: u64, offset: u64, data_len: u32) -> [u8; 28] {
    let mut b = [0u8; 28];
    b[..20].copy_from_slice(&chunk(
        REPLY_FLAG_DONE,
        REPLY_TYPE_OFFSET_DATA,
        cookie,
        data_len.saturating_add(8),
    ));
    b[20..].copy_from_slice(&offset.to_be_bytes());
    b
}

/// A final `NBD_REPLY_TYPE_ERROR` chunk with a message for the user.
pub fn error(cookie: u64, errno: u32, message: &str) -> Vec<u8> {
    // The message length field is 16 bits; ours are short, but cut anyway.
    let msg = &message.as_bytes()[..message.len().min(MAX_STRING)];
    let mut b = Vec::with_capacity(26 + msg.len());
    b.extend_from_slice(&chunk(
        REPLY_FLAG_DONE,
        REPLY_TYPE_ERROR,
        cookie,
        6 + msg.len() as u32,
    ));
    b.extend_from_slice(&errno.to_be_bytes());
    b.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    b.extend_from_slice(msg);
    b
}

/// A final `NBD_REPLY_TYPE_BLOCK_STATUS` chunk: (length, flags) descriptors.
pub fn block_status(cookie: u64, context: u32, extents: &[(u32, u32)]) -> Vec<u8> {
    let len = 4 + 8 * extents.len();
    let mut b = Vec::with_capacity(20 + len);
    b.extend_from_slice(&chunk(
        REPLY_FLAG_DONE,
        REPLY_TYPE_BLOCK_STATUS,
        cookie,
        len as u32,
    ));
    b.extend_from_slice(&context.to_be_bytes());
    for (length, flags) in extents {
        b.extend_from_slice(&length.to_be_bytes());
        b.extend_from_slice(&flags.to_be_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chunk_lengths_agree() {
        let b = error(9, EINVAL, "bad");
        let len = u32::from_be_bytes(b[16..20].try_into().unwrap()) as usize;
        assert_eq!(b.len(), 20 + len);
        assert_eq!(u16::from_be_bytes(b[24..26].try_into().unwrap()), 3);
    }

    #[test]
    fn block_status_holds_each_descriptor() {
        let b = block_status(1, 5, &[(4096, STATE_HOLE | STATE_ZERO), (512, 0)]);
        assert_eq!(b.len(), 20 + 4 + 16);
        assert_eq!(u32::from_be_bytes(b[20..24].try_into().unwrap()), 5);
        assert_eq!(u32::from_be_bytes(b[28..32].try_into().unwrap()), 3);
    }
}
