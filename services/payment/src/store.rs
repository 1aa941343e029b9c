//! The SQL of payments and the ledger. Every status change is a conditional
//! `UPDATE … WHERE id = $1 AND status = <expected>`: of two racing writers one changes
//! the row and the other changes nothing (and is told so by `None`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{CardSummary, EntryKind, LedgerEntry, PaymentRow, Status};

const COLUMNS: &str = "id, order_id, user_id, amount_minor, currency, status, provider, \
    provider_ref, charge_ref, card_brand, card_last4, next_action, failure_reason, \
    cancellation_reason, processing_since, created_at, updated_at";

/// A payment to create for an order.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub provider: &'a str,
    /// `Some(reason)`: the order was cancelled already; the intent starts cancelled.
    pub cancelled: Option<&'a str>,
}

/// Inserts the order's intent; `None` if the order has one already (then nothing changes).
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewPayment<'_>,
) -> sqlx::Result<Option<PaymentRow>> {
    let status = match new.cancelled {
        Some(_) => Status::Cancelled,
        None => Status::RequiresPaymentMethod,
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payments (id, order_id, user_id, amount_minor, currency, status, provider,
                               cancellation_reason, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now())
         ON CONFLICT (order_id) DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(new.order_id)
    .bind(new.user_id)
    .bind(new.amount_minor)
    .bind(new.currency)
    .bind(status.as_str())
    .bind(new.provider)
    .bind(new.cancelled)
    .fetch_optional(conn)
    .await
}

pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The payment with this id, or else the payment of the order with this id (the client
/// may confirm with the order's id before it has learnt the payment's).
pub async fn by_id_or_order(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1 OR order_id = $1 ORDER BY id = $1 DESC LIMIT 1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The order's payment, locked for the rest of the transaction (event handlers).
pub async fn lock_by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE"
    )))
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// `from` → `processing`, remembering the card's summary; `None` if it was not `from`.
pub async fn claim(
    conn: &mut PgConnection,
    id: Uuid,
    from: Status,
    card: Option<&CardSummary>,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = 'processing', processing_since = clock_timestamp(),
                next_action = NULL,
                card_brand = COALESCE($3, card_brand), card_last4 = COALESCE($4, card_last4),
                updated_at = now()
         WHERE id = $1 AND status = $2
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(from.as_str())
    .bind(card.map(|c| c.brand.as_str()))
    .bind(card.map(|c| c.last4.as_str()))
    .fetch_optional(conn)
    .await
}

/// Where a provider call left a payment.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Succeeded {
        charge_ref: String,
    },
    Failed {
        reason: String,
    },
    RequiresAction {
        next_action: serde_json::Value,
    },
    /// The provider never acted on it: back to waiting for a payment method.
    RequiresPaymentMethod,
}

impl Settled {
    pub fn status(&self) -> Status {
        match self {
            Settled::Succeeded { .. } => Status::Succeeded,
            Settled::Failed { .. } => Status::Failed,
            Settled::RequiresAction { .. } => Status::RequiresAction,
            Settled::RequiresPaymentMethod => Status::RequiresPaymentMethod,
        }
    }
}

/// `processing` → the settled status, only if the payment is still in the processing
/// claim that began at `since` (a sweeper or another confirmation may have resolved it).
pub async fn settle(
    conn: &mut PgConnection,
    id: Uuid,
    since: DateTime<Utc>,
    provider_ref: Option<&str>,
    settled: &Settled,
) -> sqlx::Result<Option<PaymentRow>> {
    let (charge_ref, reason, next_action) = match settled {
        Settled::Succeeded { charge_ref } => (Some(charge_ref.as_str()), None, None),
        Settled::Failed { reason } => (None, Some(reason.as_str()), None),
        Settled::RequiresAction { next_action } => (None, None, Some(next_action)),
        Settled::RequiresPaymentMethod => (None, None, None),
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = $4, processing_since = NULL,
                provider_ref = COALESCE($3, provider_ref),
                charge_ref = COALESCE($5, charge_ref), failure_reason = $6, next_action = $7,
                updated_at = now()
         WHERE id = $1 AND status = 'processing' AND processing_since = $2
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(since)
    .bind(provider_ref)
    .bind(settled.status().as_str())
    .bind(charge_ref)
    .bind(reason)
    .bind(next_action)
    .fetch_optional(conn)
    .await
}

/// An unpaid payment → `cancelled`; `None` if it was not unpaid any more.
pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = 'cancelled', cancellation_reason = $2, next_action = NULL,
                updated_at = now()
         WHERE id = $1 AND status IN ('requires_payment_method', 'requires_action')
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(reason)
    .fetch_optional(conn)
    .await
}

/// `succeeded` → `refunded`.
pub async fn mark_refunded(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = 'refunded', updated_at = now()
         WHERE id = $1 AND status = 'succeeded'
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Remembers that an order was cancelled before its intent existed.
pub async fn remember_cancelled_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cancelled_orders (order_id, reason, at) VALUES ($1, $2, now())
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn cancelled_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT reason FROM cancelled_orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await
}

/// Appends to the ledger.
pub async fn ledger_append(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    kind: EntryKind,
    provider_ref: &str,
) -> sqlx::Result<LedgerEntry> {
    sqlx::query_as(
        "INSERT INTO ledger_entries (id, payment_id, order_id, kind, amount_minor, currency,
                                     provider_ref, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now())
         RETURNING id, payment_id, order_id, kind, amount_minor, currency, provider_ref, at",
    )
    .bind(Uuid::now_v7())
    .bind(payment.id)
    .bind(payment.order_id)
    .bind(kind.as_str())
    .bind(payment.amount_minor)
    .bind(&payment.currency)
    .bind(provider_ref)
    .fetch_one(conn)
    .await
}

pub async fn ledger_of_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> sqlx::Result<Vec<LedgerEntry>> {
    sqlx::query_as(
        "SELECT id, payment_id, order_id, kind, amount_minor, currency, provider_ref, at
         FROM ledger_entries WHERE order_id = $1 ORDER BY at, id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// Which payments a listing shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this buyer's (customers); `None` for admins.
    pub user_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub status: Option<Status>,
}

/// One page, newest first, after the payment `before` (keyset on the time-ordered id).
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments
         WHERE ($1::uuid IS NULL OR user_id = $1)
           AND ($2::uuid IS NULL OR order_id = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::uuid IS NULL OR id < $4)
         ORDER BY id DESC
         LIMIT $5"
    )))
    .bind(filter.user_id)
    .bind(filter.order_id)
    .bind(filter.status.map(Status::as_str))
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Payments processing since before `cutoff`: interrupted provider calls.
pub async fn stale_processing(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments
         WHERE status = 'processing' AND processing_since < $1
         ORDER BY processing_since LIMIT $2"
    )))
    .bind(cutoff)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The payment, locked for the rest of the transaction (webhooks).
pub async fn lock_by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The payment whose intent at `provider` is `provider_ref`, locked.
pub async fn lock_by_provider_ref(
    conn: &mut PgConnection,
    provider: &str,
    provider_ref: &str,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE provider = $1 AND provider_ref = $2 FOR UPDATE"
    )))
    .bind(provider)
    .bind(provider_ref)
    .fetch_optional(conn)
    .await
}

/// Remembers the provider's intent of a payment that had none (the first one stays).
pub async fn attach_provider_ref(
    conn: &mut PgConnection,
    id: Uuid,
    provider_ref: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET provider_ref = $2, updated_at = now()
         WHERE id = $1 AND provider_ref IS NULL",
    )
    .bind(id)
    .bind(provider_ref)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a webhook event as handled; `false` if it was handled before (a redelivery).
pub async fn record_webhook_event(
    conn: &mut PgConnection,
    provider: &str,
    event_id: &str,
    event_type: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, event_type) VALUES ($1, $2, $3)
         ON CONFLICT (provider, event_id) DO NOTHING",
    )
    .bind(provider)
    .bind(event_id)
    .bind(event_type)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
