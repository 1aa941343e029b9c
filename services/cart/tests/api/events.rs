//! The event handlers (consumer `cart`) through shopkit's inbox, as the consumer runs
//! them: each event applied once, redeliveries and stale events changing nothing.

use chrono::{Duration as Span, Utc};
use serde_json::json;
use shopkit::events::{Envelope, HandlerError, handle_once};
use uuid::Uuid;

use cart::handlers::{CONSUMER, CartEvents};

use crate::helpers::{TestApp, line, quantity};

async fn deliver(app: &TestApp, event: &Envelope) -> bool {
    handle_once(app.pool(), CONSUMER, &CartEvents, event)
        .await
        .unwrap()
}

async fn version(app: &TestApp, cart: Uuid) -> i64 {
    sqlx::query_scalar("SELECT version FROM carts WHERE id = $1")
        .bind(cart)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn order_paid_empties_the_cart_once() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    let (token, user_id) = app.user(&["customer"]);
    let cart_id: Uuid = app.mine(&token).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.add_as(&token, cart_id, "MUG-BLU", 2).await.ok();
    let order_id = Uuid::now_v7();
    let paid = Envelope::new(
        "order",
        "order.paid",
        json!({"order_id": order_id, "user_id": user_id, "cart_id": cart_id,
               "currency": "USD", "total_minor": 2598}),
    );
    assert!(deliver(&app, &paid).await);
    let cart = app.mine(&token).await;
    assert_eq!(cart["id"], cart_id.to_string());
    assert_eq!(cart["lines"], json!([]));
    let after = version(&app, cart_id).await;

    // The user shops again; a redelivery (same message) and a re-emission (same order,
    // new message id) leave the new line alone.
    app.add_as(&token, cart_id, "MUG-BLU", 1).await.ok();
    assert!(!deliver(&app, &paid).await);
    let mut again = paid.clone();
    again.id = Uuid::now_v7();
    assert!(deliver(&app, &again).await);
    let cart = app.mine(&token).await;
    assert_eq!(quantity(&cart, "MUG-BLU"), 1);
    assert_eq!(cart["version"].as_i64().unwrap(), after + 1);

    // An order naming another user's cart leaves it alone.
    let stranger = Envelope::new(
        "order",
        "order.paid",
        json!({"order_id": Uuid::now_v7(), "user_id": Uuid::now_v7(), "cart_id": cart_id,
               "currency": "USD", "total_minor": 1}),
    );
    assert!(deliver(&app, &stranger).await);
    assert_eq!(quantity(&app.mine(&token).await, "MUG-BLU"), 1);
    // An unknown cart is nothing to do; malformed data is rejected (parked), not retried.
    let unknown = Envelope::new(
        "order",
        "order.paid",
        json!({"order_id": Uuid::now_v7(), "cart_id": Uuid::now_v7()}),
    );
    assert!(deliver(&app, &unknown).await);
    let malformed = Envelope::new("order", "order.paid", json!({"order_id": "nope"}));
    let err = handle_once(app.pool(), CONSUMER, &CartEvents, &malformed)
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::Reject(_)), "{err}");
}

#[tokio::test]
async fn price_changes_reach_every_open_line_once_and_never_go_back() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    app.catalog.sku("TEE-NVY-M", 1999, "USD", 10);
    let first = app.create_anonymous().await;
    let second = app.create_anonymous().await;
    let bystander = app.create_anonymous().await;
    app.add(&first, "MUG-BLU", 2).await.ok();
    app.add(&second, "MUG-BLU", 1).await.ok();
    app.add(&bystander, "TEE-NVY-M", 1).await.ok();
    let before = version(&app, bystander.id).await;

    let change = Envelope::new(
        "catalog",
        "variant.price_changed",
        json!({"sku": "MUG-BLU", "price_minor": 999, "currency": "USD"}),
    );
    assert!(deliver(&app, &change).await);
    for cart in [&first, &second] {
        let body = app.get_anonymous(cart).await.ok();
        assert_eq!(line(&body, "MUG-BLU").unwrap()["unit_price_minor"], 999);
        assert_eq!(body["version"], 3);
    }
    assert_eq!(version(&app, bystander.id).await, before);
    let total = app.get_anonymous(&first).await.ok()["total_minor"].clone();
    assert_eq!(total, 2 * 999);

    // Twice = once.
    assert!(!deliver(&app, &change).await);
    let mut same_again = change.clone();
    same_again.id = Uuid::now_v7();
    same_again.occurred_at = Utc::now();
    assert!(deliver(&app, &same_again).await);
    assert_eq!(app.get_anonymous(&first).await.ok()["version"], 3);

    // An older change delivered late does not undo the newer one.
    let stale = Envelope {
        id: Uuid::now_v7(),
        occurred_at: change.occurred_at - Span::minutes(5),
        data: json!({"sku": "MUG-BLU", "price_minor": 1299, "currency": "USD"}),
        ..change.clone()
    };
    assert!(deliver(&app, &stale).await);
    let body = app.get_anonymous(&first).await.ok();
    assert_eq!(line(&body, "MUG-BLU").unwrap()["unit_price_minor"], 999);

    // A newer change applies; a negative price can never apply (parked).
    let newer = Envelope::new(
        "catalog",
        "variant.price_changed",
        json!({"sku": "MUG-BLU", "price_minor": 1499, "currency": "USD"}),
    );
    assert!(deliver(&app, &newer).await);
    let body = app.get_anonymous(&second).await.ok();
    assert_eq!(line(&body, "MUG-BLU").unwrap()["unit_price_minor"], 1499);
    let negative = Envelope::new(
        "catalog",
        "variant.price_changed",
        json!({"sku": "MUG-BLU", "price_minor": -1, "currency": "USD"}),
    );
    let err = handle_once(app.pool(), CONSUMER, &CartEvents, &negative)
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::Reject(_)), "{err}");
}

#[tokio::test]
async fn stock_changes_flag_lines_holding_more_than_available() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    let cart = app.create_anonymous().await;
    app.add(&cart, "MUG-BLU", 4).await.ok();

    let low = Envelope::new(
        "catalog",
        "inventory.changed",
        json!({"sku": "MUG-BLU", "available": 3}),
    );
    assert!(deliver(&app, &low).await);
    let body = app.get_anonymous(&cart).await.ok();
    let mug = line(&body, "MUG-BLU").unwrap();
    assert_eq!(mug["available"], 3);
    assert_eq!(mug["insufficient_stock"], true);
    assert_eq!(body["version"], 3);
    // Twice = once; stale = ignored.
    assert!(!deliver(&app, &low).await);
    let stale = Envelope {
        id: Uuid::now_v7(),
        occurred_at: low.occurred_at - Span::seconds(30),
        data: json!({"sku": "MUG-BLU", "available": 100}),
        ..low.clone()
    };
    assert!(deliver(&app, &stale).await);
    let body = app.get_anonymous(&cart).await.ok();
    assert_eq!(line(&body, "MUG-BLU").unwrap()["available"], 3);
    assert_eq!(body["version"], 3);
    // Restocked: the flag clears.
    let restocked = Envelope::new(
        "catalog",
        "inventory.changed",
        json!({"sku": "MUG-BLU", "available": 8}),
    );
    assert!(deliver(&app, &restocked).await);
    let body = app.get_anonymous(&cart).await.ok();
    assert_eq!(line(&body, "MUG-BLU").unwrap()["insufficient_stock"], false);
    // Events of other types are acknowledged and ignored.
    let other = Envelope::new("catalog", "variant.created", json!({}));
    assert!(deliver(&app, &other).await);
}
