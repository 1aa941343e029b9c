//! Stock reservations, the catalog's part of the checkout (docs/checkout.md).
//!
//! `order.created` reserves every line of the order or none: one conditional update per
//! SKU (`on_hand - reserved >= quantity`, so stock never goes below zero however many
//! orders race), in SKU order (so two orders never deadlock), inside a savepoint that is
//! rolled back when any line is short. `payment.succeeded` commits the reservation (on
//! hand goes down, audited), `order.cancelled` releases it, and the [`sweep`] releases the
//! ones whose TTL passed and says so with `inventory.expired`.
//!
//! Each outcome is a status change of the reservation row guarded by its current status,
//! so a redelivered or late event finds nothing to do.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use shopkit::events::{self, Envelope, Handler, HandlerError};
use shopkit::http::TraceContext;
use sqlx::{Acquire, PgConnection, PgPool};
use uuid::Uuid;

/// The `source` of the catalog's events.
pub const SOURCE: &str = "catalog";

/// The consumer (queue) name and what it listens to.
pub const CONSUMER: &str = "catalog";
pub const SUBSCRIBES_TO: &[&str] = &["order.created", "order.cancelled", "payment.succeeded"];

#[derive(Debug, Clone, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, Deserialize)]
struct OrderCreated {
    order_id: Uuid,
    lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, Deserialize)]
struct OrderRef {
    order_id: Uuid,
}

/// What [`reserve`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Every line is held until the TTL passes.
    All,
    /// These SKUs had too little stock; nothing is held.
    Short(Vec<String>),
    /// The order had a reservation (or a rejection) already.
    AlreadyDecided,
}

/// Reserves the order's lines, all or none, and records the outcome's event.
pub async fn reserve(
    conn: &mut PgConnection,
    order_id: Uuid,
    lines: &[OrderLine],
    ttl: Duration,
    trace: Option<&TraceContext>,
) -> Result<Reserved, HandlerError> {
    // Duplicate SKUs are summed; the BTreeMap also gives the lock order.
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for line in lines {
        if line.quantity <= 0 {
            return Err(HandlerError::Reject(anyhow::anyhow!(
                "order {order_id} has a line of {} with quantity {}",
                line.sku,
                line.quantity
            )));
        }
        *wanted.entry(line.sku.as_str()).or_default() += i64::from(line.quantity);
    }
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let claimed = sqlx::query(
        "INSERT INTO reservations (order_id, status, expires_at)
         VALUES ($1, 'active', now() + make_interval(secs => $2::double precision / 1000))
         ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(ttl_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        return Ok(Reserved::AlreadyDecided);
    }

    let mut held = conn.begin().await?;
    let mut short = Vec::new();
    let mut levels = Vec::new();
    for (sku, quantity) in &wanted {
        let available: Option<i32> = sqlx::query_scalar(
            "UPDATE inventory SET reserved = reserved + $2, updated_at = now()
             WHERE sku = $1 AND on_hand::bigint - reserved >= $2
             RETURNING available",
        )
        .bind(sku)
        .bind(quantity)
        .fetch_optional(&mut *held)
        .await?;
        match available {
            Some(available) => levels.push(((*sku).to_owned(), available)),
            None => short.push((*sku).to_owned()),
        }
    }
    if !short.is_empty() {
        held.rollback().await?;
        sqlx::query(
            "UPDATE reservations SET status = 'rejected', settled_at = now() WHERE order_id = $1",
        )
        .bind(order_id)
        .execute(&mut *conn)
        .await?;
        events::record(
            conn,
            SOURCE,
            "inventory.rejected",
            serde_json::json!({"order_id": order_id, "reason": "out_of_stock", "skus": short}),
            trace,
        )
        .await?;
        crate::metrics::reservation("rejected");
        return Ok(Reserved::Short(short));
    }
    held.commit().await?;
    let skus: Vec<&str> = wanted.keys().copied().collect();
    let quantities: Vec<i32> = wanted
        .values()
        .map(|q| i32::try_from(*q).unwrap_or(i32::MAX))
        .collect();
    sqlx::query(
        "INSERT INTO reservation_lines (order_id, sku, quantity)
         SELECT $1, * FROM UNNEST($2::text[], $3::int[])",
    )
    .bind(order_id)
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *conn)
    .await?;
    let expires_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT expires_at FROM reservations WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&mut *conn)
            .await?;
    events::record(
        conn,
        SOURCE,
        "inventory.reserved",
        serde_json::json!({"order_id": order_id, "expires_at": expires_at}),
        trace,
    )
    .await?;
    stock_changed(conn, &levels, trace).await?;
    crate::metrics::reservation("reserved");
    Ok(Reserved::All)
}

/// Tells carts about new availability.
async fn stock_changed(
    conn: &mut PgConnection,
    levels: &[(String, i32)],
    trace: Option<&TraceContext>,
) -> sqlx::Result<()> {
    for (sku, available) in levels {
        events::record(
            conn,
            SOURCE,
            "inventory.changed",
            serde_json::json!({"sku": sku, "available": available}),
            trace,
        )
        .await?;
    }
    Ok(())
}

/// How an active reservation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Paid: the goods leave the shelf (`on_hand` and `reserved` both go down).
    Commit,
    /// Cancelled: the stock is free again.
    Release,
    /// Its TTL passed: free again, and `inventory.expired` tells the order.
    Expire,
}

impl Settle {
    fn status(self) -> &'static str {
        match self {
            Settle::Commit => "committed",
            Settle::Release => "released",
            Settle::Expire => "expired",
        }
    }
}

/// Ends the order's reservation if it is still active; returns whether it was.
pub async fn settle(
    conn: &mut PgConnection,
    order_id: Uuid,
    how: Settle,
    trace: Option<&TraceContext>,
) -> Result<bool, HandlerError> {
    let active = sqlx::query(
        "UPDATE reservations SET status = $2, settled_at = now()
         WHERE order_id = $1 AND status = 'active'",
    )
    .bind(order_id)
    .bind(how.status())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !active {
        return Ok(false);
    }
    let lines: Vec<(String, i32)> = sqlx::query_as(
        "SELECT sku, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY sku",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut levels = Vec::with_capacity(lines.len());
    for (sku, quantity) in &lines {
        let level: Option<i32> = match how {
            Settle::Commit => {
                sqlx::query_scalar(
                    "WITH updated AS (
                         UPDATE inventory
                         SET on_hand = on_hand - $2, reserved = reserved - $2, updated_at = now()
                         WHERE sku = $1 RETURNING sku, on_hand, available),
                     audit AS (
                         INSERT INTO inventory_adjustments (id, sku, delta, reason, actor, on_hand_after)
                         SELECT $3, sku, -$2, $4, $5, on_hand FROM updated)
                     SELECT available FROM updated",
                )
                .bind(sku)
                .bind(quantity)
                .bind(Uuid::now_v7())
                .bind(format!("sold: order {order_id}"))
                .bind("checkout")
                .fetch_optional(&mut *conn)
                .await?
            }
            Settle::Release | Settle::Expire => {
                sqlx::query_scalar(
                    "UPDATE inventory SET reserved = reserved - $2, updated_at = now()
                     WHERE sku = $1 RETURNING available",
                )
                .bind(sku)
                .bind(quantity)
                .fetch_optional(&mut *conn)
                .await?
            }
        };
        // A SKU deleted meanwhile has no stock row left to change.
        if let Some(available) = level {
            levels.push((sku.clone(), available));
        }
    }
    if how == Settle::Expire {
        events::record(
            conn,
            SOURCE,
            "inventory.expired",
            serde_json::json!({"order_id": order_id}),
            trace,
        )
        .await?;
    }
    if how != Settle::Commit {
        stock_changed(conn, &levels, trace).await?;
    }
    crate::metrics::reservation(how.status());
    Ok(true)
}

/// Expires reservations whose TTL has passed, a batch at a time; returns how many.
/// Replicas sweep concurrently without taking the same row (`SKIP LOCKED`).
pub async fn sweep(pool: &PgPool) -> Result<usize, HandlerError> {
    let mut tx = pool.begin().await?;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT order_id FROM reservations WHERE status = 'active' AND expires_at <= now()
         ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    for order_id in &due {
        // No request caused an expiry: a trace of its own.
        settle(&mut tx, *order_id, Settle::Expire, None).await?;
    }
    tx.commit().await?;
    Ok(due.len())
}

/// Runs [`sweep`] every `every` until `shutdown`.
pub async fn run_sweeper(pool: PgPool, every: Duration, shutdown: shopkit::shutdown::Shutdown) {
    loop {
        match sweep(&pool).await {
            Ok(n) if n > 0 => tracing::info!(expired = n, "reservations expired"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "reservation sweep failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.clone().started() => return,
        }
    }
}

/// The catalog's consumer of checkout events.
#[derive(Debug, Clone)]
pub struct CheckoutEvents {
    /// How long a reservation holds stock for an unpaid order.
    pub ttl: Duration,
}

#[async_trait::async_trait]
impl Handler for CheckoutEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let trace = event.trace_context();
        let trace = trace.as_ref();
        match event.event_type.as_str() {
            "order.created" => {
                let order: OrderCreated = event.data()?;
                reserve(conn, order.order_id, &order.lines, self.ttl, trace).await?;
            }
            "order.cancelled" => {
                let order: OrderRef = event.data()?;
                settle(conn, order.order_id, Settle::Release, trace).await?;
            }
            "payment.succeeded" => {
                let order: OrderRef = event.data()?;
                // After an expiry nothing is committed: the order service refunds.
                settle(conn, order.order_id, Settle::Commit, trace).await?;
            }
            other => tracing::debug!(event.type = other, "not a catalog event"),
        }
        Ok(())
    }
}
