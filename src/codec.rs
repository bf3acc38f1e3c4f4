//! The one place that knows about bincode, so it can be swapped. Variable-shaped
//! metadata (the catalog and its changes) goes through here; fixed-layout
//! structures are hand-encoded in `format`.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(limit)
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own in-memory types into a Vec cannot fail (no limit is hit
    // below u64::MAX, and every type here is plain data).
    options(u64::MAX)
        .serialize(value)
        .unwrap_or_else(|e| unreachable!("bincode cannot fail on plain data: {e}"))
}

/// The length [`encode`] would produce, without building it.
pub fn encoded_len<T: Serialize>(value: &T) -> u64 {
    options(u64::MAX)
        .serialized_size(value)
        .unwrap_or_else(|e| unreachable!("bincode cannot fail on plain data: {e}"))
}

/// Decode untrusted bytes. The size limit stops a hostile length prefix from
/// allocating more than the input could describe.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    options(bytes.len() as u64 * 4 + 1024)
        .deserialize(bytes)
        .map_err(|e| e.to_string())
}
