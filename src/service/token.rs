//! API tokens: 256 random bits shown once, stored only as a SHA-256 hash,
//! compared in constant time.

use super::error::ServiceError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "csk_";
const RANDOM_BYTES: usize = 32;

/// A token's printable form and its hash.
pub struct Secret {
    pub token: String,
    pub hash: [u8; 32],
}

pub fn generate() -> Result<Secret, ServiceError> {
    let mut random = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut random)
        .map_err(|e| ServiceError::Internal(format!("no randomness for a token: {e}")))?;
    let token = format!("{PREFIX}{}", hex(&random));
    let hash = sha256(token.as_bytes());
    Ok(Secret { token, hash })
}

/// Only strings of the shape we issue are worth hashing and looking up.
pub fn well_formed(token: &str) -> bool {
    token.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 2 * RANDOM_BYTES && rest.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The public id of the token with this hash.
pub fn id_of(hash: &[u8; 32]) -> String {
    format!("tok_{}", &hex(hash)[..8])
}

pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decode 64 hex digits; None for anything else.
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.token, b.token);
        assert!(well_formed(&a.token), "{}", a.token);
        assert_eq!(a.hash, sha256(a.token.as_bytes()));
        assert!(id_of(&a.hash).starts_with("tok_"));
        assert_eq!(id_of(&a.hash).len(), 12);
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in [
            "",
            "csk_",
            "csk_abc",
            "xyz_00",
            &format!("csk_{}", "g".repeat(64)),
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
        assert!(well_formed(&format!("csk_{}", "0".repeat(64))));
    }

    #[test]
    fn hex_round_trips() {
        let h = sha256(b"x");
        assert_eq!(unhex32(&hex(&h)), Some(h));
        assert_eq!(unhex32("zz"), None);
        assert_eq!(unhex32(&"g".repeat(64)), None);
        assert!(same_hash(&h, &h));
        assert!(!same_hash(&h, &sha256(b"y")));
    }
}
