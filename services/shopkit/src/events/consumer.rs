//! A consumer: takes messages from its queue, applies each through [`handle_once`] and
//! acknowledges it only after the transaction committed. A failed message is published
//! to the next retry queue (or, after the last, to the parking queue) with confirms, and
//! only then acknowledged: a crash at any point leaves the message in one queue or another.

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel};
use sqlx::PgPool;
use tracing::Instrument;

use super::topology::{ATTEMPT_HEADER, ERROR_HEADER, parked_queue, retry_queue};
use super::{Envelope, HandlerError, Subscription, handle_once};
use crate::shutdown::Shutdown;

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Handled,
    Duplicate,
    Retried,
    Parked,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Duplicate => "duplicate",
            Outcome::Retried => "retried",
            Outcome::Parked => "parked",
        }
    }
}

/// Where a failed message goes next: the retry queue of its next attempt, or parking.
pub fn next_queue(subscription: &Subscription, attempt: u32, error: &HandlerError) -> String {
    match error {
        HandlerError::Retry(_) => subscription.retry_delays.get(attempt as usize).map_or_else(
            || parked_queue(&subscription.consumer),
            |delay| retry_queue(&subscription.consumer, *delay),
        ),
        HandlerError::Reject(_) => parked_queue(&subscription.consumer),
    }
}

/// Runs until shutdown (then `Ok`, after the messages in hand are done) or until the
/// channel fails (`Err`).
pub async fn run(
    pool: PgPool,
    channel: Channel,
    subscription: Subscription,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let prefetch = u16::try_from(subscription.concurrency * 2).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!(
        "{}-{}",
        subscription.consumer,
        uuid::Uuid::now_v7().simple()
    );
    let consumer = channel
        .basic_consume(
            subscription.consumer.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let stop = shutdown.started();
    let deliveries = consumer.take_until(stop);
    let results = deliveries
        .map(|delivery| {
            let pool = pool.clone();
            let channel = channel.clone();
            let subscription = subscription.clone();
            async move {
                let delivery = delivery.map_err(|e| anyhow::anyhow!("consuming: {e}"))?;
                process(&pool, &channel, &subscription, delivery).await
            }
        })
        .buffer_unordered(subscription.concurrency);
    futures::pin_mut!(results);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(())
}

/// Handles one delivery to its end: applied (or found a duplicate) and acknowledged, or
/// moved on to a retry or the parking queue and acknowledged.
async fn process(
    pool: &PgPool,
    channel: &Channel,
    subscription: &Subscription,
    delivery: Delivery,
) -> anyhow::Result<Outcome> {
    let attempt = attempt_of(&delivery.properties);
    let outcome = match serde_json::from_slice::<Envelope>(&delivery.data) {
        Err(err) => {
            let error = HandlerError::Reject(anyhow::anyhow!("not an event envelope: {err}"));
            forward(channel, subscription, &delivery, attempt, &error).await?
        }
        Ok(event) => {
            let span = tracing::info_span!(
                "event",
                event.id = %event.id,
                event.type = %event.event_type,
                consumer = %subscription.consumer,
                trace.id = event.trace_id().unwrap_or_default(),
            );
            match handle_once(
                pool,
                &subscription.consumer,
                subscription.handler.as_ref(),
                &event,
            )
            .instrument(span)
            .await
            {
                Ok(true) => Outcome::Handled,
                Ok(false) => Outcome::Duplicate,
                Err(error) => {
                    tracing::warn!(
                        event.id = %event.id,
                        event.type = %event.event_type,
                        consumer = %subscription.consumer,
                        attempt,
                        error = %error,
                        "event handler failed"
                    );
                    forward(channel, subscription, &delivery, attempt, &error).await?
                }
            }
        }
    };
    delivery
        .ack(BasicAckOptions::default())
        .await
        .map_err(|e| anyhow::anyhow!("acknowledging: {e}"))?;
    let event_type = delivery
        .properties
        .kind()
        .as_ref()
        .map_or_else(String::new, |k| k.as_str().to_owned());
    metrics::counter!(
        "events_handled_total",
        "consumer" => subscription.consumer.clone(),
        "type" => event_type,
        "outcome" => outcome.label()
    )
    .increment(1);
    Ok(outcome)
}

/// Publishes a failed message to its next queue with its attempt count (and, when
/// parking, the error) and waits for the broker's confirm.
async fn forward(
    channel: &Channel,
    subscription: &Subscription,
    delivery: &Delivery,
    attempt: u32,
    error: &HandlerError,
) -> anyhow::Result<Outcome> {
    let queue = next_queue(subscription, attempt, error);
    let parking = queue == parked_queue(&subscription.consumer);
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt + 1));
    if parking {
        let text: String = error.to_string().chars().take(1000).collect();
        headers.insert(
            ERROR_HEADER.into(),
            AMQPValue::LongString(LongString::from(text)),
        );
    }
    let properties = delivery.properties.clone().with_headers(headers);
    publish_to_queue(channel, &queue, &delivery.data, properties).await?;
    if parking {
        tracing::error!(queue = %queue, error = %error, "event parked");
        metrics::counter!("events_parked_total", "consumer" => subscription.consumer.clone())
            .increment(1);
        Ok(Outcome::Parked)
    } else {
        Ok(Outcome::Retried)
    }
}

/// Publishes straight to one queue (default exchange) and waits for the confirm.
pub async fn publish_to_queue(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
) -> anyhow::Result<()> {
    let confirm = channel
        .basic_publish(
            "".into(),
            ShortString::from(queue),
            lapin::options::BasicPublishOptions::default(),
            body,
            properties,
        )
        .await?
        .await?;
    if confirm.is_nack() {
        anyhow::bail!("the broker refused a message for {queue}");
    }
    Ok(())
}

/// How often the message has been retried already (0 on its first delivery).
pub fn attempt_of(properties: &BasicProperties) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongUInt(n) => Some(n),
            AMQPValue::LongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(n)),
            _ => None,
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::events::Handler;

    struct Nothing;

    #[async_trait::async_trait]
    impl Handler for Nothing {
        async fn handle(
            &self,
            _: &mut sqlx::PgConnection,
            _: &Envelope,
        ) -> Result<(), HandlerError> {
            Ok(())
        }
    }

    #[test]
    fn failures_walk_the_retry_queues_then_park_and_rejections_park_at_once() {
        let s = Subscription::new("order", &["x.y"], Arc::new(Nothing))
            .with_retry_delays(vec![Duration::from_millis(100), Duration::from_millis(500)]);
        let retry = || HandlerError::Retry(anyhow::anyhow!("down"));
        assert_eq!(next_queue(&s, 0, &retry()), "order.retry.100ms");
        assert_eq!(next_queue(&s, 1, &retry()), "order.retry.500ms");
        assert_eq!(next_queue(&s, 2, &retry()), "order.parked");
        let reject = HandlerError::Reject(anyhow::anyhow!("bad"));
        assert_eq!(next_queue(&s, 0, &reject), "order.parked");
    }

    #[test]
    fn the_attempt_count_reads_any_integer_header() {
        assert_eq!(attempt_of(&BasicProperties::default()), 0);
        let mut h = FieldTable::default();
        h.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(2));
        assert_eq!(attempt_of(&BasicProperties::default().with_headers(h)), 2);
    }
}
