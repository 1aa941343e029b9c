//! The event machinery against a real RabbitMQ and PostgreSQL: outbox → relay → broker →
//! consumer → inbox, with redelivery, retries, parking and replay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shopkit::events::{
    self, Envelope, Events, EventsConfig, Handler, HandlerError, Subscription, parked,
};
use shopkit::testing::{TestBroker, TestDb};
use sqlx::{PgConnection, PgPool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("tests/events_migrations");

/// Records what it applies; fails while `failures_left` > 0.
#[derive(Default)]
struct Recorder {
    failures_left: AtomicUsize,
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO applied (event_id, event_type) VALUES ($1, $2)")
            .bind(event.id)
            .bind(&event.event_type)
            .execute(&mut *conn)
            .await?;
        if event.event_type == "test.malformed" {
            return Err(HandlerError::Reject(anyhow::anyhow!("never valid")));
        }
        let left = self.failures_left.load(Ordering::SeqCst);
        if left > 0 {
            self.failures_left.store(left - 1, Ordering::SeqCst);
            return Err(HandlerError::Retry(anyhow::anyhow!("peer down")));
        }
        Ok(())
    }
}

async fn applied(pool: &PgPool) -> Vec<(uuid::Uuid, String)> {
    sqlx::query_as("SELECT event_id, event_type FROM applied ORDER BY at")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

struct Fixture {
    db: TestDb,
    broker: TestBroker,
    handler: Arc<Recorder>,
    _events: Events,
    trigger: shopkit::shutdown::ShutdownTrigger,
}

async fn start(delays: Vec<Duration>) -> Fixture {
    let db = TestDb::new(&MIGRATOR).await.unwrap();
    let broker = TestBroker::new().await.unwrap();
    let handler = Arc::new(Recorder::default());
    let (trigger, shutdown) = shopkit::shutdown::channel();
    let subscription =
        Subscription::new("tester", &["test.*"], handler.clone()).with_retry_delays(delays);
    let events = Events::start(
        EventsConfig::new(&broker.url),
        db.pool.clone(),
        vec![subscription],
        shutdown,
    )
    .await
    .unwrap();
    assert!(events.wait_connected(Duration::from_secs(20)).await);
    Fixture {
        db,
        broker,
        handler,
        _events: events,
        trigger,
    }
}

async fn emit(pool: &PgPool, event_type: &str) -> uuid::Uuid {
    let mut tx = pool.begin().await.unwrap();
    let id = events::record(
        &mut tx,
        "test",
        event_type,
        serde_json::json!({"n": 1}),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn a_committed_event_reaches_the_consumer_once_and_is_marked_published() {
    let f = start(vec![Duration::from_millis(50)]).await;
    let id = emit(&f.db.pool, "test.happened").await;
    // Rolled back: never published.
    let mut tx = f.db.pool.begin().await.unwrap();
    events::record(
        &mut tx,
        "test",
        "test.rolled_back",
        serde_json::json!({}),
        None,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    eventually("the event is applied", || async {
        applied(&f.db.pool).await.len() == 1
    })
    .await;
    assert_eq!(applied(&f.db.pool).await[0].0, id);
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&f.db.pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 0);
    f.trigger.trigger();
}

#[tokio::test]
async fn a_message_published_twice_is_applied_once() {
    let f = start(vec![Duration::from_millis(50)]).await;
    let id = emit(&f.db.pool, "test.twice").await;
    eventually("applied", || async { applied(&f.db.pool).await.len() == 1 }).await;
    // The relay crashed after publishing and before marking: it publishes again.
    sqlx::query("UPDATE outbox SET published_at = NULL WHERE id = $1")
        .bind(id)
        .execute(&f.db.pool)
        .await
        .unwrap();
    emit(&f.db.pool, "test.after").await;
    eventually("the later event is applied", || async {
        applied(&f.db.pool).await.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ids: Vec<_> = applied(&f.db.pool)
        .await
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ids.iter().filter(|i| **i == id).count(), 1, "{ids:?}");
    f.trigger.trigger();
}

#[tokio::test]
async fn failures_are_retried_with_back_off_then_parked_and_replayed() {
    let f = start(vec![Duration::from_millis(100), Duration::from_millis(200)]).await;
    // Fails twice, succeeds on the second retry: one applied row (the failed attempts
    // rolled back theirs).
    f.handler.failures_left.store(2, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let retried = emit(&f.db.pool, "test.flaky").await;
    eventually("applied after retries", || async {
        applied(&f.db.pool).await.len() == 1
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(applied(&f.db.pool).await[0].0, retried);

    // Fails on every attempt: parked after the last delay, with the error.
    f.handler.failures_left.store(3, Ordering::SeqCst);
    let doomed = emit(&f.db.pool, "test.doomed").await;
    // Malformed: parked at once.
    let malformed = emit(&f.db.pool, "test.malformed").await;
    let connection = f.broker.connect().await.unwrap();
    eventually("two parked", || async {
        parked::list(&connection, "tester").await.unwrap().len() == 2
    })
    .await;
    let listed = parked::list(&connection, "tester").await.unwrap();
    let doomed_parked = listed.iter().find(|m| m.id == Some(doomed)).unwrap();
    assert_eq!(doomed_parked.attempts, 3);
    assert!(
        doomed_parked
            .error
            .as_deref()
            .unwrap()
            .contains("peer down")
    );
    let malformed_parked = listed.iter().find(|m| m.id == Some(malformed)).unwrap();
    assert_eq!(malformed_parked.attempts, 1);
    assert_eq!(applied(&f.db.pool).await.len(), 1);
    // A consumer that never ran has nothing parked (and no queue).
    assert!(
        parked::list(&connection, "nobody")
            .await
            .unwrap()
            .is_empty()
    );
    // Listing does not consume.
    assert_eq!(parked::list(&connection, "tester").await.unwrap().len(), 2);

    // The cause is fixed: replaying one applies it and leaves the other parked.
    let replayed = parked::replay(&connection, "tester", parked::Select::One(doomed))
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    eventually("the replayed event is applied", || async {
        applied(&f.db.pool)
            .await
            .iter()
            .any(|(id, _)| *id == doomed)
    })
    .await;
    let left = parked::list(&connection, "tester").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, Some(malformed));
    f.trigger.trigger();
}

#[tokio::test]
async fn handle_once_is_the_inbox_and_rolls_back_failures() {
    let db = TestDb::new(&MIGRATOR).await.unwrap();
    let handler = Recorder::default();
    let event = Envelope::new("test", "test.direct", serde_json::json!({}));
    assert!(
        events::handle_once(&db.pool, "c", &handler, &event)
            .await
            .unwrap()
    );
    assert!(
        !events::handle_once(&db.pool, "c", &handler, &event)
            .await
            .unwrap()
    );
    // Another consumer handles it on its own account.
    assert!(
        events::handle_once(&db.pool, "other", &handler, &event)
            .await
            .unwrap()
    );
    assert_eq!(applied(&db.pool).await.len(), 2);

    handler.failures_left.store(1, Ordering::SeqCst);
    let failing = Envelope::new("test", "test.failing", serde_json::json!({}));
    assert!(
        events::handle_once(&db.pool, "c", &handler, &failing)
            .await
            .is_err()
    );
    assert_eq!(applied(&db.pool).await.len(), 2, "the failure rolled back");
    assert!(
        events::handle_once(&db.pool, "c", &handler, &failing)
            .await
            .unwrap()
    );
}
