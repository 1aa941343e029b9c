//! The HTTP handlers: thin — credentials, input checks, the catalog's answer, then one
//! function of [`store`]. Every cart answer carries `ETag: "<version>"` and
//! `Cache-Control: no-store`; a change may send `If-Match: "<version>"` to be refused
//! (412) when the cart moved on meanwhile.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shopkit::ApiError;
use shopkit::error::{Json, Path, Problem};
use uuid::Uuid;

use crate::access::{self, Credentials, Mode, User};
use crate::catalog::{CatalogError, SkuInfo};
use crate::error::{CartError, CartResult};
use crate::model::{self, AddItem, CartView, CreatedCart, MergeRequest, MergeResult, SetQuantity};
use crate::startup::AppState;
use crate::store::{self, CatalogFacts};
use crate::token;

/// A cart with its version as `ETag`, never cached.
fn cart_response(status: StatusCode, cart: &CartView, body: impl IntoResponse) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", cart.version)) {
        headers.insert(header::ETAG, tag);
    }
    response
}

/// `If-Match: "7"` (or `7`, or `W/"7"`); `*` and absence mean no condition.
pub fn if_match(headers: &HeaderMap) -> CartResult<Option<i64>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| {
            CartError::Api(ApiError::BadRequest(
                "If-Match must be a cart version as its ETag gives it, like \"7\"".into(),
            ))
        })
}

/// The catalog's current facts for a SKU that is for sale.
async fn for_sale(state: &AppState, sku: &str) -> CartResult<SkuInfo> {
    match state.catalog().sku(sku).await {
        Err(CatalogError::Unavailable(err)) => {
            Err(CartError::Api(ApiError::Unavailable(format!("{err:#}"))))
        }
        Ok(Some(info)) if info.published => Ok(info),
        Ok(_) => Err(CartError::UnknownSku(sku.to_owned())),
    }
}

/// Create an anonymous cart.
#[utoipa::path(
    post, path = "/carts", tag = "carts",
    responses(
        (status = 201, description = "The new cart and its token (also set as the `cart_token` cookie)", body = CreatedCart),
    )
)]
pub(crate) async fn create_cart(State(state): State<AppState>) -> CartResult<Response> {
    let token = token::generate();
    let cart = store::create_anonymous(state.pool(), &token::hash(&token)).await?;
    let mut response = cart_response(
        StatusCode::CREATED,
        &cart,
        Json(CreatedCart {
            token: token.clone(),
            cart: cart.clone(),
        }),
    );
    let headers = response.headers_mut();
    if let Some(cookie) = token::set_cookie(&token, state.cookie_secure()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    if let Ok(location) = HeaderValue::from_str(&format!("/carts/{}", cart.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The caller's open cart, created when there is none.
#[utoipa::path(
    get, path = "/carts/mine", tag = "carts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's cart", body = CartView),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn my_cart(
    State(state): State<AppState>,
    User(caller): User,
) -> CartResult<Response> {
    let cart = store::user_cart(state.pool(), caller.user_id).await?;
    Ok(cart_response(StatusCode::OK, &cart, Json(cart.clone())))
}

/// Fold an anonymous cart into the caller's cart (at log-in). Idempotent.
#[utoipa::path(
    post, path = "/carts/mine/merge", tag = "carts", security(("bearer" = [])),
    request_body = MergeRequest,
    responses(
        (status = 200, description = "The caller's cart after the merge", body = MergeResult),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No anonymous cart with that id and token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The catalog cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn merge(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Json(request): Json<MergeRequest>,
) -> CartResult<Response> {
    let Some(presented) = request
        .cart_token
        .clone()
        .or_else(|| token::from_headers(&headers))
    else {
        return Err(CartError::invalid(
            "cart_token",
            "the anonymous cart's token is required (in the body, X-Cart-Token or the cookie)",
        ));
    };
    let token_ok = |hash: &[u8]| token::well_formed(&presented) && token::matches(&presented, hash);
    let not_found = || CartError::not_found(format!("cart {}", request.cart_id));
    // Before asking the catalog, make sure the caller may see this cart at all.
    let owner = store::owner(state.pool(), request.cart_id)
        .await?
        .ok_or_else(not_found)?;
    if owner.user_id.is_some() || !owner.token_hash.as_deref().is_some_and(token_ok) {
        return Err(not_found());
    }
    let skus = store::skus(state.pool(), request.cart_id).await?;
    let found = if skus.is_empty() {
        Default::default()
    } else {
        state.catalog().skus(&skus).await.map_err(|err| {
            let CatalogError::Unavailable(err) = err;
            CartError::Api(ApiError::Unavailable(format!("{err:#}")))
        })?
    };
    let facts = CatalogFacts {
        asked: skus.into_iter().collect(),
        found,
    };
    let result: MergeResult = store::merge(
        state.pool(),
        caller.user_id,
        request.cart_id,
        token_ok,
        &facts,
    )
    .await?;
    crate::metrics::change("merge");
    let mut response = cart_response(StatusCode::OK, &result.cart, Json(result.clone()));
    if token::from_cookie(&headers).as_deref() == Some(presented.as_str()) {
        // The browser's anonymous cart is closed: forget its token.
        response.headers_mut().insert(
            header::SET_COOKIE,
            token::clear_cookie(state.cookie_secure()),
        );
    }
    Ok(response)
}

/// A cart with its lines.
#[utoipa::path(
    get, path = "/carts/{id}", tag = "carts",
    params(("id" = Uuid, Path, description = "The cart's id")),
    responses(
        (status = 200, description = "The cart", body = CartView),
        (status = 401, description = "Neither a cart token nor a bearer token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cart, or not the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_cart(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(id): Path<Uuid>,
) -> CartResult<Response> {
    access::authorize(state.pool(), id, &credentials, Mode::Read).await?;
    let cart = store::load(state.pool(), id)
        .await?
        .ok_or_else(|| CartError::not_found(format!("cart {id}")))?;
    Ok(cart_response(StatusCode::OK, &cart, Json(cart.clone())))
}

/// Add a SKU (to its line, when the cart has one) at the catalog's current price.
#[utoipa::path(
    post, path = "/carts/{id}/items", tag = "carts",
    params(("id" = Uuid, Path, description = "The cart's id")),
    request_body = AddItem,
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 404, description = "No such cart, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not that many available (`available` says how many are)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names an older version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown or unpublished SKU, quantity outside 1–99, or another currency than the cart's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The catalog cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn add_item(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(item): Json<AddItem>,
) -> CartResult<Response> {
    access::authorize(state.pool(), id, &credentials, Mode::Write).await?;
    let expected = if_match(&headers)?;
    let quantity = model::check_add_quantity(item.quantity)?;
    model::check_sku(&item.sku)?;
    let info = for_sale(&state, &item.sku).await?;
    let cart = store::add_item(state.pool(), id, &info, quantity, expected).await?;
    crate::metrics::change("add");
    Ok(cart_response(StatusCode::OK, &cart, Json(cart.clone())))
}

/// Set a line's quantity (0 removes it), at the catalog's current price.
#[utoipa::path(
    patch, path = "/carts/{id}/items/{sku}", tag = "carts",
    params(("id" = Uuid, Path, description = "The cart's id"), ("sku" = String, Path, description = "The line's SKU")),
    request_body = SetQuantity,
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 404, description = "No such cart or line", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not that many available", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names an older version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown or unpublished SKU, or quantity outside 0–99", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The catalog cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn set_quantity(
    State(state): State<AppState>,
    credentials: Credentials,
    Path((id, sku)): Path<(Uuid, String)>,
    headers: HeaderMap,
    Json(change): Json<SetQuantity>,
) -> CartResult<Response> {
    access::authorize(state.pool(), id, &credentials, Mode::Write).await?;
    let expected = if_match(&headers)?;
    let quantity = model::check_set_quantity(change.quantity)?;
    let cart = if quantity == 0 {
        let cart = store::remove_item(state.pool(), id, &sku, expected).await?;
        crate::metrics::change("remove");
        cart
    } else {
        model::check_sku(&sku)?;
        let info = for_sale(&state, &sku).await?;
        let cart = store::set_quantity(state.pool(), id, &info, quantity, expected).await?;
        crate::metrics::change("update");
        cart
    };
    Ok(cart_response(StatusCode::OK, &cart, Json(cart.clone())))
}

/// Remove a line.
#[utoipa::path(
    delete, path = "/carts/{id}/items/{sku}", tag = "carts",
    params(("id" = Uuid, Path, description = "The cart's id"), ("sku" = String, Path, description = "The line's SKU")),
    responses(
        (status = 200, description = "The cart after the change", body = CartView),
        (status = 404, description = "No such cart or line", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names an older version", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn remove_item(
    State(state): State<AppState>,
    credentials: Credentials,
    Path((id, sku)): Path<(Uuid, String)>,
    headers: HeaderMap,
) -> CartResult<Response> {
    access::authorize(state.pool(), id, &credentials, Mode::Write).await?;
    let expected = if_match(&headers)?;
    let cart = store::remove_item(state.pool(), id, &sku, expected).await?;
    crate::metrics::change("remove");
    Ok(cart_response(StatusCode::OK, &cart, Json(cart.clone())))
}

/// The cart, live: Server-Sent Events.
///
/// Events: `cart` (the cart; first on connect, then after every change, made through
/// any replica), `price_changed` `{sku, old, new}` and `stock_changed` `{sku, available}`
/// (each followed by the updated cart), `closed` `{id}` (merged into a user's cart; the
/// stream ends). A comment every 15 s keeps proxies from closing an idle stream.
#[utoipa::path(
    get, path = "/carts/{id}/events", tag = "carts",
    params(("id" = Uuid, Path, description = "The cart's id")),
    responses(
        (status = 200, description = "A text/event-stream of the cart's changes", content_type = "text/event-stream"),
        (status = 401, description = "Neither a cart token nor a bearer token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cart, or not the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(id): Path<Uuid>,
) -> CartResult<Response> {
    access::authorize(state.pool(), id, &credentials, Mode::Read).await?;
    let sse =
        crate::live::stream(state.pool().clone(), state.hub(), state.streams_end(), id).await?;
    let mut response = sse.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells nginx-style proxies not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_reads_versions_in_every_etag_spelling() {
        let mut headers = HeaderMap::new();
        assert_eq!(if_match(&headers).unwrap(), None);
        for (value, expected) in [
            ("\"7\"", Some(7)),
            ("7", Some(7)),
            ("W/\"12\"", Some(12)),
            ("*", None),
        ] {
            headers.insert(header::IF_MATCH, HeaderValue::from_static(value));
            assert_eq!(if_match(&headers).unwrap(), expected, "{value}");
        }
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert!(if_match(&headers).is_err());
    }
}
