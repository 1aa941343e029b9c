//! Registration, log-in, token refresh, log-out, and the public keys.
//!
//! Nothing here tells whether an email has an account: registration always answers 202
//! (an existing owner is told by email instead), and a log-in with an unknown email gets
//! the same 401 as a wrong password, after the same work (the password is hashed against
//! a dummy hash, and the attempt is throttled under that email all the same).

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use shopkit::auth::{Caller, ROLE_CUSTOMER};
use shopkit::error::{Json, PROBLEM_JSON, Problem};
use shopkit::http::TraceContext;
use shopkit::{ApiError, ApiResult};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::client::ClientAddress;
use crate::model::{Accepted, Credentials, RefreshRequest, TokenResponse};
use crate::outbox::{self, types};
use crate::password::{self, MAX_PASSWORD_CHARS, Verification};
use crate::startup::AppState;
use crate::store::{self, NewUser, Purpose, Revocation, UserRow};
use crate::throttle::{self, Attempt, Subjects};
use crate::tokens::{MAX_TOKEN_INPUT_CHARS, token_hash, well_formed};
use crate::validate::{Email, Errors};

/// The one answer to a wrong password or an unknown email.
pub const BAD_CREDENTIALS: &str = "the email or password is incorrect";
/// The one answer to any unusable refresh token (unknown, expired, revoked, reused).
pub const BAD_REFRESH_TOKEN: &str = "the refresh token is not valid; log in again";
/// The registration answer, whatever happened.
pub const REGISTRATION_ACCEPTED: &str = "if this email can be registered, the account now exists and a \
     confirmation email is on its way; you can log in now";

/// `Option<Extension<TraceContext>>` as the trace for events.
pub(crate) fn trace(ext: Option<&Extension<TraceContext>>) -> Option<&TraceContext> {
    ext.map(|Extension(t)| t)
}

/// The 429 of a locked account or address, with `Retry-After`.
pub(crate) fn locked(until: DateTime<Utc>, now: DateTime<Utc>) -> Response {
    let retry_after = throttle::retry_after_secs(until, now);
    let problem = Problem {
        kind: "https://shopstack.dev/problems/too-many-requests".into(),
        title: "Too Many Requests".into(),
        status: StatusCode::TOO_MANY_REQUESTS.as_u16(),
        detail: format!(
            "too many failed attempts; try again in {retry_after} seconds, or reset the password"
        ),
        errors: Vec::new(),
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(problem)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        headers.insert(header::RETRY_AFTER, value);
    }
    response
}

/// Refuses a token field far longer than any token (a 422, like any overlong field).
pub(crate) fn bounded_token(field: &str, token: &str) -> ApiResult<()> {
    if token.len() > MAX_TOKEN_INPUT_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("is far longer than any token ({MAX_TOKEN_INPUT_CHARS} bytes at most)"),
        ));
    }
    Ok(())
}

/// The outcome of a throttled password check.
pub(crate) enum Checked {
    /// Refused before hashing: answer with this 429.
    Locked(Response),
    Wrong,
    Right {
        needs_rehash: bool,
    },
}

/// Checks a password under the brute-force limits of `subjects`: refused while locked,
/// else counted, hashed (against the dummy hash when `stored` is `None`), and taken
/// back if right.
pub(crate) async fn checked_password(
    state: &AppState,
    subjects: &Subjects,
    password: &str,
    stored: Option<&str>,
) -> ApiResult<Checked> {
    let now = state.clock().now();
    match throttle::check(state.pool(), subjects, state.throttle(), now).await? {
        Attempt::Locked { until } => {
            crate::metrics::login("locked");
            Ok(Checked::Locked(locked(until, now)))
        }
        Attempt::Reserved(at) => match state.hasher().verify(password, stored).await? {
            Verification::Mismatch => {
                crate::metrics::login("failure");
                Ok(Checked::Wrong)
            }
            Verification::Match { needs_rehash } => {
                throttle::succeeded(state.pool(), subjects, at, state.clock().now()).await?;
                crate::metrics::login("success");
                Ok(Checked::Right { needs_rehash })
            }
        },
    }
}

/// A token pair for `user` with a new session (refresh-token family), on `conn`.
pub(crate) async fn new_session(
    state: &AppState,
    conn: &mut PgConnection,
    user: &UserRow,
) -> ApiResult<TokenResponse> {
    let now = state.clock().now();
    let refresh = store::start_session(conn, user.id, now, state.lifetimes().refresh).await?;
    token_response(state, user.id, &user.roles(), refresh, now)
}

fn token_response(
    state: &AppState,
    user_id: Uuid,
    roles: &[&str],
    refresh_token: String,
    now: DateTime<Utc>,
) -> ApiResult<TokenResponse> {
    let access = state.keys().issue(user_id, roles, now)?;
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "Bearer".into(),
        expires_in: access.expires_in.as_secs(),
        refresh_token,
        refresh_expires_in: state.lifetimes().refresh.as_secs(),
    })
}

/// The credentials' fields checked: the email parsed, and for a new password the
/// policy; for a log-in only the length bound (no stored password can be longer).
fn checked_credentials(body: &Credentials, new_password: bool) -> ApiResult<Email> {
    let mut errors = Errors::new();
    let email = errors.take("email", Email::parse(&body.email));
    if new_password {
        errors.check(
            "password",
            password::check_policy(&body.password, &body.email),
        );
    } else if body.password.is_empty() {
        errors.push("password", "must not be empty");
    } else if body.password.chars().count() > MAX_PASSWORD_CHARS {
        errors.push(
            "password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        );
    }
    errors.finish()?;
    email.ok_or_else(|| ApiError::invalid("email", "must look like name@example.com"))
}

/// Create a customer account.
///
/// Always `202` with the same body once the fields are valid, whether or not the email
/// already had an account (its owner then gets a `user.registration_attempted` email
/// instead, at most hourly). The new account can log in at once; `email_verified` stays false until the
/// link from the `user.registered` email is used.
#[utoipa::path(
    post, path = "/register", tag = "account",
    request_body = Credentials,
    responses(
        (status = 202, description = "Accepted (also when the email is taken)", body = Accepted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email or password (policy)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn register(
    State(state): State<AppState>,
    trace_ext: Option<Extension<TraceContext>>,
    Json(body): Json<Credentials>,
) -> ApiResult<Response> {
    let email = checked_credentials(&body, true)?;
    // Hashed first in both cases, so a taken email answers after the same work.
    let hash = state.hasher().hash(&body.password).await?;
    let now = state.clock().now();
    let trace = trace(trace_ext.as_ref());
    let mut tx = state.pool().begin().await?;
    let new = NewUser {
        email: email.as_str(),
        password_hash: &hash,
        role: ROLE_CUSTOMER,
        verified: false,
    };
    match store::insert_user(&mut tx, &new, now).await? {
        Some(user_id) => {
            let ttl = state.lifetimes().email_verification;
            let (token, expires_at) =
                store::issue_one_time(&mut tx, user_id, Purpose::VerifyEmail, now, ttl).await?;
            let data = json!({
                "user_id": user_id,
                "email": email.as_str(),
                "verification_token": token,
                "verification_expires_at": expires_at,
            });
            outbox::record(&mut tx, types::REGISTERED, data, now, trace).await?;
            crate::metrics::count(crate::metrics::REGISTRATIONS_TOTAL, "outcome", "created");
        }
        None => {
            if let Some(existing) = store::user_by_email(&mut tx, email.as_str()).await? {
                // At most one notice an hour, so registration cannot flood a mailbox.
                let since = now - chrono::Duration::hours(1);
                let recent: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM outbox
                     WHERE event_type = $1 AND occurred_at > $2 AND envelope #>> '{data,user_id}' = $3)",
                )
                .bind(types::REGISTRATION_ATTEMPTED)
                .bind(since)
                .bind(existing.id.to_string())
                .fetch_one(&mut *tx)
                .await?;
                if !recent {
                    let data = json!({ "user_id": existing.id, "email": existing.email });
                    outbox::record(&mut tx, types::REGISTRATION_ATTEMPTED, data, now, trace)
                        .await?;
                }
            }
            crate::metrics::count(crate::metrics::REGISTRATIONS_TOTAL, "outcome", "existing");
        }
    }
    tx.commit().await?;
    let body = Accepted {
        status: "accepted".into(),
        detail: REGISTRATION_ACCEPTED.into(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Log in with email and password; returns an access token and a refresh token.
///
/// A wrong password and an unknown email get the same `401`. After 10 failed attempts
/// within an hour for one email (or 100 from one client address) further attempts get
/// `429` with `Retry-After`, without the password being checked.
#[utoipa::path(
    post, path = "/login", tag = "account",
    request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed email or overlong password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Locked out for now; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(body): Json<Credentials>,
) -> ApiResult<Response> {
    let email = checked_credentials(&body, false)?;
    let subjects = Subjects::new(email.as_str(), address);
    let user = {
        let mut conn = state.pool().acquire().await?;
        store::user_by_email(&mut conn, email.as_str()).await?
    };
    let stored = user.as_ref().map(|u| u.password_hash.as_str());
    let needs_rehash = match checked_password(&state, &subjects, &body.password, stored).await? {
        Checked::Locked(response) => return Ok(response),
        Checked::Wrong => return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into())),
        Checked::Right { needs_rehash } => needs_rehash,
    };
    let Some(user) = user else {
        // Unreachable: the dummy hash never matches. Answer as for a wrong password.
        return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
    };
    // Hashed before the transaction, so no connection is held while argon2 runs.
    let upgraded = if needs_rehash {
        Some(state.hasher().hash(&body.password).await?)
    } else {
        None
    };
    let mut tx = state.pool().begin().await?;
    if let Some(upgraded) = upgraded {
        // Only if nobody changed the password meanwhile.
        let done = sqlx::query(
            "UPDATE users SET password_hash = $3, updated_at = $4 WHERE id = $1 AND password_hash = $2",
        )
        .bind(user.id)
        .bind(&user.password_hash)
        .bind(&upgraded)
        .bind(state.clock().now())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            crate::metrics::rehash();
        }
    }
    let tokens = new_session(&state, &mut tx, &user).await?;
    tx.commit().await?;
    Ok(no_store(Json(tokens)))
}

/// Token answers must not be cached by anything in between.
pub(crate) fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    rotated_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    user_id: Uuid,
    role: String,
}

/// Exchange a refresh token for a new pair. The old refresh token is used up; presenting
/// it again later revokes every token of its session (a stolen token and its rightful
/// owner cannot both keep using it).
#[utoipa::path(
    post, path = "/refresh", tag = "account",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<Response> {
    let invalid = || {
        crate::metrics::count(crate::metrics::REFRESHES_TOTAL, "outcome", "invalid");
        ApiError::Unauthorized(BAD_REFRESH_TOKEN.into())
    };
    bounded_token("refresh_token", &body.refresh_token)?;
    if !well_formed(&body.refresh_token) {
        return Err(invalid());
    }
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    let row: Option<RefreshRow> = sqlx::query_as(
        "SELECT t.family_id, t.expires_at, t.rotated_at, f.revoked_at, f.user_id, u.role
         FROM refresh_tokens t
         JOIN refresh_families f ON f.id = t.family_id
         JOIN users u ON u.id = f.user_id
         WHERE t.token_hash = $1
         FOR UPDATE OF t, f",
    )
    .bind(token_hash(&body.refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(invalid());
    };
    if row.revoked_at.is_some() {
        return Err(invalid());
    }
    if row.rotated_at.is_some() {
        store::revoke_family(&mut tx, row.family_id, Revocation::Reuse, now).await?;
        tx.commit().await?;
        tracing::warn!(
            user.id = %row.user_id,
            "a rotated refresh token was presented again; its session is revoked"
        );
        crate::metrics::count(crate::metrics::REFRESHES_TOTAL, "outcome", "reused");
        return Err(ApiError::Unauthorized(BAD_REFRESH_TOKEN.into()));
    }
    if row.expires_at <= now {
        return Err(invalid());
    }
    sqlx::query("UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1")
        .bind(token_hash(&body.refresh_token))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let next =
        store::add_refresh_token(&mut tx, row.family_id, now, state.lifetimes().refresh).await?;
    let tokens = token_response(&state, row.user_id, &[row.role.as_str()], next, now)?;
    tx.commit().await?;
    crate::metrics::count(crate::metrics::REFRESHES_TOTAL, "outcome", "rotated");
    Ok(no_store(Json(tokens)))
}

/// Log out: end the session the refresh token belongs to. Always `204`, whatever the
/// token. Access tokens already issued stay valid until they expire (at most
/// `ACCESS_TOKEN_TTL_SECS`); clients drop them.
#[utoipa::path(
    post, path = "/logout", tag = "account",
    request_body = RefreshRequest,
    responses((status = 204, description = "The session, if any, is ended"))
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    bounded_token("refresh_token", &body.refresh_token)?;
    if well_formed(&body.refresh_token) {
        let now = state.clock().now();
        let mut conn = state.pool().acquire().await?;
        let family: Option<Uuid> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash(&body.refresh_token))
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(family) = family {
            store::revoke_family(&mut conn, family, Revocation::Logout, now).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Log out everywhere: end every session of the caller.
#[utoipa::path(
    post, path = "/logout/all", tag = "account", security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session is ended"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn logout_all(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<StatusCode> {
    let now = state.clock().now();
    let mut conn = state.pool().acquire().await?;
    store::revoke_all_sessions(&mut conn, caller.user_id, Revocation::LogoutAll, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long verifiers may cache the key set (shopkit's verifier refreshes every 5 minutes).
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// The public keys that verify access tokens: the current key and retired keys whose
/// tokens may not have expired yet.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "A JWKS document (RFC 7517) of Ed25519 keys", body = Object))
)]
pub(crate) async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(state.keys().jwks(state.clock().now())).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(JWKS_CACHE_CONTROL),
    );
    response
}
