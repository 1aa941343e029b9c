//! The token signing keys: the current Ed25519 key (which signs) and retired public keys
//! (which are still published, so that tokens they signed verify until they expire).
//!
//! Rotation (`shopctl keys rotate` does it): put the new key in `jwt_signing_key.pem` /
//! `jwt_key_id`, move the old public JWK into `jwt_previous_keys` with a
//! `"retired_at"` time, restart. The old key stays in `/.well-known/jwks.json` until
//! `retired_at` plus the access-token lifetime (plus clock leeway) has passed; from then
//! on no unexpired token can carry its signature, and the entry can be deleted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, ThumbprintHash};
use serde_json::Value;
use shopkit::auth::keys::Signer;
use shopkit::auth::{Claims, KeySource, Verifier};
use shopkit::config::{ConfigError, Settings};
use uuid::Uuid;

/// Clock skew that verifiers tolerate (shopkit's verifier allows 30 s); a retired key is
/// published this much longer.
const VERIFIER_LEEWAY: Duration = Duration::from_secs(30);

/// A retired public key, published until its tokens have expired.
#[derive(Debug, Clone)]
pub struct RetiredKey {
    pub kid: String,
    /// The public JWK as published (without `retired_at`).
    pub jwk: Value,
    /// When it stopped signing; `None`: published until it is removed from the setting.
    pub retired_at: Option<DateTime<Utc>>,
}

/// The keys, the claims every token carries, and a verifier for our own tokens.
#[derive(Debug)]
pub struct KeyRing {
    current: Signer,
    previous: Vec<RetiredKey>,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    verifier: Verifier,
}

/// An access token and its lifetime.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: Duration,
}

impl KeyRing {
    pub fn new(
        current: Signer,
        previous: Vec<RetiredKey>,
        issuer: &str,
        audience: &str,
        access_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let mut keys = vec![current.jwk()];
        keys.extend(previous.iter().map(|k| k.jwk.clone()));
        let set: JwkSet = serde_json::from_value(serde_json::json!({ "keys": keys }))?;
        // The verifier builds an HTTP client, which needs a TLS provider; the binary
        // installs it at start, this covers library users (tests).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let verifier = Verifier::new(KeySource::Static(set), issuer, audience)?;
        Ok(Self {
            current,
            previous,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl,
            verifier,
        })
    }

    /// `JWT_SIGNING_KEY` (secret file `jwt_signing_key.pem`), `JWT_KEY_ID` (secret file
    /// `jwt_key_id`; default: the key's RFC 7638 thumbprint), `JWT_PREVIOUS_KEYS` (secret
    /// file `jwt_previous_keys`), `AUTH_ISSUER`, `AUTH_AUDIENCE`, `ACCESS_TOKEN_TTL_SECS`.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let pem = settings
            .secret_file("JWT_SIGNING_KEY", "jwt_signing_key.pem")?
            .ok_or_else(|| ConfigError {
                name: "JWT_SIGNING_KEY".into(),
                problem: format!(
                    "is not set: the Ed25519 PKCS#8 PEM key that signs access tokens (shopctl init \
                     writes it to secrets/jwt_signing_key.pem; mount it as {}/jwt_signing_key.pem, \
                     or name the file in JWT_SIGNING_KEY_FILE)",
                    settings.secrets_dir().display()
                ),
            })?;
        let kid = settings.secret("JWT_KEY_ID")?.map(|k| k.trim().to_owned());
        let current = signer(&pem, kid.as_deref()).map_err(|e| ConfigError {
            name: "JWT_SIGNING_KEY".into(),
            problem: format!("{e:#}"),
        })?;
        let previous = match settings.secret("JWT_PREVIOUS_KEYS")? {
            Some(text) if !text.trim().is_empty() => {
                parse_previous(&text).map_err(|problem| ConfigError {
                    name: "JWT_PREVIOUS_KEYS".into(),
                    problem,
                })?
            }
            _ => Vec::new(),
        };
        if previous.iter().any(|k| k.kid == current.kid()) {
            return Err(ConfigError {
                name: "JWT_PREVIOUS_KEYS".into(),
                problem: format!("lists the current key id {:?}", current.kid()),
            });
        }
        let ttl_secs: u64 = settings.parse_or("ACCESS_TOKEN_TTL_SECS", 900)?;
        if !(30..=86_400).contains(&ttl_secs) {
            return Err(ConfigError {
                name: "ACCESS_TOKEN_TTL_SECS".into(),
                problem: format!("is {ttl_secs}: access tokens must live 30 s to 1 day"),
            });
        }
        let issuer = settings.get("AUTH_ISSUER").unwrap_or("shopstack");
        let audience = settings.get("AUTH_AUDIENCE").unwrap_or("shopstack");
        Self::new(
            current,
            previous,
            issuer,
            audience,
            Duration::from_secs(ttl_secs),
        )
        .map_err(|e| ConfigError {
            name: "JWT_PREVIOUS_KEYS".into(),
            problem: format!("{e:#}"),
        })
    }

    pub fn kid(&self) -> &str {
        self.current.kid()
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Verifies our own tokens (EdDSA pinned, `kid` required, `exp`/`iss`/`aud` checked).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Signs an access token for `user_id` issued at `now`.
    pub fn issue(
        &self,
        user_id: Uuid,
        roles: &[&str],
        now: DateTime<Utc>,
    ) -> anyhow::Result<AccessToken> {
        let iat = now.timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs())?;
        let claims = Claims {
            sub: user_id,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            exp: iat + ttl,
        };
        Ok(AccessToken {
            token: self.current.sign(&claims)?,
            expires_in: self.access_ttl,
        })
    }

    /// The JWKS document at `now`: the current key, then retired keys whose tokens may
    /// still be unexpired.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        let grace = self.access_ttl + VERIFIER_LEEWAY;
        let mut keys = vec![self.current.jwk()];
        keys.extend(
            self.previous
                .iter()
                .filter(|k| {
                    k.retired_at.is_none_or(|at| {
                        chrono::Duration::from_std(grace).is_ok_and(|grace| now < at + grace)
                    })
                })
                .map(|k| k.jwk.clone()),
        );
        serde_json::json!({ "keys": keys })
    }
}

/// The signer for a PEM key, with the given key id or the key's thumbprint.
pub fn signer(pem: &str, kid: Option<&str>) -> anyhow::Result<Signer> {
    let probe = Signer::from_pem("probe", pem)?;
    let kid = match kid.filter(|k| !k.is_empty()) {
        Some(kid) => kid.to_owned(),
        None => thumbprint(&probe.jwk())?,
    };
    Signer::from_pem(&kid, pem)
}

/// RFC 7638 SHA-256 thumbprint of a public JWK.
fn thumbprint(jwk: &Value) -> anyhow::Result<String> {
    let jwk: Jwk = serde_json::from_value(jwk.clone())?;
    Ok(jwk.thumbprint(ThumbprintHash::SHA256)?)
}

/// Parses `JWT_PREVIOUS_KEYS`: a JWKS document (`{"keys": [...]}`) or a JSON array of
/// public Ed25519 JWKs, each with a `kid` and optionally `"retired_at"` (RFC 3339).
pub fn parse_previous(text: &str) -> Result<Vec<RetiredKey>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!("is not JSON (expected a JWKS document of retired public keys): {e}")
    })?;
    let entries = match value {
        Value::Array(entries) => entries,
        Value::Object(mut doc) => match doc.remove("keys") {
            Some(Value::Array(entries)) => entries,
            _ => return Err("is a JSON object without a \"keys\" array".into()),
        },
        _ => return Err("must be a JWKS document or an array of JWKs".into()),
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| retired_key(entry).map_err(|e| format!("key #{}: {e}", i + 1)))
        .collect()
}

fn retired_key(entry: Value) -> Result<RetiredKey, String> {
    let Value::Object(mut object) = entry else {
        return Err("is not a JSON object".into());
    };
    if object.contains_key("d") {
        return Err("holds a private key (`d`); list only the public half".into());
    }
    let retired_at = match object.remove("retired_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(&s)
                .map_err(|e| format!("retired_at {s:?} is not an RFC 3339 time: {e}"))?
                .with_timezone(&Utc),
        ),
        Some(other) => {
            return Err(format!(
                "retired_at must be an RFC 3339 string, not {other}"
            ));
        }
    };
    let jwk_value = Value::Object(object);
    let jwk: Jwk =
        serde_json::from_value(jwk_value.clone()).map_err(|e| format!("is not a JWK: {e}"))?;
    let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
        return Err("is not an Ed25519 (OKP) key".into());
    };
    if params.curve != EllipticCurve::Ed25519 {
        return Err("is an OKP key on a curve other than Ed25519".into());
    }
    let kid = jwk.common.key_id.clone().ok_or("has no `kid`")?;
    Ok(RetiredKey {
        kid,
        jwk: jwk_value,
        retired_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(previous: Vec<RetiredKey>) -> KeyRing {
        KeyRing::new(
            Signer::generate("current").unwrap(),
            previous,
            "shopstack",
            "shopstack",
            Duration::from_secs(900),
        )
        .unwrap()
    }

    #[test]
    fn the_key_id_defaults_to_the_thumbprint() {
        let pem = shopkit::auth::keys::generate_pem().unwrap();
        let a = signer(&pem, None).unwrap();
        let b = signer(&pem, Some("")).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 43, "base64url of a SHA-256");
        assert_eq!(signer(&pem, Some("shop-1")).unwrap().kid(), "shop-1");
    }

    #[test]
    fn retired_keys_are_published_until_their_tokens_expire() {
        let old = Signer::generate("old").unwrap();
        let retired = Utc::now();
        let mut jwk = old.jwk();
        jwk["retired_at"] = Value::String(retired.to_rfc3339());
        let previous = parse_previous(&serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
        assert!(previous[0].jwk.get("retired_at").is_none());
        let ring = ring(previous);
        let kids = |doc: Value| -> Vec<String> {
            doc["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(ring.jwks(retired)), ["current", "old"]);
        assert_eq!(
            kids(ring.jwks(retired + chrono::Duration::seconds(929))),
            ["current", "old"]
        );
        assert_eq!(
            kids(ring.jwks(retired + chrono::Duration::seconds(931))),
            ["current"]
        );
    }

    #[test]
    fn previous_keys_must_be_public_ed25519_jwks_with_ids() {
        let old = Signer::generate("old").unwrap();
        assert_eq!(
            parse_previous(&format!("[{}]", old.jwk())).unwrap()[0].kid,
            "old"
        );
        let mut private = old.jwk();
        private["d"] = Value::String("secret".into());
        assert!(
            parse_previous(&format!("[{private}]"))
                .unwrap_err()
                .contains("private")
        );
        let mut no_kid = old.jwk();
        no_kid.as_object_mut().unwrap().remove("kid");
        assert!(
            parse_previous(&format!("[{no_kid}]"))
                .unwrap_err()
                .contains("kid")
        );
        let rsa = serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"});
        assert!(
            parse_previous(&format!("[{rsa}]"))
                .unwrap_err()
                .contains("Ed25519")
        );
        assert!(parse_previous("not json").is_err());
        let mut bad_time = old.jwk();
        bad_time["retired_at"] = Value::String("yesterday".into());
        assert!(
            parse_previous(&format!("[{bad_time}]"))
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[tokio::test]
    async fn issued_tokens_verify_with_the_ring() {
        let ring = ring(Vec::new());
        let id = Uuid::now_v7();
        let token = ring.issue(id, &["customer"], Utc::now()).unwrap();
        let claims = ring.verifier().verify(&token.token).await.unwrap();
        assert_eq!(claims.sub, id);
        assert_eq!(claims.roles, ["customer"]);
        assert_eq!(claims.exp - claims.iat, 900);
    }
}
