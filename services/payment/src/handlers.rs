//! What the service does with the order's events (consumer `payment`). Each runs in the
//! transaction that records the message in the inbox, so a redelivery is a no-op; and
//! each checks the payment's state, so an event that arrives out of order changes
//! nothing it should not:
//!
//! | event | effect |
//! | --- | --- |
//! | `order.awaiting_payment` | creates the order's intent (one per order); `cancelled` already if the order's cancellation came first |
//! | `order.cancelled` | cancels an unpaid intent; remembers the cancellation if the intent does not exist yet; a paid one is left for the order's refund request |
//! | `order.refund_requested` | refunds a succeeded payment in full: provider refund, ledger row, `payment.refunded` |
//!
//! A payment that is `processing` (a confirmation under way) makes cancellation and
//! refund wait: the handler asks for a retry, and by then the payment has settled.

use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use shopkit::events::{Envelope, Handler, HandlerError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{EntryKind, Status};
use crate::process::{self, SOURCE, event_types};
use crate::provider::{Provider, ProviderError, RefundRequest, idempotency_key};
use crate::store::{self, NewPayment};

/// The consumer's name (= its queue).
pub const CONSUMER: &str = "payment";

pub const AWAITING_PAYMENT: &str = "order.awaiting_payment";
pub const CANCELLED: &str = "order.cancelled";
pub const REFUND_REQUESTED: &str = "order.refund_requested";

/// The routing keys the consumer binds.
pub const ROUTING_KEYS: [&str; 3] = [AWAITING_PAYMENT, CANCELLED, REFUND_REQUESTED];

/// `order.awaiting_payment`.
#[derive(Debug, Clone, Deserialize)]
pub struct AwaitingPayment {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub currency: String,
    pub total_minor: i64,
}

/// `order.cancelled` and `order.refund_requested` (which may name the payment, and
/// carries its amount and currency as the order knows them).
#[derive(Debug, Clone, Deserialize)]
pub struct OrderReason {
    pub order_id: Uuid,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub payment_id: Option<Uuid>,
}

/// The one handler of the `payment` consumer; dispatches on the event type.
#[derive(Debug, Clone)]
pub struct OrderEvents {
    provider: Arc<dyn Provider>,
}

impl OrderEvents {
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        Self { provider }
    }
}

#[async_trait]
impl Handler for OrderEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            AWAITING_PAYMENT => {
                awaiting_payment(conn, self.provider.name(), &event.data()?).await?;
            }
            CANCELLED => {
                cancelled(conn, self.provider.as_ref(), &event.data()?).await?;
            }
            REFUND_REQUESTED => {
                let trace = event.trace_context();
                refund_requested(conn, self.provider.as_ref(), &event.data()?, trace.as_ref())
                    .await?;
            }
            other => {
                tracing::warn!(event.r#type = other, event.id = %event.id, "ignoring an event this consumer does not subscribe to");
            }
        }
        Ok(())
    }
}

/// What an event handler did (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Created,
    CreatedCancelled,
    Cancelled,
    RememberedCancellation,
    Refunded,
    Nothing,
}

/// Creates the order's intent, once.
pub async fn awaiting_payment(
    conn: &mut PgConnection,
    provider: &str,
    data: &AwaitingPayment,
) -> Result<Effect, HandlerError> {
    if data.total_minor <= 0 {
        return Err(HandlerError::Reject(anyhow!(
            "order {} awaits a payment of {} minor units; it must be positive",
            data.order_id,
            data.total_minor
        )));
    }
    if data.currency.len() != 3 || !data.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HandlerError::Reject(anyhow!(
            "order {} has the currency {:?}; expected an ISO 4217 code such as USD",
            data.order_id,
            data.currency
        )));
    }
    let cancelled = store::cancelled_order(conn, data.order_id).await?;
    let new = NewPayment {
        order_id: data.order_id,
        user_id: data.user_id,
        amount_minor: data.total_minor,
        currency: &data.currency,
        provider,
        cancelled: cancelled.as_deref(),
    };
    let Some(row) = store::insert(conn, &new).await? else {
        tracing::info!(order.id = %data.order_id, "the order has its payment already");
        return Ok(Effect::Nothing);
    };
    process::count(&row);
    tracing::info!(payment.id = %row.id, order.id = %row.order_id, status = %row.status(), "payment intent created");
    Ok(if cancelled.is_some() {
        Effect::CreatedCancelled
    } else {
        Effect::Created
    })
}

/// Cancels the order's unpaid intent.
pub async fn cancelled(
    conn: &mut PgConnection,
    provider: &dyn Provider,
    data: &OrderReason,
) -> Result<Effect, HandlerError> {
    let reason = data.reason.as_deref().unwrap_or("order_cancelled");
    let Some(payment) = store::lock_by_order(conn, data.order_id).await? else {
        store::remember_cancelled_order(conn, data.order_id, reason).await?;
        return Ok(Effect::RememberedCancellation);
    };
    match payment.status() {
        Status::RequiresPaymentMethod | Status::RequiresAction => {
            if let Some(provider_ref) = &payment.provider_ref {
                provider
                    .cancel(provider_ref, &idempotency_key(payment.id, "cancel"))
                    .await
                    .map_err(provider_error)?;
            }
            let Some(row) = store::cancel(conn, payment.id, reason).await? else {
                return Ok(Effect::Nothing);
            };
            process::count(&row);
            tracing::info!(payment.id = %row.id, order.id = %row.order_id, "payment cancelled with its order");
            Ok(Effect::Cancelled)
        }
        Status::Processing => Err(HandlerError::Retry(anyhow!(
            "payment {} is being confirmed right now; the cancellation waits until it settles",
            payment.id
        ))),
        // Paid: the order answers a late payment with a refund request. The rest are done.
        Status::Succeeded | Status::Failed | Status::Cancelled | Status::Refunded => {
            Ok(Effect::Nothing)
        }
    }
}

/// Refunds the order's succeeded payment in full.
pub async fn refund_requested(
    conn: &mut PgConnection,
    provider: &dyn Provider,
    data: &OrderReason,
    trace: Option<&shopkit::http::TraceContext>,
) -> Result<Effect, HandlerError> {
    let Some(payment) = store::lock_by_order(conn, data.order_id).await? else {
        tracing::warn!(order.id = %data.order_id, "a refund was requested for an order without a payment; nothing to refund");
        return Ok(Effect::Nothing);
    };
    if let Some(named) = data.payment_id
        && named != payment.id
    {
        tracing::warn!(order.id = %data.order_id, payment.id = %named, "a refund was requested for a payment that is not the order's; nothing to refund");
        return Ok(Effect::Nothing);
    }
    match payment.status() {
        Status::Succeeded => {}
        Status::Processing => {
            return Err(HandlerError::Retry(anyhow!(
                "payment {} is being confirmed right now; the refund waits until it settles",
                payment.id
            )));
        }
        Status::Refunded => return Ok(Effect::Nothing),
        other => {
            tracing::warn!(payment.id = %payment.id, status = %other, "a refund was requested for a payment that holds no money; nothing to refund");
            return Ok(Effect::Nothing);
        }
    }
    let Some(charge_ref) = payment.charge_ref.as_deref() else {
        return Err(HandlerError::Reject(anyhow!(
            "payment {} succeeded without a charge reference",
            payment.id
        )));
    };
    let request = RefundRequest {
        provider_ref: payment.provider_ref.as_deref().unwrap_or(charge_ref),
        charge_ref,
        amount_minor: payment.amount_minor,
        currency: &payment.currency,
    };
    let refund = provider
        .refund(&request, &idempotency_key(payment.id, "refund"))
        .await
        .map_err(provider_error)?;
    let Some(row) = store::mark_refunded(conn, payment.id).await? else {
        return Ok(Effect::Nothing);
    };
    store::ledger_append(conn, &row, EntryKind::Refund, &refund.refund_ref).await?;
    shopkit::events::record(
        conn,
        SOURCE,
        event_types::REFUNDED,
        json!({
            "order_id": row.order_id,
            "payment_id": row.id,
            "amount_minor": row.amount_minor,
            "currency": row.currency,
        }),
        trace,
    )
    .await?;
    process::count(&row);
    crate::metrics::refunded(&row.currency, row.amount_minor);
    tracing::info!(payment.id = %row.id, order.id = %row.order_id, reason = data.reason.as_deref().unwrap_or(""), "payment refunded");
    Ok(Effect::Refunded)
}

/// A provider that did not answer is worth a retry; one that refused is not.
fn provider_error(err: ProviderError) -> HandlerError {
    match err {
        ProviderError::Unavailable(cause) => {
            HandlerError::Retry(cause.context("the payment provider did not answer"))
        }
        other => HandlerError::Reject(anyhow!("the payment provider refused: {other}")),
    }
}
