//! The events: each makes its messages once, however often it arrives; preferences and
//! transactional kinds decide who gets what.

use axum::http::StatusCode;
use serde_json::json;
use shopkit::events::{Envelope, HandlerError};
use uuid::Uuid;

use crate::helpers::{TestApp, order_created, order_paid, registered};

#[tokio::test]
async fn the_same_event_delivered_twice_makes_one_message() {
    let app = TestApp::new().await;
    let buyer = app.user(&["customer"]);
    let order = Uuid::now_v7();
    app.deliver(&registered(buyer.id, "buyer@example.com"))
        .await;
    app.deliver(&order_created(order, buyer.id)).await;
    let paid = order_paid(order, buyer.id);
    assert!(app.deliver(&paid).await);
    assert!(
        !app.deliver(&paid).await,
        "the inbox answers the redelivery"
    );
    // Even past the inbox (a replay after the inbox row was pruned), the unique row per
    // event and channel holds.
    let mut conn = app.pool().acquire().await.unwrap();
    let made = app.handler.apply(&mut conn, &paid).await.unwrap();
    assert!(made.messages.is_empty(), "{made:?}");
    drop(conn);

    let confirmations = app.messages("kind=order_confirmation").await;
    assert_eq!(confirmations.len(), 1);
    let m = &confirmations[0];
    assert_eq!(m["recipient"], "buyer@example.com");
    assert_eq!(m["channel"], "email");
    assert_eq!(m["status"], "pending");
    assert_eq!(m["event_id"], paid.id.to_string());
    let text = m["body_text"].as_str().unwrap();
    assert!(
        text.contains("2 × Mug (MUG-1) at 12.99 USD: 25.98 USD"),
        "{text}"
    );
    assert!(
        text.contains("1 × TEE-M (TEE-M) at 11.99 USD: 11.99 USD"),
        "{text}"
    );
    assert!(text.contains("Total: 37.97 USD"), "{text}");
    assert!(
        m["body_html"]
            .as_str()
            .unwrap()
            .contains("<td>Mug <small>(MUG-1)</small></td>")
    );
    assert!(
        m["subject"]
            .as_str()
            .unwrap()
            .starts_with("Your Example Shop order ")
    );
    // No SMS: the buyer never opted in.
    assert!(app.messages("channel=sms").await.is_empty());
}

#[tokio::test]
async fn account_emails_are_sent_regardless_and_order_emails_follow_the_opt_in() {
    let app = TestApp::new().await;
    let buyer = app.user(&["customer"]);
    let r = app
        .put_json(
            &buyer,
            "/preferences/me",
            &json!({"email": false, "sms": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    app.deliver(&registered(buyer.id, "buyer@example.com"))
        .await;
    let reset = Envelope::new(
        "user",
        "user.password_reset_requested",
        json!({"user_id": buyer.id, "email": "buyer@example.com", "reset_token": "r/1 2",
               "reset_expires_at": "2030-01-01T12:00:00Z"}),
    );
    app.deliver(&reset).await;
    let order = Uuid::now_v7();
    app.deliver(&order_created(order, buyer.id)).await;
    app.deliver(&order_paid(order, buyer.id)).await;

    let kinds: Vec<String> = app
        .messages("")
        .await
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["password_reset", "email_verification"]);
    let reset = &app.messages("kind=password_reset").await[0];
    let text = reset["body_text"].as_str().unwrap();
    assert!(
        text.contains("https://shop.example/account/reset-password?token=r%2F1%202"),
        "{text}"
    );
    assert!(text.contains("2030-01-01 12:00 UTC"), "{text}");
    let verify = &app.messages("kind=email_verification").await[0];
    assert!(
        verify["body_text"]
            .as_str()
            .unwrap()
            .contains("token=tok-123")
    );
}

#[tokio::test]
async fn texts_go_to_customers_who_opted_in_with_a_phone() {
    let app = TestApp::new().await;
    let buyer = app.user(&["customer"]);
    let r = app
        .put_json(
            &buyer,
            "/preferences/me",
            &json!({"email": true, "sms": true, "phone": "+49 30 1234567"}),
        )
        .await;
    assert_eq!(r.ok()["phone"], "+49301234567");
    app.deliver(&registered(buyer.id, "buyer@example.com"))
        .await;
    let order = Uuid::now_v7();
    app.deliver(&order_created(order, buyer.id)).await;
    app.deliver(&order_paid(order, buyer.id)).await;
    app.deliver(&Envelope::new(
        "order",
        "order.fulfilled",
        json!({"order_id": order}),
    ))
    .await;

    let sms = app.messages("channel=sms").await;
    let kinds: Vec<&str> = sms.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["order_shipped", "order_confirmation"]);
    assert!(
        sms.iter()
            .all(|m| m["recipient"] == "+49301234567" && m["subject"].is_null())
    );
    assert!(
        sms[1]["body_text"]
            .as_str()
            .unwrap()
            .ends_with("confirmed, 37.97 USD paid. Thank you!")
    );
    assert_eq!(
        app.messages("kind=order_shipped&channel=email").await.len(),
        1
    );
}

#[tokio::test]
async fn payment_and_refund_events_reach_the_buyer_and_unknown_orders_are_retried() {
    let app = TestApp::new().await;
    let buyer = Uuid::now_v7();
    let order = Uuid::now_v7();
    let failed = Envelope::new(
        "payment",
        "payment.failed",
        json!({"order_id": order, "payment_id": Uuid::now_v7(), "reason": "card_declined"}),
    );
    // Before order.created: a retry, and nothing recorded (the inbox row rolls back).
    let err = shopkit::events::handle_once(app.pool(), "notification", &app.handler, &failed)
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::Retry(_)), "{err}");
    app.deliver(&registered(buyer, "buyer@example.com")).await;
    app.deliver(&order_created(order, buyer)).await;
    assert!(app.deliver(&failed).await);
    let m = &app.messages("kind=payment_failed").await[0];
    assert!(
        m["body_text"]
            .as_str()
            .unwrap()
            .contains("did not go through (card declined)")
    );

    app.deliver(&Envelope::new(
        "payment",
        "payment.refunded",
        json!({"order_id": order, "payment_id": Uuid::now_v7(), "amount_minor": 3797, "currency": "USD"}),
    ))
    .await;
    let m = &app.messages("kind=refund").await[0];
    assert!(
        m["body_text"]
            .as_str()
            .unwrap()
            .contains("we refunded 37.97 USD")
    );

    // Malformed data can never succeed: rejected (parked), not retried.
    let bad = Envelope::new("order", "order.created", json!({"order_id": "nope"}));
    let err = shopkit::events::handle_once(app.pool(), "notification", &app.handler, &bad)
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::Reject(_)), "{err}");
}
