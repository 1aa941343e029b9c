//! The outbox relay: publishes committed events in id order with publisher confirms and
//! marks them published only once the broker has confirmed them.
//!
//! Batches are claimed with `FOR UPDATE SKIP LOCKED`, so the relays of several replicas
//! share the work without publishing a row twice while both are alive. A crash after
//! publishing and before marking publishes the batch again: consumers' inboxes make
//! that harmless.

use std::time::Duration;

use futures::future::try_join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use super::{EXCHANGE, OUTBOX_CHANNEL};
use crate::shutdown::Shutdown;

/// Rows claimed per transaction: large enough to amortise the round trips, small
/// enough that a batch publishes in milliseconds.
const BATCH: i64 = 200;

/// Unpublished events in this service's outbox (every replica reports the same table).
pub const OUTBOX_PENDING: &str = "outbox_pending";
/// Age of the oldest unpublished event, in seconds; 0 when the outbox is drained.
pub const OUTBOX_OLDEST_PENDING: &str = "outbox_oldest_pending_seconds";

/// How often the relay measures its backlog for the gauges: Prometheus's scrape
/// interval, so a busy relay adds one small query per 5 s, not one per event.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);

/// Runs until shutdown (then `Ok`) or until the broker connection fails (`Err`).
pub async fn run(
    pool: PgPool,
    channel: Channel,
    poll: Duration,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    // A listener that cannot connect only costs latency: the poll still publishes.
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut l) => match l.listen(OUTBOX_CHANNEL).await {
            Ok(()) => Some(l),
            Err(_) => None,
        },
        Err(_) => None,
    };
    metrics::describe_gauge!(
        OUTBOX_PENDING,
        "Events committed to the outbox, not yet published"
    );
    metrics::describe_gauge!(
        OUTBOX_OLDEST_PENDING,
        metrics::Unit::Seconds,
        "Age of the oldest unpublished outbox event (0: drained)"
    );
    let mut backlog_measured: Option<tokio::time::Instant> = None;
    loop {
        if backlog_measured.is_none_or(|t| t.elapsed() >= BACKLOG_INTERVAL) {
            record_backlog(&pool).await;
            backlog_measured = Some(tokio::time::Instant::now());
        }
        match publish_pending(&pool, &channel).await {
            // A full batch: there may be more at once.
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(RelayError::Broker(err)) => return Err(err),
            Err(RelayError::Database(err)) => {
                tracing::warn!(error = %err, "outbox relay cannot read the outbox");
            }
        }
        let wake = async {
            match listener.as_mut() {
                Some(l) => {
                    let _ = tokio::time::timeout(poll, l.recv()).await;
                }
                None => tokio::time::sleep(poll).await,
            }
        };
        tokio::select! {
            () = wake => {}
            () = shutdown.clone().started() => {
                // One last pass so that nothing committed before the shutdown waits for
                // the next start.
                let _ = publish_pending(&pool, &channel).await;
                return Ok(());
            }
        }
    }
}

/// Sets the backlog gauges; a failed read leaves them as they were (the relay logs
/// database trouble when it publishes).
async fn record_backlog(pool: &PgPool) {
    let row: Result<(i64, f64), sqlx::Error> = sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(occurred_at))::float8, 0) \
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await;
    if let Ok((pending, oldest)) = row {
        metrics::gauge!(OUTBOX_PENDING).set(pending as f64);
        metrics::gauge!(OUTBOX_OLDEST_PENDING).set(oldest.max(0.0));
    }
}

#[derive(Debug)]
enum RelayError {
    Broker(anyhow::Error),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for RelayError {
    fn from(err: sqlx::Error) -> Self {
        RelayError::Database(err)
    }
}

/// Publishes one batch of unpublished events; returns how many.
async fn publish_pending(pool: &PgPool, channel: &Channel) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(Uuid, String, serde_json::Value)> = sqlx::query_as(
        "SELECT id, event_type, envelope FROM outbox WHERE published_at IS NULL \
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut confirms = Vec::with_capacity(rows.len());
    for (id, event_type, envelope) in &rows {
        let body = serde_json::to_vec(envelope)
            .map_err(|e| RelayError::Broker(anyhow::anyhow!("encoding event {id}: {e}")))?;
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(id.to_string()))
            .with_type(ShortString::from(event_type.as_str()))
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let confirm = channel
            .basic_publish(
                EXCHANGE.into(),
                ShortString::from(event_type.as_str()),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .map_err(|e| RelayError::Broker(anyhow::anyhow!("publishing event {id}: {e}")))?;
        confirms.push(confirm);
    }
    let outcomes = try_join_all(confirms)
        .await
        .map_err(|e| RelayError::Broker(anyhow::anyhow!("awaiting publisher confirms: {e}")))?;
    if let Some(pos) = outcomes.iter().position(|c| c.is_nack()) {
        return Err(RelayError::Broker(anyhow::anyhow!(
            "the broker refused event {}",
            rows[pos].0
        )));
    }
    let ids: Vec<Uuid> = rows.iter().map(|(id, _, _)| *id).collect();
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    for (_, event_type, _) in &rows {
        metrics::counter!("events_published_total", "type" => event_type.clone()).increment(1);
    }
    Ok(rows.len())
}
