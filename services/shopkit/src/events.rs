//! Events between services over RabbitMQ, with the guarantees the checkout needs: an
//! event is published if and only if the change it describes committed, and a consumer
//! applies each event exactly once, however often the broker delivers it.
//!
//! - **Outbox** ([`record`]): a producer writes the event into its `outbox` table in the
//!   transaction of the change; the [`relay`] publishes it with publisher confirms and only
//!   then marks it published. A crash in between publishes it again (at least once).
//! - **Inbox** ([`handle_once`]): a consumer's handler runs in a transaction that also
//!   inserts the message id into `inbox`; a message already there is acknowledged without
//!   running the handler, and a message is acknowledged only after the commit.
//! - **Retry and parking** ([`consumer`]): a failed message goes to the consumer's retry
//!   queues with growing delays, then to its parking queue, where [`parked`] lists and
//!   replays it (`shopctl events`).
//!
//! Topology ([`topology`]): one durable topic exchange, [`EXCHANGE`]; per consumer a quorum
//! queue bound to the routing keys it wants, its retry queues and its parking queue.

pub mod consumer;
pub mod parked;
pub mod relay;
pub mod topology;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::config::{ConfigError, Settings};
use crate::http::TraceContext;
use crate::shutdown::Shutdown;

/// The one exchange every event is published to; the routing key is the event type.
pub const EXCHANGE: &str = "shopstack.events";

/// Every consumer of the stack (queue names), for operators' listings.
pub const CONSUMERS: &[&str] = &["catalog", "cart", "order", "payment", "notification"];

/// The PostgreSQL channel [`record`] notifies so that the relay publishes at once.
pub const OUTBOX_CHANNEL: &str = "shopstack_outbox";

/// One event as it travels: the message body, JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUIDv7: the inbox key, and time-ordered.
    pub id: Uuid,
    /// `<aggregate>.<event>`, also the routing key.
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// The service that emitted it.
    pub source: String,
    pub data: serde_json::Value,
    /// `{trace_id, request_id}` of the request that caused it, for the logs downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<serde_json::Value>,
}

impl Envelope {
    /// A new event, now, with a fresh id.
    pub fn new(source: &str, event_type: &str, data: serde_json::Value) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            occurred_at: Utc::now(),
            source: source.to_owned(),
            data,
            trace: None,
        }
    }

    /// The data as `T`; a mismatch can never succeed, so it parks the message.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_value(self.data.clone()).map_err(|e| {
            HandlerError::Reject(anyhow::anyhow!(
                "the data of {} {} does not match its schema: {e}",
                self.event_type,
                self.id
            ))
        })
    }

    /// The trace id of the request that caused the event, if it carried one.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace.as_ref()?.get("trace_id")?.as_str()
    }

    /// The trace of the request behind the event, to carry on into the events it causes
    /// (so that one checkout is one trace across services).
    pub fn trace_context(&self) -> Option<TraceContext> {
        let trace = self.trace.as_ref()?;
        Some(TraceContext {
            trace_id: trace.get("trace_id")?.as_str()?.to_owned(),
            request_id: trace
                .get("request_id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// Writes an event into the outbox on `conn` — the caller's transaction, so the event
/// exists exactly when the change does — and wakes the relay once that commits.
pub async fn record(
    conn: &mut PgConnection,
    source: &str,
    event_type: &str,
    data: serde_json::Value,
    trace: Option<&TraceContext>,
) -> sqlx::Result<Uuid> {
    let mut envelope = Envelope::new(source, event_type, data);
    envelope.trace = trace.map(|t| {
        serde_json::json!({
            "trace_id": t.trace_id,
            "request_id": t.request_id,
        })
    });
    record_envelope(conn, &envelope).await?;
    Ok(envelope.id)
}

/// Writes a prepared envelope into the outbox (see [`record`]).
pub async fn record_envelope(conn: &mut PgConnection, envelope: &Envelope) -> sqlx::Result<()> {
    let json = serde_json::to_value(envelope).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    // One round trip: the notification rides along with the insert. PostgreSQL delivers
    // it on commit only, folded into one per transaction.
    sqlx::query(
        "WITH wake AS (SELECT pg_notify($5, ''))
         INSERT INTO outbox (id, event_type, occurred_at, envelope)
         SELECT $1, $2, $3, $4 FROM wake",
    )
    .bind(envelope.id)
    .bind(&envelope.event_type)
    .bind(envelope.occurred_at)
    .bind(json)
    .bind(OUTBOX_CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Transient (the database went away, a peer is down): retried with back-off, then
    /// parked.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// The message can never succeed (malformed data): parked at once.
    #[error("{0:#}")]
    Reject(anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        HandlerError::Retry(err.into())
    }
}

impl From<anyhow::Error> for HandlerError {
    fn from(err: anyhow::Error) -> Self {
        HandlerError::Retry(err)
    }
}

/// What a consumer does with one event.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs inside the transaction that also records the message in `inbox`; it commits
    /// only if this returns `Ok`. Follow-on events go through [`record`] on `conn`.
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError>;
}

/// Applies `event` once: `Ok(true)` when the handler ran and committed, `Ok(false)` when
/// this consumer had already handled the message (a redelivery). The consumer loop and
/// the replay of parked messages both come through here; so do tests.
pub async fn handle_once(
    pool: &PgPool,
    consumer: &str,
    handler: &dyn Handler,
    event: &Envelope,
) -> Result<bool, HandlerError> {
    let mut tx = pool.begin().await?;
    // A concurrent delivery of the same message blocks here until the first commits,
    // then finds the row: the handler never runs twice.
    let fresh = sqlx::query(
        "INSERT INTO inbox (message_id, consumer) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(event.id)
    .bind(consumer)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        tx.rollback().await?;
        return Ok(false);
    }
    handler.handle(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// Retry delays when a subscription names none: a blip, a restart, an outage.
pub const DEFAULT_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// One consumer: its queue, what it listens to, and who handles it.
#[derive(Clone)]
pub struct Subscription {
    /// The consumer's name, which is also its queue's name (`order`, `catalog`, …).
    pub consumer: String,
    /// The event types (routing keys; `*`/`#` patterns allowed) bound to the queue.
    pub routing_keys: Vec<String>,
    /// The delay before each retry; after the last, the message is parked.
    pub retry_delays: Vec<Duration>,
    /// How many messages are handled at once (they are independent by construction:
    /// every handler guards its state transitions).
    pub concurrency: usize,
    pub handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer", &self.consumer)
            .field("routing_keys", &self.routing_keys)
            .field("retry_delays", &self.retry_delays)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub fn new(consumer: &str, routing_keys: &[&str], handler: Arc<dyn Handler>) -> Self {
        Subscription {
            consumer: consumer.to_owned(),
            routing_keys: routing_keys.iter().map(|k| (*k).to_owned()).collect(),
            retry_delays: DEFAULT_RETRY_DELAYS.to_vec(),
            concurrency: 8,
            handler,
        }
    }

    pub fn with_retry_delays(mut self, delays: Vec<Duration>) -> Self {
        self.retry_delays = delays;
        self
    }

    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }
}

/// Where the broker is.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// `amqp://user:password@host:port/vhost`.
    pub amqp_url: String,
    /// How often the relay looks at the outbox when no notification woke it.
    pub relay_poll: Duration,
    /// Retry delays for every subscription of the service (`EVENTS_RETRY_DELAYS_MS`,
    /// comma-separated), when set.
    pub retry_delays: Option<Vec<Duration>>,
}

impl EventsConfig {
    pub fn new(amqp_url: impl Into<String>) -> Self {
        EventsConfig {
            amqp_url: amqp_url.into(),
            relay_poll: Duration::from_secs(1),
            retry_delays: None,
        }
    }

    /// `AMQP_URL` with the password from the `AMQP_PASSWORD` secret when the URL has
    /// none; `None` when `AMQP_URL` is unset (the service then runs without events).
    pub fn from_settings(settings: &Settings) -> Result<Option<EventsConfig>, ConfigError> {
        let Some(raw) = settings.get("AMQP_URL") else {
            return Ok(None);
        };
        let malformed = |problem: String| ConfigError {
            name: "AMQP_URL".into(),
            problem,
        };
        let mut url = reqwest::Url::parse(raw).map_err(|e| {
            malformed(format!(
                "has the malformed value {raw:?}: {e} (expected amqp://user@host:5672/vhost)"
            ))
        })?;
        if url.scheme() != "amqp" && url.scheme() != "amqps" {
            return Err(malformed(format!(
                "must start with amqp:// or amqps://, not {:?}",
                url.scheme()
            )));
        }
        if url.password().is_none()
            && let Some(password) = settings.secret("AMQP_PASSWORD")?
        {
            url.set_password(Some(&password))
                .map_err(|()| malformed("cannot carry a password".into()))?;
        }
        let retry_delays = match settings.get("EVENTS_RETRY_DELAYS_MS") {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|ms| ms.trim().parse::<u64>().map(Duration::from_millis))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ConfigError {
                        name: "EVENTS_RETRY_DELAYS_MS".into(),
                        problem: format!(
                            "has the malformed value {list:?}: {e} (expected e.g. 1000,10000,60000)"
                        ),
                    })?,
            ),
        };
        Ok(Some(EventsConfig {
            amqp_url: url.to_string(),
            relay_poll: Duration::from_secs(1),
            retry_delays,
        }))
    }
}

/// A service's running event machinery: the outbox relay and one consumer per
/// subscription, on one broker connection that is re-established when it drops.
#[derive(Debug)]
pub struct Events {
    connected: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    /// Starts the relay and consumers in the background; returns at once (the broker may
    /// come up later). Readiness follows [`Events::is_connected`]; tests wait with
    /// [`Events::wait_connected`].
    pub async fn start(
        config: EventsConfig,
        pool: PgPool,
        mut subscriptions: Vec<Subscription>,
        shutdown: Shutdown,
    ) -> anyhow::Result<Events> {
        if let Some(delays) = &config.retry_delays {
            for s in &mut subscriptions {
                s.retry_delays.clone_from(delays);
            }
        }
        let connected = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(supervise(
            config,
            pool,
            subscriptions,
            shutdown,
            connected.clone(),
        ));
        Ok(Events { connected, task })
    }

    /// Whether the broker connection is up and the topology declared.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Waits until connected (or the timeout passes: then `false`).
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// A readiness flag to hand to the HTTP kit.
    pub fn connected_flag(&self) -> Arc<AtomicBool> {
        self.connected.clone()
    }

    /// Waits for the relay and consumers to finish after shutdown began.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Connects, declares, runs the relay and the consumers until the connection fails or
/// shutdown begins; reconnects with a capped back-off.
async fn supervise(
    config: EventsConfig,
    pool: PgPool,
    subscriptions: Vec<Subscription>,
    shutdown: Shutdown,
    connected: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if shutdown.is_draining() {
            return;
        }
        match run_connected(&config, &pool, &subscriptions, &shutdown, &connected).await {
            Ok(()) => return,
            Err(err) => {
                connected.store(false, Ordering::Relaxed);
                tracing::warn!(
                    error = format!("{err:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "event broker connection failed"
                );
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.clone().started() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn run_connected(
    config: &EventsConfig,
    pool: &PgPool,
    subscriptions: &[Subscription],
    shutdown: &Shutdown,
    connected: &AtomicBool,
) -> anyhow::Result<()> {
    let connection = topology::connect(&config.amqp_url).await?;
    let setup = connection.create_channel().await?;
    topology::declare_exchange(&setup).await?;
    for s in subscriptions {
        topology::declare_consumer(&setup, &s.consumer, &s.routing_keys, &s.retry_delays).await?;
    }
    connected.store(true, Ordering::Relaxed);
    tracing::info!(
        consumers = subscriptions.len(),
        "connected to the event broker"
    );

    let mut tasks = tokio::task::JoinSet::new();
    let relay_channel = connection.create_channel().await?;
    tasks.spawn(relay::run(
        pool.clone(),
        relay_channel,
        config.relay_poll,
        shutdown.clone(),
    ));
    for s in subscriptions {
        let channel = connection.create_channel().await?;
        tasks.spawn(consumer::run(
            pool.clone(),
            channel,
            s.clone(),
            shutdown.clone(),
        ));
    }
    // The first task to end decides: all end cleanly on shutdown; an error means the
    // connection is gone, so the others are stopped and the supervisor reconnects.
    let outcome = match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(join)) => Err(anyhow::anyhow!("an event task failed: {join}")),
        None => Ok(()),
    };
    if outcome.is_ok() {
        while let Some(result) = tasks.join_next().await {
            if let Ok(Err(err)) = result {
                tracing::warn!(error = format!("{err:#}"), "event task ended with an error");
            }
        }
    }
    tasks.abort_all();
    connected.store(false, Ordering::Relaxed);
    let _ = connection.close(200, "shutdown".into()).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_with_the_agreed_field_names() {
        let mut e = Envelope::new("order", "order.created", serde_json::json!({"a": 1}));
        e.trace = Some(serde_json::json!({"trace_id": "t", "request_id": "r"}));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "order.created");
        assert_eq!(json["source"], "order");
        assert_eq!(json["trace"]["trace_id"], "t");
        assert_eq!(e.id.get_version_num(), 7);
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.trace_id(), Some("t"));
        let carried = back.trace_context().unwrap();
        assert_eq!(
            (carried.trace_id.as_str(), carried.request_id.as_str()),
            ("t", "r")
        );
        assert!(
            Envelope::new("a", "b.c", serde_json::Value::Null)
                .trace_context()
                .is_none()
        );
    }

    #[test]
    fn data_of_the_wrong_shape_is_rejected_not_retried() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Want {
            order_id: Uuid,
        }
        let e = Envelope::new("x", "x.y", serde_json::json!({"order_id": "nope"}));
        assert!(matches!(e.data::<Want>(), Err(HandlerError::Reject(_))));
    }

    #[test]
    fn amqp_settings_take_the_password_from_the_secret_and_name_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("amqp_password"), "s3cr3t\n").unwrap();
        let settings = Settings::from_vars([
            (
                "AMQP_URL".to_owned(),
                "amqp://shop@rabbitmq:5672/%2f".to_owned(),
            ),
            ("SECRETS_DIR".to_owned(), dir.path().display().to_string()),
            ("EVENTS_RETRY_DELAYS_MS".to_owned(), "10, 20".to_owned()),
        ]);
        let config = EventsConfig::from_settings(&settings).unwrap().unwrap();
        assert_eq!(config.amqp_url, "amqp://shop:s3cr3t@rabbitmq:5672/%2f");
        assert_eq!(
            config.retry_delays,
            Some(vec![Duration::from_millis(10), Duration::from_millis(20)])
        );

        assert!(
            EventsConfig::from_settings(&Settings::from_vars([]))
                .unwrap()
                .is_none()
        );
        let bad = Settings::from_vars([("AMQP_URL".to_owned(), "http://x".to_owned())]);
        let err = EventsConfig::from_settings(&bad).unwrap_err();
        assert_eq!(err.name, "AMQP_URL");
        assert!(err.problem.contains("amqp://"), "{err}");
    }
}
