//! Idempotency keys for requests that move money or create orders: the same key with the
//! same request gets the first answer again, byte for byte; the same key with a different
//! request is refused (422); keys are forgotten after [`KEY_TTL_HOURS`].
//!
//! The claim is an insert into `idempotency_keys` in the request's own transaction, so
//! the stored answer commits exactly with the work it describes. A concurrent duplicate
//! blocks on that row until the first request commits (then replays its answer) or rolls
//! back (then runs itself). Each service's migrations create the table:
//!
//! ```sql
//! CREATE TABLE idempotency_keys (
//!     scope text NOT NULL, key text NOT NULL, fingerprint bytea NOT NULL,
//!     status smallint NOT NULL, content_type text NOT NULL, body bytea NOT NULL,
//!     created_at timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (scope, key)
//! );
//! ```

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::error::ApiError;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// How long a key is remembered.
pub const KEY_TTL_HOURS: i32 = 24;
const MAX_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header: required, 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    pub fn parse(raw: Option<&HeaderValue>) -> Result<IdempotencyKey, ApiError> {
        let Some(raw) = raw else {
            return Err(ApiError::BadRequest(
                "the Idempotency-Key header is required: send a unique value (e.g. a UUID) \
                 per intended operation, and the same value when retrying it"
                    .into(),
            ));
        };
        let key = raw.to_str().unwrap_or_default();
        let valid = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(ApiError::BadRequest(format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            )));
        }
        Ok(IdempotencyKey(key.to_owned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        IdempotencyKey::parse(parts.headers.get(HEADER))
    }
}

/// What identifies "the same request": SHA-256 over the parts (method, path, body …),
/// each length-prefixed so that no two different lists hash alike.
pub fn fingerprint(parts: &[&[u8]]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().to_vec()
}

/// An answer as stored and replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl StoredResponse {
    /// A JSON answer (serialisation of our own types cannot fail; if it did, the body
    /// would be `null` rather than a panic).
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> StoredResponse {
        StoredResponse {
            status: status.as_u16(),
            content_type: "application/json".into(),
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()),
        }
    }
}

impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let content_type = HeaderValue::from_str(&self.content_type)
            .unwrap_or(HeaderValue::from_static("application/json"));
        (status, [(header::CONTENT_TYPE, content_type)], self.body).into_response()
    }
}

/// The outcome of claiming a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: do the work, then [`save`] the answer in the same transaction.
    Fresh,
    /// Used before with the same request: answer this.
    Replay(StoredResponse),
    /// Used before with a different request.
    Mismatch,
}

impl Claim {
    /// The 422 to answer for [`Claim::Mismatch`].
    pub fn mismatch_error() -> ApiError {
        ApiError::Unprocessable(
            "this Idempotency-Key was already used with a different request; use a new key \
             for a new operation"
                .into(),
        )
    }
}

/// Claims `key` within `scope` (e.g. the caller's id) on the request's transaction.
pub async fn claim(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    fingerprint: &[u8],
) -> sqlx::Result<Claim> {
    // An expired key is free again.
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 \
         AND created_at < now() - make_interval(hours => $3)",
    )
    .bind(scope)
    .bind(key)
    .bind(KEY_TTL_HOURS)
    .execute(&mut *conn)
    .await?;
    // The placeholder row holds the key (and blocks duplicates) until `save` fills it.
    let fresh = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, status, content_type, body) \
         VALUES ($1, $2, $3, 0, '', '') ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if fresh {
        return Ok(Claim::Fresh);
    }
    let (stored_fingerprint, status, content_type, body): (Vec<u8>, i16, String, Vec<u8>) =
        sqlx::query_as(
            "SELECT fingerprint, status, content_type, body FROM idempotency_keys \
             WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    if stored_fingerprint != fingerprint {
        return Ok(Claim::Mismatch);
    }
    Ok(Claim::Replay(StoredResponse {
        status: u16::try_from(status).unwrap_or(200),
        content_type,
        body,
    }))
}

/// Stores the answer of a [`Claim::Fresh`] request, in the same transaction as its work.
pub async fn save(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    fingerprint: &[u8],
    response: &StoredResponse,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $4, content_type = $5, body = $6 \
         WHERE scope = $1 AND key = $2 AND fingerprint = $3",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(i16::try_from(response.status).unwrap_or(500))
    .bind(&response.content_type)
    .bind(&response.body)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets expired keys (housekeeping; claims already ignore them).
pub async fn purge_expired(conn: &mut PgConnection) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
    )
    .bind(KEY_TTL_HOURS)
    .execute(conn)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_present_and_visible_ascii() {
        assert!(IdempotencyKey::parse(None).is_err());
        assert!(IdempotencyKey::parse(Some(&HeaderValue::from_static(""))).is_err());
        assert!(IdempotencyKey::parse(Some(&HeaderValue::from_static("a b"))).is_err());
        let long = "k".repeat(256);
        assert!(IdempotencyKey::parse(Some(&HeaderValue::from_str(&long).unwrap())).is_err());
        assert_eq!(
            IdempotencyKey::parse(Some(&HeaderValue::from_static("order-1"))).unwrap(),
            IdempotencyKey("order-1".into())
        );
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"a"]), fingerprint(&[b"a"]));
    }
}
