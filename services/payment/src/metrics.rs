//! The payment service's business metrics (request counts and latencies come from
//! shopkit). Counted when a change commits.

use std::sync::Once;

use crate::model::Status;

/// Status changes recorded, by the status reached (`requires_payment_method` counts
/// created intents).
pub const PAYMENTS_TOTAL: &str = "payments_total";
/// Money charged, in minor units, by currency.
pub const AMOUNT_TOTAL: &str = "payment_amount_minor_total";
/// Money refunded, in minor units, by currency.
pub const REFUNDED_TOTAL: &str = "payment_refunded_amount_minor_total";

/// Registers help texts once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The recorder must exist before descriptions are registered with it.
        shopkit::metrics::handle();
        metrics::describe_counter!(
            PAYMENTS_TOTAL,
            "Payment status changes, by the status reached"
        );
        metrics::describe_counter!(
            AMOUNT_TOTAL,
            "Amount charged (captured), in minor units, by currency"
        );
        metrics::describe_counter!(
            REFUNDED_TOTAL,
            "Amount refunded, in minor units, by currency"
        );
    });
}

pub fn status(status: Status) {
    metrics::counter!(PAYMENTS_TOTAL, "status" => status.as_str()).increment(1);
}

pub fn charged(currency: &str, amount_minor: i64) {
    metrics::counter!(AMOUNT_TOTAL, "currency" => currency.to_owned())
        .increment(u64::try_from(amount_minor).unwrap_or(0));
}

pub fn refunded(currency: &str, amount_minor: i64) {
    metrics::counter!(REFUNDED_TOTAL, "currency" => currency.to_owned())
        .increment(u64::try_from(amount_minor).unwrap_or(0));
}
