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
    loop {
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
