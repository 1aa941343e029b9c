//! The delivery worker: sends the pending messages through their channel's provider.
//!
//! [`run_once`] is one pass at a given time `now` (tests drive it with their own clock):
//! it claims the due messages — one attempt more, and a lease (`next_attempt_at` moved
//! past the call's longest duration) so that no other replica takes them meanwhile —
//! sends each, and records the outcome:
//!
//! - accepted → `sent` (with the provider's reference): the sent marker; never sent again;
//! - retryable (429, 5xx, no answer) → `pending` again, due after the provider's
//!   `Retry-After` or the back-off, whichever is longer; after the last attempt `parked`;
//! - refused (another 4xx) → `failed`, with the provider's error text.
//!
//! A replica that dies mid-call leaves the lease to expire; the message is then tried
//! again (at least once towards the provider: the providers offer no idempotency key).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::provider::{Channel, Outgoing, Provider, SendError};
use crate::store::Status;

/// The providers, per channel. `sms: None`: texts are not made at all.
#[derive(Clone)]
pub struct Providers {
    pub email: Arc<dyn Provider>,
    pub sms: Option<Arc<dyn Provider>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("email", &self.email.name())
            .field("sms", &self.sms.as_ref().map(|p| p.name()))
            .finish()
    }
}

impl Providers {
    pub fn for_channel(&self, channel: Channel) -> Option<&dyn Provider> {
        match channel {
            Channel::Email => Some(self.email.as_ref()),
            Channel::Sms => self.sms.as_deref(),
        }
    }
}

/// How hard the worker tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts before a message is parked (`NOTIFICATION_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// The first retry's delay, doubled for each further one (`NOTIFICATION_RETRY_BASE_MS`).
    pub base_backoff: Duration,
    /// The longest back-off, and the longest `Retry-After` honoured (`NOTIFICATION_RETRY_MAX_MS`).
    pub max_backoff: Duration,
    /// How long a claimed message is left alone: longer than a provider call may take.
    pub lease: Duration,
    /// Messages claimed per pass.
    pub batch: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 8,
            base_backoff: Duration::from_secs(2),
            // A provider down for an hour gets asked every ten minutes.
            max_backoff: Duration::from_secs(600),
            // The HTTP client gives up after 20 s, SMTP after 20 s per command.
            lease: Duration::from_secs(120),
            batch: 50,
        }
    }
}

impl Policy {
    /// The delay before attempt `attempts + 1`, given the provider's wish.
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let backoff = self
            .base_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        retry_after
            .map_or(backoff, |wish| wish.max(backoff))
            .min(self.max_backoff)
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: Uuid,
    pub attempt: u32,
    pub status: Status,
    /// When it is due again (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    channel: String,
    recipient: String,
    subject: Option<String>,
    body_text: String,
    body_html: Option<String>,
    attempts: i32,
}

/// One pass at time `now`: claims the due messages, sends them, records what happened.
pub async fn run_once(
    pool: &PgPool,
    providers: &Providers,
    policy: &Policy,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Attempt>> {
    let lease_until = now + chrono::Duration::from_std(policy.lease)?;
    let mut claimed: Vec<Claimed> = sqlx::query_as(
        "UPDATE messages SET attempts = attempts + 1, next_attempt_at = $2
         WHERE id IN (SELECT id FROM messages
                      WHERE status = 'pending' AND next_attempt_at <= $1
                      ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING id, channel, recipient, subject, body_text, body_html, attempts",
    )
    .bind(now)
    .bind(lease_until)
    .bind(policy.batch)
    .fetch_all(pool)
    .await?;
    // RETURNING keeps no order; oldest first.
    claimed.sort_by_key(|m| m.id);
    // One after the other: a pass is a batch of short calls, and a provider's rate
    // limit is kinder to one caller at a time.
    let mut attempts = Vec::with_capacity(claimed.len());
    for message in claimed {
        attempts.push(attempt(pool, providers, policy, now, message).await?);
    }
    Ok(attempts)
}

async fn attempt(
    pool: &PgPool,
    providers: &Providers,
    policy: &Policy,
    now: DateTime<Utc>,
    message: Claimed,
) -> anyhow::Result<Attempt> {
    let attempt = u32::try_from(message.attempts).unwrap_or(u32::MAX);
    let channel = Channel::parse(&message.channel).unwrap_or(Channel::Email);
    let Some(provider) = providers.for_channel(channel) else {
        let error = format!("no {} provider is configured", channel.as_str());
        let outcome = Outcome {
            status: Status::Failed,
            next: None,
            error: Some(&error),
            reference: None,
            provider: None,
        };
        finish(pool, message.id, attempt, &outcome, now).await?;
        return Ok(Attempt {
            id: message.id,
            attempt,
            status: Status::Failed,
            next_attempt_at: None,
        });
    };
    let outgoing = Outgoing {
        id: message.id,
        to: message.recipient,
        subject: message.subject,
        text: message.body_text,
        html: message.body_html,
    };
    let outcome = provider.send(&outgoing).await;
    let (status, next, error, reference) = match outcome {
        Ok(sent) => (Status::Sent, None, None, sent.provider_ref),
        Err(SendError::Permanent(error)) => (Status::Failed, None, Some(error), None),
        Err(SendError::Retryable {
            message: error,
            retry_after,
        }) => {
            if attempt >= policy.max_attempts {
                (Status::Parked, None, Some(error), None)
            } else {
                let delay = chrono::Duration::from_std(policy.delay(attempt, retry_after))?;
                (Status::Pending, Some(now + delay), Some(error), None)
            }
        }
    };
    let recorded = Outcome {
        status,
        next,
        error: error.as_deref(),
        reference: reference.as_deref(),
        provider: Some(provider.name()),
    };
    finish(pool, outgoing.id, attempt, &recorded, now).await?;
    tracing::info!(
        message.id = %outgoing.id,
        channel = channel.as_str(),
        provider = provider.name(),
        attempt,
        status = status.as_str(),
        error = error.as_deref().unwrap_or_default(),
        "delivery attempt"
    );
    crate::metrics::attempt(channel, provider.name(), status);
    Ok(Attempt {
        id: outgoing.id,
        attempt,
        status,
        next_attempt_at: next,
    })
}

struct Outcome<'a> {
    status: Status,
    next: Option<DateTime<Utc>>,
    error: Option<&'a str>,
    reference: Option<&'a str>,
    provider: Option<&'a str>,
}

/// Records an attempt's outcome, if the message is still this attempt's (a lease that
/// ran out may have let another replica take it).
async fn finish(
    pool: &PgPool,
    id: Uuid,
    attempt: u32,
    outcome: &Outcome<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages SET status = $3,
             next_attempt_at = COALESCE($4, next_attempt_at),
             last_error = $5,
             provider_ref = COALESCE($6, provider_ref),
             sent_at = CASE WHEN $3 = 'sent' THEN $7 ELSE NULL END,
             provider = COALESCE($8, provider)
         WHERE id = $1 AND attempts = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
    .bind(outcome.status.as_str())
    .bind(outcome.next)
    .bind(outcome.error)
    .bind(outcome.reference)
    .bind(now)
    .bind(outcome.provider)
    .execute(pool)
    .await?;
    Ok(())
}

/// The worker: a pass, then another at once if the batch was full, else after `poll`;
/// until shutdown (the pass in hand finishes first).
pub async fn run(
    pool: PgPool,
    providers: Providers,
    policy: Policy,
    poll: Duration,
    shutdown: shopkit::shutdown::Shutdown,
) {
    loop {
        if shutdown.is_draining() {
            return;
        }
        let full = match run_once(&pool, &providers, &policy, Utc::now()).await {
            Ok(attempts) => attempts.len() as i64 >= policy.batch,
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), "delivery pass failed");
                false
            }
        };
        if !full {
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = shutdown.clone().started() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_honours_retry_after_and_is_capped() {
        let p = Policy {
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            ..Policy::default()
        };
        assert_eq!(p.delay(1, None), Duration::from_secs(2));
        assert_eq!(p.delay(2, None), Duration::from_secs(4));
        assert_eq!(p.delay(3, None), Duration::from_secs(8));
        assert_eq!(p.delay(10, None), Duration::from_secs(60));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(1))),
            Duration::from_secs(8)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }
}
