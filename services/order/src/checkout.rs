//! Turning a cart into an order: the price snapshot (a pure function of the cart and the
//! catalog's answer), and `POST /orders` with its `Idempotency-Key`.

use std::collections::HashMap;

use anyhow::Context;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shopkit::ApiError;
use shopkit::auth::Caller;
use shopkit::error::PROBLEM_JSON;
use shopkit::idempotency::{self, Claim, StoredResponse};
use uuid::Uuid;

use crate::lifecycle::{SOURCE, types};
use crate::model::NewOrder;
use crate::peers::{Cart, Forward, PeerError, Sku};
use crate::startup::AppState;
use crate::store;

/// Set on an answer replayed for a repeated `Idempotency-Key`.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The problem type of a checkout refused for lack of stock.
pub const OUT_OF_STOCK: &str = "https://shopstack.dev/problems/out-of-stock";
/// The problem type of a cart holding something that is not for sale.
pub const NOT_FOR_SALE: &str = "https://shopstack.dev/problems/not-for-sale";

/// At most this many different SKUs per order: what the catalog's `GET /skus` answers
/// in one call.
pub const MAX_LINES: usize = 100;

/// One line of the order to be, priced by the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: String,
    pub product_id: Uuid,
    pub product_name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// The price snapshot of a whole cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub currency: String,
    pub total_minor: i64,
    pub lines: Vec<PricedLine>,
}

/// A line the catalog cannot cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shortage {
    pub sku: String,
    pub requested: i64,
    pub available: i64,
}

/// Why a cart cannot become an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the cart is empty: add something before checking out")]
    EmptyCart,
    #[error("the cart has {0} different SKUs; an order takes at most {MAX_LINES}")]
    TooManyLines(usize),
    #[error(
        "the cart has a line with quantity {quantity} of {sku}; quantities must be 1 to {}",
        i32::MAX
    )]
    BadQuantity { sku: String, quantity: i64 },
    #[error("not for sale (unknown or unpublished): {}", .0.join(", "))]
    NotForSale(Vec<String>),
    #[error("the cart mixes currencies ({}); an order has one", .0.join(", "))]
    MixedCurrencies(Vec<String>),
    #[error("the order total does not fit the range of amounts")]
    TotalTooLarge,
    #[error("out of stock: {}", describe(.0))]
    OutOfStock(Vec<Shortage>),
}

fn describe(shortages: &[Shortage]) -> String {
    shortages
        .iter()
        .map(|s| {
            format!(
                "{} ({} requested, {} available)",
                s.sku,
                s.requested,
                s.available.max(0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An RFC 9457 body with the SKUs concerned as an extension member.
#[derive(Debug, Serialize)]
struct SkuProblem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    skus: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shortages: Option<&'a [Shortage]>,
}

fn sku_problem(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: String,
    skus: Vec<&str>,
    shortages: Option<&[Shortage]>,
) -> Response {
    let body = SkuProblem {
        kind,
        title,
        status: status.as_u16(),
        detail,
        skus,
        shortages,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        match &self {
            Refusal::OutOfStock(shortages) => sku_problem(
                StatusCode::CONFLICT,
                OUT_OF_STOCK,
                "Out of stock",
                detail,
                shortages.iter().map(|s| s.sku.as_str()).collect(),
                Some(shortages),
            ),
            Refusal::NotForSale(skus) => sku_problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                NOT_FOR_SALE,
                "Not for sale",
                detail,
                skus.iter().map(String::as_str).collect(),
                None,
            ),
            Refusal::EmptyCart
            | Refusal::TooManyLines(_)
            | Refusal::BadQuantity { .. }
            | Refusal::MixedCurrencies(_)
            | Refusal::TotalTooLarge => ApiError::Unprocessable(detail).into_response(),
        }
    }
}

/// The cart's lines with repeated SKUs merged, in the order they first appear.
pub fn wanted(cart: &Cart) -> Result<Vec<(String, i32)>, Refusal> {
    let mut lines: Vec<(String, i64)> = Vec::new();
    for line in &cart.lines {
        match lines.iter_mut().find(|(sku, _)| *sku == line.sku) {
            Some((_, quantity)) => *quantity = quantity.saturating_add(line.quantity),
            None => lines.push((line.sku.clone(), line.quantity)),
        }
    }
    if lines.is_empty() {
        return Err(Refusal::EmptyCart);
    }
    if lines.len() > MAX_LINES {
        return Err(Refusal::TooManyLines(lines.len()));
    }
    lines
        .into_iter()
        .map(|(sku, quantity)| match i32::try_from(quantity) {
            Ok(q) if q > 0 => Ok((sku, q)),
            _ => Err(Refusal::BadQuantity { sku, quantity }),
        })
        .collect()
}

/// Prices the wanted lines at the catalog's current prices. Refuses SKUs the catalog does
/// not sell first, then lines it cannot cover, naming every one of them.
pub fn price(wanted: &[(String, i32)], catalog: &[Sku]) -> Result<Priced, Refusal> {
    let by_sku: HashMap<&str, &Sku> = catalog.iter().map(|s| (s.sku.as_str(), s)).collect();
    let not_for_sale: Vec<String> = wanted
        .iter()
        .filter(|(sku, _)| {
            by_sku
                .get(sku.as_str())
                .is_none_or(|s| !s.published || s.price_minor < 0)
        })
        .map(|(sku, _)| sku.clone())
        .collect();
    if !not_for_sale.is_empty() {
        return Err(Refusal::NotForSale(not_for_sale));
    }
    let mut lines = Vec::with_capacity(wanted.len());
    let mut shortages = Vec::new();
    for (sku, quantity) in wanted {
        let Some(item) = by_sku.get(sku.as_str()) else {
            continue; // unreachable: checked above
        };
        if item.available < i64::from(*quantity) {
            shortages.push(Shortage {
                sku: sku.clone(),
                requested: i64::from(*quantity),
                available: item.available,
            });
        }
        lines.push(PricedLine {
            sku: sku.clone(),
            product_id: item.product_id,
            product_name: item.product_name.clone(),
            quantity: *quantity,
            unit_price_minor: item.price_minor,
        });
    }
    let mut currencies: Vec<String> = lines
        .iter()
        .filter_map(|l| by_sku.get(l.sku.as_str()).map(|s| s.currency.clone()))
        .collect();
    currencies.sort();
    currencies.dedup();
    let [currency] = <[String; 1]>::try_from(currencies).map_err(Refusal::MixedCurrencies)?;
    if !shortages.is_empty() {
        return Err(Refusal::OutOfStock(shortages));
    }
    let total_minor = lines
        .iter()
        .try_fold(0_i64, |total, l| {
            l.unit_price_minor
                .checked_mul(i64::from(l.quantity))
                .and_then(|line| total.checked_add(line))
        })
        .ok_or(Refusal::TotalTooLarge)?;
    Ok(Priced {
        currency,
        total_minor,
        lines,
    })
}

/// Why `POST /orders` did not place an order.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl From<sqlx::Error> for CheckoutError {
    fn from(err: sqlx::Error) -> Self {
        CheckoutError::Api(err.into())
    }
}

impl From<anyhow::Error> for CheckoutError {
    fn from(err: anyhow::Error) -> Self {
        CheckoutError::Api(err.into())
    }
}

impl From<PeerError> for CheckoutError {
    fn from(err: PeerError) -> Self {
        CheckoutError::Api(match err {
            PeerError::CartNotFound => cart_not_found(),
            PeerError::Unavailable(cause) => ApiError::Unavailable(format!("{cause:#}")),
        })
    }
}

impl IntoResponse for CheckoutError {
    fn into_response(self) -> Response {
        match self {
            CheckoutError::Api(err) => err.into_response(),
            CheckoutError::Refused(refusal) => refusal.into_response(),
        }
    }
}

fn cart_not_found() -> ApiError {
    ApiError::invalid("cart_id", "no such cart, or it is not yours")
}

/// The answer with `Location` (taken from its body, so replays carry it too).
fn answer(stored: StoredResponse, replayed: bool) -> Response {
    #[derive(Deserialize)]
    struct Created {
        id: Uuid,
    }
    let location = serde_json::from_slice::<Created>(&stored.body)
        .ok()
        .and_then(|c| HeaderValue::from_str(&format!("/orders/{}", c.id)).ok());
    let mut response = stored.into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// `POST /orders`: the cart's lines at the catalog's prices, as a `pending` order, once
/// per `Idempotency-Key`.
///
/// The key is claimed twice. First, before anything else, in a transaction that is then
/// rolled back: a retry of an order already placed is answered from the stored response
/// without asking cart or catalog again (the cart may be empty by now). Then in the
/// transaction that writes the order, its first transition, the `order.created` event
/// and the stored response together: of concurrent duplicates that got past the first
/// claim, one writes and the others wait on its key and replay its answer. A refused or
/// failed request stores nothing, so retrying it with the same key runs it again.
pub async fn place(
    state: &AppState,
    caller: &Caller,
    key: &str,
    request: &NewOrder,
    forward: &Forward,
) -> Result<Response, CheckoutError> {
    let scope = caller.user_id.to_string();
    let body = serde_json::to_vec(request).context("serialising the request")?;
    let fingerprint = idempotency::fingerprint(&[b"POST", b"/orders", &body]);
    {
        let mut tx = state.pool().begin().await?;
        match idempotency::claim(&mut tx, &scope, key, &fingerprint).await? {
            Claim::Replay(stored) => return Ok(answer(stored, true)),
            Claim::Mismatch => return Err(Claim::mismatch_error().into()),
            Claim::Fresh => tx.rollback().await?,
        }
    }

    let cart = state.peers().cart(request.cart_id, forward).await?;
    // The cart service checks ownership; a cart of someone else's is not ours either way.
    if cart.id != request.cart_id || cart.user_id.is_some_and(|owner| owner != caller.user_id) {
        return Err(cart_not_found().into());
    }
    let wanted = wanted(&cart)?;
    let skus: Vec<&str> = wanted.iter().map(|(sku, _)| sku.as_str()).collect();
    let catalog = state.peers().skus(&skus, forward.trace.as_ref()).await?;
    let priced = price(&wanted, &catalog)?;

    let mut tx = state.pool().begin().await?;
    match idempotency::claim(&mut tx, &scope, key, &fingerprint).await? {
        Claim::Replay(stored) => return Ok(answer(stored, true)),
        Claim::Mismatch => return Err(Claim::mismatch_error().into()),
        Claim::Fresh => {}
    }
    let id = Uuid::now_v7();
    store::insert(&mut tx, id, caller.user_id, cart.id, &priced).await?;
    let lines: Vec<_> = priced
        .lines
        .iter()
        // product_name: for the buyer's confirmation (notification), additive.
        .map(|l| json!({"sku": l.sku, "product_name": l.product_name, "quantity": l.quantity, "unit_price_minor": l.unit_price_minor}))
        .collect();
    let data = json!({
        "order_id": id,
        "user_id": caller.user_id,
        "cart_id": cart.id,
        "currency": priced.currency,
        "total_minor": priced.total_minor,
        "lines": lines,
    });
    shopkit::events::record(
        &mut tx,
        SOURCE,
        types::CREATED,
        data,
        forward.trace.as_ref(),
    )
    .await?;
    let detail = store::detail(&mut tx, id)
        .await?
        .context("reading back the order just written")?;
    let stored = StoredResponse::json(StatusCode::CREATED, &detail);
    idempotency::save(&mut tx, &scope, key, &fingerprint, &stored).await?;
    tx.commit().await?;
    crate::metrics::order_created();
    tracing::info!(order.id = %id, total_minor = priced.total_minor, currency = %priced.currency, "order placed");
    Ok(answer(stored, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::CartLine;

    fn cart(lines: &[(&str, i64)]) -> Cart {
        Cart {
            id: Uuid::now_v7(),
            user_id: None,
            lines: lines
                .iter()
                .map(|(sku, quantity)| CartLine {
                    sku: (*sku).to_owned(),
                    quantity: *quantity,
                    unit_price_minor: Some(1),
                    currency: Some("USD".into()),
                    product_name: None,
                })
                .collect(),
        }
    }

    fn sku(sku: &str, price: i64, available: i64) -> Sku {
        Sku {
            sku: sku.to_owned(),
            product_id: Uuid::now_v7(),
            product_name: format!("Product {sku}"),
            price_minor: price,
            currency: "USD".into(),
            available,
            published: true,
        }
    }

    #[test]
    fn prices_come_from_the_catalog_and_add_up() {
        let wanted = wanted(&cart(&[("A", 2), ("B", 1)])).unwrap();
        let priced = price(&wanted, &[sku("B", 250, 9), sku("A", 1999, 2)]).unwrap();
        assert_eq!(priced.currency, "USD");
        assert_eq!(priced.total_minor, 2 * 1999 + 250);
        assert_eq!(priced.lines[0].sku, "A");
        assert_eq!(priced.lines[0].unit_price_minor, 1999);
        assert_eq!(priced.lines[1].product_name, "Product B");
    }

    #[test]
    fn repeated_skus_are_one_line() {
        let wanted = wanted(&cart(&[("A", 2), ("B", 1), ("A", 3)])).unwrap();
        assert_eq!(wanted, vec![("A".to_owned(), 5), ("B".to_owned(), 1)]);
    }

    #[test]
    fn empty_carts_and_bad_quantities_are_refused() {
        assert_eq!(wanted(&cart(&[])), Err(Refusal::EmptyCart));
        assert!(matches!(
            wanted(&cart(&[("A", 0)])),
            Err(Refusal::BadQuantity { quantity: 0, .. })
        ));
        assert!(matches!(
            wanted(&cart(&[("A", i64::from(i32::MAX) + 1)])),
            Err(Refusal::BadQuantity { .. })
        ));
        let names: Vec<String> = (0..=MAX_LINES).map(|i| format!("S-{i}")).collect();
        let many: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        assert_eq!(
            wanted(&cart(&many)),
            Err(Refusal::TooManyLines(MAX_LINES + 1))
        );
        assert_eq!(wanted(&cart(&many[1..])).unwrap().len(), MAX_LINES);
    }

    #[test]
    fn unknown_and_unpublished_skus_are_named() {
        let mut hidden = sku("B", 100, 5);
        hidden.published = false;
        let wanted = wanted(&cart(&[("A", 1), ("B", 1), ("C", 1)])).unwrap();
        let refused = price(&wanted, &[sku("A", 100, 0), hidden]).unwrap_err();
        // Not for sale wins over out of stock (A has none).
        assert_eq!(refused, Refusal::NotForSale(vec!["B".into(), "C".into()]));
        assert_eq!(
            refused.to_string(),
            "not for sale (unknown or unpublished): B, C"
        );
    }

    #[test]
    fn every_short_line_is_named() {
        let wanted = wanted(&cart(&[("A", 3), ("B", 1), ("C", 1)])).unwrap();
        let refused = price(
            &wanted,
            &[sku("A", 100, 2), sku("B", 100, 1), sku("C", 1, 0)],
        )
        .unwrap_err();
        let Refusal::OutOfStock(shortages) = &refused else {
            panic!("{refused:?}");
        };
        let skus: Vec<_> = shortages.iter().map(|s| s.sku.as_str()).collect();
        assert_eq!(skus, ["A", "C"]);
        assert_eq!(
            refused.to_string(),
            "out of stock: A (3 requested, 2 available), C (1 requested, 0 available)"
        );
    }

    #[test]
    fn one_currency_per_order_and_no_overflow() {
        let mut euro = sku("B", 100, 5);
        euro.currency = "EUR".into();
        let wanted_ab = wanted(&cart(&[("A", 1), ("B", 1)])).unwrap();
        assert_eq!(
            price(&wanted_ab, &[sku("A", 100, 5), euro]),
            Err(Refusal::MixedCurrencies(vec!["EUR".into(), "USD".into()]))
        );
        let wanted_a = wanted(&cart(&[("A", 3)])).unwrap();
        assert_eq!(
            price(&wanted_a, &[sku("A", i64::MAX / 2, 5)]),
            Err(Refusal::TotalTooLarge)
        );
    }
}
