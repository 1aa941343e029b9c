//! The payment intent's state machine, its rows, and what the API shows of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where an intent stands. Terminal: `failed`, `cancelled`, `refunded`.
///
/// ```text
/// requires_payment_method ──confirm──▶ processing ──▶ succeeded ──refund──▶ refunded
///        │    ▲                          │  ▲  │
///        │    └──(provider never saw it)─┘  │  └──▶ failed
///        │                                  │
///        │          requires_action ──authenticate──┘ (and processing ──▶ requires_action)
///        └──order.cancelled──▶ cancelled ◀──order.cancelled── requires_action
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created for an order awaiting payment; waits for `POST /payments/{id}/confirm`.
    RequiresPaymentMethod,
    /// A provider call is under way (or was interrupted; see `recovery`).
    Processing,
    /// The card asks for 3-D Secure; waits for `POST /payments/{id}/authenticate`.
    RequiresAction,
    /// Authorised and captured: the money is charged.
    Succeeded,
    /// Declined or not authenticated; the order is cancelled.
    Failed,
    /// The order was cancelled before it was paid.
    Cancelled,
    /// Charged, then refunded in full.
    Refunded,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::RequiresPaymentMethod,
        Status::Processing,
        Status::RequiresAction,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
        Status::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::RequiresPaymentMethod => "requires_payment_method",
            Status::Processing => "processing",
            Status::RequiresAction => "requires_action",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Failed | Status::Cancelled | Status::Refunded)
    }

    /// The transitions the service makes. Every status change in SQL is a conditional
    /// `UPDATE … WHERE status = <from>`, and every such `<from>` is allowed here.
    pub fn can_become(self, next: Status) -> bool {
        use Status::{
            Cancelled, Failed, Processing, Refunded, RequiresAction, RequiresPaymentMethod,
            Succeeded,
        };
        matches!(
            (self, next),
            (
                RequiresPaymentMethod | RequiresAction,
                Processing | Cancelled
            ) | (
                Processing,
                Succeeded | Failed | RequiresAction | RequiresPaymentMethod
            ) | (Succeeded, Refunded)
        )
    }

    /// What the ledger holds for a payment in this status: its amount once charged, else
    /// nothing (never charged, or charged and refunded).
    pub fn ledger_balance(self, amount_minor: i64) -> i64 {
        if self == Status::Succeeded {
            amount_minor
        } else {
            0
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `payments`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub provider: String,
    pub provider_ref: Option<String>,
    pub charge_ref: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub next_action: Option<serde_json::Value>,
    pub failure_reason: Option<String>,
    pub cancellation_reason: Option<String>,
    pub processing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PaymentRow {
    /// The row's status; the table's CHECK allows only known ones.
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Processing)
    }

    pub fn view(&self) -> Payment {
        Payment {
            id: self.id,
            order_id: self.order_id,
            user_id: self.user_id,
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            status: self.status(),
            provider: self.provider.clone(),
            card: match (&self.card_brand, &self.card_last4) {
                (Some(brand), Some(last4)) => Some(CardSummary {
                    brand: brand.clone(),
                    last4: last4.clone(),
                }),
                _ => None,
            },
            next_action: self.next_action.clone(),
            failure_reason: self.failure_reason.clone(),
            cancellation_reason: self.cancellation_reason.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// What is kept of a card: its brand and last four digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardSummary {
    #[schema(example = "visa")]
    pub brand: String,
    #[schema(example = "4242")]
    pub last4: String,
}

/// A payment intent as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// In minor units of `currency` (cents for USD).
    pub amount_minor: i64,
    #[schema(example = "USD")]
    pub currency: String,
    pub status: Status,
    /// `test` is the built-in test gateway.
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardSummary>,
    /// With `requires_action`: what the client has to do to complete the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_action: Option<serde_json::Value>,
    /// With `failed`: `card_declined`, `insufficient_funds` or `authentication_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One page of payments, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PaymentPage {
    pub items: Vec<Payment>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `charge` or `refund`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Charge,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "charge",
            EntryKind::Refund => "refund",
        }
    }
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub order_id: Uuid,
    /// `charge` or `refund`.
    pub kind: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The provider's id of the capture or refund.
    pub provider_ref: String,
    pub at: DateTime<Utc>,
}

/// An order's ledger: its entries, their balance, and whether that fits its payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderLedger {
    pub order_id: Uuid,
    pub entries: Vec<LedgerEntry>,
    /// sum(charge) - sum(refund), in minor units.
    pub balance_minor: i64,
    /// The payment's status and what its balance must be.
    pub payment_status: Option<Status>,
    pub expected_balance_minor: i64,
    pub consistent: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
        }
        assert_eq!(Status::parse("paid"), None);
    }

    #[test]
    fn terminal_statuses_go_nowhere() {
        for from in Status::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in Status::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn only_a_charged_payment_can_be_refunded_and_only_unpaid_ones_cancelled() {
        assert!(Status::Succeeded.can_become(Status::Refunded));
        for from in Status::ALL {
            if from != Status::Succeeded {
                assert!(!from.can_become(Status::Refunded), "{from}");
            }
        }
        assert!(!Status::Succeeded.can_become(Status::Cancelled));
        assert!(!Status::Processing.can_become(Status::Cancelled));
        assert!(Status::RequiresAction.can_become(Status::Cancelled));
        // Money moves only through processing.
        for from in Status::ALL {
            if from != Status::Processing {
                assert!(!from.can_become(Status::Succeeded), "{from}");
            }
        }
    }

    #[test]
    fn only_a_succeeded_payment_holds_money() {
        for status in Status::ALL {
            let expected = if status == Status::Succeeded { 500 } else { 0 };
            assert_eq!(status.ledger_balance(500), expected, "{status}");
        }
    }
}
