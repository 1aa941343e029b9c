//! What the cart does with other services' events (consumer `cart`):
//!
//! - `order.paid` empties the order's cart;
//! - `variant.price_changed` moves every open line of the SKU to the new price;
//! - `inventory.changed` records the SKU's new availability on every open line (lines
//!   holding more are flagged `insufficient_stock`).
//!
//! Each touched cart gets a new version and a `pg_notify`, so its live subscribers on
//! every replica see a `price_changed` / `stock_changed` notice and then the cart.
//!
//! Idempotent twice over: the inbox drops a redelivered message, and the state decides
//! the rest — an order empties its cart once (`cleared_orders`), a price or stock that
//! is already there changes nothing, and an event older than the newest one applied for
//! its SKU (`sku_watermarks`) is ignored instead of undoing it.
//!
//! Architecture Invariant: handlers lock the carts they change in id order before their
//! lines, as every API change does (one cart) and merges do (two, in id order).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use shopkit::events::{Envelope, Handler, HandlerError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::live::{self, Notice};
use crate::store;

/// The consumer (and queue) name of the cart service.
pub const CONSUMER: &str = "cart";
pub const ORDER_PAID: &str = "order.paid";
pub const PRICE_CHANGED: &str = "variant.price_changed";
pub const INVENTORY_CHANGED: &str = "inventory.changed";

/// `order.paid` (the fields the cart uses).
#[derive(Debug, Clone, Deserialize)]
pub struct OrderPaid {
    pub order_id: Uuid,
    #[serde(default)]
    pub user_id: Option<Uuid>,
    #[serde(default)]
    pub cart_id: Option<Uuid>,
}

/// `variant.price_changed`.
#[derive(Debug, Clone, Deserialize)]
pub struct PriceChanged {
    pub sku: String,
    pub price_minor: i64,
    pub currency: String,
}

/// `inventory.changed`.
#[derive(Debug, Clone, Deserialize)]
pub struct InventoryChanged {
    pub sku: String,
    pub available: i64,
}

/// Bumps the carts' versions and tells every replica.
async fn touch(conn: &mut PgConnection, carts: &[Uuid]) -> sqlx::Result<()> {
    if carts.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE carts SET version = version + 1, updated_at = now() WHERE id = ANY($1)")
        .bind(carts)
        .execute(&mut *conn)
        .await?;
    for cart in carts {
        store::notify(conn, *cart).await?;
    }
    Ok(())
}

/// Empties the order's cart, once per order. Returns whether lines were removed.
pub async fn order_paid(conn: &mut PgConnection, paid: &OrderPaid) -> sqlx::Result<bool> {
    let Some(cart_id) = paid.cart_id else {
        return Ok(false);
    };
    let first = sqlx::query(
        "INSERT INTO cleared_orders (order_id, cart_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(paid.order_id)
    .bind(cart_id)
    .execute(&mut *conn)
    .await?;
    if first.rows_affected() == 0 {
        return Ok(false);
    }
    let owner: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT user_id FROM carts WHERE id = $1 FOR UPDATE")
            .bind(cart_id)
            .fetch_optional(&mut *conn)
            .await?;
    match (owner, paid.user_id) {
        (None, _) => {
            tracing::warn!(order_id = %paid.order_id, %cart_id, "order.paid names an unknown cart");
            return Ok(false);
        }
        (Some(Some(owner)), Some(buyer)) if owner != buyer => {
            tracing::warn!(
                order_id = %paid.order_id, %cart_id,
                "order.paid names a cart of another user; left alone"
            );
            return Ok(false);
        }
        _ => {}
    }
    let removed = sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1")
        .bind(cart_id)
        .execute(&mut *conn)
        .await?;
    if removed.rows_affected() == 0 {
        return Ok(false);
    }
    touch(conn, &[cart_id]).await?;
    crate::metrics::change("clear");
    Ok(true)
}

/// Whether `occurred_at` is newer than the last event of `kind` applied for `sku` (and
/// records it as the newest when so).
async fn newest(
    conn: &mut PgConnection,
    sku: &str,
    kind: &str,
    occurred_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let applied: Option<i32> = sqlx::query_scalar(
        "INSERT INTO sku_watermarks (sku, kind, occurred_at) VALUES ($1, $2, $3)
         ON CONFLICT (sku, kind) DO UPDATE SET occurred_at = EXCLUDED.occurred_at
         WHERE sku_watermarks.occurred_at < EXCLUDED.occurred_at
         RETURNING 1",
    )
    .bind(sku)
    .bind(kind)
    .bind(occurred_at)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(applied.is_some())
}

/// Moves every open line of the SKU to the new price. Returns the carts changed.
///
/// A line priced in another currency than the event's is left alone (with a warning):
/// moving it would put two currencies in its cart; the next change through the API
/// revalidates it against the catalog.
pub async fn price_changed(
    conn: &mut PgConnection,
    change: &PriceChanged,
    occurred_at: DateTime<Utc>,
) -> sqlx::Result<Vec<Uuid>> {
    if !newest(conn, &change.sku, "price", occurred_at).await? {
        return Ok(Vec::new());
    }
    let carts: Vec<Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM carts c
         WHERE c.status = 'open' AND EXISTS (
             SELECT 1 FROM cart_lines l
             WHERE l.cart_id = c.id AND l.sku = $1 AND l.unit_price_minor <> $2)
         ORDER BY c.id FOR UPDATE",
    )
    .bind(&change.sku)
    .bind(change.price_minor)
    .fetch_all(&mut *conn)
    .await?;
    if carts.is_empty() {
        return Ok(carts);
    }
    let changed: Vec<(Uuid, i64)> = sqlx::query_as(
        "UPDATE cart_lines l SET unit_price_minor = $3, updated_at = now()
         FROM cart_lines old
         WHERE l.cart_id = ANY($1) AND l.sku = $2 AND l.currency = $4
           AND old.cart_id = l.cart_id AND old.sku = l.sku
           AND l.unit_price_minor <> $3
         RETURNING l.cart_id, old.unit_price_minor",
    )
    .bind(&carts)
    .bind(&change.sku)
    .bind(change.price_minor)
    .bind(&change.currency)
    .fetch_all(&mut *conn)
    .await?;
    if changed.len() < carts.len() {
        tracing::warn!(
            sku = %change.sku, currency = %change.currency,
            "lines priced in another currency were left at their old price"
        );
    }
    let mut touched = Vec::with_capacity(changed.len());
    for (cart_id, old) in changed {
        let notice = Notice::PriceChanged {
            cart_id,
            sku: change.sku.clone(),
            old,
            new: change.price_minor,
        };
        live::publish_notice(conn, &notice).await?;
        touched.push(cart_id);
    }
    touched.sort_unstable();
    touch(conn, &touched).await?;
    crate::metrics::changes("price", touched.len());
    Ok(touched)
}

/// Records the SKU's availability on every open line. Returns the carts changed.
pub async fn inventory_changed(
    conn: &mut PgConnection,
    change: &InventoryChanged,
    occurred_at: DateTime<Utc>,
) -> sqlx::Result<Vec<Uuid>> {
    if !newest(conn, &change.sku, "stock", occurred_at).await? {
        return Ok(Vec::new());
    }
    let carts: Vec<Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM carts c
         WHERE c.status = 'open' AND EXISTS (
             SELECT 1 FROM cart_lines l
             WHERE l.cart_id = c.id AND l.sku = $1 AND l.available <> $2)
         ORDER BY c.id FOR UPDATE",
    )
    .bind(&change.sku)
    .bind(change.available)
    .fetch_all(&mut *conn)
    .await?;
    if carts.is_empty() {
        return Ok(carts);
    }
    sqlx::query(
        "UPDATE cart_lines SET available = $3, updated_at = now()
         WHERE cart_id = ANY($1) AND sku = $2",
    )
    .bind(&carts)
    .bind(&change.sku)
    .bind(change.available)
    .execute(&mut *conn)
    .await?;
    for cart_id in &carts {
        let notice = Notice::StockChanged {
            cart_id: *cart_id,
            sku: change.sku.clone(),
            available: change.available,
        };
        live::publish_notice(conn, &notice).await?;
    }
    touch(conn, &carts).await?;
    crate::metrics::changes("stock", carts.len());
    Ok(carts)
}

/// The routing keys the cart's queue is bound to.
pub const ROUTING_KEYS: [&str; 3] = [ORDER_PAID, PRICE_CHANGED, INVENTORY_CHANGED];

/// The cart's consumer: dispatches on the event type to the functions above.
#[derive(Debug, Clone, Copy, Default)]
pub struct CartEvents;

#[async_trait::async_trait]
impl Handler for CartEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            ORDER_PAID => {
                order_paid(conn, &event.data()?).await?;
            }
            PRICE_CHANGED => {
                let change: PriceChanged = event.data()?;
                if change.price_minor < 0 {
                    return Err(HandlerError::Reject(anyhow::anyhow!(
                        "{} {} has a negative price",
                        event.event_type,
                        event.id
                    )));
                }
                price_changed(conn, &change, event.occurred_at).await?;
            }
            INVENTORY_CHANGED => {
                inventory_changed(conn, &event.data()?, event.occurred_at).await?;
            }
            other => {
                // Bound only to the keys above; anything else is acknowledged and dropped.
                tracing::debug!(
                    event_type = other,
                    "ignoring an event the cart does not handle"
                );
            }
        }
        Ok(())
    }
}
