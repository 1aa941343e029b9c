//! Notifications end to end: the checkout services and the notification service as
//! processes over a real PostgreSQL and RabbitMQ, the outbox provider (no keys). A buyer
//! registered (the user service's `user.registered`, published as it would) pays an
//! order with the test gateway: exactly one order confirmation lands in the outbox,
//! addressed to the buyer, with the order's items and total — even after every event
//! of the order is delivered again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use shopkit::events::Envelope;
use testbed::flows::{Buyer, CARD_OK};
use testbed::{Options, Testbed};

const WITHIN: Duration = Duration::from_secs(20);

/// The order confirmations in the outbox, as the admin API lists them.
async fn confirmations(bed: &Testbed) -> Vec<Value> {
    let admin = bed.admin_token();
    let page = bed
        .call(
            Method::GET,
            "notification",
            "/messages?kind=order_confirmation",
            Some(&admin),
            None,
            &[],
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_order_paid_with_the_test_gateway_makes_one_confirmation_for_the_buyer() {
    let bed = Testbed::start(Options::default()).await.unwrap();
    bed.product("MUG-NTF", 1299, 5).await.unwrap();

    // The buyer's account, as the user service announces it.
    let claims = bed.issuer.claims(&["customer"], Duration::from_secs(600));
    let buyer = Buyer {
        token: bed.issuer.signer.sign(&claims).unwrap(),
    };
    let email = "buyer@example.com";
    bed.republish(&[Envelope::new(
        "user",
        "user.registered",
        json!({"user_id": claims.sub, "email": email, "verification_token": "tok",
               "verification_expires_at": "2030-01-01T00:00:00Z"}),
    )])
    .await
    .unwrap();

    let cart = bed.cart(&buyer).await.unwrap();
    bed.add_to_cart(&buyer, cart, "MUG-NTF", 2)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let placed = bed
        .place_order(&buyer, cart, &uuid::Uuid::now_v7().to_string())
        .await
        .unwrap()
        .ok()
        .unwrap();
    let order: uuid::Uuid = serde_json::from_value(placed["id"].clone()).unwrap();
    bed.wait_order(&buyer, order, &["awaiting_payment"], WITHIN)
        .await
        .unwrap();
    let payment = bed.payment_of(&buyer, order, WITHIN).await.unwrap();
    bed.pay(&buyer, payment["id"].as_str().unwrap(), CARD_OK)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let paid = bed
        .wait_order(&buyer, order, &["paid"], WITHIN)
        .await
        .unwrap();
    assert_eq!(paid["status"], "paid", "{}", bed.logs());

    // The confirmation is made on order.paid and sent through the outbox.
    let deadline = tokio::time::Instant::now() + WITHIN;
    let sent = loop {
        let found = confirmations(&bed).await;
        if found.iter().any(|m| m["status"] == "sent") {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no confirmation sent: {found:?}\n{}",
            bed.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sent.len(), 1, "{sent:?}");
    let m = &sent[0];
    assert_eq!(m["recipient"], email);
    assert_eq!(m["channel"], "email");
    assert_eq!(m["provider"], "outbox");
    assert_eq!(m["user_id"], json!(claims.sub));
    let text = m["body_text"].as_str().unwrap();
    assert!(
        text.contains("2 × Product MUG-NTF (MUG-NTF) at 12.99 USD: 25.98 USD"),
        "{text}"
    );
    assert!(text.contains("Total: 25.98 USD"), "{text}");
    assert!(
        m["body_html"]
            .as_str()
            .unwrap()
            .contains("<strong>25.98 USD</strong>")
    );
    assert!(text.contains(&format!("/orders/{order}")), "{text}");

    // Every event of the order again (a relay that crashed before marking them): still
    // one confirmation.
    let mut events = bed.outbox("order").await.unwrap();
    events.extend(bed.outbox("payment").await.unwrap());
    let duplicates_before = bed.duplicates_seen("notification").await.unwrap();
    bed.republish(&events).await.unwrap();
    let deadline = tokio::time::Instant::now() + WITHIN;
    // Of those, order.created and order.paid are bound to the notification queue.
    while bed.duplicates_seen("notification").await.unwrap() < duplicates_before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the redeliveries did not arrive\n{}",
            bed.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(confirmations(&bed).await.len(), 1);
}
