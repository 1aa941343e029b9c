//! Changing an order's status and saying so: every change asks the state machine, moves
//! the row with a conditional update, records the transition and writes the follow-on
//! event into the outbox — all on the caller's transaction. The event handlers and the
//! admin actions both come through here.

use serde_json::json;
use shopkit::http::TraceContext;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::machine::{Refused, Status, Trigger, transition};
use crate::store::{self, Locked, NewRefund, PaidWith};

/// The `source` of this service's events.
pub const SOURCE: &str = "order";

/// The event types this service publishes.
pub mod types {
    pub const CREATED: &str = "order.created";
    pub const AWAITING_PAYMENT: &str = "order.awaiting_payment";
    pub const PAID: &str = "order.paid";
    pub const CANCELLED: &str = "order.cancelled";
    pub const FULFILLED: &str = "order.fulfilled";
    pub const REFUND_REQUESTED: &str = "order.refund_requested";
}

/// Why a refund is requested (`order.refund_requested`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundReason {
    /// The money arrived after the order was cancelled (its reservation expired, …).
    CancelledBeforePayment,
    /// The payment's amount or currency is not the order's total.
    AmountMismatch,
    /// A second payment for an order already paid with another.
    DuplicatePayment,
    /// An admin's `POST /admin/orders/{id}/refund`.
    RequestedByAdmin,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::CancelledBeforePayment => "cancelled_before_payment",
            RefundReason::AmountMismatch => "amount_mismatch",
            RefundReason::DuplicatePayment => "duplicate_payment",
            RefundReason::RequestedByAdmin => "requested_by_admin",
        }
    }
}

/// What applying a trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The order moved.
    Moved { from: Status, to: Status },
    /// A refund was requested (the status did not change).
    RefundRequested(RefundReason),
    /// Nothing changed.
    Unchanged(Unchanged),
}

/// Why nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unchanged {
    #[error("no such order")]
    UnknownOrder,
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Another writer moved the order between our read and our update (cannot happen
    /// under the row lock; kept as the guard's answer).
    #[error("the order changed concurrently")]
    Raced,
    /// This payment was applied or compensated before.
    #[error("payment {0} was handled before")]
    KnownPayment(String),
    /// The refund of this payment was requested before.
    #[error("a refund of payment {0} was requested before")]
    RefundAlreadyRequested(String),
    /// A refund of another payment than the one the order was paid with.
    #[error("payment {0} is not the payment this order was paid with")]
    OtherPayment(String),
    /// An event type this service does not handle.
    #[error("the order service does not handle {0} events")]
    UnhandledType(String),
}

/// What caused a change: the event (if any) and the trace to carry on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cause<'a> {
    pub event_id: Option<Uuid>,
    pub trace: Option<&'a TraceContext>,
}

/// Applies `trigger` to order `id`: locks it, asks the state machine, moves it and
/// publishes what the new status calls for.
pub async fn apply(
    conn: &mut PgConnection,
    id: Uuid,
    trigger: Trigger,
    cause: Cause<'_>,
) -> sqlx::Result<Outcome> {
    let Some(order) = store::lock(conn, id).await? else {
        return Ok(Outcome::Unchanged(Unchanged::UnknownOrder));
    };
    apply_locked(conn, &order, trigger, cause, None).await
}

/// [`apply`] for an order already locked by the caller; `paid_with` goes with `paid`.
pub async fn apply_locked(
    conn: &mut PgConnection,
    order: &Locked,
    trigger: Trigger,
    cause: Cause<'_>,
    paid_with: Option<&PaidWith<'_>>,
) -> sqlx::Result<Outcome> {
    let from = order.status;
    let to = match transition(from, trigger) {
        Ok(to) => to,
        Err(refused) => return Ok(Outcome::Unchanged(refused.into())),
    };
    let moved = store::move_status(
        conn,
        order.id,
        from,
        to,
        trigger.cause(),
        cause.event_id,
        paid_with,
    )
    .await?;
    if !moved {
        return Ok(Outcome::Unchanged(Unchanged::Raced));
    }
    announce(conn, order, to, trigger, cause.trace).await?;
    crate::metrics::transition(to);
    Ok(Outcome::Moved { from, to })
}

/// The follow-on event of a move to `to` (docs/checkout.md).
async fn announce(
    conn: &mut PgConnection,
    order: &Locked,
    to: Status,
    trigger: Trigger,
    trace: Option<&TraceContext>,
) -> sqlx::Result<()> {
    let (event_type, data) = match to {
        Status::AwaitingPayment => (
            types::AWAITING_PAYMENT,
            json!({
                "order_id": order.id,
                "user_id": order.user_id,
                "currency": order.currency,
                "total_minor": order.total_minor,
            }),
        ),
        Status::Paid => (
            types::PAID,
            json!({
                "order_id": order.id,
                "user_id": order.user_id,
                "cart_id": order.cart_id,
                "currency": order.currency,
                "total_minor": order.total_minor,
            }),
        ),
        Status::Cancelled => (
            types::CANCELLED,
            json!({ "order_id": order.id, "reason": trigger.cause() }),
        ),
        Status::Fulfilled => (types::FULFILLED, json!({ "order_id": order.id })),
        // Nobody waits for these: a new order is announced by `checkout` with its lines,
        // and `refunded` is the payment service's own news.
        Status::Pending | Status::Refunded => return Ok(()),
    };
    shopkit::events::record(conn, SOURCE, event_type, data, trace).await?;
    Ok(())
}

/// Asks the payment service to refund `payment_id` (once per payment), recording why.
pub async fn request_refund(
    conn: &mut PgConnection,
    refund: &NewRefund<'_>,
    reason: RefundReason,
    trace: Option<&TraceContext>,
) -> sqlx::Result<Outcome> {
    let refund = NewRefund {
        reason: reason.as_str(),
        ..refund.clone()
    };
    if !store::insert_refund(conn, &refund).await? {
        return Ok(Outcome::Unchanged(Unchanged::RefundAlreadyRequested(
            refund.payment_id.to_owned(),
        )));
    }
    let data = json!({
        "order_id": refund.order_id,
        "reason": reason.as_str(),
        "payment_id": refund.payment_id,
        "amount_minor": refund.amount_minor,
        "currency": refund.currency,
    });
    shopkit::events::record(conn, SOURCE, types::REFUND_REQUESTED, data, trace).await?;
    Ok(Outcome::RefundRequested(reason))
}

/// `payment.succeeded`'s data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Succeeded<'a> {
    pub order_id: Uuid,
    pub payment_id: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
}

/// A payment arrived. It pays the order if the order awaits exactly this amount; any
/// other money is sent back (`order.refund_requested`): for an order cancelled meanwhile,
/// for the wrong amount, or a second payment of an order already paid.
pub async fn payment_succeeded(
    conn: &mut PgConnection,
    payment: &Succeeded<'_>,
    cause: Cause<'_>,
) -> sqlx::Result<Outcome> {
    let Some(order) = store::lock(conn, payment.order_id).await? else {
        return Ok(Outcome::Unchanged(Unchanged::UnknownOrder));
    };
    let known = order
        .payment
        .as_ref()
        .is_some_and(|(id, _, _)| id == payment.payment_id)
        || store::refund_requested(conn, payment.payment_id).await?;
    if known {
        return Ok(Outcome::Unchanged(Unchanged::KnownPayment(
            payment.payment_id.to_owned(),
        )));
    }
    let refund = NewRefund {
        order_id: order.id,
        payment_id: payment.payment_id,
        amount_minor: payment.amount_minor,
        currency: payment.currency,
        reason: "",
        event_id: cause.event_id,
        requested_by: None,
    };
    let reason = match order.status {
        Status::AwaitingPayment
            if payment.amount_minor == order.total_minor && payment.currency == order.currency =>
        {
            let paid_with = PaidWith {
                payment_id: payment.payment_id,
                amount_minor: payment.amount_minor,
                currency: payment.currency,
            };
            return apply_locked(
                conn,
                &order,
                Trigger::PaymentSucceeded,
                cause,
                Some(&paid_with),
            )
            .await;
        }
        Status::AwaitingPayment => RefundReason::AmountMismatch,
        Status::Cancelled => RefundReason::CancelledBeforePayment,
        Status::Paid | Status::Fulfilled | Status::Refunded => RefundReason::DuplicatePayment,
        // The payment service asks for money only after `order.awaiting_payment`, so
        // this is a message overtaking its cause; the state machine decides (no change).
        Status::Pending => {
            return apply_locked(conn, &order, Trigger::PaymentSucceeded, cause, None).await;
        }
    };
    request_refund(conn, &refund, reason, cause.trace).await
}

/// A refund went through: the order is refunded if it was this payment that paid it.
pub async fn payment_refunded(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment_id: &str,
    cause: Cause<'_>,
) -> sqlx::Result<Outcome> {
    let Some(order) = store::lock(conn, order_id).await? else {
        return Ok(Outcome::Unchanged(Unchanged::UnknownOrder));
    };
    let paid_with_it = order
        .payment
        .as_ref()
        .is_some_and(|(id, _, _)| id == payment_id);
    if !paid_with_it {
        // The refund of a compensated payment (cancelled order, wrong amount, duplicate).
        return Ok(Outcome::Unchanged(Unchanged::OtherPayment(
            payment_id.to_owned(),
        )));
    }
    apply_locked(conn, &order, Trigger::PaymentRefunded, cause, None).await
}
