//! The buyer's endpoints: place an order, list one's orders, read one.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shopkit::auth::Caller;
use shopkit::error::{Json, Path, Problem, Query};
use shopkit::http::TraceContext;
use shopkit::idempotency::IdempotencyKey;
use shopkit::{ApiError, ApiResult};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::checkout::{self, CheckoutError};
use crate::model::{NewOrder, OrderDetail, OrderPage};
use crate::peers::Forward;
use crate::startup::AppState;
use crate::store::{self, Listing};

/// Page sizes of listings.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// Orders are personal: never kept by a shared cache.
pub(crate) fn private(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// `limit` and `cursor` of a listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1–100, default 20.
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl PageParams {
    /// The validated limit and the id to continue after.
    pub fn parse(&self) -> ApiResult<(u32, Option<Uuid>)> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be 1 to {MAX_LIMIT}, not {limit}"
            )));
        }
        let before = self
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<Uuid>().map_err(|_| {
                    ApiError::BadRequest(
                        "cursor is not one this service issued; drop it to start again".into(),
                    )
                })
            })
            .transpose()?;
        Ok((limit, before))
    }
}

/// One page of `listing`, with the cursor of the next.
pub(crate) async fn page(
    state: &AppState,
    listing: Listing,
    params: &PageParams,
) -> ApiResult<OrderPage> {
    let (limit, before) = params.parse()?;
    let (items, more) = store::list(state.pool(), listing, before, limit).await?;
    // The cursor is the last id shown: UUIDv7 ids order by creation.
    let next_cursor = more
        .then(|| items.last().map(|o| o.id.to_string()))
        .flatten();
    Ok(OrderPage { items, next_cursor })
}

/// Place an order from a cart: its lines at the catalog's current prices, `pending`
/// until the catalog reserves the stock.
#[utoipa::path(
    post, path = "/orders", tag = "orders", security(("bearer" = [])),
    params(
        ("Idempotency-Key" = String, Header, description = "Required: one value per intended order (a UUID), the same when retrying; kept 24 h"),
        ("X-Request-Id" = Option<String>, Header, description = "Forwarded to cart and catalog"),
    ),
    request_body = NewOrder,
    responses(
        (status = 201, description = "Placed (or a replay of the first answer for this key, with `Idempotent-Replayed: true`)", body = OrderDetail,
         headers(("Location" = String, description = "/orders/{id}"))),
        (status = 400, description = "No or malformed Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Out of stock (type …/out-of-stock, `skus` and `shortages` name the lines)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or unknown cart, SKUs not for sale (`skus`), or the key was used with another request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Cart or catalog unavailable; retry with the same key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_order(
    caller: Caller,
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    headers: HeaderMap,
    trace: Option<Extension<TraceContext>>,
    Json(request): Json<NewOrder>,
) -> Result<Response, CheckoutError> {
    let forward = Forward {
        authorization: headers.get(header::AUTHORIZATION).cloned(),
        cart_token: request.cart_token.clone(),
        trace: trace.map(|Extension(trace)| trace),
    };
    let response = checkout::place(&state, &caller, &key, &request, &forward).await?;
    Ok(private(response))
}

/// The caller's orders, newest first.
#[utoipa::path(
    get, path = "/orders", tag = "orders", security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_orders(
    caller: Caller,
    State(state): State<AppState>,
    Query(params): Query<PageParams>,
) -> ApiResult<Response> {
    let page = page(&state, Listing::Owner(caller.user_id), &params).await?;
    Ok(private(Json(page)))
}

/// One order with its transitions: the owner's, or any for an admin.
#[utoipa::path(
    get, path = "/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = OrderDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_order(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let mut conn = state.pool().acquire().await?;
    let detail = store::detail(&mut conn, id)
        .await?
        // Someone else's order is "not found" too: a 403 would confirm that it exists.
        .filter(|d| d.order.user_id == caller.user_id || caller.is_admin())
        .ok_or_else(|| ApiError::not_found("the order"))?;
    Ok(private(Json(detail)))
}
