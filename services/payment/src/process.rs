//! Moving a claimed (`processing`) payment on: the provider calls ([`drive`]) and the
//! transaction that records where they left it ([`record`]: status, ledger row and event
//! together).
//!
//! A confirmation is three steps, so that a crash anywhere is recoverable:
//! 1. claim: `requires_payment_method` → `processing` in a short transaction of its own
//!    (a conditional update: of concurrent confirmations exactly one gets it);
//! 2. the provider calls, with idempotency keys derived from the payment's id;
//! 3. record: `processing` → the outcome, with the ledger row and the event, in one
//!    transaction (conditional on the claim, so a resolved claim is never overwritten).
//!
//! A crash between 1 and 3 leaves the payment `processing`; `recovery` resolves it by
//! asking the provider (on the next confirmation, or from the sweeper).

use serde_json::json;
use shopkit::http::TraceContext;
use sqlx::PgConnection;

use crate::card::PaymentMethod;
use crate::model::{EntryKind, PaymentRow, Status};
use crate::provider::{
    ActionOutcome, NewIntent, NextAction, Provider, ProviderError, ProviderStatus, idempotency_key,
};
use crate::store::{self, Settled};

/// The `source` of the events this service emits.
pub const SOURCE: &str = "payment";

pub mod event_types {
    /// `{order_id, payment_id, amount_minor, currency}`
    pub const SUCCEEDED: &str = "payment.succeeded";
    /// `{order_id, payment_id, reason}`
    pub const FAILED: &str = "payment.failed";
    /// `{order_id, payment_id, amount_minor, currency}`
    pub const REFUNDED: &str = "payment.refunded";
}

/// What the provider is asked to do with a claimed payment.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Confirm(&'a PaymentMethod),
    Authenticate(ActionOutcome),
}

/// Where the provider calls left a payment: its provider intent id, and the outcome
/// (`None`: the provider is still processing it).
#[derive(Debug, Clone, PartialEq)]
pub struct Driven {
    pub provider_ref: String,
    pub settled: Option<Settled>,
}

/// Runs `step` at the provider for a claimed payment, capturing an authorisation at
/// once (automatic capture). Creates the provider's intent first if it has none yet.
pub async fn drive(
    provider: &dyn Provider,
    payment: &PaymentRow,
    step: Step<'_>,
) -> Result<Driven, ProviderError> {
    let provider_ref = provider_intent(provider, payment).await?;
    let intent = match step {
        Step::Confirm(method) => {
            provider
                .confirm(
                    &provider_ref,
                    method,
                    &idempotency_key(payment.id, "confirm"),
                )
                .await?
        }
        Step::Authenticate(outcome) => {
            provider
                .complete_action(
                    &provider_ref,
                    outcome,
                    &idempotency_key(payment.id, "authenticate"),
                )
                .await?
        }
    };
    let settled = settle(provider, payment, &provider_ref, intent.status).await?;
    Ok(Driven {
        provider_ref,
        settled,
    })
}

/// The payment's intent at the provider: the one recorded, or the one made for its id
/// (creating is idempotent, so a lost answer is found again by repeating it).
pub async fn provider_intent(
    provider: &dyn Provider,
    payment: &PaymentRow,
) -> Result<String, ProviderError> {
    if let Some(provider_ref) = &payment.provider_ref {
        return Ok(provider_ref.clone());
    }
    let new = NewIntent {
        payment_id: payment.id,
        order_id: payment.order_id,
        amount_minor: payment.amount_minor,
        currency: &payment.currency,
    };
    let created = provider
        .create_intent(&new, &idempotency_key(payment.id, "create"))
        .await?;
    Ok(created.provider_ref)
}

/// Turns the provider's status into what to record, capturing an authorisation.
pub async fn settle(
    provider: &dyn Provider,
    payment: &PaymentRow,
    provider_ref: &str,
    status: ProviderStatus,
) -> Result<Option<Settled>, ProviderError> {
    let status = match status {
        ProviderStatus::RequiresCapture => {
            provider
                .capture(
                    provider_ref,
                    payment.amount_minor,
                    &idempotency_key(payment.id, "capture"),
                )
                .await?
                .status
        }
        other => other,
    };
    Ok(match status {
        ProviderStatus::Succeeded { charge_ref } => Some(Settled::Succeeded { charge_ref }),
        ProviderStatus::Failed { reason } => Some(Settled::Failed { reason }),
        ProviderStatus::RequiresAction(action) => Some(Settled::RequiresAction {
            next_action: next_action_json(payment, &action),
        }),
        ProviderStatus::RequiresPaymentMethod => Some(Settled::RequiresPaymentMethod),
        ProviderStatus::Cancelled => Some(Settled::Failed {
            reason: "cancelled_by_provider".into(),
        }),
        // Still authorised after a capture, or still working: not settled yet.
        ProviderStatus::Processing | ProviderStatus::RequiresCapture => None,
    })
}

/// The `next_action` the client sees.
pub fn next_action_json(payment: &PaymentRow, action: &NextAction) -> serde_json::Value {
    let mut value = json!({
        "type": action.kind,
        "authenticate": {
            "method": "POST",
            "path": format!("/payments/{}/authenticate", payment.id),
            "body": {"outcome": "approve | deny"},
        },
    });
    if let Some(url) = &action.redirect_url {
        value["redirect_url"] = json!(url);
    }
    value
}

/// Records the outcome of a claim on `conn` (the caller's transaction): the status, the
/// ledger charge and `payment.succeeded`, or `payment.failed`. `None` if the claim was
/// resolved by someone else meanwhile (then nothing is written).
pub async fn record(
    conn: &mut PgConnection,
    claimed: &PaymentRow,
    provider_ref: Option<&str>,
    settled: &Settled,
    trace: Option<&TraceContext>,
) -> sqlx::Result<Option<PaymentRow>> {
    let Some(since) = claimed.processing_since else {
        return Ok(None);
    };
    let Some(row) = store::settle(conn, claimed.id, since, provider_ref, settled).await? else {
        return Ok(None);
    };
    match settled {
        Settled::Succeeded { charge_ref } => {
            store::ledger_append(conn, &row, EntryKind::Charge, charge_ref).await?;
            shopkit::events::record(
                conn,
                SOURCE,
                event_types::SUCCEEDED,
                json!({
                    "order_id": row.order_id,
                    "payment_id": row.id,
                    "amount_minor": row.amount_minor,
                    "currency": row.currency,
                }),
                trace,
            )
            .await?;
        }
        Settled::Failed { reason } => {
            shopkit::events::record(
                conn,
                SOURCE,
                event_types::FAILED,
                json!({"order_id": row.order_id, "payment_id": row.id, "reason": reason}),
                trace,
            )
            .await?;
        }
        Settled::RequiresAction { .. } | Settled::RequiresPaymentMethod => {}
    }
    Ok(Some(row))
}

/// Counts a recorded status change (after its commit).
pub fn count(row: &PaymentRow) {
    let status = row.status();
    crate::metrics::status(status);
    if status == Status::Succeeded {
        crate::metrics::charged(&row.currency, row.amount_minor);
    }
}
