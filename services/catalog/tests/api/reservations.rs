//! Stock reservations driven by checkout events: all-or-none, never below zero under
//! concurrency, one effect per order however often its events arrive, expiry.

use std::time::Duration;

use axum::http::StatusCode;
use catalog::reservations::{self, CheckoutEvents, Settle};
use serde_json::json;
use shopkit::events::{Envelope, handle_once};
use uuid::Uuid;

use crate::helpers::{TestApp, product_json};

const TTL: Duration = Duration::from_secs(900);

async fn shop() -> TestApp {
    let app = TestApp::new().await;
    app.category("shirts", "Shirts", None).await;
    app.product(product_json(
        "Oxford Shirt",
        "shirts",
        "A shirt.",
        &[
            ("OX-M", json!({"size": "M"}), 4900, 20),
            ("OX-L", json!({"size": "L"}), 4900, 2),
        ],
    ))
    .await;
    app
}

async fn level(app: &TestApp, sku: &str) -> (i32, i32) {
    sqlx::query_as("SELECT on_hand, reserved FROM inventory WHERE sku = $1")
        .bind(sku)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

fn order_created(order_id: Uuid, lines: &[(&str, i32)]) -> Envelope {
    let mut event = Envelope::new(
        "order",
        "order.created",
        json!({
            "order_id": order_id, "user_id": Uuid::now_v7(), "cart_id": Uuid::now_v7(),
            "currency": "USD", "total_minor": 0,
            "lines": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q, "unit_price_minor": 4900})).collect::<Vec<_>>(),
        }),
    );
    event.trace = Some(json!({"trace_id": format!("trace-{order_id}"), "request_id": "r"}));
    event
}

fn about(event_type: &str, order_id: Uuid) -> Envelope {
    Envelope::new("x", event_type, json!({"order_id": order_id}))
}

async fn emitted(app: &TestApp, event_type: &str) -> Vec<Envelope> {
    shopkit::testing::outbox_events(app.pool())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .collect()
}

#[tokio::test]
async fn an_order_reserves_all_its_lines_or_none() {
    let app = shop().await;
    let handler = CheckoutEvents { ttl: TTL };
    let fits = Uuid::now_v7();
    handle_once(
        app.pool(),
        "catalog",
        &handler,
        &order_created(fits, &[("OX-M", 3), ("OX-L", 2)]),
    )
    .await
    .unwrap();
    assert_eq!(level(&app, "OX-M").await, (20, 3));
    assert_eq!(level(&app, "OX-L").await, (2, 2));
    let reserved = emitted(&app, "inventory.reserved").await;
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0].data["order_id"], fits.to_string());
    // One checkout, one trace: the answer carries the order's trace on.
    assert_eq!(
        reserved[0].trace_id(),
        Some(format!("trace-{fits}").as_str())
    );

    // OX-L has nothing left: the OX-M line of this order is not held either.
    let short = Uuid::now_v7();
    handle_once(
        app.pool(),
        "catalog",
        &handler,
        &order_created(short, &[("OX-M", 1), ("OX-L", 1)]),
    )
    .await
    .unwrap();
    assert_eq!(level(&app, "OX-M").await, (20, 3));
    let rejected = emitted(&app, "inventory.rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].data["skus"], json!(["OX-L"]));
    assert_eq!(rejected[0].data["reason"], "out_of_stock");
}

#[tokio::test]
async fn redelivered_and_repeated_events_change_nothing_twice() {
    let app = shop().await;
    let handler = CheckoutEvents { ttl: TTL };
    let order = Uuid::now_v7();
    let created = order_created(order, &[("OX-M", 5)]);
    assert!(
        handle_once(app.pool(), "catalog", &handler, &created)
            .await
            .unwrap()
    );
    // The same message again: the inbox stops it.
    assert!(
        !handle_once(app.pool(), "catalog", &handler, &created)
            .await
            .unwrap()
    );
    // A different message about the same order (the producer re-published): the
    // reservation row stops it.
    handle_once(
        app.pool(),
        "catalog",
        &handler,
        &order_created(order, &[("OX-M", 5)]),
    )
    .await
    .unwrap();
    assert_eq!(level(&app, "OX-M").await, (20, 5));
    assert_eq!(emitted(&app, "inventory.reserved").await.len(), 1);

    // Paid twice (two messages): committed once.
    for _ in 0..2 {
        handle_once(
            app.pool(),
            "catalog",
            &handler,
            &about("payment.succeeded", order),
        )
        .await
        .unwrap();
    }
    assert_eq!(level(&app, "OX-M").await, (15, 0));
    // A late cancellation of a paid order releases nothing.
    handle_once(
        app.pool(),
        "catalog",
        &handler,
        &about("order.cancelled", order),
    )
    .await
    .unwrap();
    assert_eq!(level(&app, "OX-M").await, (15, 0));
    let trail: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inventory_adjustments WHERE sku = 'OX-M' AND delta = -5",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(trail, 1, "the sale is audited once");
}

#[tokio::test]
async fn cancellation_releases_and_expiry_releases_and_tells_the_order() {
    let app = shop().await;
    let handler = CheckoutEvents { ttl: TTL };
    let cancelled = Uuid::now_v7();
    handle_once(
        app.pool(),
        "catalog",
        &handler,
        &order_created(cancelled, &[("OX-M", 4)]),
    )
    .await
    .unwrap();
    handle_once(
        app.pool(),
        "catalog",
        &handler,
        &about("order.cancelled", cancelled),
    )
    .await
    .unwrap();
    assert_eq!(level(&app, "OX-M").await, (20, 0));

    let expiring = Uuid::now_v7();
    let short_ttl = CheckoutEvents {
        ttl: Duration::from_millis(1),
    };
    handle_once(
        app.pool(),
        "catalog",
        &short_ttl,
        &order_created(expiring, &[("OX-M", 6)]),
    )
    .await
    .unwrap();
    assert_eq!(level(&app, "OX-M").await, (20, 6));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(reservations::sweep(app.pool()).await.unwrap(), 1);
    assert_eq!(reservations::sweep(app.pool()).await.unwrap(), 0);
    assert_eq!(level(&app, "OX-M").await, (20, 0));
    let expired = emitted(&app, "inventory.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].data["order_id"], expiring.to_string());
    // The payment that arrives too late commits nothing (the order refunds it).
    handle_once(
        app.pool(),
        "catalog",
        &handler,
        &about("payment.succeeded", expiring),
    )
    .await
    .unwrap();
    assert_eq!(level(&app, "OX-M").await, (20, 0));
    let mut conn = app.pool().acquire().await.unwrap();
    assert!(
        !reservations::settle(&mut conn, expiring, Settle::Commit, None)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn concurrent_orders_never_take_more_than_the_stock() {
    let app = shop().await;
    let handler = std::sync::Arc::new(CheckoutEvents { ttl: TTL });
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let pool = app.pool().clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                handle_once(
                    &pool,
                    "catalog",
                    handler.as_ref(),
                    &order_created(Uuid::now_v7(), &[("OX-M", 1)]),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(level(&app, "OX-M").await, (20, 20));
    assert_eq!(emitted(&app, "inventory.reserved").await.len(), 20);
    assert_eq!(emitted(&app, "inventory.rejected").await.len(), 40);
}

#[tokio::test]
async fn skus_answer_price_stock_and_whether_they_are_for_sale() {
    let app = shop().await;
    let answer = app.get("/skus?sku=OX-L&sku=NOPE&sku=OX-M").await.ok();
    let list = answer.as_array().unwrap();
    assert_eq!(list.len(), 2, "{answer}");
    assert_eq!(list[0]["sku"], "OX-L");
    assert_eq!(list[0]["available"], 2);
    assert_eq!(list[0]["price_minor"], 4900);
    assert_eq!(list[0]["published"], true);
    assert_eq!(list[0]["product_name"], "Oxford Shirt");
    assert_eq!(list[1]["sku"], "OX-M");
    app.get("/skus").await.problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn price_and_stock_changes_are_announced() {
    let app = shop().await;
    app.admin_json(
        axum::http::Method::PATCH,
        "/admin/variants/OX-M",
        &json!({"price_minor": 3900}),
    )
    .await
    .ok();
    let prices = emitted(&app, "variant.price_changed").await;
    assert_eq!(prices.len(), 1);
    assert_eq!(
        prices[0].data,
        json!({"sku": "OX-M", "price_minor": 3900, "currency": "USD"})
    );
    app.admin_json(
        axum::http::Method::POST,
        "/admin/inventory/OX-M/adjust",
        &json!({"delta": -3, "reason": "damaged"}),
    )
    .await
    .ok();
    let stock = emitted(&app, "inventory.changed").await;
    assert_eq!(
        stock.last().unwrap().data,
        json!({"sku": "OX-M", "available": 17})
    );
}
