//! What a merchant and a buyer do, as HTTP calls against a running [`Testbed`]: shared by
//! the system tests and the checkout benchmark.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Testbed;

/// How often a buyer looks again at an order or for its payment intent: what a
/// storefront's status page would do (every poll is a request the services serve).
pub const POLL: Duration = Duration::from_millis(25);

/// Test card numbers of the built-in test gateway.
pub const CARD_OK: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";

/// One answer: status and JSON body (Null when there is none).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn ok(self) -> anyhow::Result<Value> {
        if !self.status.is_success() {
            bail!("{}: {}", self.status, self.body);
        }
        Ok(self.body)
    }
}

/// A buyer: a token of their own.
#[derive(Debug, Clone)]
pub struct Buyer {
    pub token: String,
}

impl Testbed {
    pub fn admin_token(&self) -> String {
        self.issuer.token(&["admin"])
    }

    pub fn buyer(&self) -> Buyer {
        Buyer {
            token: self.issuer.token(&["customer"]),
        }
    }

    /// A request to a service as the bearer of `token`.
    pub async fn call(
        &self,
        method: Method,
        service: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url(service)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{service} {path}"))?;
        let status = response.status();
        let bytes = response.bytes().await?.to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            body,
            bytes,
        })
    }

    /// A published product with one variant of `sku` at `price_minor` with `on_hand`.
    pub async fn product(&self, sku: &str, price_minor: i64, on_hand: i64) -> anyhow::Result<()> {
        let admin = self.admin_token();
        let slug = format!("cat-{}", sku.to_lowercase());
        self.call(
            Method::POST,
            "catalog",
            "/admin/categories",
            Some(&admin),
            Some(&json!({"slug": slug, "name": format!("Category {sku}")})),
            &[],
        )
        .await?
        .ok()?;
        self.call(
            Method::POST,
            "catalog",
            "/admin/products",
            Some(&admin),
            Some(&json!({
                "name": format!("Product {sku}"), "category": slug,
                "description": "A product of the test shop.", "status": "published",
                "variants": [{"sku": sku, "attributes": {}, "price_minor": price_minor,
                              "currency": "USD", "on_hand": on_hand}],
            })),
            &[],
        )
        .await?
        .ok()?;
        Ok(())
    }

    /// `(on_hand, reserved, available)` of a SKU, as the catalog's admin sees it.
    pub async fn stock(&self, sku: &str) -> anyhow::Result<(i64, i64, i64)> {
        let level = self
            .call(
                Method::GET,
                "catalog",
                &format!("/admin/inventory/{sku}"),
                Some(&self.admin_token()),
                None,
                &[],
            )
            .await?
            .ok()?;
        let n = |k: &str| level[k].as_i64().unwrap_or(-1);
        Ok((n("on_hand"), n("reserved"), n("available")))
    }

    /// The buyer's cart id.
    pub async fn cart(&self, buyer: &Buyer) -> anyhow::Result<Uuid> {
        let cart = self
            .call(
                Method::GET,
                "cart",
                "/carts/mine",
                Some(&buyer.token),
                None,
                &[],
            )
            .await?
            .ok()?;
        serde_json::from_value(cart["id"].clone()).context("a cart without an id")
    }

    pub async fn add_to_cart(
        &self,
        buyer: &Buyer,
        cart: Uuid,
        sku: &str,
        quantity: i64,
    ) -> anyhow::Result<Answer> {
        self.call(
            Method::POST,
            "cart",
            &format!("/carts/{cart}/items"),
            Some(&buyer.token),
            Some(&json!({"sku": sku, "quantity": quantity})),
            &[],
        )
        .await
    }

    pub async fn place_order(
        &self,
        buyer: &Buyer,
        cart: Uuid,
        key: &str,
    ) -> anyhow::Result<Answer> {
        self.call(
            Method::POST,
            "order",
            "/orders",
            Some(&buyer.token),
            Some(&json!({"cart_id": cart})),
            &[("Idempotency-Key", key)],
        )
        .await
    }

    pub async fn order(&self, buyer: &Buyer, order: Uuid) -> anyhow::Result<Value> {
        self.call(
            Method::GET,
            "order",
            &format!("/orders/{order}"),
            Some(&buyer.token),
            None,
            &[],
        )
        .await?
        .ok()
    }

    /// Polls the order until its status is one of `statuses` (or `within` passes).
    pub async fn wait_order(
        &self,
        buyer: &Buyer,
        order: Uuid,
        statuses: &[&str],
        within: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let current = self.order(buyer, order).await?;
            if statuses.iter().any(|s| current["status"] == *s) {
                return Ok(current);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "order {order} is still {} (wanted {statuses:?})",
                    current["status"]
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The order's payment intent, once the payment service has created it.
    pub async fn payment_of(
        &self,
        buyer: &Buyer,
        order: Uuid,
        within: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let page = self
                .call(
                    Method::GET,
                    "payment",
                    &format!("/payments?order_id={order}"),
                    Some(&buyer.token),
                    None,
                    &[],
                )
                .await?
                .ok()?;
            if let Some(payment) = page["items"].as_array().and_then(|i| i.first()) {
                return Ok(payment.clone());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no payment for order {order}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Confirms the payment with a test card.
    pub async fn pay(&self, buyer: &Buyer, payment: &str, card: &str) -> anyhow::Result<Answer> {
        self.call(
            Method::POST,
            "payment",
            &format!("/payments/{payment}/confirm"),
            Some(&buyer.token),
            Some(&json!({"payment_method": {
                "type": "card", "number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"
            }})),
            &[("Idempotency-Key", &format!("pay-{payment}"))],
        )
        .await
    }

    /// A whole checkout of one unit of `sku`: cart, order, pay. Returns the order as it
    /// ended (`paid` or `cancelled`), or the refusal (`409 out of stock`) as an error
    /// answer.
    pub async fn checkout(
        &self,
        buyer: &Buyer,
        sku: &str,
        card: &str,
        within: Duration,
    ) -> anyhow::Result<Result<Value, Answer>> {
        let cart = self.cart(buyer).await?;
        let added = self.add_to_cart(buyer, cart, sku, 1).await?;
        if !added.status.is_success() {
            return Ok(Err(added));
        }
        let placed = self
            .place_order(buyer, cart, &Uuid::now_v7().to_string())
            .await?;
        if !placed.status.is_success() {
            return Ok(Err(placed));
        }
        let order: Uuid = serde_json::from_value(placed.body["id"].clone())?;
        let ready = self
            .wait_order(buyer, order, &["awaiting_payment", "cancelled"], within)
            .await?;
        if ready["status"] == "cancelled" {
            return Ok(Ok(ready));
        }
        let payment = self.payment_of(buyer, order, within).await?;
        let id = payment["id"].as_str().context("a payment without an id")?;
        self.pay(buyer, id, card).await?.ok()?;
        Ok(Ok(self
            .wait_order(buyer, order, &["paid", "cancelled"], within)
            .await?))
    }
}
