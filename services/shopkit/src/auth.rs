//! JWT verification: Ed25519 only (the algorithm is pinned, whatever the header says),
//! keys from a JWKS (fetched over HTTP and cached, or read from a file), `kid` required.
//!
//! Handlers take a [`Caller`] (any valid token) or an [`Admin`] (role `admin`); both are
//! extractors, so an unauthenticated request never reaches the handler body.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::config::{ConfigError, Settings};
use crate::error::ApiError;

/// How long fetched keys are trusted before a background refresh is due.
const JWKS_TTL: Duration = Duration::from_secs(300);
/// An unknown `kid` triggers a refetch at most this often, so forged kids cannot make us
/// hammer the user service.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Clock skew tolerated between the issuer and us.
const LEEWAY_SECS: u64 = 30;

pub const ROLE_ADMIN: &str = "admin";
pub const ROLE_CUSTOMER: &str = "customer";

/// What a Shopstack access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    #[serde(default)]
    pub roles: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
}

/// Where the public keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The user service's `/.well-known/jwks.json`.
    Url(String),
    /// A JWKS document on disk (a shop without the user service, or tests).
    Static(JwkSet),
}

#[derive(Debug)]
struct Cache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// Verifies access tokens. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: KeySource,
    issuer: String,
    audience: String,
    http: reqwest::Client,
    cache: RwLock<Cache>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <access token>`")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("signing keys are unavailable")]
    KeysUnavailable(#[source] anyhow::Error),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::KeysUnavailable(cause) => ApiError::Unavailable(format!("{cause:#}")),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

impl Verifier {
    pub fn new(source: KeySource, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building the JWKS HTTP client")?;
        let mut cache = Cache {
            keys: HashMap::new(),
            fetched_at: None,
        };
        if let KeySource::Static(set) = &source {
            cache.keys = decoding_keys(set);
            cache.fetched_at = Some(Instant::now());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                source,
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
                http,
                cache: RwLock::new(cache),
            }),
        })
    }

    /// `AUTH_JWKS_URL` or `AUTH_JWKS_FILE`, `AUTH_ISSUER`, `AUTH_AUDIENCE`.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let source = if let Some(url) = settings.get("AUTH_JWKS_URL") {
            KeySource::Url(url.to_owned())
        } else if let Some(path) = settings.get("AUTH_JWKS_FILE") {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                name: "AUTH_JWKS_FILE".into(),
                problem: format!("points at {path} which cannot be read: {e}"),
            })?;
            let set: JwkSet = serde_json::from_str(&text).map_err(|e| ConfigError {
                name: "AUTH_JWKS_FILE".into(),
                problem: format!("points at {path} which is not a JWKS document: {e}"),
            })?;
            KeySource::Static(set)
        } else {
            return Err(ConfigError {
                name: "AUTH_JWKS_URL".into(),
                problem: "is not set: the URL of the user service's /.well-known/jwks.json \
                          (or set AUTH_JWKS_FILE to a JWKS file)"
                    .into(),
            });
        };
        let issuer = settings.get("AUTH_ISSUER").unwrap_or("shopstack");
        let audience = settings.get("AUTH_AUDIENCE").unwrap_or("shopstack");
        Self::new(source, issuer, audience).map_err(|e| ConfigError {
            name: "AUTH_JWKS_URL".into(),
            problem: format!("{e:#}"),
        })
    }

    /// Verifies signature (EdDSA only), `exp`, `iss` and `aud`, and returns the claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("malformed token header: {e}")))?;
        // Pinned: an `alg` of none, HS256 or anything else is refused before any key is used.
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("the token header has no `kid`".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        {
            let cache = self.inner.cache.read().await;
            let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < JWKS_TTL);
            if let Some(key) = cache.keys.get(kid)
                && (fresh || matches!(self.inner.source, KeySource::Static(_)))
            {
                return Ok(key.clone());
            }
        }
        let KeySource::Url(url) = &self.inner.source else {
            return Err(AuthError::Invalid(format!("unknown key id {kid:?}")));
        };
        let mut cache = self.inner.cache.write().await;
        let recently = cache
            .fetched_at
            .is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL);
        if !recently || cache.keys.is_empty() {
            match self.fetch(url).await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                // Keep serving with the keys we have; fail only if we have none.
                Err(err) if cache.keys.is_empty() => return Err(AuthError::KeysUnavailable(err)),
                Err(err) => tracing::warn!(error = format!("{err:#}"), "JWKS refresh failed"),
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::Invalid(format!("unknown key id {kid:?}")))
    }

    async fn fetch(&self, url: &str) -> anyhow::Result<HashMap<String, DecodingKey>> {
        let set: JwkSet = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("fetching JWKS from {url}"))?
            .error_for_status()?
            .json()
            .await
            .context("parsing the JWKS document")?;
        Ok(decoding_keys(&set))
    }
}

/// Only Ed25519 keys with a `kid` are kept; anything else in the set is ignored.
fn decoding_keys(set: &JwkSet) -> HashMap<String, DecodingKey> {
    set.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::OctetKeyPair(_)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
        })
        .collect()
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn is_admin(&self) -> bool {
        self.has_role(ROLE_ADMIN)
    }
}

fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Verifier: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let claims = Verifier::from_ref(state).verify(token).await?;
        Ok(Self {
            user_id: claims.sub,
            roles: claims.roles,
        })
    }
}

/// A caller with role `admin`; anyone else gets 403 (401 without a valid token).
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Verifier: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_admin() {
            Ok(Self(caller))
        } else {
            Err(ApiError::Forbidden(
                "this action needs the admin role".into(),
            ))
        }
    }
}

/// Ed25519 signing keys: generated by `shopctl init` into the shop's secrets, used by the
/// user service to issue tokens and by tests to mint them.
pub mod keys {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    use jsonwebtoken::{EncodingKey, Header};

    use super::{Algorithm, Claims};

    /// A new private key as PKCS#8 PEM.
    pub fn generate_pem() -> anyhow::Result<String> {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        Ok(key.to_pkcs8_pem(Default::default())?.to_string())
    }

    /// A private key with its key id, able to sign tokens and publish its JWK.
    pub struct Signer {
        kid: String,
        public: [u8; 32],
        encoding: EncodingKey,
    }

    impl std::fmt::Debug for Signer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Signer")
                .field("kid", &self.kid)
                .finish_non_exhaustive()
        }
    }

    impl Signer {
        pub fn from_pem(kid: &str, pem: &str) -> anyhow::Result<Self> {
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 PEM key: {e}"))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| anyhow::anyhow!("re-encoding key: {e}"))?;
            Ok(Self {
                kid: kid.to_owned(),
                public: key.verifying_key().to_bytes(),
                encoding: EncodingKey::from_ed_der(der.as_bytes()),
            })
        }

        pub fn generate(kid: &str) -> anyhow::Result<Self> {
            Self::from_pem(kid, &generate_pem()?)
        }

        pub fn kid(&self) -> &str {
            &self.kid
        }

        /// The public key as a JWK (RFC 8037 `OKP` / `Ed25519`).
        pub fn jwk(&self) -> serde_json::Value {
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(self.public),
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            })
        }

        pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(self.kid.clone());
            Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
        }
    }

    /// A JWKS document for a set of signers.
    pub fn jwks(signers: &[&Signer]) -> serde_json::Value {
        serde_json::json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
    }
}
