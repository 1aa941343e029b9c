//! The user service's business metrics (request counts and latencies come from shopkit).
//! Labels are small fixed sets; never an email or a user id.

use std::sync::Once;

pub const REGISTRATIONS_TOTAL: &str = "user_registrations_total";
pub const LOGINS_TOTAL: &str = "user_logins_total";
pub const REFRESHES_TOTAL: &str = "user_token_refreshes_total";
pub const REHASHES_TOTAL: &str = "user_password_rehashes_total";
pub const PASSWORD_RESETS_TOTAL: &str = "user_password_resets_total";
pub const EMAIL_VERIFICATIONS_TOTAL: &str = "user_email_verifications_total";

/// Registers help texts once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        shopkit::metrics::handle();
        metrics::describe_counter!(
            REGISTRATIONS_TOTAL,
            "Registrations, by outcome (created, existing: the email had an account)"
        );
        metrics::describe_counter!(
            LOGINS_TOTAL,
            "Password checks (log-in, password change), by outcome (success, failure, locked)"
        );
        metrics::describe_counter!(
            REFRESHES_TOTAL,
            "Refresh-token exchanges, by outcome (rotated, invalid, reused: the family was revoked)"
        );
        metrics::describe_counter!(
            REHASHES_TOTAL,
            "Password hashes upgraded to the configured argon2 parameters at log-in"
        );
        metrics::describe_counter!(
            PASSWORD_RESETS_TOTAL,
            "Password resets, by stage (requested, completed, invalid)"
        );
        metrics::describe_counter!(
            EMAIL_VERIFICATIONS_TOTAL,
            "Email verifications, by outcome (verified, invalid)"
        );
    });
}

pub fn count(name: &'static str, label: &'static str, value: &'static str) {
    metrics::counter!(name, label => value).increment(1);
}

pub fn login(outcome: &'static str) {
    count(LOGINS_TOTAL, "outcome", outcome);
}

pub fn rehash() {
    metrics::counter!(REHASHES_TOTAL).increment(1);
}
