//! `GET /carts/{id}/events` across replicas: two `Application`s over one database, as two
//! containers of the cart service would run.

use std::time::{Duration, Instant};

use serde_json::json;
use shopkit::events::{Envelope, handle_once};

use crate::helpers::{FakeCatalog, Replica, SseReader, TestApp, quantity};

const SECOND: Duration = Duration::from_secs(1);

/// A POST through a replica, by HTTP.
async fn add_via(replica: &Replica, cart: &crate::helpers::Anonymous, sku: &str, n: i64) {
    let response = reqwest::Client::new()
        .post(format!("{}/carts/{}/items", replica.base, cart.id))
        .header("x-cart-token", &cart.token)
        .json(&json!({"sku": sku, "quantity": n}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn a_change_through_one_replica_reaches_subscribers_on_the_other_within_a_second() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    let a = Replica::start(&app.db, &app.issuer, &app.catalog).await;
    let b = Replica::start(&app.db, &app.issuer, &app.catalog).await;
    let cart = app.create_anonymous().await;
    let url = |r: &Replica| format!("{}/carts/{}/events", r.base, cart.id);
    let auth = [("x-cart-token", cart.token.as_str())];

    let mut on_b = SseReader::open(&url(&b), &auth).await;
    let cookie = format!("cart_token={}", cart.token);
    let mut also_on_b = SseReader::open(&url(&b), &[("cookie", cookie.as_str())]).await;
    let mut on_a = SseReader::open(&url(&a), &auth).await;
    for reader in [&mut on_b, &mut also_on_b, &mut on_a] {
        let first = reader.expect("cart", SECOND).await;
        assert_eq!(first.data["version"], 1);
        assert_eq!(first.data["lines"], json!([]));
    }

    let started = Instant::now();
    add_via(&a, &cart, "MUG-BLU", 2).await;
    for reader in [&mut on_b, &mut also_on_b, &mut on_a] {
        let event = reader.expect("cart", SECOND).await;
        assert_eq!(event.data["version"], 2);
        assert_eq!(quantity(&event.data, "MUG-BLU"), 2);
    }
    assert!(started.elapsed() < SECOND, "{:?}", started.elapsed());

    // And the other way round, through the oneshot router (a third "replica" with no
    // listener of its own): every writer notifies, whoever serves the subscriber.
    app.add(&cart, "MUG-BLU", 1).await.ok();
    let event = on_a.expect("cart", SECOND).await;
    assert_eq!(quantity(&event.data, "MUG-BLU"), 3);
    let event = on_b.expect("cart", SECOND).await;
    assert_eq!(event.data["version"], 3);

    // A stream needs the cart's credentials, like a read.
    let client = reqwest::Client::new();
    let denied = client
        .get(url(&b))
        .header("x-cart-token", "A".repeat(43))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), reqwest::StatusCode::NOT_FOUND);
    let bare = client.get(url(&b)).send().await.unwrap();
    assert_eq!(bare.status(), reqwest::StatusCode::UNAUTHORIZED);

    // Subscribers are counted.
    let metrics = client
        .get(format!("{}/metrics", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("cart_sse_subscribers"), "{metrics}");
    assert!(metrics.contains("cart_changes_total"), "{metrics}");

    // Shutdown ends the streams, so the server stops instead of waiting on them.
    drop(also_on_b);
    b.stop().await;
    assert!(on_b.next_within(SECOND).await.is_none());
    a.stop().await;
}

#[tokio::test]
async fn after_the_listener_reconnects_subscribers_get_a_fresh_cart() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    let replica = Replica::start(&app.db, &app.issuer, &app.catalog).await;
    let cart = app.create_anonymous().await;
    let mut reader = SseReader::open(
        &format!("{}/carts/{}/events", replica.base, cart.id),
        &[("x-cart-token", &cart.token)],
    )
    .await;
    assert_eq!(reader.expect("cart", SECOND).await.data["version"], 1);

    // A change whose notification never reaches the listener (written behind its back),
    // then the listener's connection dies.
    sqlx::query("UPDATE carts SET version = version + 1 WHERE id = $1")
        .bind(cart.id)
        .execute(app.pool())
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no listener connection found");

    // Reconnected, it re-reads the watched carts: the missed change arrives.
    let event = reader.expect("cart", Duration::from_secs(5)).await;
    assert_eq!(event.data["version"], 2);
    // And it listens again.
    add_via(&replica, &cart, "MUG-BLU", 1).await;
    let event = reader.expect("cart", SECOND).await;
    assert_eq!(event.data["version"], 3);
    replica.stop().await;
}

#[tokio::test]
async fn catalog_events_push_notices_then_the_cart() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    app.catalog.sku("TEE-NVY-M", 1999, "USD", 10);
    let replica = Replica::start(&app.db, &app.issuer, &app.catalog).await;
    let cart = app.create_anonymous().await;
    app.add(&cart, "MUG-BLU", 3).await.ok();
    app.add(&cart, "TEE-NVY-M", 1).await.ok();
    let mut reader = SseReader::open(
        &format!("{}/carts/{}/events", replica.base, cart.id),
        &[("x-cart-token", &cart.token)],
    )
    .await;
    assert_eq!(reader.expect("cart", SECOND).await.data["version"], 3);

    let price = Envelope::new(
        "catalog",
        "variant.price_changed",
        json!({"sku": "MUG-BLU", "price_minor": 999, "currency": "USD"}),
    );
    assert!(
        handle_once(app.pool(), "cart", &cart::handlers::CartEvents, &price)
            .await
            .unwrap()
    );
    let notice = reader.next_within(SECOND).await.unwrap();
    assert_eq!(notice.event, "price_changed");
    assert_eq!(
        notice.data,
        json!({"sku": "MUG-BLU", "old": 1299, "new": 999})
    );
    let updated = reader.next_within(SECOND).await.unwrap();
    assert_eq!(updated.event, "cart");
    assert_eq!(updated.data["version"], 4);
    assert_eq!(updated.data["total_minor"], 3 * 999 + 1999);

    let stock = Envelope::new(
        "catalog",
        "inventory.changed",
        json!({"sku": "MUG-BLU", "available": 2}),
    );
    assert!(
        handle_once(app.pool(), "cart", &cart::handlers::CartEvents, &stock)
            .await
            .unwrap()
    );
    let notice = reader.next_within(SECOND).await.unwrap();
    assert_eq!(notice.event, "stock_changed");
    assert_eq!(notice.data, json!({"sku": "MUG-BLU", "available": 2}));
    let updated = reader.next_within(SECOND).await.unwrap();
    assert_eq!(updated.event, "cart");
    let mug = crate::helpers::line(&updated.data, "MUG-BLU").unwrap();
    assert_eq!(mug["available"], 2);
    assert_eq!(mug["insufficient_stock"], true);
    replica.stop().await;
}

#[tokio::test]
async fn a_merged_cart_says_closed_and_its_stream_ends() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    let replica = Replica::start(&app.db, &app.issuer, &app.catalog).await;
    let cart = app.create_anonymous().await;
    app.add(&cart, "MUG-BLU", 1).await.ok();
    let (token, _) = app.user(&["customer"]);
    let mine = app.mine(&token).await;
    let mut anonymous = SseReader::open(
        &format!("{}/carts/{}/events", replica.base, cart.id),
        &[("x-cart-token", &cart.token)],
    )
    .await;
    let mut users = SseReader::open(
        &format!(
            "{}/carts/{}/events",
            replica.base,
            mine["id"].as_str().unwrap()
        ),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    anonymous.expect("cart", SECOND).await;
    assert_eq!(users.expect("cart", SECOND).await.data["lines"], json!([]));

    app.call(
        axum::http::Method::POST,
        "/carts/mine/merge",
        &[("authorization", &token)],
        Some(&json!({"cart_id": cart.id, "cart_token": cart.token})),
    )
    .await
    .ok();
    let closed = anonymous.expect("closed", SECOND).await;
    assert_eq!(closed.data["id"], cart.id.to_string());
    assert!(anonymous.next_within(SECOND).await.is_none());
    let merged = users.expect("cart", SECOND).await;
    assert_eq!(quantity(&merged.data, "MUG-BLU"), 1);
    replica.stop().await;
}

#[tokio::test]
async fn readiness_reports_the_listener() {
    let app = TestApp::new().await;
    let catalog = FakeCatalog::start().await;
    let replica = Replica::start(&app.db, &app.issuer, &catalog).await;
    let ready: serde_json::Value = reqwest::get(format!("{}/health/ready", replica.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["listener"], "ok", "{ready}");
    replica.stop().await;
}
