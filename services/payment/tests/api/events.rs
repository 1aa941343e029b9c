//! The order's events: delivered twice, and in orders that do not fit the state machine.

use axum::http::StatusCode;
use serde_json::json;
use shopkit::events::{Envelope, HandlerError};
use uuid::Uuid;

use crate::helpers::{GOOD, THREE_DS, TestApp, awaiting_payment, cancelled, refund_requested};

#[tokio::test]
async fn awaiting_payment_twice_creates_one_intent() {
    let app = TestApp::new().await;
    let order_id = Uuid::now_v7();
    let envelope = awaiting_payment(order_id, app.buyer.id, 2999, "USD");
    assert!(app.deliver(&envelope).await.unwrap());
    // The same message again: the inbox answers, the handler does not run.
    assert!(!app.deliver(&envelope).await.unwrap());
    // Another message for the same order (a producer's retry): the state check answers.
    let again = awaiting_payment(order_id, app.buyer.id, 2999, "USD");
    assert!(app.deliver(&again).await.unwrap());
    assert_eq!(app.count("SELECT count(*) FROM payments").await, 1);

    let id = app.payment_of(order_id).await;
    let body = app.get(&app.buyer, &format!("/payments/{id}")).await.ok();
    assert_eq!(body["status"], "requires_payment_method");
    assert_eq!(body["amount_minor"], 2999);
    assert_eq!(body["currency"], "USD");
    assert_eq!(body["user_id"], json!(app.buyer.id));
    assert_eq!(body["provider"], "test");
    assert_eq!(id.get_version_num(), 7);
}

#[tokio::test]
async fn refund_requested_twice_refunds_once() {
    let app = TestApp::new().await;
    let order_id = app.order(&app.buyer, 5000).await;
    let id = app.payment_of(order_id).await;
    app.confirm(&app.buyer, id, "k", GOOD).await.ok();

    let request = refund_requested(order_id);
    assert!(app.deliver(&request).await.unwrap());
    assert!(!app.deliver(&request).await.unwrap());
    assert!(app.deliver(&refund_requested(order_id)).await.unwrap());

    assert_eq!(app.status(id).await, "refunded");
    assert_eq!(
        app.ledger(id).await,
        [("charge".to_owned(), 5000), ("refund".to_owned(), 5000)]
    );
    let refunded = app.events("payment.refunded").await;
    assert_eq!(refunded.len(), 1);
    assert_eq!(
        refunded[0].data,
        json!({"order_id": order_id, "payment_id": id, "amount_minor": 5000, "currency": "USD"})
    );
    // The order's refund request as the order service sends it, naming the payment.
    let named = Envelope::new(
        "order",
        "order.refund_requested",
        json!({"order_id": order_id, "reason": "admin", "payment_id": id,
               "amount_minor": 5000, "currency": "USD"}),
    );
    assert!(app.deliver(&named).await.unwrap());
    assert_eq!(app.ledger(id).await.len(), 2);
    // A refunded payment is closed.
    app.confirm(&app.buyer, id, "k2", GOOD)
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(app.violations().await, []);
}

#[tokio::test]
async fn a_refund_request_naming_another_payment_refunds_nothing() {
    let app = TestApp::new().await;
    let order_id = app.order(&app.buyer, 5100).await;
    let id = app.payment_of(order_id).await;
    app.confirm(&app.buyer, id, "k", GOOD).await.ok();
    let stranger = Envelope::new(
        "order",
        "order.refund_requested",
        json!({"order_id": order_id, "reason": "duplicate_payment", "payment_id": Uuid::now_v7(),
               "amount_minor": 5100, "currency": "USD"}),
    );
    assert!(app.deliver(&stranger).await.unwrap());
    assert_eq!(app.status(id).await, "succeeded");
    assert_eq!(app.ledger(id).await.len(), 1);
    assert!(app.events("payment.refunded").await.is_empty());
}

#[tokio::test]
async fn cancellation_cancels_an_unpaid_intent_and_leaves_a_paid_one() {
    let app = TestApp::new().await;
    let unpaid = app.order(&app.buyer, 1000).await;
    let message = cancelled(unpaid);
    assert!(app.deliver(&message).await.unwrap());
    assert!(!app.deliver(&message).await.unwrap());
    let id = app.payment_of(unpaid).await;
    let body = app.get(&app.buyer, &format!("/payments/{id}")).await.ok();
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["cancellation_reason"], "reservation_expired");
    let problem = app
        .confirm(&app.buyer, id, "k", GOOD)
        .await
        .problem(StatusCode::CONFLICT);
    assert!(problem["detail"].as_str().unwrap().contains("cancelled"));

    // Waiting for 3-D Secure is unpaid too.
    let pending = app.order(&app.buyer, 1100).await;
    let pending_id = app.payment_of(pending).await;
    app.confirm(&app.buyer, pending_id, "k3", THREE_DS)
        .await
        .ok();
    assert!(app.deliver(&cancelled(pending)).await.unwrap());
    assert_eq!(app.status(pending_id).await, "cancelled");
    app.authenticate(&app.buyer, pending_id, "approve")
        .await
        .problem(StatusCode::CONFLICT);

    // A paid one stays paid: the order answers a late payment with a refund request.
    let paid = app.order(&app.buyer, 1200).await;
    let paid_id = app.payment_of(paid).await;
    app.confirm(&app.buyer, paid_id, "k2", GOOD).await.ok();
    assert!(app.deliver(&cancelled(paid)).await.unwrap());
    assert_eq!(app.status(paid_id).await, "succeeded");
    assert_eq!(app.ledger(paid_id).await.len(), 1);
    assert_eq!(app.violations().await, []);
}

#[tokio::test]
async fn a_cancellation_before_the_intent_makes_it_born_cancelled() {
    let app = TestApp::new().await;
    let order_id = Uuid::now_v7();
    // order.awaiting_payment was retried and overtaken by order.cancelled.
    assert!(app.deliver(&cancelled(order_id)).await.unwrap());
    assert_eq!(app.count("SELECT count(*) FROM payments").await, 0);
    let envelope = awaiting_payment(order_id, app.buyer.id, 700, "USD");
    assert!(app.deliver(&envelope).await.unwrap());
    let id = app.payment_of(order_id).await;
    assert_eq!(app.status(id).await, "cancelled");
    app.confirm(&app.buyer, id, "k", GOOD)
        .await
        .problem(StatusCode::CONFLICT);
    assert!(app.ledger(id).await.is_empty());
}

#[tokio::test]
async fn events_out_of_order_change_nothing_wrong() {
    let app = TestApp::new().await;
    // A refund request for an order without a payment, or with an unpaid one: nothing.
    let order_id = Uuid::now_v7();
    assert!(app.deliver(&refund_requested(order_id)).await.unwrap());
    assert_eq!(app.count("SELECT count(*) FROM payments").await, 0);
    let envelope = awaiting_payment(order_id, app.buyer.id, 900, "USD");
    assert!(app.deliver(&envelope).await.unwrap());
    let id = app.payment_of(order_id).await;
    assert!(app.deliver(&refund_requested(order_id)).await.unwrap());
    assert_eq!(app.status(id).await, "requires_payment_method");
    assert!(app.ledger(id).await.is_empty());

    // A failed payment holds nothing to refund and nothing to cancel.
    app.confirm(&app.buyer, id, "k", crate::helpers::DECLINED)
        .await
        .ok();
    assert!(app.deliver(&refund_requested(order_id)).await.unwrap());
    assert!(app.deliver(&cancelled(order_id)).await.unwrap());
    assert_eq!(app.status(id).await, "failed");

    // A late awaiting_payment for an order that has been paid and refunded changes nothing.
    let paid = app.order(&app.buyer, 1300).await;
    let paid_id = app.payment_of(paid).await;
    app.confirm(&app.buyer, paid_id, "k2", GOOD).await.ok();
    assert!(app.deliver(&refund_requested(paid)).await.unwrap());
    assert!(
        app.deliver(&awaiting_payment(paid, app.buyer.id, 1300, "USD"))
            .await
            .unwrap()
    );
    assert!(app.deliver(&cancelled(paid)).await.unwrap());
    assert_eq!(app.status(paid_id).await, "refunded");
    assert_eq!(app.ledger(paid_id).await.len(), 2);
    assert!(app.events("payment.refunded").await.len() == 1);
    assert_eq!(app.violations().await, []);
}

#[tokio::test]
async fn a_payment_being_processed_makes_cancellation_and_refund_wait() {
    let app = TestApp::new().await;
    let order_id = app.order(&app.buyer, 900).await;
    let id = app.payment_of(order_id).await;
    app.interrupted(id, std::time::Duration::ZERO).await;
    for message in [cancelled(order_id), refund_requested(order_id)] {
        let outcome = app.deliver(&message).await;
        assert!(
            matches!(outcome, Err(HandlerError::Retry(_))),
            "{outcome:?}"
        );
        // Not in the inbox: the retry will run the handler.
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
            .bind(message.id)
            .fetch_one(app.pool())
            .await
            .unwrap();
        assert_eq!(seen, 0);
    }
    assert_eq!(app.status(id).await, "processing");
}

#[tokio::test]
async fn malformed_events_are_rejected_for_parking() {
    let app = TestApp::new().await;
    let bad = [
        awaiting_payment(Uuid::now_v7(), app.buyer.id, 0, "USD"),
        awaiting_payment(Uuid::now_v7(), app.buyer.id, 100, "usd"),
        Envelope::new(
            "order",
            "order.awaiting_payment",
            json!({"order_id": "x", "user_id": app.buyer.id, "currency": "USD", "total_minor": 1}),
        ),
        Envelope::new("order", "order.cancelled", json!({"reason": "no id"})),
    ];
    for envelope in &bad {
        let outcome = app.deliver(envelope).await;
        assert!(
            matches!(outcome, Err(HandlerError::Reject(_))),
            "{outcome:?}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM payments").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM inbox").await, 0);
}
