//! The SQL: messages, recipients, preferences and order snapshots. Every function takes
//! the connection (or transaction) it runs on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::provider::Channel;
use crate::templates::Kind;

/// A message's state. `pending` until a provider accepted it (`sent`), refused it for
/// good (`failed`), or every attempt failed (`parked`, for an operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Sent,
    Failed,
    Parked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Parked => "parked",
        }
    }
}

/// A message about to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub event_id: Uuid,
    pub channel: Channel,
    pub kind: Kind,
    pub user_id: Option<Uuid>,
    pub recipient: &'a str,
    pub subject: Option<&'a str>,
    pub text: &'a str,
    pub html: Option<&'a str>,
}

/// Stores a message, unless its event already has one on this channel (`false`).
pub async fn insert_message(
    conn: &mut PgConnection,
    message: &NewMessage<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO messages (id, event_id, channel, kind, user_id, recipient, subject,
                               body_text, body_html, status, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10)
         ON CONFLICT (event_id, channel) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(message.event_id)
    .bind(message.channel.as_str())
    .bind(message.kind.as_str())
    .bind(message.user_id)
    .bind(message.recipient)
    .bind(message.subject)
    .bind(message.text)
    .bind(message.html)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// A stored message, as the API shows it.
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct MessageRow {
    pub id: Uuid,
    pub event_id: Uuid,
    /// `email` or `sms`.
    pub channel: String,
    /// The template: `order_confirmation`, `password_reset`, …
    pub kind: String,
    pub user_id: Option<Uuid>,
    /// The email address or phone number.
    pub recipient: String,
    pub subject: Option<String>,
    pub body_text: String,
    pub body_html: Option<String>,
    /// `pending`, `sent`, `failed` or `parked`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

const MESSAGE_COLUMNS: &str = "id, event_id, channel, kind, user_id, recipient, subject, body_text, \
     body_html, status, attempts, next_attempt_at, last_error, provider, provider_ref, created_at, sent_at";

/// What a listing may be narrowed to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub to: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub channel: Option<String>,
    pub event_id: Option<Uuid>,
}

/// Newest first, `limit` rows older than `before` (the cursor).
pub async fn list_messages(
    conn: &mut PgConnection,
    filter: &Filter,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE ($1::text IS NULL OR recipient = $1)
           AND ($2::text IS NULL OR kind = $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR channel = $4)
           AND ($5::uuid IS NULL OR event_id = $5)
           AND ($6::uuid IS NULL OR id < $6)
         ORDER BY id DESC LIMIT $7"
    )))
    .bind(&filter.to)
    .bind(&filter.kind)
    .bind(&filter.status)
    .bind(&filter.channel)
    .bind(filter.event_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn get_message(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Remembers a user's address, unless a newer event said otherwise.
pub async fn upsert_recipient(
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO recipients (user_id, email, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, updated_at = EXCLUDED.updated_at
         WHERE recipients.updated_at <= EXCLUDED.updated_at",
    )
    .bind(user_id)
    .bind(email)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn recipient_email(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT email FROM recipients WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// What a customer wants to receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preferences {
    /// Order emails (confirmation, shipping, refunds). Account emails — verification,
    /// password reset — are sent regardless.
    pub email: bool,
    /// Text messages about orders; needs `phone`.
    pub sms: bool,
    /// E.164, e.g. `+4930123456`.
    pub phone: Option<String>,
}

impl Default for Preferences {
    /// A customer who never chose: order emails yes, texts no.
    fn default() -> Self {
        Preferences {
            email: true,
            sms: false,
            phone: None,
        }
    }
}

pub async fn preferences(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Preferences> {
    let row: Option<(bool, bool, Option<String>)> = sqlx::query_as(
        "SELECT email_opt_in, sms_opt_in, phone FROM preferences WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    Ok(
        row.map_or_else(Preferences::default, |(email, sms, phone)| Preferences {
            email,
            sms,
            phone,
        }),
    )
}

pub async fn save_preferences(
    conn: &mut PgConnection,
    user_id: Uuid,
    preferences: &Preferences,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO preferences (user_id, email_opt_in, sms_opt_in, phone, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET email_opt_in = EXCLUDED.email_opt_in,
             sms_opt_in = EXCLUDED.sms_opt_in, phone = EXCLUDED.phone, updated_at = EXCLUDED.updated_at",
    )
    .bind(user_id)
    .bind(preferences.email)
    .bind(preferences.sms)
    .bind(&preferences.phone)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// One line of an order as `order.created` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    /// Sent by order services that know it; the SKU stands in otherwise.
    #[serde(default)]
    pub product_name: Option<String>,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

/// An order as placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSnapshot {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub currency: String,
    pub total_minor: i64,
    pub lines: Vec<OrderLine>,
}

pub async fn insert_order(
    conn: &mut PgConnection,
    order: &OrderSnapshot,
    placed_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let lines = serde_json::to_value(&order.lines).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO orders (order_id, user_id, currency, total_minor, lines, placed_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order.order_id)
    .bind(order.user_id)
    .bind(&order.currency)
    .bind(order.total_minor)
    .bind(lines)
    .bind(placed_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn order(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<OrderSnapshot>> {
    let row: Option<(Uuid, Uuid, String, i64, Value)> = sqlx::query_as(
        "SELECT order_id, user_id, currency, total_minor, lines FROM orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(|(order_id, user_id, currency, total_minor, lines)| {
        Ok(OrderSnapshot {
            order_id,
            user_id,
            currency,
            total_minor,
            lines: serde_json::from_value(lines).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        })
    })
    .transpose()
}
