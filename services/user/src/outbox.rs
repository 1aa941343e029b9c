//! Events for other services, written to the `outbox` table in the same transaction as
//! the change they describe. shopkit's relay (started when `AMQP_URL` is set) publishes
//! them to the broker and sets `published_at`; the notification service turns the ones that carry a
//! token into emails.
//!
//! Every row's `envelope` is the message as it will be published:
//! `{id (UUIDv7), type, occurred_at, source: "user", data, trace?}`.
//!
//! The verification and reset events carry the token itself: it must reach the mailbox.
//! Those rows are as sensitive as the tokens until they expire; the relay should clear
//! `data` once an event is published.

use chrono::{DateTime, Utc};
use serde_json::Value;
use shopkit::http::TraceContext;
use sqlx::PgConnection;
use uuid::Uuid;

/// The `source` of every event this service emits.
pub const SOURCE: &str = "user";

/// The event types (routing keys `<aggregate>.<event>`).
pub mod types {
    /// A new account: `{user_id, email, verification_token, verification_expires_at}`.
    pub const REGISTERED: &str = "user.registered";
    /// Someone tried to register an email that has an account: `{user_id, email}`, so the
    /// owner can be told (the response to the registration does not say it).
    pub const REGISTRATION_ATTEMPTED: &str = "user.registration_attempted";
    /// A new verification token: `{user_id, email, verification_token, verification_expires_at}`.
    pub const EMAIL_VERIFICATION_REQUESTED: &str = "user.email_verification_requested";
    /// `{user_id, email}`.
    pub const EMAIL_VERIFIED: &str = "user.email_verified";
    /// `{user_id, email, reset_token, reset_expires_at}`.
    pub const PASSWORD_RESET_REQUESTED: &str = "user.password_reset_requested";
    /// `{user_id, email, via: "change" | "reset"}`.
    pub const PASSWORD_CHANGED: &str = "user.password_changed";
    /// An admin made by `user create-admin`: `{user_id, email}`.
    pub const ADMIN_CREATED: &str = "user.admin_created";
}

/// The envelope of one event.
pub fn envelope(
    id: Uuid,
    event_type: &str,
    occurred_at: DateTime<Utc>,
    data: Value,
    trace: Option<&TraceContext>,
) -> Value {
    let mut envelope = serde_json::json!({
        "id": id,
        "type": event_type,
        "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "source": SOURCE,
    });
    envelope["data"] = data;
    if let Some(trace) = trace {
        envelope["trace"] = serde_json::json!({
            "trace_id": trace.trace_id,
            "request_id": trace.request_id,
        });
    }
    envelope
}

/// Writes an event on `conn` (the caller's transaction) and returns its id.
pub async fn record(
    conn: &mut PgConnection,
    event_type: &str,
    data: Value,
    occurred_at: DateTime<Utc>,
    trace: Option<&TraceContext>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO outbox (id, event_type, occurred_at, envelope) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(event_type)
    .bind(occurred_at)
    .bind(envelope(id, event_type, occurred_at, data, trace))
    .execute(conn)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_the_agreed_fields() {
        let id = Uuid::now_v7();
        let at = Utc::now();
        let trace = TraceContext {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            request_id: "r-1".into(),
        };
        let e = envelope(
            id,
            types::REGISTERED,
            at,
            serde_json::json!({"k": 1}),
            Some(&trace),
        );
        assert_eq!(e["id"], id.to_string());
        assert_eq!(e["type"], "user.registered");
        assert_eq!(e["source"], "user");
        assert_eq!(e["data"]["k"], 1);
        assert_eq!(e["trace"]["trace_id"], trace.trace_id);
        let parsed = DateTime::parse_from_rfc3339(e["occurred_at"].as_str().unwrap()).unwrap();
        assert_eq!(parsed.timestamp_micros(), at.timestamp_micros());
        assert!(
            envelope(id, "x", at, Value::Null, None)
                .get("trace")
                .is_none()
        );
        assert_eq!(id.get_version_num(), 7);
    }
}
