//! What the API sends and receives.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::machine::Status;

/// `POST /orders`: which cart to turn into an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub cart_id: Uuid,
    /// The guest cart's token, forwarded to the cart service as `X-Cart-Token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart_token: Option<String>,
}

/// One line of an order: the product as it was when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderLine {
    pub sku: String,
    pub product_id: Uuid,
    pub product_name: String,
    pub quantity: i32,
    /// The catalog's price at checkout, in minor units of the order's currency.
    pub unit_price_minor: i64,
    /// `quantity × unit_price_minor`.
    pub line_total_minor: i64,
}

/// The payment an order was paid with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Payment {
    pub payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub paid_at: DateTime<Utc>,
}

/// An order (in lists: without its history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub cart_id: Uuid,
    pub status: Status,
    pub currency: String,
    pub total_minor: i64,
    pub lines: Vec<OrderLine>,
    /// Present once the order is paid.
    pub payment: Option<Payment>,
    /// Why the order was cancelled: `out_of_stock`, `reservation_expired`,
    /// `payment_declined` or `cancelled_by_admin`; `null` unless cancelled.
    pub cancellation_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Transition {
    /// `null` for the creation.
    pub from: Option<Status>,
    pub to: Status,
    /// `created`, `stock_reserved`, `out_of_stock`, `reservation_expired`,
    /// `payment_succeeded`, `payment_declined`, `payment_refunded`, `fulfilled_by_admin`,
    /// `cancelled_by_admin`.
    pub cause: String,
    /// The event that caused it (`null` for the creation and admin actions).
    pub event_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// A refund this service asked the payment service for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RefundRequest {
    pub id: Uuid,
    pub payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// `cancelled_before_payment`, `amount_mismatch`, `duplicate_payment` or
    /// `requested_by_admin`.
    pub reason: String,
    pub requested_at: DateTime<Utc>,
}

/// An order with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: Order,
    /// Oldest first; the first is the creation.
    pub transitions: Vec<Transition>,
    pub refund_requests: Vec<RefundRequest>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
