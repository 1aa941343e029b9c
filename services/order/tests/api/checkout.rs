//! `POST /orders`: a cart at the catalog's prices becomes a pending order, its first
//! transition and `order.created`, or is refused leaving nothing behind.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{FakeCart, TestApp};

/// Rows of every table a placed order writes.
async fn written(app: &TestApp) -> [i64; 5] {
    [
        app.count("orders").await,
        app.count("order_lines").await,
        app.count("order_transitions").await,
        app.count("idempotency_keys").await,
        app.count("outbox").await,
    ]
}

#[tokio::test]
async fn a_cart_becomes_a_pending_order_at_the_catalogs_current_prices() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    app.fakes.sku("TEE-NVY-M", 1999, 5);
    app.fakes.sku("MUG-BLU", 1299, 1);
    // The cart shows stale prices (1); the order takes the catalog's.
    let cart = app.fakes.cart(&buyer, &[("TEE-NVY-M", 2), ("MUG-BLU", 1)]);
    let response = app.place(&buyer, "key-1", cart).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let order = response.json();
    let id = order["id"].as_str().unwrap();
    assert_eq!(
        response.headers["location"],
        format!("/orders/{id}").as_str()
    );
    assert_eq!(response.headers["cache-control"], "private, no-store");
    assert!(!response.headers.contains_key("idempotent-replayed"));
    assert_eq!(order["status"], "pending");
    assert_eq!(order["user_id"], buyer.id.to_string());
    assert_eq!(order["cart_id"], cart.to_string());
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["total_minor"], 2 * 1999 + 1299);
    assert_eq!(order["lines"][0]["sku"], "TEE-NVY-M");
    assert_eq!(order["lines"][0]["unit_price_minor"], 1999);
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(order["lines"][0]["line_total_minor"], 3998);
    assert_eq!(order["lines"][0]["product_name"], "Product TEE-NVY-M");
    assert_eq!(order["lines"][1]["sku"], "MUG-BLU");
    assert_eq!(order["payment"], json!(null));
    assert_eq!(order["cancellation_reason"], json!(null));
    assert_eq!(order["refund_requests"], json!([]));
    let transitions = order["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0]["from"], json!(null));
    assert_eq!(transitions[0]["to"], "pending");
    assert_eq!(transitions[0]["cause"], "created");

    // The same order reads back identically.
    let read = app.get(&format!("/orders/{id}"), Some(&buyer.token)).await;
    assert_eq!(read.ok(), order);

    // One order.created with the snapshot, and the price snapshot never changes.
    let events = app.events_of("order.created").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].source, "order");
    assert_eq!(
        events[0].data,
        json!({
            "order_id": id, "user_id": buyer.id, "cart_id": cart, "currency": "USD",
            "total_minor": 5297,
            "lines": [
                {"sku": "TEE-NVY-M", "product_name": "Product TEE-NVY-M", "quantity": 2, "unit_price_minor": 1999},
                {"sku": "MUG-BLU", "product_name": "Product MUG-BLU", "quantity": 1, "unit_price_minor": 1299},
            ],
        })
    );
    assert!(events[0].trace.is_some());
    app.fakes.edit_sku("TEE-NVY-M", |s| s.price_minor = 1);
    let read = app
        .get(&format!("/orders/{id}"), Some(&buyer.token))
        .await
        .ok();
    assert_eq!(read["total_minor"], 5297);

    // The cart saw the buyer's own token; both peers got the request id.
    let calls = app.fakes.calls("/carts/");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].headers["authorization"],
        format!("Bearer {}", buyer.token).as_str()
    );
    let catalog = app.fakes.calls("/skus");
    assert_eq!(catalog.len(), 1);
    assert_eq!(
        catalog[0].query.as_deref(),
        Some("sku=TEE-NVY-M&sku=MUG-BLU")
    );
    for call in calls.iter().chain(&catalog) {
        assert!(call.headers.contains_key("x-request-id"));
        assert!(call.headers.contains_key("traceparent"));
    }
    assert_eq!(written(&app).await, [1, 2, 1, 1, 1]);
}

#[tokio::test]
async fn a_guest_cart_is_reached_with_its_token() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    app.fakes.sku("A-1", 500, 3);
    let cart = app.fakes.put_cart(FakeCart {
        owner: None,
        token: Some("guest-secret".into()),
        lines: vec![("A-1".into(), 3, 500)],
    });
    let without = app.place(&buyer, "k1", cart).await;
    assert_eq!(without.invalid_fields(), ["cart_id"]);

    let body = json!({"cart_id": cart, "cart_token": "guest-secret"}).to_string();
    let with = app.place_raw(Some(&buyer.token), Some("k2"), &body).await;
    assert_eq!(with.status, StatusCode::CREATED, "{}", with.text());
    assert_eq!(with.json()["total_minor"], 1500);
    assert_eq!(with.json()["user_id"], buyer.id.to_string());
    let calls = app.fakes.calls("/carts/");
    assert_eq!(calls[1].headers["x-cart-token"], "guest-secret");
}

#[tokio::test]
async fn an_empty_unknown_or_foreign_cart_is_refused_and_nothing_is_written() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    let empty = app.fakes.cart(&buyer, &[]);
    let response = app.place(&buyer, "k1", empty).await;
    let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"].as_str().unwrap().contains("empty"),
        "{problem}"
    );

    let unknown = app.place(&buyer, "k2", Uuid::now_v7()).await;
    assert_eq!(unknown.invalid_fields(), ["cart_id"]);

    let other = app.customer();
    app.fakes.sku("A-1", 100, 10);
    let theirs = app.fakes.cart(&other, &[("A-1", 1)]);
    let foreign = app.place(&buyer, "k3", theirs).await;
    assert_eq!(foreign.invalid_fields(), ["cart_id"]);
    assert_eq!(written(&app).await, [0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn unknown_and_unpublished_skus_are_refused_by_name() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    app.fakes.sku("A-1", 100, 10);
    app.fakes.sku("DRAFT-1", 100, 10);
    app.fakes.edit_sku("DRAFT-1", |s| s.published = false);
    let cart = app
        .fakes
        .cart(&buyer, &[("A-1", 1), ("DRAFT-1", 1), ("GONE-1", 2)]);
    let response = app.place(&buyer, "k1", cart).await;
    let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["skus"], json!(["DRAFT-1", "GONE-1"]));
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("DRAFT-1") && detail.contains("GONE-1"),
        "{detail}"
    );
    assert!(!detail.contains("A-1"), "{detail}");
    assert_eq!(written(&app).await, [0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn lines_beyond_the_stock_are_a_409_out_of_stock_naming_the_skus() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    app.fakes.sku("A-1", 100, 2);
    app.fakes.sku("B-1", 100, 5);
    app.fakes.sku("C-1", 100, 0);
    let cart = app
        .fakes
        .cart(&buyer, &[("A-1", 3), ("B-1", 5), ("C-1", 1)]);
    let response = app.place(&buyer, "k1", cart).await;
    let problem = response.problem(StatusCode::CONFLICT);
    assert_eq!(
        problem["type"],
        "https://shopstack.dev/problems/out-of-stock"
    );
    assert_eq!(problem["title"], "Out of stock");
    assert_eq!(problem["skus"], json!(["A-1", "C-1"]));
    assert_eq!(
        problem["shortages"],
        json!([
            {"sku": "A-1", "requested": 3, "available": 2},
            {"sku": "C-1", "requested": 1, "available": 0},
        ])
    );
    assert_eq!(
        problem["detail"],
        "out of stock: A-1 (3 requested, 2 available), C-1 (1 requested, 0 available)"
    );
    assert_eq!(written(&app).await, [0, 0, 0, 0, 0]);

    // Restocked, the same key places the order: a refusal is not remembered.
    app.fakes.edit_sku("A-1", |s| s.available = 3);
    app.fakes.edit_sku("C-1", |s| s.available = 1);
    let retry = app.place(&buyer, "k1", cart).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text());
}

#[tokio::test]
async fn a_catalog_outage_is_a_503_and_the_same_key_works_once_it_is_back() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    app.fakes.sku("A-1", 100, 2);
    let cart = app.fakes.cart(&buyer, &[("A-1", 1)]);
    app.fakes.set_catalog_down(true);
    let down = app.place(&buyer, "k1", cart).await;
    let problem = down.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !problem["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{problem}"
    );
    assert_eq!(written(&app).await, [0, 0, 0, 0, 0]);
    app.fakes.set_catalog_down(false);
    let back = app.place(&buyer, "k1", cart).await;
    assert_eq!(back.status, StatusCode::CREATED, "{}", back.text());
}

#[tokio::test]
async fn placing_needs_a_valid_token_and_a_json_body() {
    let app = TestApp::new().await;
    let body = json!({"cart_id": Uuid::now_v7()}).to_string();
    let anonymous = app.place_raw(None, Some("k1"), &body).await;
    anonymous.problem(StatusCode::UNAUTHORIZED);
    let forged = app.place_raw(Some("not-a-jwt"), Some("k1"), &body).await;
    forged.problem(StatusCode::UNAUTHORIZED);
    let buyer = app.customer();
    let broken = app.place_raw(Some(&buyer.token), Some("k1"), "{").await;
    broken.problem(StatusCode::BAD_REQUEST);
    let unknown_field = app
        .place_raw(
            Some(&buyer.token),
            Some("k1"),
            &json!({"cart_id": Uuid::now_v7(), "total_minor": 1}).to_string(),
        )
        .await;
    unknown_field.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(written(&app).await, [0, 0, 0, 0, 0]);
}
