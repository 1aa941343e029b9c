//! The caller's own account: `GET /me`, changing the password, asking for a new
//! verification email. Every handler takes a [`Caller`], so only a valid access token
//! (Ed25519, pinned algorithm, known `kid`, unexpired) reaches it, and it only ever
//! touches the caller's own rows.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shopkit::auth::Caller;
use shopkit::error::{Json, Problem};
use shopkit::http::TraceContext;
use shopkit::{ApiError, ApiResult};

use crate::client::ClientAddress;
use crate::model::{Accepted, ChangePassword, Me, TokenResponse};
use crate::outbox::{self, types};
use crate::password::{self, MAX_PASSWORD_CHARS};
use crate::session::{Checked, checked_password, new_session, no_store, trace};
use crate::startup::AppState;
use crate::store::{self, Purpose, Revocation, UserRow};
use crate::throttle::Subjects;
use crate::validate::Errors;

/// The caller's account, or 401 if it no longer exists (the token outlived it).
pub(crate) async fn account(state: &AppState, caller: &Caller) -> ApiResult<UserRow> {
    let mut conn = state.pool().acquire().await?;
    store::user_by_id(&mut conn, caller.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the account of this token no longer exists".into()))
}

/// The caller's account.
#[utoipa::path(
    get, path = "/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = Me),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn me(caller: Caller, State(state): State<AppState>) -> ApiResult<Response> {
    let user = account(&state, &caller).await?;
    let me = Me {
        id: user.id,
        email: user.email.clone(),
        email_verified: user.email_verified_at.is_some(),
        roles: vec![user.role.clone()],
        created_at: user.created_at,
    };
    Ok(no_store(Json(me)))
}

/// Change the password, given the current one. Ends every session (other devices must
/// log in again) and answers with a fresh token pair for this one.
///
/// The current password is checked under the same brute-force limits as log-ins.
#[utoipa::path(
    put, path = "/me/password", tag = "me", security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed; a new token pair", body = TokenResponse),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The current password is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password breaks the policy", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn change_password(
    caller: Caller,
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    trace_ext: Option<Extension<TraceContext>>,
    Json(body): Json<ChangePassword>,
) -> ApiResult<Response> {
    let user = account(&state, &caller).await?;
    let mut errors = Errors::new();
    if body.current_password.chars().count() > MAX_PASSWORD_CHARS {
        errors.push(
            "current_password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        );
    }
    errors.check(
        "new_password",
        password::check_policy(&body.new_password, &user.email),
    );
    if body.new_password == body.current_password {
        errors.push("new_password", "must differ from the current password");
    }
    errors.finish()?;
    let subjects = Subjects::new(&user.email, address);
    match checked_password(
        &state,
        &subjects,
        &body.current_password,
        Some(&user.password_hash),
    )
    .await?
    {
        Checked::Locked(response) => return Ok(response),
        Checked::Wrong => {
            return Err(ApiError::Forbidden(
                "the current password is incorrect".into(),
            ));
        }
        Checked::Right { .. } => {}
    }
    let hash = state.hasher().hash(&body.new_password).await?;
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    store::set_password(&mut tx, user.id, &hash, now).await?;
    store::revoke_all_sessions(&mut tx, user.id, Revocation::PasswordChanged, now).await?;
    let data = json!({ "user_id": user.id, "email": user.email, "via": "change" });
    outbox::record(
        &mut tx,
        types::PASSWORD_CHANGED,
        data,
        now,
        trace(trace_ext.as_ref()),
    )
    .await?;
    let tokens = new_session(&state, &mut tx, &user).await?;
    tx.commit().await?;
    Ok(no_store(Json(tokens)))
}

/// Send a new verification email (`user.email_verification_requested`); earlier links
/// stop working.
#[utoipa::path(
    post, path = "/me/email/verification", tag = "me", security(("bearer" = [])),
    responses(
        (status = 202, description = "A new verification email is on its way", body = Accepted),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is already verified", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn request_verification(
    caller: Caller,
    State(state): State<AppState>,
    trace_ext: Option<Extension<TraceContext>>,
) -> ApiResult<Response> {
    let user = account(&state, &caller).await?;
    if user.email_verified_at.is_some() {
        return Err(ApiError::Conflict(
            "the email address is already verified".into(),
        ));
    }
    let now = state.clock().now();
    let ttl = state.lifetimes().email_verification;
    let mut tx = state.pool().begin().await?;
    let (token, expires_at) =
        store::issue_one_time(&mut tx, user.id, Purpose::VerifyEmail, now, ttl).await?;
    let data = json!({
        "user_id": user.id,
        "email": user.email,
        "verification_token": token,
        "verification_expires_at": expires_at,
    });
    outbox::record(
        &mut tx,
        types::EMAIL_VERIFICATION_REQUESTED,
        data,
        now,
        trace(trace_ext.as_ref()),
    )
    .await?;
    tx.commit().await?;
    let body = Accepted {
        status: "accepted".into(),
        detail: "a new verification email is on its way".into(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
