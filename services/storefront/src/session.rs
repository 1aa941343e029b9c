//! Sessions in an encrypted cookie: the customer's tokens (access and refresh), their
//! cart's id and token, and the CSRF token, sealed with ChaCha20-Poly1305 under the
//! storefront's key. The browser holds an opaque blob it can neither read nor forge;
//! any replica with the key can open it.
//!
//! The cookie is `HttpOnly; SameSite=Lax; Path=/` and `Secure` unless the shop turns it
//! off (plain-HTTP tests). The CSRF token is bound to the session: every form carries it
//! in a hidden field and every POST is checked against the session's copy.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Digest;

pub const COOKIE_NAME: &str = "sf_session";
/// Thirty days, as long as a refresh token lives.
const MAX_AGE_SECS: u64 = 30 * 24 * 3600;
/// A cookie bigger than this is not even tried (browsers refuse over 4 KB anyway).
const MAX_COOKIE_LEN: usize = 4096;

/// A signed-in customer's tokens, as the user service issued them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Auth {
    pub access_token: String,
    pub refresh_token: String,
    /// When the access token expires (Unix seconds).
    pub expires_at: i64,
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
}

/// The cart this browser is filling: a user's (no token needed) or an anonymous one
/// (its token is the only key to it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CartRef {
    pub id: String,
    pub token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub csrf: String,
    pub auth: Option<Auth>,
    pub cart: Option<CartRef>,
    /// A one-time message for the next page ("Signed in", "Added to cart").
    pub flash: Option<String>,
    /// Units in the cart when the storefront last saw it: the header's badge, without a
    /// call to the cart service on every page (the live stream corrects it).
    #[serde(default)]
    pub cart_count: i64,
}

impl Session {
    pub fn fresh() -> Self {
        Session {
            csrf: random_token(),
            auth: None,
            cart: None,
            flash: None,
            cart_count: 0,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|a| a.roles.iter().any(|r| r == "admin"))
    }

    /// Constant-time comparison of a submitted CSRF token with the session's.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        let a = sha2::Sha256::digest(self.csrf.as_bytes());
        let b = sha2::Sha256::digest(submitted.as_bytes());
        let diff = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        diff == 0 && !submitted.is_empty()
    }
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seals and opens session cookies.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    secure: bool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32], secure: bool) -> Self {
        Sealer {
            cipher: ChaCha20Poly1305::new(&Key::from(*key)),
            secure,
        }
    }

    pub fn seal(&self, session: &Session) -> anyhow::Result<String> {
        let plain = serde_json::to_vec(session)?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), plain.as_slice())
            .map_err(|_| anyhow::anyhow!("sealing the session failed"))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// `None` for anything not sealed under our key (tampered, old key, garbage).
    pub fn open(&self, cookie: &str) -> Option<Session> {
        if cookie.len() > MAX_COOKIE_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cookie).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = self.cipher.decrypt(&Nonce::from(nonce), sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }

    pub fn set_cookie(&self, value: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{COOKIE_NAME}={value}; Max-Age={MAX_AGE_SECS}; Path=/; HttpOnly; SameSite=Lax{secure}"
        )
    }
}

/// The request's session, shared between the middleware and the handler. Handlers
/// change it through [`SessionHandle::update`], which marks it for a new cookie.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    inner: Arc<Mutex<(Session, bool)>>,
}

impl SessionHandle {
    pub fn new(session: Session, dirty: bool) -> Self {
        SessionHandle {
            inner: Arc::new(Mutex::new((session, dirty))),
        }
    }

    pub fn get(&self) -> Session {
        match self.inner.lock() {
            Ok(guard) => guard.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    pub fn update(&self, change: impl FnOnce(&mut Session)) {
        let mut guard = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut guard.0);
        guard.1 = true;
    }

    /// Takes the flash message (and so clears it).
    pub fn take_flash(&self) -> Option<String> {
        let flash = self.get().flash;
        if flash.is_some() {
            self.update(|s| s.flash = None);
        }
        flash
    }

    fn dirty(&self) -> Option<Session> {
        let guard = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.1.then(|| guard.0.clone())
    }
}

fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Opens (or starts) the session before the handler, and sets the cookie after it when
/// the session changed.
pub async fn layer(State(sealer): State<Sealer>, mut request: Request, next: Next) -> Response {
    let opened = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie_value(h, COOKIE_NAME))
        .and_then(|v| sealer.open(v));
    let handle = match opened {
        Some(session) => SessionHandle::new(session, false),
        None => SessionHandle::new(Session::fresh(), true),
    };
    request.extensions_mut().insert(handle.clone());
    let mut response = next.run(request).await;
    if let Some(session) = handle.dirty() {
        match sealer.seal(&session) {
            Ok(value) => {
                if let Ok(header) = HeaderValue::from_str(&sealer.set_cookie(&value)) {
                    response.headers_mut().append(SET_COOKIE, header);
                }
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "sealing the session"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&[7; 32], true)
    }

    #[test]
    fn a_sealed_session_opens_only_under_its_key_and_unchanged() {
        let mut session = Session::fresh();
        session.cart = Some(CartRef {
            id: "c".into(),
            token: Some("t".into()),
        });
        let sealed = sealer().seal(&session).unwrap();
        assert!(!sealed.contains("\"csrf\""), "the cookie is not readable");
        assert_eq!(sealer().open(&sealed), Some(session));
        assert_eq!(
            Sealer::new(&[8; 32], true).open(&sealed),
            None,
            "another key"
        );
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            sealer().open(&URL_SAFE_NO_PAD.encode(tampered)),
            None,
            "tampered"
        );
        assert_eq!(sealer().open("garbage"), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let session = Session::fresh();
        assert!(session.csrf_ok(&session.csrf.clone()));
        assert!(!session.csrf_ok(""));
        assert!(!session.csrf_ok("x"));
        assert!(
            !session.csrf_ok(&Session::fresh().csrf),
            "another session's token"
        );
    }

    #[test]
    fn the_cookie_is_httponly_lax_and_secure_by_setting() {
        let c = sealer().set_cookie("v");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("; Secure"),
            "{c}"
        );
        assert!(
            !Sealer::new(&[7; 32], false)
                .set_cookie("v")
                .contains("Secure")
        );
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(
            cookie_value("a=1; sf_session=xyz; b=2", COOKIE_NAME),
            Some("xyz")
        );
        assert_eq!(cookie_value("sf_session_other=1", COOKIE_NAME), None);
    }
}
