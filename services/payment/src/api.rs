//! The buyer's endpoints. Every one needs a token; a payment is visible to its buyer
//! (the order's user) and to admins, and is a 404 to anyone else — identical to one that
//! does not exist, so nothing leaks about other customers' orders.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shopkit::auth::Caller;
use shopkit::error::{Json, Path, Problem, Query};
use shopkit::http::TraceContext;
use shopkit::idempotency::IdempotencyKey;
use shopkit::{ApiError, ApiResult};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::card::ConfirmRequest;
use crate::confirm::{self, AuthenticateRequest};
use crate::intent::{self, PaymentSession};
use crate::model::{Payment, PaymentPage, PaymentRow};
use crate::provider::PublicConfig;
use crate::startup::AppState;
use crate::store::{self, Filter};

/// Page sizes.
pub(crate) const DEFAULT_LIMIT: i64 = 20;
pub(crate) const MAX_LIMIT: i64 = 100;

/// Payment data is personal: never cached by anyone in between.
pub(crate) fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only the payment of this order.
    order_id: Option<Uuid>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

/// The page size and the id to continue after, from the query; 400s name the parameter.
pub(crate) fn page(
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<(Option<Uuid>, i64), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let after = cursor
        .map(|c| {
            Uuid::try_parse(c).map_err(|_| {
                ApiError::BadRequest(
                    "cursor is not one this service issued; drop it to start again".into(),
                )
            })
        })
        .transpose()?;
    Ok((after, limit))
}

/// One page of `filter`'s payments, newest first.
pub(crate) async fn list(
    state: &AppState,
    filter: &Filter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<PaymentPage> {
    let (after, limit) = page(cursor, limit)?;
    let mut conn = state.pool().acquire().await?;
    let mut rows = store::list(&mut conn, filter, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(PaymentPage {
        items: rows.iter().map(PaymentRow::view).collect(),
        next_cursor,
    })
}

/// The caller's payments (an admin's: everyone's), newest first.
#[utoipa::path(
    get, path = "/payments", tag = "payments", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of payments", body = PaymentPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_payments(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let filter = Filter {
        user_id: (!caller.is_admin()).then_some(caller.user_id),
        order_id: query.order_id,
        status: None,
    };
    let page = list(&state, &filter, query.cursor.as_deref(), query.limit).await?;
    Ok(no_store(Json(page)))
}

/// One payment, by its id or its order's id.
#[utoipa::path(
    get, path = "/payments/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The payment's id, or its order's id")),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment, or not the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_payment(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let mut conn = state.pool().acquire().await?;
    match store::by_id_or_order(&mut conn, id).await? {
        Some(row) if row.user_id == caller.user_id || caller.is_admin() => {
            Ok(no_store(Json(row.view())))
        }
        _ => Err(ApiError::not_found(format!("payment {id}"))),
    }
}

/// Pay with a card: authorised and captured at once (`succeeded`), declined (`failed`,
/// with `failure_reason`), or `requires_action` (3-D Secure; see `next_action`). Needs an
/// `Idempotency-Key`: a retry with the same key and body gets the first answer byte for
/// byte; the same key with another body is a 422. The card's number and CVC are passed
/// to the provider and never stored or logged.
#[utoipa::path(
    post, path = "/payments/{id}/confirm", tag = "payments", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The payment's id, or its order's id"),
        ("Idempotency-Key" = String, Header, description = "1–255 visible ASCII characters, unique per intended payment"),
    ),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "The payment after the attempt: succeeded, failed or requires_action", body = Payment),
        (status = 400, description = "No or a malformed Idempotency-Key, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No payment for this id (yet) — retry shortly", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not awaiting a payment method (already paid, cancelled, failed, being processed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid card fields, a card the provider does not take, or a reused key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider did not answer; the payment is resolved shortly", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn confirm_payment(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    trace: Option<Extension<TraceContext>>,
    Json(request): Json<ConfirmRequest>,
) -> ApiResult<Response> {
    let trace = trace.map(|Extension(t)| t);
    let response = confirm::confirm(&state, &caller, id, &key, &request, trace.as_ref()).await?;
    Ok(no_store(response))
}

/// Complete a `requires_action` payment's 3-D Secure step (test gateway): `approve`
/// captures it (`succeeded`), `deny` fails it (`authentication_failed`).
#[utoipa::path(
    post, path = "/payments/{id}/authenticate", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The payment's id, or its order's id")),
    request_body = AuthenticateRequest,
    responses(
        (status = 200, description = "The payment after authentication", body = Payment),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The payment does not wait for authentication", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "outcome is not approve or deny", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn authenticate_payment(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    trace: Option<Extension<TraceContext>>,
    Json(request): Json<AuthenticateRequest>,
) -> ApiResult<Response> {
    let trace = trace.map(|Extension(t)| t);
    let row = confirm::authenticate(&state, &caller, id, request, trace.as_ref()).await?;
    Ok(no_store(Json(row.view())))
}

/// What the storefront may know about the payment provider: its name, whether it is
/// live, and its public keys (Stripe's publishable key, PayPal's client id). No token
/// needed; nothing secret.
#[utoipa::path(
    get, path = "/payments/config", tag = "payments",
    responses(
        (status = 200, description = "The provider's public configuration", body = PublicConfig),
    )
)]
pub(crate) async fn payment_config(State(state): State<AppState>) -> Response {
    Json(state.provider().public_config()).into_response()
}

/// Makes the payment ready at the provider and returns what the buyer's browser needs
/// to pay there: Stripe's client secret (Payment Element), PayPal's approval link (the
/// payment moves to `requires_action`, `next_action.redirect_url`). The buyer only.
#[utoipa::path(
    post, path = "/payments/{id}/intent", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The payment's id, or its order's id")),
    responses(
        (status = 200, description = "The payment and what to pay it with", body = PaymentSession),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the buyer (an admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment (yet), or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The payment is not waiting to be paid", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider did not answer; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn start_payment(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let session = intent::start(&state, &caller, id).await?;
    Ok(no_store(Json(session)))
}
