//! Email verification and password reset: the links in the emails carry single-use,
//! expiring tokens (stored hashed). A token is used up in the same statement that checks
//! it, so it works once even when two requests race.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shopkit::error::{Json, Problem};
use shopkit::http::TraceContext;
use shopkit::{ApiError, ApiResult};

use crate::model::{Accepted, ForgotPassword, ResetPassword, TokenRequest};
use crate::outbox::{self, types};
use crate::password;
use crate::session::{bounded_token, trace};
use crate::startup::AppState;
use crate::store::{self, Purpose, Revocation};
use crate::tokens::well_formed;
use crate::validate::{Email, Errors};

/// A reset email is sent at most this often per account (the link of the previous one
/// still works meanwhile), so the endpoint cannot flood a mailbox.
const RESET_EMAIL_INTERVAL: Duration = Duration::from_secs(60);

const INVALID_VERIFICATION: &str =
    "this verification link is invalid, used or expired; ask for a new one";
const INVALID_RESET: &str = "this reset link is invalid, used or expired; ask for a new one";
const RESET_ACCEPTED: &str =
    "if an account has this email, a message with a reset link is on its way";

/// Confirm the email address with the token from the verification email.
#[utoipa::path(
    post, path = "/email/verify", tag = "recovery",
    request_body = TokenRequest,
    responses(
        (status = 204, description = "The email is verified"),
        (status = 400, description = "Unknown, used or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    trace_ext: Option<Extension<TraceContext>>,
    Json(body): Json<TokenRequest>,
) -> ApiResult<StatusCode> {
    let invalid = || {
        crate::metrics::count(
            crate::metrics::EMAIL_VERIFICATIONS_TOTAL,
            "outcome",
            "invalid",
        );
        ApiError::BadRequest(INVALID_VERIFICATION.into())
    };
    bounded_token("token", &body.token)?;
    if !well_formed(&body.token) {
        return Err(invalid());
    }
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    let Some(user_id) =
        store::consume_one_time(&mut tx, &body.token, Purpose::VerifyEmail, now).await?
    else {
        return Err(invalid());
    };
    let email: Option<String> = sqlx::query_scalar(
        "UPDATE users SET email_verified_at = $2, updated_at = $2
         WHERE id = $1 AND email_verified_at IS NULL RETURNING email",
    )
    .bind(user_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(email) = email {
        let data = json!({ "user_id": user_id, "email": email });
        outbox::record(
            &mut tx,
            types::EMAIL_VERIFIED,
            data,
            now,
            trace(trace_ext.as_ref()),
        )
        .await?;
    }
    tx.commit().await?;
    crate::metrics::count(
        crate::metrics::EMAIL_VERIFICATIONS_TOTAL,
        "outcome",
        "verified",
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password reset email. Always `202` for a well-formed email, whether or not
/// it has an account.
#[utoipa::path(
    post, path = "/password/forgot", tag = "recovery",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "Accepted (also for unknown emails)", body = Accepted),
        (status = 422, description = "Malformed email", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn forgot_password(
    State(state): State<AppState>,
    trace_ext: Option<Extension<TraceContext>>,
    Json(body): Json<ForgotPassword>,
) -> ApiResult<Response> {
    let email = Email::parse(&body.email).map_err(|message| ApiError::invalid("email", message))?;
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    if let Some(user) = store::user_by_email(&mut tx, email.as_str()).await? {
        let interval = chrono::Duration::from_std(RESET_EMAIL_INTERVAL).unwrap_or_default();
        let recent =
            store::issued_since(&mut tx, user.id, Purpose::ResetPassword, now - interval).await?;
        if !recent {
            let ttl = state.lifetimes().password_reset;
            let (token, expires_at) =
                store::issue_one_time(&mut tx, user.id, Purpose::ResetPassword, now, ttl).await?;
            let data = json!({
                "user_id": user.id,
                "email": user.email,
                "reset_token": token,
                "reset_expires_at": expires_at,
            });
            outbox::record(
                &mut tx,
                types::PASSWORD_RESET_REQUESTED,
                data,
                now,
                trace(trace_ext.as_ref()),
            )
            .await?;
            crate::metrics::count(crate::metrics::PASSWORD_RESETS_TOTAL, "stage", "requested");
        }
    }
    tx.commit().await?;
    let body = Accepted {
        status: "accepted".into(),
        detail: RESET_ACCEPTED.into(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Set a new password with the token from the reset email. Ends every session, lifts a
/// log-in lockout of the account, and counts as verifying the email (the link reached
/// the mailbox).
#[utoipa::path(
    post, path = "/password/reset", tag = "recovery",
    request_body = ResetPassword,
    responses(
        (status = 204, description = "The password is changed; log in with it"),
        (status = 400, description = "Unknown, used or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password breaks the policy (the token stays usable)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    trace_ext: Option<Extension<TraceContext>>,
    Json(body): Json<ResetPassword>,
) -> ApiResult<StatusCode> {
    let invalid = || {
        crate::metrics::count(crate::metrics::PASSWORD_RESETS_TOTAL, "stage", "invalid");
        ApiError::BadRequest(INVALID_RESET.into())
    };
    bounded_token("token", &body.token)?;
    if !well_formed(&body.token) {
        return Err(invalid());
    }
    // Look first (without using the token up), so that a password the policy refuses
    // leaves the link usable for a better one.
    let email = {
        let mut conn = state.pool().acquire().await?;
        let now = state.clock().now();
        let Some(user_id) =
            store::peek_one_time(&mut conn, &body.token, Purpose::ResetPassword, now).await?
        else {
            return Err(invalid());
        };
        store::user_by_id(&mut conn, user_id)
            .await?
            .map(|u| u.email)
            .ok_or_else(invalid)?
    };
    let mut errors = Errors::new();
    errors.check(
        "new_password",
        password::check_policy(&body.new_password, &email),
    );
    errors.finish()?;
    let hash = state.hasher().hash(&body.new_password).await?;
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    let Some(user_id) =
        store::consume_one_time(&mut tx, &body.token, Purpose::ResetPassword, now).await?
    else {
        return Err(invalid());
    };
    store::set_password(&mut tx, user_id, &hash, now).await?;
    sqlx::query(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, $2) WHERE id = $1",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    store::revoke_all_sessions(&mut tx, user_id, Revocation::PasswordChanged, now).await?;
    crate::throttle::forget_account(&mut tx, &email, now).await?;
    let data = json!({ "user_id": user_id, "email": email, "via": "reset" });
    outbox::record(
        &mut tx,
        types::PASSWORD_CHANGED,
        data,
        now,
        trace(trace_ext.as_ref()),
    )
    .await?;
    tx.commit().await?;
    crate::metrics::count(crate::metrics::PASSWORD_RESETS_TOTAL, "stage", "completed");
    Ok(StatusCode::NO_CONTENT)
}
