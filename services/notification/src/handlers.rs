//! What the service does with the shop's events (consumer `notification`). Each runs in
//! the transaction that records the message in the inbox; the messages it renders are
//! stored in that same transaction (one row per event and channel, unique), and the
//! delivery worker sends them afterwards. So a redelivered event makes no second
//! message, and a crash before the commit makes none at all.
//!
//! | event | effect |
//! | --- | --- |
//! | `user.registered`, `user.email_verification_requested` | address remembered; `email_verification` email |
//! | `user.password_reset_requested` | `password_reset` email |
//! | `user.registration_attempted` | `registration_attempted` email |
//! | `user.password_changed` | `password_changed` email |
//! | `user.email_verified`, `user.admin_created` | address remembered |
//! | `order.created` | the order's lines and total remembered |
//! | `order.paid` | `order_confirmation` email (opt-in), SMS (opt-in, phone known) |
//! | `payment.failed` | `payment_failed` email (opt-in) |
//! | `order.fulfilled` | `order_shipped` email (opt-in), SMS (opt-in, phone known) |
//! | `payment.refunded` | `refund` email (opt-in) |
//!
//! Account emails are addressed to the email the event carries and always sent; order
//! messages go to the address the user service last announced for the buyer, and
//! follow the buyer's preferences.

use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use shopkit::events::{Envelope, Handler, HandlerError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::provider::Channel;
use crate::store::{self, NewMessage, OrderLine, OrderSnapshot};
use crate::templates::{Kind, Templates, format_money};

/// The consumer's name (= its queue).
pub const CONSUMER: &str = "notification";

pub mod types {
    pub const USER_REGISTERED: &str = "user.registered";
    pub const REGISTRATION_ATTEMPTED: &str = "user.registration_attempted";
    pub const EMAIL_VERIFICATION_REQUESTED: &str = "user.email_verification_requested";
    pub const EMAIL_VERIFIED: &str = "user.email_verified";
    pub const PASSWORD_RESET_REQUESTED: &str = "user.password_reset_requested";
    pub const PASSWORD_CHANGED: &str = "user.password_changed";
    pub const ADMIN_CREATED: &str = "user.admin_created";
    pub const ORDER_CREATED: &str = "order.created";
    pub const ORDER_PAID: &str = "order.paid";
    pub const ORDER_FULFILLED: &str = "order.fulfilled";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    pub const PAYMENT_REFUNDED: &str = "payment.refunded";
}

/// The routing keys the consumer binds.
pub const ROUTING_KEYS: [&str; 12] = [
    types::USER_REGISTERED,
    types::REGISTRATION_ATTEMPTED,
    types::EMAIL_VERIFICATION_REQUESTED,
    types::EMAIL_VERIFIED,
    types::PASSWORD_RESET_REQUESTED,
    types::PASSWORD_CHANGED,
    types::ADMIN_CREATED,
    types::ORDER_CREATED,
    types::ORDER_PAID,
    types::ORDER_FULFILLED,
    types::PAYMENT_FAILED,
    types::PAYMENT_REFUNDED,
];

/// The shop as its messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shop {
    /// `SHOP_NAME`.
    pub name: String,
    /// `SHOP_URL`: the storefront, for the links in messages.
    pub url: String,
}

impl Shop {
    fn json(&self) -> Value {
        json!({"name": self.name, "url": self.url})
    }

    fn link(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }
}

/// The one handler of the `notification` consumer.
#[derive(Debug, Clone)]
pub struct Notifications {
    templates: Arc<Templates>,
    shop: Shop,
    /// Whether an SMS provider is configured: without one, no texts are made.
    sms_enabled: bool,
}

impl Notifications {
    pub fn new(templates: Arc<Templates>, shop: Shop, sms_enabled: bool) -> Self {
        Notifications {
            templates,
            shop,
            sms_enabled,
        }
    }
}

/// The data of the user service's events (each carries the address it is about).
#[derive(Debug, Deserialize)]
struct UserEvent {
    user_id: Uuid,
    email: String,
    #[serde(default)]
    verification_token: Option<String>,
    #[serde(default)]
    verification_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    reset_token: Option<String>,
    #[serde(default)]
    reset_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    via: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OrderCreated {
    order_id: Uuid,
    user_id: Uuid,
    currency: String,
    total_minor: i64,
    lines: Vec<OrderLine>,
}

#[derive(Debug, Deserialize)]
struct OrderRef {
    order_id: Uuid,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    amount_minor: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
}

/// What handling one event made (for tests and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Made {
    pub messages: Vec<(Kind, Channel)>,
    pub skipped: Vec<(Kind, Channel, &'static str)>,
}

#[async_trait]
impl Handler for Notifications {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let made = self.apply(conn, event).await?;
        for (kind, channel, reason) in &made.skipped {
            crate::metrics::skipped(*kind, *channel, reason);
            tracing::info!(event.id = %event.id, kind = %kind, channel = channel.as_str(), reason, "no message");
        }
        Ok(())
    }
}

impl Notifications {
    /// Handles one event on `conn` (the inbox's transaction).
    pub async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Envelope,
    ) -> Result<Made, HandlerError> {
        let mut made = Made::default();
        match event.event_type.as_str() {
            types::USER_REGISTERED | types::EMAIL_VERIFICATION_REQUESTED => {
                let user: UserEvent = event.data()?;
                store::upsert_recipient(conn, user.user_id, &user.email, event.occurred_at).await?;
                let token = user.verification_token.as_deref().ok_or_else(|| {
                    HandlerError::Reject(anyhow!(
                        "{} without a verification_token",
                        event.event_type
                    ))
                })?;
                let context = json!({
                    "shop": self.shop.json(), "user": {"email": user.email}, "token": token,
                    "link": self.shop.link(&format!("/account/verify-email?token={}", encode(token))),
                    "expires_at": user.verification_expires_at.map(readable).unwrap_or_default(),
                });
                self.email(
                    conn,
                    event,
                    &mut made,
                    Kind::EmailVerification,
                    Some(user.user_id),
                    &user.email,
                    &context,
                )
                .await?;
            }
            types::PASSWORD_RESET_REQUESTED => {
                let user: UserEvent = event.data()?;
                let token = user.reset_token.as_deref().ok_or_else(|| {
                    HandlerError::Reject(anyhow!("{} without a reset_token", event.event_type))
                })?;
                let context = json!({
                    "shop": self.shop.json(), "user": {"email": user.email}, "token": token,
                    "link": self.shop.link(&format!("/account/reset-password?token={}", encode(token))),
                    "expires_at": user.reset_expires_at.map(readable).unwrap_or_default(),
                });
                self.email(
                    conn,
                    event,
                    &mut made,
                    Kind::PasswordReset,
                    Some(user.user_id),
                    &user.email,
                    &context,
                )
                .await?;
            }
            types::REGISTRATION_ATTEMPTED | types::PASSWORD_CHANGED => {
                let user: UserEvent = event.data()?;
                let kind = if event.event_type == types::PASSWORD_CHANGED {
                    Kind::PasswordChanged
                } else {
                    Kind::RegistrationAttempted
                };
                let context = json!({
                    "shop": self.shop.json(), "user": {"email": user.email},
                    "via": user.via.as_deref().unwrap_or("change"),
                    "link": self.shop.link("/account/forgot-password"),
                });
                self.email(
                    conn,
                    event,
                    &mut made,
                    kind,
                    Some(user.user_id),
                    &user.email,
                    &context,
                )
                .await?;
            }
            types::EMAIL_VERIFIED | types::ADMIN_CREATED => {
                let user: UserEvent = event.data()?;
                store::upsert_recipient(conn, user.user_id, &user.email, event.occurred_at).await?;
            }
            types::ORDER_CREATED => {
                let order: OrderCreated = event.data()?;
                let snapshot = OrderSnapshot {
                    order_id: order.order_id,
                    user_id: order.user_id,
                    currency: order.currency,
                    total_minor: order.total_minor,
                    lines: order.lines,
                };
                store::insert_order(conn, &snapshot, event.occurred_at).await?;
            }
            types::ORDER_PAID
            | types::ORDER_FULFILLED
            | types::PAYMENT_FAILED
            | types::PAYMENT_REFUNDED => {
                let reference: OrderRef = event.data()?;
                let Some(order) = store::order(conn, reference.order_id).await? else {
                    // order.created is published long before any of these; a retry finds it.
                    return Err(HandlerError::Retry(anyhow!(
                        "order {} is not known yet (its order.created has not arrived)",
                        reference.order_id
                    )));
                };
                let (kind, extra) = match event.event_type.as_str() {
                    types::ORDER_PAID => (Kind::OrderConfirmation, json!({})),
                    types::ORDER_FULFILLED => (Kind::OrderShipped, json!({})),
                    types::PAYMENT_FAILED => (
                        Kind::PaymentFailed,
                        json!({"reason": reference.reason.as_deref().unwrap_or("declined").replace('_', " ")}),
                    ),
                    _ => (
                        Kind::Refund,
                        json!({"amount": format_money(
                            reference.amount_minor.unwrap_or(order.total_minor),
                            reference.currency.as_deref().unwrap_or(&order.currency),
                        )}),
                    ),
                };
                self.order_messages(conn, event, &mut made, kind, &order, extra)
                    .await?;
            }
            other => {
                tracing::warn!(event.r#type = other, event.id = %event.id, "ignoring an event this consumer does not subscribe to");
            }
        }
        Ok(made)
    }

    /// The messages of an order event: email and SMS as the buyer's preferences allow.
    async fn order_messages(
        &self,
        conn: &mut PgConnection,
        event: &Envelope,
        made: &mut Made,
        kind: Kind,
        order: &OrderSnapshot,
        extra: Value,
    ) -> Result<(), HandlerError> {
        let preferences = store::preferences(conn, order.user_id).await?;
        let email = store::recipient_email(conn, order.user_id).await?;
        let mut context = json!({
            "shop": self.shop.json(),
            "user": {"email": email.clone().unwrap_or_default()},
            "order": order_context(&self.shop, order),
        });
        if let (Some(target), Value::Object(extra)) = (context.as_object_mut(), extra) {
            target.extend(extra);
        }
        match (&email, preferences.email) {
            (_, false) => made.skipped.push((kind, Channel::Email, "opted_out")),
            (None, true) => made.skipped.push((kind, Channel::Email, "no_address")),
            (Some(address), true) => {
                self.email(
                    conn,
                    event,
                    made,
                    kind,
                    Some(order.user_id),
                    address,
                    &context,
                )
                .await?;
            }
        }
        if kind.has_sms() {
            match (&preferences.phone, preferences.sms, self.sms_enabled) {
                (_, _, false) => made.skipped.push((kind, Channel::Sms, "no_sms_provider")),
                (_, false, true) => made.skipped.push((kind, Channel::Sms, "opted_out")),
                (None, true, true) => made.skipped.push((kind, Channel::Sms, "no_phone")),
                (Some(phone), true, true) => {
                    let text = self
                        .templates
                        .sms(kind, &context)
                        .map_err(HandlerError::Reject)?;
                    let message = NewMessage {
                        event_id: event.id,
                        channel: Channel::Sms,
                        kind,
                        user_id: Some(order.user_id),
                        recipient: phone,
                        subject: None,
                        text: &text,
                        html: None,
                    };
                    if store::insert_message(conn, &message, Utc::now()).await? {
                        made.messages.push((kind, Channel::Sms));
                    }
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn email(
        &self,
        conn: &mut PgConnection,
        event: &Envelope,
        made: &mut Made,
        kind: Kind,
        user_id: Option<Uuid>,
        to: &str,
        context: &Value,
    ) -> Result<(), HandlerError> {
        // Templates were checked at start-up; one that fails on real data never will succeed.
        let email = self
            .templates
            .email(kind, context)
            .map_err(HandlerError::Reject)?;
        let message = NewMessage {
            event_id: event.id,
            channel: Channel::Email,
            kind,
            user_id,
            recipient: to,
            subject: Some(&email.subject),
            text: &email.text,
            html: Some(&email.html),
        };
        if store::insert_message(conn, &message, Utc::now()).await? {
            made.messages.push((kind, Channel::Email));
        }
        Ok(())
    }
}

/// The order as the templates see it: money formatted, a short number, a link.
pub fn order_context(shop: &Shop, order: &OrderSnapshot) -> Value {
    let lines: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            json!({
                "sku": l.sku,
                "name": l.product_name.clone().unwrap_or_else(|| l.sku.clone()),
                "quantity": l.quantity,
                "unit_price_minor": l.unit_price_minor,
                "unit_price": format_money(l.unit_price_minor, &order.currency),
                "line_total": format_money(l.unit_price_minor.saturating_mul(l.quantity), &order.currency),
            })
        })
        .collect();
    json!({
        "id": order.order_id,
        // UUIDv7's first 8 hex digits are its time; the last 8 tell orders of one moment apart.
        "number": order.order_id.simple().to_string()[24..].to_uppercase(),
        "currency": order.currency,
        "total_minor": order.total_minor,
        "total": format_money(order.total_minor, &order.currency),
        "link": shop.link(&format!("/orders/{}", order.order_id)),
        "lines": lines,
    })
}

fn readable(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Tokens are URL-safe already; this keeps a link intact whatever a token holds.
fn encode(token: &str) -> String {
    token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_short_and_links_absolute() {
        let shop = Shop {
            name: "S".into(),
            url: "https://shop.example/".into(),
        };
        let id: Uuid = "0190c0de-1111-7222-8333-444455556666".parse().unwrap();
        let order = OrderSnapshot {
            order_id: id,
            user_id: Uuid::now_v7(),
            currency: "EUR".into(),
            total_minor: 3000,
            lines: vec![OrderLine {
                sku: "A".into(),
                product_name: None,
                quantity: 3,
                unit_price_minor: 1000,
            }],
        };
        let c = order_context(&shop, &order);
        assert_eq!(c["number"], "55556666");
        assert_eq!(c["link"], format!("https://shop.example/orders/{id}"));
        assert_eq!(c["lines"][0]["name"], "A");
        assert_eq!(c["lines"][0]["line_total"], "30.00 EUR");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
