//! The broker objects, declared idempotently by every replica at connect time.
//!
//! Per consumer `c`: the quorum queue `c`, bound to [`EXCHANGE`] with its routing keys;
//! one retry queue per delay, `c.retry.<ms>ms`, whose messages expire after that delay
//! and are dead-lettered back to `c` (a fixed TTL per queue, so no message waits behind
//! a longer one); and the parking queue `c.parked`. Retries and replays are published to
//! the queues directly (default exchange), so the other consumers of an event never see
//! them.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::EXCHANGE;

/// The header that counts how often a message has been retried.
pub const ATTEMPT_HEADER: &str = "x-shopstack-attempt";
/// The header that says why a message was parked.
pub const ERROR_HEADER: &str = "x-shopstack-error";

pub fn retry_queue(consumer: &str, delay: Duration) -> String {
    format!("{consumer}.retry.{}ms", delay.as_millis())
}

pub fn parked_queue(consumer: &str) -> String {
    format!("{consumer}.parked")
}

pub async fn connect(url: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_connection_name(std::env::var("HOSTNAME").unwrap_or_default().into());
    Connection::connect(url, properties)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the event broker: {e}"))
}

pub async fn declare_exchange(channel: &Channel) -> lapin::Result<()> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .map(|_| ())
}

/// Declares a consumer's queue, bindings, retry queues and parking queue.
pub async fn declare_consumer(
    channel: &Channel,
    consumer: &str,
    routing_keys: &[String],
    retry_delays: &[Duration],
) -> lapin::Result<()> {
    declare_queue(channel, consumer, quorum()).await?;
    for key in routing_keys {
        channel
            .queue_bind(
                consumer.into(),
                EXCHANGE.into(),
                ShortString::from(key.as_str()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    for delay in retry_delays {
        let mut args = quorum();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from(consumer)),
        );
        declare_queue(channel, &retry_queue(consumer, *delay), args).await?;
    }
    declare_queue(channel, &parked_queue(consumer), quorum()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_say_what_they_hold() {
        assert_eq!(
            retry_queue("order", Duration::from_secs(10)),
            "order.retry.10000ms"
        );
        assert_eq!(parked_queue("order"), "order.parked");
    }
}
