//! The order service's business metrics (request counts and latencies come from shopkit).

use std::sync::Once;

use crate::machine::Status;

pub const ORDERS_CREATED_TOTAL: &str = "orders_created_total";
pub const ORDER_TRANSITIONS_TOTAL: &str = "order_transitions_total";

/// Registers help texts once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The recorder must exist before descriptions are registered with it.
        shopkit::metrics::handle();
        metrics::describe_counter!(ORDERS_CREATED_TOTAL, "Orders placed (replays not counted)");
        metrics::describe_counter!(
            ORDER_TRANSITIONS_TOTAL,
            "Order status changes, by the status moved to (creation counts as pending)"
        );
    });
}

pub fn order_created() {
    metrics::counter!(ORDERS_CREATED_TOTAL).increment(1);
    transition(Status::Pending);
}

/// Counted when the change is written; a transaction that then fails to commit (rare:
/// the database went away) has counted one too many.
pub fn transition(to: Status) {
    metrics::counter!(ORDER_TRANSITIONS_TOTAL, "to" => to.as_str()).increment(1);
}
