//! The SQL that several endpoints (and `create-admin`) share: accounts, sessions and
//! single-use tokens. Every function takes a connection, so callers decide the
//! transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::tokens::{random_token, token_hash};

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// An account as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    pub fn roles(&self) -> [&str; 1] {
        [self.role.as_str()]
    }
}

const USER_COLUMNS: &str = "id, email, password_hash, role, email_verified_at, created_at";

pub async fn user_by_email(conn: &mut PgConnection, email: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
    )))
    .bind(email)
    .fetch_optional(conn)
    .await
}

pub async fn user_by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    /// Operator-made accounts count as verified.
    pub verified: bool,
}

/// Inserts the account unless the email is taken; `Ok(None)` when it is.
pub async fn insert_user(
    conn: &mut PgConnection,
    user: &NewUser<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Uuid>> {
    let id = Uuid::now_v7();
    sqlx::query_scalar(
        "INSERT INTO users (id, email, password_hash, role, email_verified_at, password_changed_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
         ON CONFLICT (email) DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.role)
    .bind(user.verified.then_some(now))
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Replaces the password hash (a change, a reset).
pub async fn set_password(
    conn: &mut PgConnection,
    user_id: Uuid,
    password_hash: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3 WHERE id = $1",
    )
    .bind(user_id)
    .bind(password_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Starts a session (a new refresh-token family) and returns its first refresh token.
pub async fn start_session(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
    ttl: Duration,
) -> sqlx::Result<String> {
    let family = Uuid::now_v7();
    sqlx::query("INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(family)
        .bind(user_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    add_refresh_token(conn, family, now, ttl).await
}

/// A new refresh token in `family`.
pub async fn add_refresh_token(
    conn: &mut PgConnection,
    family: Uuid,
    now: DateTime<Utc>,
    ttl: Duration,
) -> sqlx::Result<String> {
    let token = random_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&token))
    .bind(family)
    .bind(now)
    .bind(now + chrono(ttl))
    .execute(conn)
    .await?;
    Ok(token)
}

/// Why sessions end (stored as `refresh_families.revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Logout,
    LogoutAll,
    Reuse,
    PasswordChanged,
}

impl Revocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Reuse => "reuse",
            Self::PasswordChanged => "password_changed",
        }
    }
}

pub async fn revoke_family(
    conn: &mut PgConnection,
    family: Uuid,
    reason: Revocation,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .bind(reason.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every session of a user; returns how many were live.
pub async fn revoke_all_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    reason: Revocation,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .bind(reason.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// What a single-use token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A new single-use token; earlier unused ones of the same purpose stop working, so only
/// the latest email's link is valid.
pub async fn issue_one_time(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
    now: DateTime<Utc>,
    ttl: Duration,
) -> sqlx::Result<(String, DateTime<Utc>)> {
    sqlx::query(
        "UPDATE one_time_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let token = random_token();
    let expires_at = now + chrono(ttl);
    sqlx::query(
        "INSERT INTO one_time_tokens (token_hash, user_id, purpose, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok((token, expires_at))
}

/// The user a live (unused, unexpired) token belongs to, without using it up.
pub async fn peek_one_time(
    conn: &mut PgConnection,
    token: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT user_id FROM one_time_tokens
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Uses up a live token and returns its user; `None` if it is unknown, used or expired.
/// One statement, so two concurrent uses cannot both succeed.
pub async fn consume_one_time(
    conn: &mut PgConnection,
    token: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "UPDATE one_time_tokens SET used_at = $3
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
         RETURNING user_id",
    )
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Whether a live token of this purpose was issued since `since` (throttles reset mails).
pub async fn issued_since(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
    since: DateTime<Utc>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM one_time_tokens
         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND created_at > $3)",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(since)
    .fetch_one(conn)
    .await
}

/// Deletes what can no longer be used: refresh tokens and single-use tokens that expired
/// more than a day ago, and sessions left without tokens.
pub async fn prune_expired(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<u64> {
    let cutoff = now - chrono::Duration::days(1);
    let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let families = sqlx::query(
        "DELETE FROM refresh_families f WHERE created_at < $1
         AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)",
    )
    .bind(cutoff)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let one_time = sqlx::query("DELETE FROM one_time_tokens WHERE expires_at < $1")
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(tokens + families + one_time)
}
