//! Token text, digests and comparison.
//!
//! A token is `mv_` followed by 32 random bytes in URL-safe base64 (256 bits). It is stored as
//! its SHA-256 digest, not with a password hash such as argon2: a password hash is slow on
//! purpose to make guessing *low-entropy* secrets expensive, but nobody can guess 256 random
//! bits however fast the hash is. A plain digest lets the server find a token with one indexed
//! lookup (a salted password hash cannot be looked up) and costs microseconds per request
//! instead of tens of milliseconds.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "mv_";

/// A new random token.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of the token text.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Lower-case hex, as stored.
pub fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The part of a token that may be shown again later: enough to tell tokens apart.
pub fn prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

/// Compares two digests in constant time.
pub fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_stored_as_digests() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with("mv_") && a.len() == 3 + 43, "{a}");
        assert_eq!(hex(&digest(&a)).len(), 64);
        assert_eq!(
            hex(&digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "SHA-256 test vector"
        );
        assert!(same_digest(&digest(&a), &digest(&a)));
        assert!(!same_digest(&digest(&a), &digest(&b)));
        assert_eq!(prefix(&a), a[..9]);
    }
}
