//! Anonymous cart tokens: 256 random bits sent to the client once (in the body of
//! `POST /carts` and as the `cart_token` cookie), stored only as their SHA-256 and
//! compared in constant time. The tokens are uniformly random, so a plain hash is
//! enough: a leaked table yields nothing to guess from.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes per token: 256 bits.
pub const TOKEN_BYTES: usize = 32;
/// A token's length as text: 32 bytes in unpadded base64url.
pub const TOKEN_CHARS: usize = 43;
/// The header that carries a cart token (API clients; browsers send the cookie).
pub const TOKEN_HEADER: &str = "x-cart-token";
/// The cookie that carries a cart token.
pub const COOKIE_NAME: &str = "cart_token";
/// How long the browser keeps the cookie: 30 days, so that a cart survives a closed
/// browser (a session cookie would not).
pub const COOKIE_MAX_AGE_SECS: u64 = 30 * 24 * 60 * 60;

/// A new token from the operating system's CSPRNG.
pub fn generate() -> String {
    let mut bytes = [0_u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a token: the SHA-256 of its text.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `presented` is the token whose hash is `stored`. The comparison looks at every
/// byte whatever the first difference, so its timing says nothing about how close a
/// guess came.
pub fn matches(presented: &str, stored: &[u8]) -> bool {
    let candidate = hash(presented);
    if stored.len() != candidate.len() {
        return false;
    }
    let difference = candidate
        .iter()
        .zip(stored)
        .fold(0_u8, |acc, (a, b)| acc | (a ^ b));
    difference == 0
}

/// Whether `token` has the shape of one of ours; anything else is not looked at.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The cart token a request presents: the `X-Cart-Token` header, else the cookie.
pub fn from_headers(headers: &HeaderMap) -> Option<String> {
    headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(|| from_cookie(headers))
}

/// The token in the `cart_token` cookie.
pub fn from_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value that hands the browser its cart token. HttpOnly (page scripts
/// never see it), SameSite=Lax (not sent on cross-site subrequests), Path=/ (the
/// gateway serves the storefront and the API from one origin); `Secure` when the shop is
/// served over HTTPS.
pub fn set_cookie(token: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; Max-Age={COOKIE_MAX_AGE_SECS}; Path=/; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// The `Set-Cookie` value that removes the cookie (after a merge closed its cart).
pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static("cart_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure")
    } else {
        HeaderValue::from_static("cart_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), TOKEN_CHARS);
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(a, b);
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}+", &a[..42])));
    }

    #[test]
    fn only_the_token_itself_matches_its_hash() {
        let token = generate();
        let stored = hash(&token);
        assert!(matches(&token, &stored));
        assert!(!matches(&generate(), &stored));
        assert!(!matches(&token, &stored[..31]));
        let mut flipped = stored;
        flipped[31] ^= 1;
        assert!(!matches(&token, &flipped));
    }

    #[test]
    fn the_header_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; cart_token=from-cookie; x=1"),
        );
        assert_eq!(from_headers(&headers).as_deref(), Some("from-cookie"));
        headers.insert(TOKEN_HEADER, HeaderValue::from_static("from-header"));
        assert_eq!(from_headers(&headers).as_deref(), Some("from-header"));
        assert_eq!(from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_lax_and_site_wide() {
        let value = set_cookie("abc", false).unwrap();
        let value = value.to_str().unwrap();
        assert!(value.starts_with("cart_token=abc;"), "{value}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(value.contains(attribute), "{value}");
        }
        assert!(!value.contains("Secure"));
        assert!(
            set_cookie("abc", true)
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(clear_cookie(true).to_str().unwrap().contains("Max-Age=0"));
    }
}
