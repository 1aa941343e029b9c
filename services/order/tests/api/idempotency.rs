//! `Idempotency-Key` on `POST /orders`: the same key and body get the first answer byte
//! for byte (also when sent concurrently), another body is a 422, keys are per caller and
//! last 24 hours.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_repeated_request_is_answered_byte_for_byte_without_a_second_order() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    app.fakes.sku("A-1", 700, 5);
    let cart = app.fakes.cart(&buyer, &[("A-1", 2)]);
    let first = app.place(&buyer, "same-key", cart).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());

    // Meanwhile the cart was emptied and the price changed: the replay does not care.
    app.fakes
        .state
        .lock()
        .unwrap()
        .carts
        .get_mut(&cart)
        .unwrap()
        .lines
        .clear();
    app.fakes.edit_sku("A-1", |s| s.price_minor = 1);
    let second = app.place(&buyer, "same-key", cart).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body, first.body, "the replay must be byte for byte");
    assert_eq!(second.headers["location"], first.headers["location"]);
    assert_eq!(
        second.headers["content-type"],
        first.headers["content-type"]
    );
    assert_eq!(second.headers["idempotent-replayed"], "true");
    // Answered from the stored response: cart and catalog were asked once.
    assert_eq!(app.fakes.calls("/carts/").len(), 1);
    assert_eq!(app.fakes.calls("/skus").len(), 1);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.events_of("order.created").await.len(), 1);
}

#[tokio::test]
async fn ten_concurrent_identical_requests_make_one_order_and_one_answer() {
    let app = Arc::new(TestApp::new().await);
    let buyer = app.customer();
    app.fakes.sku("A-1", 700, 50);
    let cart = app.fakes.cart(&buyer, &[("A-1", 2)]);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            let buyer = buyer.clone();
            tokio::spawn(async move { app.place(&buyer, "burst", cart).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        bodies.push(response.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "answers differ");
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("order_transitions").await, 1);
    assert_eq!(app.count("idempotency_keys").await, 1);
    assert_eq!(app.events_of("order.created").await.len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_422() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    app.fakes.sku("A-1", 700, 5);
    let cart = app.fakes.cart(&buyer, &[("A-1", 1)]);
    let other_cart = app.fakes.cart(&buyer, &[("A-1", 2)]);
    let first = app.place(&buyer, "k", cart).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let mismatch = app.place(&buyer, "k", other_cart).await;
    let problem = mismatch.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{problem}"
    );
    // A cart token is part of the request too.
    let with_token = json!({"cart_id": cart, "cart_token": "t"}).to_string();
    app.place_raw(Some(&buyer.token), Some("k"), &with_token)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    // Whitespace is not: the body is compared as the request it means.
    let spaced = format!("{{ \"cart_id\" : \"{cart}\" }}");
    let replay = app.place_raw(Some(&buyer.token), Some("k"), &spaced).await;
    assert_eq!(replay.body, first.body);
    assert_eq!(app.count("orders").await, 1);
}

#[tokio::test]
async fn a_missing_or_malformed_key_is_a_400() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    app.fakes.sku("A-1", 700, 5);
    let cart = app.fakes.cart(&buyer, &[("A-1", 1)]);
    let body = json!({"cart_id": cart}).to_string();
    let missing = app.place_raw(Some(&buyer.token), None, &body).await;
    let problem = missing.problem(StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{problem}"
    );
    let long = "k".repeat(256);
    for bad in ["", "has space", long.as_str()] {
        app.place_raw(Some(&buyer.token), Some(bad), &body)
            .await
            .problem(StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.count("orders").await, 0);
    assert!(app.fakes.calls("/carts/").is_empty());
}

#[tokio::test]
async fn keys_belong_to_their_caller_and_expire_after_a_day() {
    let app = TestApp::new().await;
    let (alice, bob) = (app.customer(), app.customer());
    app.fakes.sku("A-1", 700, 5);
    let alices = app.fakes.cart(&alice, &[("A-1", 1)]);
    let bobs = app.fakes.cart(&bob, &[("A-1", 1)]);
    let a = app.place(&alice, "shared", alices).await;
    let b = app.place(&bob, "shared", bobs).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(b.status, StatusCode::CREATED);
    assert_ne!(a.json()["id"], b.json()["id"]);

    // A day later the key is free again: a new order.
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(app.pool())
        .await
        .unwrap();
    let later = app.place(&alice, "shared", alices).await;
    assert_eq!(later.status, StatusCode::CREATED);
    assert!(!later.headers.contains_key("idempotent-replayed"));
    assert_ne!(later.json()["id"], a.json()["id"]);
    assert_eq!(app.count("orders").await, 3);
}
