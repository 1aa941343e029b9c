//! The notification service's business metrics (request counts and latencies come from
//! shopkit).

use std::sync::Once;

use crate::provider::Channel;
use crate::store::Status;
use crate::templates::Kind;

/// Delivery attempts, by channel, provider and the status reached.
pub const ATTEMPTS_TOTAL: &str = "notification_attempts_total";
/// Messages not made, by kind, channel and why (opted_out, no_address, no_phone, …).
pub const SKIPPED_TOTAL: &str = "notification_skipped_total";

pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        shopkit::metrics::handle();
        metrics::describe_counter!(
            ATTEMPTS_TOTAL,
            "Delivery attempts, by channel, provider and the status reached (sent, pending = retry, failed, parked)"
        );
        metrics::describe_counter!(
            SKIPPED_TOTAL,
            "Messages not made, by kind, channel and reason"
        );
    });
}

pub fn attempt(channel: Channel, provider: &'static str, status: Status) {
    metrics::counter!(ATTEMPTS_TOTAL, "channel" => channel.as_str(), "provider" => provider, "status" => status.as_str())
        .increment(1);
}

pub fn skipped(kind: Kind, channel: Channel, reason: &'static str) {
    metrics::counter!(SKIPPED_TOTAL, "kind" => kind.as_str(), "channel" => channel.as_str(), "reason" => reason)
        .increment(1);
}
