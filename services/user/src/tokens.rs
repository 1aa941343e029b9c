//! Opaque tokens (refresh, email verification, password reset): 256 random bits sent to
//! the client as base64url, stored only as their SHA-256. A database leak therefore
//! yields no usable token, and since the tokens are uniformly random a plain (unsalted,
//! fast) hash is enough: there is nothing to guess.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes per token: 256 bits.
pub const TOKEN_BYTES: usize = 32;
/// A token's length as text: 32 bytes in unpadded base64url.
pub const TOKEN_CHARS: usize = 43;

/// Longer input in a token field is refused as invalid (422) rather than looked at.
pub const MAX_TOKEN_INPUT_CHARS: usize = 256;

/// A new token from the operating system's CSPRNG.
pub fn random_token() -> String {
    let mut bytes = [0_u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a token: the SHA-256 of its text.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `token` has the shape of one of ours. Anything else is refused without a
/// database round trip (and overlong input never reaches a query).
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A short, stable key for a throttling subject (an email or an address): its SHA-256,
/// so that the table of failed log-ins holds no email addresses in clear.
pub fn subject_hash(scope: &str, subject: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(scope.as_bytes());
    digest.update([0]);
    digest.update(subject.as_bytes());
    digest.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), TOKEN_CHARS);
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn the_stored_hash_is_sha256_of_the_text() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            hex::encode(token_hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = random_token();
        assert_eq!(token_hash(&token), token_hash(&token));
        assert_ne!(token_hash(&token), token_hash(&random_token()));
        assert_eq!(token_hash(&token).len(), 32);
    }

    #[test]
    fn malformed_tokens_are_recognised_without_a_query() {
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed(&format!("{}=", "a".repeat(42))));
        assert!(!well_formed(&"é".repeat(21)));
        assert!(well_formed(&"a".repeat(43)));
    }

    #[test]
    fn subject_hashes_are_separated_by_scope() {
        assert_ne!(subject_hash("account", "x"), subject_hash("address", "x"));
        assert_eq!(subject_hash("account", "x"), subject_hash("account", "x"));
    }
}
