//! The two services an order is made from, over HTTP: the cart (what the buyer wants) and
//! the catalog (what it costs now, and whether it is in stock). Plain clients of the
//! formats in docs/checkout.md, so tests point them at a local server speaking the same.

use std::time::Duration;

use anyhow::Context;
use axum::http::HeaderValue;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use shopkit::http::{REQUEST_ID, TRACEPARENT, TraceContext};
use uuid::Uuid;

/// How long one call to a peer may take before checkout answers 503: the buyer is
/// waiting, and a retry with the same `Idempotency-Key` is safe.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// The guest cart's token header of the cart service.
pub const CART_TOKEN: &str = "x-cart-token";

/// A cart as `GET /carts/{id}` answers it (fields the order does not use are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub id: Uuid,
    /// `None` for a guest cart.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    pub lines: Vec<CartLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub quantity: i64,
    /// The price the cart showed; the order takes the catalog's current one.
    #[serde(default)]
    pub unit_price_minor: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub product_name: Option<String>,
}

/// One SKU as the catalog's `GET /skus?sku=…` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sku {
    pub sku: String,
    pub product_id: Uuid,
    pub product_name: String,
    pub price_minor: i64,
    pub currency: String,
    pub available: i64,
    pub published: bool,
}

/// What the buyer's request carries that the peers need to see.
#[derive(Debug, Clone, Default)]
pub struct Forward {
    /// The caller's `Authorization` header, verbatim: the cart checks its owner.
    pub authorization: Option<HeaderValue>,
    /// The guest cart's token, sent as `X-Cart-Token`.
    pub cart_token: Option<String>,
    /// Request and trace ids, so the peers' logs join ours.
    pub trace: Option<TraceContext>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The cart service does not show this cart to this caller (or it does not exist).
    #[error("the cart does not exist or does not belong to the caller")]
    CartNotFound,
    /// A peer is down, slow or answered an error of its own.
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
}

/// The HTTP clients of the cart and the catalog. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Peers {
    http: reqwest::Client,
    cart_url: Url,
    catalog_url: Url,
}

impl Peers {
    /// `cart_url` and `catalog_url` are the services' base URLs (`http://cart:8080`).
    pub fn new(cart_url: Url, catalog_url: Url) -> anyhow::Result<Peers> {
        let http = reqwest::Client::builder()
            .timeout(PEER_TIMEOUT)
            .build()
            .context("building the HTTP client for cart and catalog")?;
        Ok(Peers {
            http,
            cart_url,
            catalog_url,
        })
    }

    /// `GET {CART_URL}/carts/{id}` as the buyer.
    pub async fn cart(&self, id: Uuid, forward: &Forward) -> Result<Cart, PeerError> {
        let url =
            join(&self.cart_url, &["carts", &id.to_string()]).map_err(PeerError::Unavailable)?;
        let mut request = self.http.get(url.clone());
        if let Some(authorization) = &forward.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization.clone());
        }
        if let Some(token) = &forward.cart_token {
            request = request.header(CART_TOKEN, token);
        }
        let response = with_trace(request, forward.trace.as_ref())
            .send()
            .await
            .with_context(|| format!("calling the cart service at {url}"))
            .map_err(PeerError::Unavailable)?;
        match response.status() {
            StatusCode::OK => response
                .json::<Cart>()
                .await
                .with_context(|| format!("reading the cart from {url}"))
                .map_err(PeerError::Unavailable),
            // The cart service hides other people's carts behind 404 too; a malformed or
            // refused token is as good as no cart here.
            StatusCode::BAD_REQUEST
            | StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND => Err(PeerError::CartNotFound),
            status => Err(PeerError::Unavailable(anyhow::anyhow!(
                "the cart service answered {status} for {url}"
            ))),
        }
    }

    /// `GET {CATALOG_URL}/skus?sku=A&sku=B`: the SKUs the catalog knows, in any order.
    pub async fn skus(
        &self,
        skus: &[&str],
        trace: Option<&TraceContext>,
    ) -> Result<Vec<Sku>, PeerError> {
        let mut url = join(&self.catalog_url, &["skus"]).map_err(PeerError::Unavailable)?;
        {
            let mut query = url.query_pairs_mut();
            for sku in skus {
                query.append_pair("sku", sku);
            }
        }
        let response = with_trace(self.http.get(url.clone()), trace)
            .send()
            .await
            .with_context(|| format!("calling the catalog at {url}"))
            .map_err(PeerError::Unavailable)?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(PeerError::Unavailable(anyhow::anyhow!(
                "the catalog answered {status} for {url}"
            )));
        }
        response
            .json::<Vec<Sku>>()
            .await
            .with_context(|| format!("reading SKUs from {url}"))
            .map_err(PeerError::Unavailable)
    }
}

/// `base` with `segments` appended as path segments (a trailing slash on `base` is fine).
fn join(base: &Url, segments: &[&str]) -> anyhow::Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("{base} cannot be a base URL"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Adds our request id and a `traceparent` with our trace id to an outgoing call.
fn with_trace(
    request: reqwest::RequestBuilder,
    trace: Option<&TraceContext>,
) -> reqwest::RequestBuilder {
    let Some(trace) = trace else {
        return request;
    };
    // A fresh parent span id per call: 16 hex digits.
    let span = Uuid::now_v7().simple().to_string();
    let span = &span[16..];
    request
        .header(REQUEST_ID.as_str(), &trace.request_id)
        .header(
            TRACEPARENT.as_str(),
            format!("00-{}-{span}-01", trace.trace_id),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_appended_to_the_base_url_with_or_without_its_slash() {
        for base in ["http://cart:8080", "http://cart:8080/", "http://gw/cart/"] {
            let base = Url::parse(base).unwrap();
            let url = join(&base, &["carts", "abc"]).unwrap();
            assert!(url.as_str().ends_with("/carts/abc"), "{url}");
            assert!(!url.as_str().contains("//carts"), "{url}");
        }
        let url = join(&Url::parse("http://gw/cart/").unwrap(), &["carts", "x"]).unwrap();
        assert_eq!(url.as_str(), "http://gw/cart/carts/x");
    }

    #[test]
    fn cart_lines_need_only_sku_and_quantity() {
        let cart: Cart = serde_json::from_value(serde_json::json!({
            "id": Uuid::now_v7(),
            "user_id": null,
            "lines": [{"sku": "A-1", "quantity": 2}],
            "updated_at": "2024-01-01T00:00:00Z",
        }))
        .unwrap();
        assert_eq!(cart.lines[0].quantity, 2);
        assert_eq!(cart.user_id, None);
    }
}
