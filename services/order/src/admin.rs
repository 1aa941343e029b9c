//! The back office (role `admin`): every order by status, and the actions the checkout
//! cannot take by itself — fulfil, cancel, refund.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use shopkit::auth::Admin;
use shopkit::error::{Json, Path, Problem, Query};
use shopkit::http::TraceContext;
use shopkit::{ApiError, ApiResult};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::customer::{PageParams, page, private};
use crate::lifecycle::{self, Cause, Outcome, RefundReason, Unchanged};
use crate::machine::{Status, Trigger, transition};
use crate::model::{OrderDetail, OrderPage};
use crate::startup::AppState;
use crate::store::{self, Listing, NewRefund};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminListParams {
    /// Only orders in this status.
    pub status: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Every order, newest first, optionally of one status.
#[utoipa::path(
    get, path = "/admin/orders", tag = "admin", security(("bearer" = [])),
    params(AdminListParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "Unknown status, bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_orders(
    _admin: Admin,
    State(state): State<AppState>,
    Query(params): Query<AdminListParams>,
) -> ApiResult<Response> {
    let status = params
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("status: {e}")))?;
    let paging = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let page = page(&state, Listing::All(status), &paging).await?;
    Ok(private(Json(page)))
}

/// A 409 (or 404) for an action that did not apply.
fn refused(why: Unchanged) -> ApiError {
    match why {
        Unchanged::UnknownOrder => ApiError::not_found("the order"),
        Unchanged::Raced => {
            ApiError::Conflict("the order changed meanwhile; read it again and retry".into())
        }
        other => ApiError::Conflict(other.to_string()),
    }
}

/// Applies an admin's trigger and answers with the order.
async fn act(
    state: &AppState,
    id: Uuid,
    trigger: Trigger,
    trace: Option<&TraceContext>,
) -> ApiResult<Response> {
    let mut tx = state.pool().begin().await?;
    let cause = Cause {
        event_id: None,
        trace,
    };
    match lifecycle::apply(&mut tx, id, trigger, cause).await? {
        Outcome::Moved { from, to } => {
            tracing::info!(order.id = %id, from = %from, to = %to, "order moved by an admin");
        }
        Outcome::RefundRequested(_) => {}
        Outcome::Unchanged(why) => return Err(refused(why)),
    }
    let detail = store::detail(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("the order"))?;
    tx.commit().await?;
    Ok(private(Json(detail)))
}

/// Mark a paid order fulfilled (shipped); publishes `order.fulfilled`.
#[utoipa::path(
    post, path = "/admin/orders/{id}/fulfil", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "Fulfilled", body = OrderDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not paid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn fulfil(
    _admin: Admin,
    State(state): State<AppState>,
    trace: Option<Extension<TraceContext>>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let trace = trace.map(|Extension(t)| t);
    act(&state, id, Trigger::Fulfil, trace.as_ref()).await
}

/// Cancel an order that is not paid yet; publishes `order.cancelled` (stock released,
/// payment intent cancelled).
#[utoipa::path(
    post, path = "/admin/orders/{id}/cancel", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "Cancelled", body = OrderDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Paid, fulfilled or already ended: refund instead", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn cancel(
    _admin: Admin,
    State(state): State<AppState>,
    trace: Option<Extension<TraceContext>>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let trace = trace.map(|Extension(t)| t);
    act(&state, id, Trigger::Cancel, trace.as_ref()).await
}

/// Ask the payment service to refund a paid or fulfilled order (`order.refund_requested`);
/// the order becomes `refunded` when `payment.refunded` arrives. Asking again publishes
/// nothing new.
#[utoipa::path(
    post, path = "/admin/orders/{id}/refund", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 202, description = "Refund requested (now or before)", body = OrderDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not paid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn refund(
    Admin(admin): Admin,
    State(state): State<AppState>,
    trace: Option<Extension<TraceContext>>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let trace = trace.map(|Extension(t)| t);
    let mut tx = state.pool().begin().await?;
    let order = store::lock(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("the order"))?;
    // Refundable exactly when a refund would be accepted by the state machine.
    transition(order.status, Trigger::PaymentRefunded)
        .map_err(|refused| ApiError::Conflict(refused.to_string()))?;
    let (payment_id, amount_minor, currency) = order
        .payment
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("order {id} is {} without a payment", order.status))?;
    let request = NewRefund {
        order_id: id,
        payment_id,
        amount_minor: *amount_minor,
        currency,
        reason: RefundReason::RequestedByAdmin.as_str(),
        event_id: None,
        requested_by: Some(admin.user_id),
    };
    let outcome = lifecycle::request_refund(
        &mut tx,
        &request,
        RefundReason::RequestedByAdmin,
        trace.as_ref(),
    )
    .await?;
    if outcome == Outcome::RefundRequested(RefundReason::RequestedByAdmin) {
        tracing::info!(order.id = %id, payment.id = %payment_id, "refund requested by an admin");
    }
    let detail = store::detail(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("the order"))?;
    tx.commit().await?;
    Ok(private((StatusCode::ACCEPTED, Json(detail))))
}
