//! The order service's consumer (`order`): the catalog's and the payment service's news,
//! turned into status changes by [`lifecycle`](crate::lifecycle). Redeliveries are
//! stopped by shopkit's inbox; events that do not fit the order's status (late, early or
//! repeated under a new id) change nothing and are logged.

use std::sync::Arc;

use serde::Deserialize;
use shopkit::events::{Envelope, Handler, HandlerError, Subscription};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::lifecycle::{self, Cause, Outcome, Succeeded};
use crate::machine::Trigger;

/// The consumer's name, which is also its queue's.
pub const CONSUMER: &str = "order";

/// The event types the order service listens to.
pub mod types {
    pub const INVENTORY_RESERVED: &str = "inventory.reserved";
    pub const INVENTORY_REJECTED: &str = "inventory.rejected";
    pub const INVENTORY_EXPIRED: &str = "inventory.expired";
    pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    pub const PAYMENT_REFUNDED: &str = "payment.refunded";
}

pub const ROUTING_KEYS: [&str; 6] = [
    types::INVENTORY_RESERVED,
    types::INVENTORY_REJECTED,
    types::INVENTORY_EXPIRED,
    types::PAYMENT_SUCCEEDED,
    types::PAYMENT_FAILED,
    types::PAYMENT_REFUNDED,
];

/// The subscription [`crate::Application`] starts when a broker is configured.
pub fn subscription() -> Subscription {
    Subscription::new(CONSUMER, &ROUTING_KEYS, Arc::new(OrderEvents))
}

/// `{order_id, …}`: what the inventory events and `payment.failed` need.
#[derive(Debug, Deserialize)]
struct ForOrder {
    order_id: Uuid,
}

/// `payment.succeeded` and `payment.refunded`.
#[derive(Debug, Deserialize)]
struct PaymentData {
    order_id: Uuid,
    /// A string whatever the payment service's ids look like.
    payment_id: PaymentId,
    amount_minor: i64,
    currency: String,
}

/// A payment id as JSON string or number, kept as text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PaymentId {
    Text(String),
    Number(i64),
}

impl PaymentId {
    fn into_string(self) -> String {
        match self {
            PaymentId::Text(text) => text,
            PaymentId::Number(n) => n.to_string(),
        }
    }
}

/// Applies one event. `Ok` with what happened (also when nothing did); errors are the
/// database's (retried) or malformed data (parked).
pub async fn on_event(conn: &mut PgConnection, event: &Envelope) -> Result<Outcome, HandlerError> {
    let trace = event.trace_context();
    let cause = Cause {
        event_id: Some(event.id),
        trace: trace.as_ref(),
    };
    let simple = |trigger| async move {
        let data: ForOrder = event.data()?;
        Ok::<_, HandlerError>((data.order_id, trigger))
    };
    let outcome = match event.event_type.as_str() {
        types::INVENTORY_RESERVED => {
            let (id, trigger) = simple(Trigger::StockReserved).await?;
            lifecycle::apply(conn, id, trigger, cause).await?
        }
        types::INVENTORY_REJECTED => {
            let (id, trigger) = simple(Trigger::StockRejected).await?;
            lifecycle::apply(conn, id, trigger, cause).await?
        }
        types::INVENTORY_EXPIRED => {
            let (id, trigger) = simple(Trigger::ReservationExpired).await?;
            lifecycle::apply(conn, id, trigger, cause).await?
        }
        types::PAYMENT_FAILED => {
            let (id, trigger) = simple(Trigger::PaymentFailed).await?;
            lifecycle::apply(conn, id, trigger, cause).await?
        }
        types::PAYMENT_SUCCEEDED => {
            let data: PaymentData = event.data()?;
            let payment_id = data.payment_id.into_string();
            let payment = Succeeded {
                order_id: data.order_id,
                payment_id: &payment_id,
                amount_minor: data.amount_minor,
                currency: &data.currency,
            };
            lifecycle::payment_succeeded(conn, &payment, cause).await?
        }
        types::PAYMENT_REFUNDED => {
            let data: PaymentData = event.data()?;
            let payment_id = data.payment_id.into_string();
            lifecycle::payment_refunded(conn, data.order_id, &payment_id, cause).await?
        }
        other => Outcome::Unchanged(lifecycle::Unchanged::UnhandledType(other.to_owned())),
    };
    Ok(outcome)
}

/// The [`Handler`] of the `order` consumer.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderEvents;

#[async_trait::async_trait]
impl Handler for OrderEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let outcome = on_event(conn, event).await?;
        match &outcome {
            Outcome::Moved { from, to } => tracing::info!(
                event.id = %event.id,
                event.kind = %event.event_type,
                from = %from,
                to = %to,
                "order moved"
            ),
            Outcome::RefundRequested(reason) => tracing::warn!(
                event.id = %event.id,
                event.kind = %event.event_type,
                reason = reason.as_str(),
                "payment not applied; refund requested"
            ),
            // The row lock makes this impossible; should it happen, running the event
            // again sees the order's new status and decides afresh.
            Outcome::Unchanged(lifecycle::Unchanged::Raced) => {
                return Err(HandlerError::Retry(anyhow::anyhow!(
                    "order changed while {} {} was applied",
                    event.event_type,
                    event.id
                )));
            }
            Outcome::Unchanged(why) => tracing::info!(
                event.id = %event.id,
                event.kind = %event.event_type,
                reason = %why,
                "event changes nothing"
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_ids_may_be_strings_or_numbers() {
        let data: PaymentData = serde_json::from_value(serde_json::json!({
            "order_id": Uuid::now_v7(), "payment_id": 42, "amount_minor": 1, "currency": "USD",
        }))
        .unwrap();
        assert_eq!(data.payment_id.into_string(), "42");
    }

    #[test]
    fn traces_carry_on() {
        let mut event = Envelope::new("catalog", types::INVENTORY_RESERVED, serde_json::json!({}));
        assert!(event.trace_context().is_none());
        event.trace = Some(serde_json::json!({"trace_id": "abc", "request_id": "r1"}));
        let trace = event.trace_context().unwrap();
        assert_eq!(
            (trace.trace_id.as_str(), trace.request_id.as_str()),
            ("abc", "r1")
        );
    }
}
