//! The `order` consumer: each event through shopkit's inbox, as the broker delivers it —
//! in order, twice, out of order, and the compensations.

use serde_json::{Value, json};
use shopkit::events::{Envelope, HandlerError};

use crate::helpers::{TestApp, feed};

/// The order's transitions as `(from, to, cause)`.
async fn history(app: &TestApp, id: &Value) -> Vec<(Value, String, String)> {
    app.detail(id).await["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].clone(),
                t["to"].as_str().unwrap().to_owned(),
                t["cause"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What the service has recorded: transitions, events, refund requests.
async fn effects(app: &TestApp) -> [i64; 3] {
    [
        app.count("order_transitions").await,
        app.count("outbox").await,
        app.count("refund_requests").await,
    ]
}

async fn placed(app: &TestApp) -> (Value, i64) {
    let buyer = app.customer();
    let order = app.order(&buyer, &[("A-1", 2), ("B-1", 1)]).await;
    (order["id"].clone(), order["total_minor"].as_i64().unwrap())
}

async fn awaiting_payment(app: &TestApp) -> (Value, i64) {
    let (id, total) = placed(app).await;
    app.handle("catalog", "inventory.reserved", feed::reserved(&id))
        .await;
    (id, total)
}

async fn paid(app: &TestApp, payment_id: &str) -> (Value, i64) {
    let (id, total) = awaiting_payment(app).await;
    app.handle(
        "payment",
        "payment.succeeded",
        feed::succeeded(&id, payment_id, total),
    )
    .await;
    (id, total)
}

#[tokio::test]
async fn the_happy_path_moves_the_order_and_announces_each_step() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    let order = app.order(&buyer, &[("A-1", 2)]).await;
    let id = order["id"].clone();
    let reserved = app
        .handle("catalog", "inventory.reserved", feed::reserved(&id))
        .await;
    assert_eq!(app.status(&id).await, "awaiting_payment");
    let awaiting = app.events_of("order.awaiting_payment").await;
    assert_eq!(awaiting.len(), 1);
    assert_eq!(
        awaiting[0].data,
        json!({"order_id": id, "user_id": buyer.id, "currency": "USD", "total_minor": 2000})
    );

    let succeeded = app
        .handle(
            "payment",
            "payment.succeeded",
            feed::succeeded(&id, "pay-1", 2000),
        )
        .await;
    let detail = app.detail(&id).await;
    assert_eq!(detail["status"], "paid");
    assert_eq!(detail["payment"]["payment_id"], "pay-1");
    assert_eq!(detail["payment"]["amount_minor"], 2000);
    assert_eq!(detail["payment"]["currency"], "USD");
    let paid = app.events_of("order.paid").await;
    assert_eq!(paid.len(), 1);
    assert_eq!(
        paid[0].data,
        json!({"order_id": id, "user_id": buyer.id, "cart_id": order["cart_id"],
               "currency": "USD", "total_minor": 2000})
    );
    let transitions = detail["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 3);
    assert_eq!(transitions[1]["from"], "pending");
    assert_eq!(transitions[1]["to"], "awaiting_payment");
    assert_eq!(transitions[1]["cause"], "stock_reserved");
    assert_eq!(transitions[1]["event_id"], reserved.id.to_string());
    assert_eq!(transitions[2]["to"], "paid");
    assert_eq!(transitions[2]["event_id"], succeeded.id.to_string());

    app.handle(
        "payment",
        "payment.refunded",
        feed::refunded(&id, "pay-1", 2000),
    )
    .await;
    assert_eq!(app.status(&id).await, "refunded");
}

#[tokio::test]
async fn cancellations_record_their_reason_and_announce_it() {
    let app = TestApp::new().await;
    let cases = [
        ("catalog", "inventory.rejected", "out_of_stock", false),
        ("catalog", "inventory.expired", "reservation_expired", false),
        ("catalog", "inventory.expired", "reservation_expired", true),
        ("payment", "payment.failed", "payment_declined", true),
    ];
    for (source, event_type, reason, after_reservation) in cases {
        let (id, _) = if after_reservation {
            awaiting_payment(&app).await
        } else {
            placed(&app).await
        };
        let data = match event_type {
            "inventory.rejected" => feed::rejected(&id, &["A-1"]),
            "payment.failed" => feed::failed(&id, "pay-x"),
            _ => feed::expired(&id),
        };
        app.handle(source, event_type, data).await;
        let detail = app.detail(&id).await;
        assert_eq!(detail["status"], "cancelled", "{event_type}");
        assert_eq!(detail["cancellation_reason"], reason, "{event_type}");
        let last = detail["transitions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["cause"], reason);
        let cancelled: Vec<_> = app
            .events_of("order.cancelled")
            .await
            .into_iter()
            .filter(|e| e.data["order_id"] == id)
            .collect();
        assert_eq!(cancelled.len(), 1, "{event_type}");
        assert_eq!(cancelled[0].data, json!({"order_id": id, "reason": reason}));
    }
}

/// Delivers `event` again (the inbox stops it) and then the same news under a new
/// message id (only the state machine can stop that): neither changes anything.
async fn twice(app: &TestApp, event: &Envelope) {
    let before = effects(app).await;
    assert!(
        !app.deliver(event).await.unwrap(),
        "{} redelivered",
        event.event_type
    );
    let again = Envelope::new(&event.source, &event.event_type, event.data.clone());
    assert!(app.deliver(&again).await.unwrap());
    assert_eq!(
        effects(app).await,
        before,
        "{} applied twice",
        event.event_type
    );
}

#[tokio::test]
async fn every_event_delivered_twice_changes_the_order_once() {
    let app = TestApp::new().await;

    let (id, total) = placed(&app).await;
    let event = app
        .handle("catalog", "inventory.reserved", feed::reserved(&id))
        .await;
    twice(&app, &event).await;
    let event = app
        .handle(
            "payment",
            "payment.succeeded",
            feed::succeeded(&id, "p1", total),
        )
        .await;
    twice(&app, &event).await;
    let event = app
        .handle(
            "payment",
            "payment.refunded",
            feed::refunded(&id, "p1", total),
        )
        .await;
    twice(&app, &event).await;
    assert_eq!(history(&app, &id).await.len(), 4);

    let (id, _) = placed(&app).await;
    let event = app
        .handle(
            "catalog",
            "inventory.rejected",
            feed::rejected(&id, &["A-1"]),
        )
        .await;
    twice(&app, &event).await;

    let (id, _) = awaiting_payment(&app).await;
    let event = app
        .handle("catalog", "inventory.expired", feed::expired(&id))
        .await;
    twice(&app, &event).await;

    let (id, _) = awaiting_payment(&app).await;
    let event = app
        .handle("payment", "payment.failed", feed::failed(&id, "p2"))
        .await;
    twice(&app, &event).await;
    assert_eq!(app.events_of("order.cancelled").await.len(), 3);
}

#[tokio::test]
async fn events_that_do_not_fit_the_status_change_nothing() {
    let app = TestApp::new().await;
    let (id, total) = placed(&app).await;
    let before = effects(&app).await;
    // Pending: payment news and a refund are early.
    app.handle(
        "payment",
        "payment.succeeded",
        feed::succeeded(&id, "p1", total),
    )
    .await;
    app.handle("payment", "payment.failed", feed::failed(&id, "p1"))
        .await;
    app.handle(
        "payment",
        "payment.refunded",
        feed::refunded(&id, "p1", total),
    )
    .await;
    assert_eq!(effects(&app).await, before);
    assert_eq!(app.status(&id).await, "pending");

    // Awaiting payment: a late rejection and a second reservation are stale.
    app.handle("catalog", "inventory.reserved", feed::reserved(&id))
        .await;
    let before = effects(&app).await;
    app.handle(
        "catalog",
        "inventory.rejected",
        feed::rejected(&id, &["A-1"]),
    )
    .await;
    app.handle("catalog", "inventory.reserved", feed::reserved(&id))
        .await;
    assert_eq!(effects(&app).await, before);
    assert_eq!(app.status(&id).await, "awaiting_payment");

    // Paid: the stock news and a failed payment attempt are too late.
    app.handle(
        "payment",
        "payment.succeeded",
        feed::succeeded(&id, "p1", total),
    )
    .await;
    let before = effects(&app).await;
    for (source, event_type, data) in [
        ("catalog", "inventory.reserved", feed::reserved(&id)),
        (
            "catalog",
            "inventory.rejected",
            feed::rejected(&id, &["A-1"]),
        ),
        ("catalog", "inventory.expired", feed::expired(&id)),
        ("payment", "payment.failed", feed::failed(&id, "p1")),
    ] {
        app.handle(source, event_type, data).await;
    }
    assert_eq!(effects(&app).await, before);
    assert_eq!(app.status(&id).await, "paid");

    // An order this service never placed, and an event type it does not handle.
    let stranger = json!(uuid::Uuid::now_v7());
    app.handle("catalog", "inventory.reserved", feed::reserved(&stranger))
        .await;
    app.handle(
        "catalog",
        "inventory.changed",
        json!({"sku": "A-1", "available": 3}),
    )
    .await;
    assert_eq!(effects(&app).await, before);
}

#[tokio::test]
async fn money_for_an_order_cancelled_meanwhile_is_sent_back() {
    let app = TestApp::new().await;
    let (id, total) = awaiting_payment(&app).await;
    app.handle("catalog", "inventory.expired", feed::expired(&id))
        .await;
    let before = app.count("order_transitions").await;
    let late = app
        .handle(
            "payment",
            "payment.succeeded",
            feed::succeeded(&id, "late-pay", total),
        )
        .await;
    let detail = app.detail(&id).await;
    assert_eq!(detail["status"], "cancelled");
    assert_eq!(detail["cancellation_reason"], "reservation_expired");
    assert_eq!(detail["payment"], json!(null));
    assert_eq!(app.count("order_transitions").await, before);
    let refunds = detail["refund_requests"].as_array().unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["payment_id"], "late-pay");
    assert_eq!(refunds[0]["reason"], "cancelled_before_payment");
    assert_eq!(refunds[0]["amount_minor"], total);
    let requested = app.events_of("order.refund_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(
        requested[0].data,
        json!({"order_id": id, "reason": "cancelled_before_payment", "payment_id": "late-pay",
               "amount_minor": total, "currency": "USD"})
    );
    twice(&app, &late).await;

    // The refund arrives: the order stays cancelled (it was never paid with that money).
    let before = effects(&app).await;
    app.handle(
        "payment",
        "payment.refunded",
        feed::refunded(&id, "late-pay", total),
    )
    .await;
    assert_eq!(effects(&app).await, before);
    assert_eq!(app.status(&id).await, "cancelled");
}

#[tokio::test]
async fn a_payment_of_the_wrong_amount_does_not_pay_the_order() {
    let app = TestApp::new().await;
    let (id, total) = awaiting_payment(&app).await;
    app.handle(
        "payment",
        "payment.succeeded",
        feed::succeeded(&id, "short", total - 1),
    )
    .await;
    let mut euros = feed::succeeded(&id, "euros", total);
    euros["currency"] = json!("EUR");
    app.handle("payment", "payment.succeeded", euros).await;
    let detail = app.detail(&id).await;
    assert_eq!(detail["status"], "awaiting_payment");
    assert_eq!(detail["payment"], json!(null));
    assert!(app.events_of("order.paid").await.is_empty());
    let requested = app.events_of("order.refund_requested").await;
    let reasons: Vec<_> = requested.iter().map(|e| e.data["reason"].clone()).collect();
    assert_eq!(
        reasons,
        [json!("amount_mismatch"), json!("amount_mismatch")]
    );
    assert_eq!(requested[0].data["amount_minor"], total - 1);
    assert_eq!(requested[1].data["currency"], "EUR");

    // The right payment still pays it.
    app.handle(
        "payment",
        "payment.succeeded",
        feed::succeeded(&id, "right", total),
    )
    .await;
    assert_eq!(app.status(&id).await, "paid");
}

#[tokio::test]
async fn a_second_payment_is_refunded_and_its_refund_leaves_the_order_paid() {
    let app = TestApp::new().await;
    let (id, total) = paid(&app, "first").await;
    app.handle(
        "payment",
        "payment.succeeded",
        feed::succeeded(&id, "second", total),
    )
    .await;
    let requested = app.events_of("order.refund_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].data["reason"], "duplicate_payment");
    assert_eq!(requested[0].data["payment_id"], "second");
    app.handle(
        "payment",
        "payment.refunded",
        feed::refunded(&id, "second", total),
    )
    .await;
    let detail = app.detail(&id).await;
    assert_eq!(detail["status"], "paid");
    assert_eq!(detail["payment"]["payment_id"], "first");
}

#[tokio::test]
async fn malformed_data_is_rejected_and_changes_nothing() {
    let app = TestApp::new().await;
    let (id, _) = placed(&app).await;
    let before = effects(&app).await;
    for (event_type, data) in [
        ("inventory.reserved", json!({"order": id})),
        ("inventory.expired", json!({"order_id": "not-a-uuid"})),
        (
            "payment.succeeded",
            json!({"order_id": id, "payment_id": "p", "currency": "USD"}),
        ),
    ] {
        let event = Envelope::new("x", event_type, data);
        let err = app.deliver(&event).await.unwrap_err();
        assert!(
            matches!(err, HandlerError::Reject(_)),
            "{event_type}: {err}"
        );
    }
    assert_eq!(effects(&app).await, before);
    assert_eq!(app.count("inbox").await, 0);
}

#[tokio::test]
async fn a_redelivered_event_racing_itself_is_applied_once() {
    let app = TestApp::new().await;
    let (id, _) = placed(&app).await;
    // The same news under two message ids, delivered at the same moment.
    let first = Envelope::new("catalog", "inventory.reserved", feed::reserved(&id));
    let second = Envelope::new("catalog", "inventory.reserved", feed::reserved(&id));
    let (a, b) = tokio::join!(app.deliver(&first), app.deliver(&second));
    assert!(a.unwrap() && b.unwrap());
    assert_eq!(history(&app, &id).await.len(), 2);
    assert_eq!(app.events_of("order.awaiting_payment").await.len(), 1);
}
