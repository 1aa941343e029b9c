//! The parking queue, for operators: list what was parked and why, and put messages back
//! into their consumer's queue once the cause is fixed (`shopctl events`).
//!
//! Listing takes every parked message without acknowledging it and then returns them all
//! (closing the channel requeues them), so a listing never loses or reorders anything for
//! the next one.

use lapin::options::{BasicAckOptions, BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::AMQPValue;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use serde::Serialize;

use super::Envelope;
use super::consumer::publish_to_queue;
use super::topology::{ATTEMPT_HEADER, ERROR_HEADER, parked_queue};

/// At most this many messages are looked at per call: a listing is for humans.
pub const MAX_LISTED: usize = 10_000;

/// One parked message as an operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedMessage {
    pub consumer: String,
    /// The envelope id, if the body is one.
    pub id: Option<uuid::Uuid>,
    pub event_type: Option<String>,
    pub attempts: u32,
    pub error: Option<String>,
    /// The body as published (an envelope, or whatever could not be read).
    pub body: serde_json::Value,
}

/// Which messages to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    All,
    One(uuid::Uuid),
}

fn describe(consumer: &str, data: &[u8], properties: &BasicProperties) -> ParkedMessage {
    let envelope: Option<Envelope> = serde_json::from_slice(data).ok();
    let body = serde_json::from_slice(data)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(data).into_owned()));
    let error = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ERROR_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        });
    ParkedMessage {
        consumer: consumer.to_owned(),
        id: envelope.as_ref().map(|e| e.id),
        event_type: envelope.map(|e| e.event_type),
        attempts: super::consumer::attempt_of(properties),
        error,
        body,
    }
}

/// Whether the consumer's parking queue exists (a consumer that never ran has none).
async fn exists(connection: &Connection, queue: &str) -> anyhow::Result<bool> {
    let probe = connection.create_channel().await?;
    let declared = probe
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    // A passive declare of a missing queue closes the probe channel (404).
    if declared.is_ok() {
        let _ = probe.close(200, "probed".into()).await;
    }
    Ok(declared.is_ok())
}

/// Every message parked by `consumer`, oldest first.
pub async fn list(connection: &Connection, consumer: &str) -> anyhow::Result<Vec<ParkedMessage>> {
    let queue = parked_queue(consumer);
    if !exists(connection, &queue).await? {
        return Ok(Vec::new());
    }
    let channel = connection.create_channel().await?;
    let mut found = Vec::new();
    while found.len() < MAX_LISTED {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = &message.delivery;
        found.push(describe(consumer, &delivery.data, &delivery.properties));
    }
    // Unacknowledged messages go back to the queue, in their order, with the channel.
    channel.close(200, "listed".into()).await?;
    Ok(found)
}

/// Moves the selected parked messages back to the consumer's queue with a fresh attempt
/// count; returns what was replayed. The others stay parked.
pub async fn replay(
    connection: &Connection,
    consumer: &str,
    select: Select,
) -> anyhow::Result<Vec<ParkedMessage>> {
    let queue = parked_queue(consumer);
    if !exists(connection, &queue).await? {
        return Ok(Vec::new());
    }
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut replayed = Vec::new();
    for _ in 0..MAX_LISTED {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        let parked = describe(consumer, &delivery.data, &delivery.properties);
        let chosen = match select {
            Select::All => true,
            Select::One(id) => parked.id == Some(id),
        };
        if !chosen {
            continue;
        }
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(0));
        let properties = delivery.properties.clone().with_headers(headers);
        publish_to_queue(&channel, consumer, &delivery.data, properties).await?;
        delivery.ack(BasicAckOptions::default()).await?;
        replayed.push(parked);
        if matches!(select, Select::One(_)) {
            break;
        }
    }
    // What was not chosen goes back with the channel.
    channel.close(200, "replayed".into()).await?;
    Ok(replayed)
}
