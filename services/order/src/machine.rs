//! The order's state machine, as a pure function: which trigger moves an order in which
//! status to which status. Everything that changes an order's status asks [`transition`]
//! first; the database then applies the answer with a conditional update (see `store`).
//!
//! ```text
//! pending ──reserved──▶ awaiting_payment ──payment succeeded──▶ paid ──fulfil──▶ fulfilled
//!    │                        │                                  │                 │
//!    └─rejected/expired/      └─expired/payment failed/          └──payment refunded┴──▶ refunded
//!      admin cancel─▶ cancelled  admin cancel─▶ cancelled
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created with a price snapshot; the catalog has not answered the reservation yet.
    Pending,
    /// Stock is reserved; the payment service is collecting the money.
    AwaitingPayment,
    /// The money arrived.
    Paid,
    /// Shipped (an admin said so).
    Fulfilled,
    /// Ended before payment: out of stock, reservation expired, payment declined or an admin.
    Cancelled,
    /// The money went back after payment.
    Refunded,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::AwaitingPayment,
        Status::Paid,
        Status::Fulfilled,
        Status::Cancelled,
        Status::Refunded,
    ];

    /// The name used in JSON, in the database and as the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::AwaitingPayment => "awaiting_payment",
            Status::Paid => "paid",
            Status::Fulfilled => "fulfilled",
            Status::Cancelled => "cancelled",
            Status::Refunded => "refunded",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an order status (one of pending, awaiting_payment, paid, fulfilled, cancelled, refunded)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// What can happen to an order: an event from another service, or an admin's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `inventory.reserved`.
    StockReserved,
    /// `inventory.rejected`.
    StockRejected,
    /// `inventory.expired`.
    ReservationExpired,
    /// `payment.succeeded` for the order's total.
    PaymentSucceeded,
    /// `payment.failed`.
    PaymentFailed,
    /// `payment.refunded` of the payment the order was paid with.
    PaymentRefunded,
    /// `POST /admin/orders/{id}/fulfil`.
    Fulfil,
    /// `POST /admin/orders/{id}/cancel`.
    Cancel,
}

impl Trigger {
    pub const ALL: [Trigger; 8] = [
        Trigger::StockReserved,
        Trigger::StockRejected,
        Trigger::ReservationExpired,
        Trigger::PaymentSucceeded,
        Trigger::PaymentFailed,
        Trigger::PaymentRefunded,
        Trigger::Fulfil,
        Trigger::Cancel,
    ];

    /// Recorded as the transition's `cause`; for a cancellation it is also the order's
    /// `cancellation_reason` and the `reason` of `order.cancelled`.
    pub fn cause(self) -> &'static str {
        match self {
            Trigger::StockReserved => "stock_reserved",
            Trigger::StockRejected => "out_of_stock",
            Trigger::ReservationExpired => "reservation_expired",
            Trigger::PaymentSucceeded => "payment_succeeded",
            Trigger::PaymentFailed => "payment_declined",
            Trigger::PaymentRefunded => "payment_refunded",
            Trigger::Fulfil => "fulfilled_by_admin",
            Trigger::Cancel => "cancelled_by_admin",
        }
    }

    /// What the trigger tries to do, for messages ("cannot be fulfilled").
    fn verb(self) -> &'static str {
        match self {
            Trigger::StockReserved => "have stock reserved",
            Trigger::StockRejected => "have its reservation rejected",
            Trigger::ReservationExpired => "have its reservation expire",
            Trigger::PaymentSucceeded => "be paid",
            Trigger::PaymentFailed => "have its payment fail",
            Trigger::PaymentRefunded => "be refunded",
            Trigger::Fulfil => "be fulfilled",
            Trigger::Cancel => "be cancelled",
        }
    }
}

/// The trigger does not apply to an order in this status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot {}", trigger.verb())]
pub struct Refused {
    pub from: Status,
    pub trigger: Trigger,
}

/// The status `trigger` moves an order in status `from` to, or why it does not apply.
pub fn transition(from: Status, trigger: Trigger) -> Result<Status, Refused> {
    use Status::*;
    use Trigger::*;
    match (from, trigger) {
        (Pending, StockReserved) => Ok(AwaitingPayment),
        (Pending, StockRejected) => Ok(Cancelled),
        // Expiry can overtake the reservation's own event; either way the stock is gone.
        (Pending | AwaitingPayment, ReservationExpired) => Ok(Cancelled),
        (AwaitingPayment, PaymentSucceeded) => Ok(Paid),
        (AwaitingPayment, PaymentFailed) => Ok(Cancelled),
        (Paid | Fulfilled, PaymentRefunded) => Ok(Refunded),
        (Paid, Fulfil) => Ok(Fulfilled),
        (Pending | AwaitingPayment, Cancel) => Ok(Cancelled),
        _ => Err(Refused { from, trigger }),
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::Trigger::*;
    use super::*;

    /// Every (status, trigger) pair that moves an order; all others are refused.
    const ALLOWED: &[(Status, Trigger, Status)] = &[
        (Pending, StockReserved, AwaitingPayment),
        (Pending, StockRejected, Cancelled),
        (Pending, ReservationExpired, Cancelled),
        (Pending, Cancel, Cancelled),
        (AwaitingPayment, ReservationExpired, Cancelled),
        (AwaitingPayment, PaymentSucceeded, Paid),
        (AwaitingPayment, PaymentFailed, Cancelled),
        (AwaitingPayment, Cancel, Cancelled),
        (Paid, Fulfil, Fulfilled),
        (Paid, PaymentRefunded, Refunded),
        (Fulfilled, PaymentRefunded, Refunded),
    ];

    #[test]
    fn every_pair_of_status_and_trigger_is_decided() {
        let mut moves = 0;
        for from in Status::ALL {
            for trigger in Trigger::ALL {
                let expected = ALLOWED
                    .iter()
                    .find(|(f, t, _)| *f == from && *t == trigger)
                    .map(|(_, _, to)| *to);
                match (transition(from, trigger), expected) {
                    (Ok(to), Some(want)) => {
                        assert_eq!(to, want, "{from} + {trigger:?}");
                        moves += 1;
                    }
                    (Err(refused), None) => {
                        assert_eq!(refused, Refused { from, trigger });
                    }
                    (got, want) => panic!("{from} + {trigger:?}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(moves, ALLOWED.len());
        assert_eq!(Status::ALL.len() * Trigger::ALL.len(), 48);
    }

    #[test]
    fn terminal_states_accept_nothing_but_a_refund_after_fulfilment() {
        for trigger in Trigger::ALL {
            assert!(transition(Cancelled, trigger).is_err(), "{trigger:?}");
            assert!(transition(Refunded, trigger).is_err(), "{trigger:?}");
        }
        let open: Vec<_> = Trigger::ALL
            .into_iter()
            .filter(|t| transition(Fulfilled, *t).is_ok())
            .collect();
        assert_eq!(open, vec![PaymentRefunded]);
    }

    #[test]
    fn no_trigger_leaves_the_status_unchanged() {
        for from in Status::ALL {
            for trigger in Trigger::ALL {
                if let Ok(to) = transition(from, trigger) {
                    assert_ne!(from, to, "{from} + {trigger:?}");
                }
            }
        }
    }

    #[test]
    fn refusals_say_what_was_refused() {
        let refused = transition(Paid, Cancel).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "an order that is paid cannot be cancelled"
        );
        let refused = transition(Pending, Fulfil).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "an order that is pending cannot be fulfilled"
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert!("shipped".parse::<Status>().is_err());
    }

    #[test]
    fn cancellation_causes_are_the_documented_reasons() {
        assert_eq!(StockRejected.cause(), "out_of_stock");
        assert_eq!(ReservationExpired.cause(), "reservation_expired");
        assert_eq!(PaymentFailed.cause(), "payment_declined");
    }
}
