//! The cart's business metrics (request counts and latencies come from shopkit).

use std::sync::Once;

pub const CHANGES_TOTAL: &str = "cart_changes_total";
pub const SSE_SUBSCRIBERS: &str = "cart_sse_subscribers";

/// Registers help texts once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The recorder must exist before descriptions are registered with it.
        shopkit::metrics::handle();
        metrics::describe_counter!(
            CHANGES_TOTAL,
            "Changes to carts, by kind (add, update, remove, merge, clear, price, stock)"
        );
        metrics::describe_gauge!(
            SSE_SUBSCRIBERS,
            "Live cart event streams open on this replica"
        );
    });
}

/// One change of `kind` to one cart.
pub fn change(kind: &'static str) {
    metrics::counter!(CHANGES_TOTAL, "kind" => kind).increment(1);
}

/// The same change of `kind` to `carts` carts.
pub fn changes(kind: &'static str, carts: usize) {
    metrics::counter!(CHANGES_TOTAL, "kind" => kind).increment(carts as u64);
}

/// A live stream opened (+1) or closed (-1).
pub fn sse_subscribers(delta: f64) {
    metrics::gauge!(SSE_SUBSCRIBERS).increment(delta);
}
