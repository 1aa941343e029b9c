//! Where messages go: a [`Provider`] per channel. Email through [`SendGrid`] (v3 Mail
//! Send), [`Smtp`] (lettre) or the local [`Outbox`]; SMS through [`Twilio`] (Messages)
//! or the outbox. Each HTTP provider builds its request in a plain function, so the
//! wire format is tested without a network; the contract tests run them against local
//! servers that speak the documented answers.
//!
//! A provider says whether a failure is worth another attempt ([`SendError::Retryable`]:
//! 429, 5xx, no answer, with the provider's `Retry-After`) or not
//! ([`SendError::Permanent`]: the provider refused the message, with its reason).

pub mod outbox;
pub mod sendgrid;
pub mod smtp;
pub mod twilio;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use outbox::Outbox;
pub use sendgrid::SendGrid;
pub use smtp::Smtp;
pub use twilio::Twilio;

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// One message to hand to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The message's id (the outbox's reference; a custom argument at SendGrid).
    pub id: Uuid,
    /// An email address or an E.164 phone number.
    pub to: String,
    /// Email only.
    pub subject: Option<String>,
    pub text: String,
    /// Email only.
    pub html: Option<String>,
}

/// The provider accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id for it (SendGrid's `X-Message-Id`, Twilio's `sid`, the SMTP
    /// server's reply), if it gave one.
    pub provider_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt (429, 5xx, a network failure); `retry_after` is the
    /// provider's `Retry-After`, when it sent one.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused the message (a 4xx other than 429, a permanent SMTP
    /// reply): another attempt would be refused too.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn retryable(message: impl Into<String>) -> SendError {
        SendError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }
}

#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// `sendgrid`, `twilio`, `smtp`, `outbox` (stored on each message).
    fn name(&self) -> &'static str;
    /// Whether messages leave the shop (false for the outbox).
    fn is_live(&self) -> bool;
    async fn send(&self, message: &Outgoing) -> Result<Sent, SendError>;
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3), as a delay from
/// `now` (a date in the past is no delay). `None` when absent or unreadable.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The classification every HTTP provider shares: 429 and 5xx are retried (honouring
/// `Retry-After`), the other 4xx are final; `detail` is the provider's error text.
pub fn http_failure(
    provider: &str,
    status: reqwest::StatusCode,
    retry_after: Option<&str>,
    detail: &str,
) -> SendError {
    let message = format!("{provider} answered {status}: {detail}");
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        SendError::Retryable {
            message,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, Utc::now())),
        }
    } else {
        SendError::Permanent(message)
    }
}

/// A request that got no answer (connection refused, timeout): always retried.
pub fn network_failure(provider: &str, err: &reqwest::Error) -> SendError {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::retryable(format!("{provider} did not answer: {text}"))
}

/// The HTTP client the providers share: rustls (ring), bounded time per call.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        // A provider that takes longer has most likely failed; the retry asks again.
        .timeout(Duration::from_secs(20))
        .user_agent(concat!(
            "shopstack-notification/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        let s = |code| reqwest::StatusCode::from_u16(code).unwrap();
        assert!(matches!(
            http_failure("x", s(429), Some("7"), "slow down"),
            SendError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            http_failure("x", s(503), None, ""),
            SendError::Retryable {
                retry_after: None,
                ..
            }
        ));
        let err = http_failure("sendgrid", s(400), None, "bad from");
        assert_eq!(
            err,
            SendError::Permanent("sendgrid answered 400 Bad Request: bad from".into())
        );
        assert!(matches!(
            http_failure("x", s(401), None, ""),
            SendError::Permanent(_)
        ));
    }
}
