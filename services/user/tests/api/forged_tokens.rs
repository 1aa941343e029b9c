//! Tokens built by hand: none of them gets past `/me`.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shopkit::auth::keys::Signer;

use crate::helpers::{KID, PASSWORD, TestApp};

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// HMAC-SHA256 (RFC 2104), written out so the test depends on no JWT library for it.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut key = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    key.resize(BLOCK, 0);
    let ipad: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

#[test]
fn hmac_matches_rfc_4231_test_case_2() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        hex::encode(mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

struct Fixture {
    app: TestApp,
    valid: String,
    claims: Value,
    signer: Signer,
}

async fn fixture() -> Fixture {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let valid = app.tokens("ann@example.com", PASSWORD).await.0;
    let payload = valid.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let signer = Signer::from_pem(KID, &app.pem).unwrap();
    Fixture {
        app,
        valid,
        claims,
        signer,
    }
}

impl Fixture {
    async fn refused(&self, token: &str, what: &str) {
        let response = self.app.get("/me", Some(token)).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            response.text()
        );
        response.problem(StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers["www-authenticate"], "Bearer");
    }

    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}

#[tokio::test]
async fn the_genuine_token_works_as_a_control() {
    let f = fixture().await;
    f.app.get("/me", Some(&f.valid)).await.ok();
    // And one signed by hand with the real key and correct claims works too.
    let claims: shopkit::auth::Claims = serde_json::from_value(f.claims.clone()).unwrap();
    f.app
        .get("/me", Some(&f.signer.sign(&claims).unwrap()))
        .await
        .ok();
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = fixture().await;
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": KID});
        let token = format!("{}.{}.", b64(&header), b64(&f.claims));
        f.refused(&token, alg).await;
        // With the genuine signature appended, too.
        let signature = f.valid.split('.').nth(2).unwrap();
        f.refused(
            &format!("{}.{}.{signature}", b64(&header), b64(&f.claims)),
            alg,
        )
        .await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let f = fixture().await;
    let jwks = f.app.get("/.well-known/jwks.json", None).await.ok();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let jwk_text = jwks["keys"][0].to_string();
    // Every form an attacker might guess the verifier uses as an HMAC secret.
    let secrets: [&[u8]; 3] = [x.as_bytes(), &raw, jwk_text.as_bytes()];
    for (alg, secret) in ["HS256", "HS384", "HS512"]
        .iter()
        .flat_map(|alg| secrets.iter().map(move |s| (*alg, *s)))
    {
        let header = json!({"alg": alg, "typ": "JWT", "kid": KID});
        let input = format!("{}.{}", b64(&header), b64(&f.claims));
        let mac = hmac_sha256(secret, input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac));
        f.refused(&token, alg).await;
    }
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let f = fixture().await;
    let mut claims: shopkit::auth::Claims = serde_json::from_value(f.claims.clone()).unwrap();
    claims.iat = f.now() - 3600;
    claims.exp = f.now() - 120; // beyond the verifier's 30 s leeway
    f.refused(&f.signer.sign(&claims).unwrap(), "expired").await;
}

#[tokio::test]
async fn unknown_or_missing_kid_and_foreign_keys_are_refused() {
    let f = fixture().await;
    let claims: shopkit::auth::Claims = serde_json::from_value(f.claims.clone()).unwrap();
    let wrong_kid = Signer::from_pem("another-kid", &f.app.pem).unwrap();
    f.refused(&wrong_kid.sign(&claims).unwrap(), "right key, unknown kid")
        .await;
    let foreign = Signer::generate(KID).unwrap();
    f.refused(
        &foreign.sign(&claims).unwrap(),
        "our kid, someone else's key",
    )
    .await;
    // No kid at all: the genuine signature over a header without one.
    let header = json!({"alg": "EdDSA", "typ": "JWT"});
    let signature = f.valid.split('.').nth(2).unwrap();
    f.refused(
        &format!("{}.{}.{signature}", b64(&header), b64(&f.claims)),
        "no kid",
    )
    .await;
}

#[tokio::test]
async fn tampered_payloads_and_claims_from_elsewhere_are_refused() {
    let f = fixture().await;
    let mut parts = f.valid.split('.');
    let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let mut claims = f.claims.clone();
    claims["roles"] = json!(["admin"]);
    f.refused(
        &format!("{header}.{}.{signature}", b64(&claims)),
        "roles raised",
    )
    .await;
    let mut claims = f.claims.clone();
    claims["exp"] = json!(f.now() + 86_400 * 365);
    f.refused(
        &format!("{header}.{}.{signature}", b64(&claims)),
        "exp extended",
    )
    .await;
    let mut claims = f.claims.clone();
    claims["sub"] = json!(uuid::Uuid::now_v7());
    f.refused(
        &format!("{header}.{}.{signature}", b64(&claims)),
        "sub swapped",
    )
    .await;
    // A flipped signature bit.
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[0] ^= 1;
    f.refused(
        &format!(
            "{header}.{}.{}",
            parts_payload(&f.valid),
            URL_SAFE_NO_PAD.encode(sig)
        ),
        "bad signature",
    )
    .await;
    // Correctly signed, but for another audience or issuer.
    let mut other: shopkit::auth::Claims = serde_json::from_value(f.claims.clone()).unwrap();
    other.aud = "another-shop".into();
    f.refused(&f.signer.sign(&other).unwrap(), "audience").await;
    let mut other: shopkit::auth::Claims = serde_json::from_value(f.claims.clone()).unwrap();
    other.iss = "evil".into();
    f.refused(&f.signer.sign(&other).unwrap(), "issuer").await;
    // Not a JWT at all, or no token.
    f.refused("not.a.jwt", "garbage").await;
    f.app
        .get("/me", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

fn parts_payload(token: &str) -> &str {
    token.split('.').nth(1).unwrap()
}
