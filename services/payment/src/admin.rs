//! Back-office reads (role `admin`): every payment, and an order's ledger.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use shopkit::auth::Admin;
use shopkit::error::{Json, Path, Problem, Query};
use shopkit::{ApiError, ApiResult};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::{list, no_store};
use crate::ledger;
use crate::model::{OrderLedger, PaymentPage, Status};
use crate::startup::AppState;
use crate::store::Filter;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminListQuery {
    /// Only payments in this status.
    status: Option<Status>,
    order_id: Option<Uuid>,
    /// Only this buyer's.
    user_id: Option<Uuid>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

/// Every payment, newest first.
#[utoipa::path(
    get, path = "/admin/payments", tag = "admin", security(("bearer" = [])),
    params(AdminListQuery),
    responses(
        (status = 200, description = "A page of payments", body = PaymentPage),
        (status = 400, description = "Bad filter, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_payments(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<AdminListQuery>,
) -> ApiResult<Response> {
    let filter = Filter {
        user_id: query.user_id,
        order_id: query.order_id,
        status: query.status,
    };
    let page = list(&state, &filter, query.cursor.as_deref(), query.limit).await?;
    Ok(no_store(Json(page)))
}

/// An order's ledger entries, their balance, and whether it fits the payment's status.
#[utoipa::path(
    get, path = "/admin/ledger/{order_id}", tag = "admin", security(("bearer" = [])),
    params(("order_id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order's ledger", body = OrderLedger),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No payment for this order", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn order_ledger(
    _admin: Admin,
    State(state): State<AppState>,
    Path(order_id): Path<Uuid>,
) -> ApiResult<Response> {
    let mut conn = state.pool().acquire().await?;
    let ledger = ledger::of_order(&mut conn, order_id).await?;
    if ledger.payment_status.is_none() && ledger.entries.is_empty() {
        return Err(ApiError::not_found(format!(
            "a payment for order {order_id}"
        )));
    }
    Ok(no_store(Json(ledger)))
}
