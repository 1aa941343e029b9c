//! The SQL: orders, their lines, transitions and refund requests. Every function takes the
//! connection it runs on, so callers decide what shares a transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::checkout::Priced;
use crate::machine::Status;
use crate::model::{Order, OrderDetail, OrderLine, Payment, RefundRequest, Transition};

/// The cause of an order's first transition.
pub const CREATED: &str = "created";

/// The orders row, as read.
#[derive(Debug, Clone, sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    cart_id: Uuid,
    status: String,
    currency: String,
    total_minor: i64,
    cancellation_reason: Option<String>,
    payment_id: Option<String>,
    paid_amount_minor: Option<i64>,
    paid_currency: Option<String>,
    paid_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const ORDER_COLUMNS: &str = "id, user_id, cart_id, status, currency, total_minor, \
     cancellation_reason, payment_id, paid_amount_minor, paid_currency, paid_at, created_at, updated_at";

fn status(raw: &str) -> sqlx::Result<Status> {
    raw.parse()
        .map_err(|e: crate::machine::UnknownStatus| sqlx::Error::Decode(Box::new(e)))
}

impl OrderRow {
    fn into_order(self, lines: Vec<OrderLine>) -> sqlx::Result<Order> {
        let payment = match (
            self.payment_id,
            self.paid_amount_minor,
            self.paid_currency,
            self.paid_at,
        ) {
            (Some(payment_id), Some(amount_minor), Some(currency), Some(paid_at)) => {
                Some(Payment {
                    payment_id,
                    amount_minor,
                    currency,
                    paid_at,
                })
            }
            _ => None,
        };
        Ok(Order {
            id: self.id,
            user_id: self.user_id,
            cart_id: self.cart_id,
            status: status(&self.status)?,
            currency: self.currency,
            total_minor: self.total_minor,
            lines,
            payment,
            cancellation_reason: self.cancellation_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// What the state changes need to know about an order, read under its row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub id: Uuid,
    pub user_id: Uuid,
    pub cart_id: Uuid,
    pub status: Status,
    pub currency: String,
    pub total_minor: i64,
    pub payment: Option<(String, i64, String)>,
}

/// Reads an order and locks its row until the transaction ends, so that two handlers of
/// the same order run one after the other.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Locked>> {
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        let payment = match (row.payment_id, row.paid_amount_minor, row.paid_currency) {
            (Some(id), Some(amount), Some(currency)) => Some((id, amount, currency)),
            _ => None,
        };
        Ok(Locked {
            id: row.id,
            user_id: row.user_id,
            cart_id: row.cart_id,
            status: status(&row.status)?,
            currency: row.currency,
            total_minor: row.total_minor,
            payment,
        })
    })
    .transpose()
}

/// Inserts a new `pending` order with its lines and its first transition.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    cart_id: Uuid,
    priced: &Priced,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO orders (id, user_id, cart_id, status, currency, total_minor, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, now(), now())",
    )
    .bind(id)
    .bind(user_id)
    .bind(cart_id)
    .bind(Status::Pending.as_str())
    .bind(&priced.currency)
    .bind(priced.total_minor)
    .execute(&mut *conn)
    .await?;
    let mut positions = Vec::with_capacity(priced.lines.len());
    let mut skus = Vec::with_capacity(priced.lines.len());
    let mut product_ids = Vec::with_capacity(priced.lines.len());
    let mut names = Vec::with_capacity(priced.lines.len());
    let mut quantities = Vec::with_capacity(priced.lines.len());
    let mut prices = Vec::with_capacity(priced.lines.len());
    for (position, line) in (0_i32..).zip(&priced.lines) {
        positions.push(position);
        skus.push(line.sku.as_str());
        product_ids.push(line.product_id);
        names.push(line.product_name.as_str());
        quantities.push(line.quantity);
        prices.push(line.unit_price_minor);
    }
    sqlx::query(
        "INSERT INTO order_lines (order_id, position, sku, product_id, product_name, quantity, unit_price_minor)
         SELECT $1, * FROM unnest($2::int[], $3::text[], $4::uuid[], $5::text[], $6::int[], $7::bigint[])",
    )
    .bind(id)
    .bind(&positions)
    .bind(&skus)
    .bind(&product_ids)
    .bind(&names)
    .bind(&quantities)
    .bind(&prices)
    .execute(&mut *conn)
    .await?;
    record_transition(conn, id, None, Status::Pending, CREATED, None).await
}

async fn record_transition(
    conn: &mut PgConnection,
    order_id: Uuid,
    from: Option<Status>,
    to: Status,
    cause: &str,
    event_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO order_transitions (order_id, from_status, to_status, cause, event_id)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(order_id)
    .bind(from.map(Status::as_str))
    .bind(to.as_str())
    .bind(cause)
    .bind(event_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The payment an order is paid with, set with its move to `paid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidWith<'a> {
    pub payment_id: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
}

/// Moves an order from `from` to `to` (a cancellation with `cause` as its reason) and
/// records the transition — only if it is still in `from`: the `UPDATE … WHERE status =
/// $from` lets exactly one of two racing writers through. `false` when it was not.
pub async fn move_status(
    conn: &mut PgConnection,
    id: Uuid,
    from: Status,
    to: Status,
    cause: &str,
    event_id: Option<Uuid>,
    paid_with: Option<&PaidWith<'_>>,
) -> sqlx::Result<bool> {
    let moved = sqlx::query(
        "UPDATE orders SET
             status = $3,
             updated_at = now(),
             cancellation_reason = CASE WHEN $3 = 'cancelled' THEN $4 END,
             payment_id = COALESCE($5, payment_id),
             paid_amount_minor = COALESCE($6, paid_amount_minor),
             paid_currency = COALESCE($7, paid_currency),
             paid_at = CASE WHEN $5::text IS NULL THEN paid_at ELSE now() END
         WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(cause)
    .bind(paid_with.map(|p| p.payment_id))
    .bind(paid_with.map(|p| p.amount_minor))
    .bind(paid_with.map(|p| p.currency))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if moved {
        record_transition(conn, id, Some(from), to, cause, event_id).await?;
    }
    Ok(moved)
}

/// A refund to ask the payment service for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund<'a> {
    pub order_id: Uuid,
    pub payment_id: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub reason: &'a str,
    pub event_id: Option<Uuid>,
    pub requested_by: Option<Uuid>,
}

/// Records a refund request; `false` if this payment's refund was requested before.
pub async fn insert_refund(conn: &mut PgConnection, refund: &NewRefund<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO refund_requests
             (id, order_id, payment_id, amount_minor, currency, reason, event_id, requested_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (payment_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(refund.order_id)
    .bind(refund.payment_id)
    .bind(refund.amount_minor)
    .bind(refund.currency)
    .bind(refund.reason)
    .bind(refund.event_id)
    .bind(refund.requested_by)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Whether a refund of this payment has been requested.
pub async fn refund_requested(conn: &mut PgConnection, payment_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM refund_requests WHERE payment_id = $1)")
        .bind(payment_id)
        .fetch_one(&mut *conn)
        .await
}

#[derive(Debug, sqlx::FromRow)]
struct LineRow {
    order_id: Uuid,
    sku: String,
    product_id: Uuid,
    product_name: String,
    quantity: i32,
    unit_price_minor: i64,
}

impl From<LineRow> for OrderLine {
    fn from(row: LineRow) -> Self {
        OrderLine {
            line_total_minor: row.unit_price_minor.saturating_mul(i64::from(row.quantity)),
            sku: row.sku,
            product_id: row.product_id,
            product_name: row.product_name,
            quantity: row.quantity,
            unit_price_minor: row.unit_price_minor,
        }
    }
}

/// The lines of these orders, by order, each in checkout order.
async fn lines_of(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, Vec<OrderLine>>> {
    let rows: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, sku, product_id, product_name, quantity, unit_price_minor
         FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, position",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut lines: HashMap<Uuid, Vec<OrderLine>> = HashMap::new();
    for row in rows {
        lines.entry(row.order_id).or_default().push(row.into());
    }
    Ok(lines)
}

#[derive(Debug, sqlx::FromRow)]
struct TransitionRow {
    from_status: Option<String>,
    to_status: String,
    cause: String,
    event_id: Option<Uuid>,
    at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct RefundRow {
    id: Uuid,
    payment_id: String,
    amount_minor: i64,
    currency: String,
    reason: String,
    requested_at: DateTime<Utc>,
}

/// An order with its lines, transitions and refund requests.
pub async fn detail(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<OrderDetail>> {
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let lines = lines_of(conn, &[id]).await?.remove(&id).unwrap_or_default();
    let transitions: Vec<TransitionRow> = sqlx::query_as(
        "SELECT from_status, to_status, cause, event_id, at
         FROM order_transitions WHERE order_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let transitions = transitions
        .into_iter()
        .map(|t| {
            Ok(Transition {
                from: t.from_status.as_deref().map(status).transpose()?,
                to: status(&t.to_status)?,
                cause: t.cause,
                event_id: t.event_id,
                at: t.at,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    let refunds: Vec<RefundRow> = sqlx::query_as(
        "SELECT id, payment_id, amount_minor, currency, reason, requested_at
         FROM refund_requests WHERE order_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let refund_requests = refunds
        .into_iter()
        .map(|r| RefundRequest {
            id: r.id,
            payment_id: r.payment_id,
            amount_minor: r.amount_minor,
            currency: r.currency,
            reason: r.reason,
            requested_at: r.requested_at,
        })
        .collect();
    Ok(Some(OrderDetail {
        order: row.into_order(lines)?,
        transitions,
        refund_requests,
    }))
}

/// Which orders a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// One customer's orders.
    Owner(Uuid),
    /// Everyone's, optionally of one status (the back office).
    All(Option<Status>),
}

/// Up to `limit` orders older than `before` (UUIDv7 ids order by creation), newest first,
/// and whether more follow.
pub async fn list(
    pool: &PgPool,
    listing: Listing,
    before: Option<Uuid>,
    limit: u32,
) -> sqlx::Result<(Vec<Order>, bool)> {
    // Without a cursor, start after the greatest id: one statement form per listing whose
    // cached plan always uses the index (no `$n IS NULL OR …`).
    let before = before.unwrap_or(Uuid::max());
    let fetch = i64::from(limit) + 1;
    let mut conn = pool.acquire().await?;
    let query = match listing {
        Listing::Owner(user) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        )))
        .bind(user),
        Listing::All(Some(status)) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        )))
        .bind(status.as_str()),
        Listing::All(None) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE $1::bool AND id < $2 ORDER BY id DESC LIMIT $3"
        )))
        .bind(true),
    };
    let mut rows: Vec<OrderRow> = query.bind(before).bind(fetch).fetch_all(&mut *conn).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut lines = lines_of(&mut conn, &ids).await?;
    let orders = rows
        .into_iter()
        .map(|row| {
            let lines = lines.remove(&row.id).unwrap_or_default();
            row.into_order(lines)
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok((orders, more))
}
