//! Idempotency keys on a real PostgreSQL: replay, mismatch, and concurrent duplicates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::http::StatusCode;
use shopkit::idempotency::{self, Claim, StoredResponse};
use shopkit::testing::TestDb;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("tests/events_migrations");

/// One "request": claim, work (count it), save, commit; returns the answer.
async fn request(pool: &sqlx::PgPool, key: &str, body: &[u8]) -> Result<StoredResponse, u16> {
    let fp = idempotency::fingerprint(&[b"POST", b"/things", body]);
    let mut tx = pool.begin().await.unwrap();
    match idempotency::claim(&mut tx, "user-1", key, &fp)
        .await
        .unwrap()
    {
        Claim::Replay(stored) => return Ok(stored),
        Claim::Mismatch => return Err(422),
        Claim::Fresh => {}
    }
    let id = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO applied (event_id, event_type) VALUES ($1, 'work')")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    // Hold the key a moment, so that concurrent duplicates really overlap.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let stored = StoredResponse::json(StatusCode::CREATED, &serde_json::json!({"id": id}));
    idempotency::save(&mut tx, "user-1", key, &fp, &stored)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Ok(stored)
}

async fn work_done(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM applied")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_key_replays_byte_for_byte_and_a_different_body_is_refused() {
    let db = TestDb::new(&MIGRATOR).await.unwrap();
    let first = request(&db.pool, "k1", b"{\"a\":1}").await.unwrap();
    let again = request(&db.pool, "k1", b"{\"a\":1}").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.status, 201);
    assert_eq!(request(&db.pool, "k1", b"{\"a\":2}").await, Err(422));
    assert_eq!(work_done(&db.pool).await, 1);
    // A new key is a new operation.
    assert_ne!(request(&db.pool, "k2", b"{\"a\":1}").await.unwrap(), first);
    assert_eq!(work_done(&db.pool).await, 2);
}

#[tokio::test]
async fn concurrent_duplicates_do_the_work_once() {
    let db = TestDb::new(&MIGRATOR).await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let pool = db.pool.clone();
            tokio::spawn(async move { request(&pool, "same", b"{}").await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(work_done(&db.pool).await, 1);
}

#[tokio::test]
async fn keys_older_than_a_day_are_free_again() {
    let db = TestDb::new(&MIGRATOR).await.unwrap();
    let first = request(&db.pool, "old", b"{}").await.unwrap();
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(&db.pool)
        .await
        .unwrap();
    let later = request(&db.pool, "old", b"{\"other\":true}").await.unwrap();
    assert_ne!(first, later);
    assert_eq!(work_done(&db.pool).await, 2);
}
