//! The back office: role admin (401 without a token, 403 without the role), listings by
//! status, fulfil, cancel, refund.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, feed};

async fn paid_order(app: &TestApp) -> Value {
    let buyer = app.customer();
    let order = app.order(&buyer, &[("A-1", 1)]).await;
    let id = order["id"].clone();
    app.handle("catalog", "inventory.reserved", feed::reserved(&id))
        .await;
    app.handle(
        "payment",
        "payment.succeeded",
        feed::succeeded(&id, "pay-1", 1000),
    )
    .await;
    id
}

fn uri(id: &Value, action: &str) -> String {
    format!("/admin/orders/{}/{action}", id.as_str().unwrap())
}

#[tokio::test]
async fn admin_routes_need_a_token_with_the_admin_role() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    let order = app.order(&buyer, &[("A-1", 1)]).await;
    let id = &order["id"];
    let routes = [
        ("GET", "/admin/orders".to_owned()),
        ("POST", uri(id, "fulfil")),
        ("POST", uri(id, "cancel")),
        ("POST", uri(id, "refund")),
    ];
    for (method, path) in &routes {
        for (token, status) in [
            (None, StatusCode::UNAUTHORIZED),
            (Some(buyer.token.as_str()), StatusCode::FORBIDDEN),
        ] {
            let response = match *method {
                "GET" => app.get(path, token).await,
                _ => app.post(path, token).await,
            };
            response.problem(status);
        }
    }
    assert_eq!(app.status(id).await, "pending");
    let listed = app.get("/admin/orders", Some(&app.admin.token)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()["items"][0]["id"], *id);
}

#[tokio::test]
async fn the_admin_listing_filters_by_status() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    let pending = app.order(&buyer, &[("A-1", 1)]).await["id"].clone();
    let paid = paid_order(&app).await;
    let admin = Some(app.admin.token.as_str());
    let all = app.get("/admin/orders", admin).await.ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(all["items"][0]["id"], paid);
    let only_paid = app.get("/admin/orders?status=paid", admin).await.ok();
    let ids: Vec<_> = only_paid["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, [paid]);
    let page = app
        .get("/admin/orders?status=pending&limit=1", admin)
        .await
        .ok();
    assert_eq!(page["items"][0]["id"], pending);
    assert!(page.get("next_cursor").is_none());
    let none = app.get("/admin/orders?status=refunded", admin).await.ok();
    assert_eq!(none["items"], json!([]));
    let bad = app.get("/admin/orders?status=shipped", admin).await;
    let problem = bad.problem(StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"].as_str().unwrap().contains("shipped"),
        "{problem}"
    );
}

#[tokio::test]
async fn fulfilling_needs_a_paid_order_and_announces_it() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    let pending = app.order(&buyer, &[("A-1", 1)]).await["id"].clone();
    let refused = app
        .post(&uri(&pending, "fulfil"), Some(&app.admin.token))
        .await;
    let problem = refused.problem(StatusCode::CONFLICT);
    assert_eq!(
        problem["detail"],
        "an order that is pending cannot be fulfilled"
    );

    let paid = paid_order(&app).await;
    let done = app
        .post(&uri(&paid, "fulfil"), Some(&app.admin.token))
        .await
        .ok();
    assert_eq!(done["status"], "fulfilled");
    let last = done["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["cause"], "fulfilled_by_admin");
    assert_eq!(last["event_id"], json!(null));
    let events = app.events_of("order.fulfilled").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, json!({"order_id": paid}));
    app.post(&uri(&paid, "fulfil"), Some(&app.admin.token))
        .await
        .problem(StatusCode::CONFLICT);
    app.post(
        &uri(&json!(uuid::Uuid::now_v7()), "fulfil"),
        Some(&app.admin.token),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cancelling_works_until_payment_and_is_a_409_after() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    let pending = app.order(&buyer, &[("A-1", 1)]).await["id"].clone();
    let awaiting = app.order(&buyer, &[("A-1", 1)]).await["id"].clone();
    app.handle("catalog", "inventory.reserved", feed::reserved(&awaiting))
        .await;
    for id in [&pending, &awaiting] {
        let done = app
            .post(&uri(id, "cancel"), Some(&app.admin.token))
            .await
            .ok();
        assert_eq!(done["status"], "cancelled");
        assert_eq!(done["cancellation_reason"], "cancelled_by_admin");
    }
    let cancelled = app.events_of("order.cancelled").await;
    assert_eq!(cancelled.len(), 2);
    assert_eq!(
        cancelled[1].data,
        json!({"order_id": awaiting, "reason": "cancelled_by_admin"})
    );

    let paid = paid_order(&app).await;
    let refused = app
        .post(&uri(&paid, "cancel"), Some(&app.admin.token))
        .await;
    let problem = refused.problem(StatusCode::CONFLICT);
    assert_eq!(
        problem["detail"],
        "an order that is paid cannot be cancelled"
    );
    app.post(&uri(&pending, "cancel"), Some(&app.admin.token))
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(app.events_of("order.cancelled").await.len(), 2);
}

#[tokio::test]
async fn two_racing_cancellations_move_the_order_once() {
    let app = Arc::new(TestApp::new().await);
    let buyer = app.customer();
    for _ in 0..5 {
        let id = app.order(&buyer, &[("A-1", 1)]).await["id"].clone();
        let path = uri(&id, "cancel");
        let (a, b) = tokio::join!(
            app.post(&path, Some(&app.admin.token)),
            app.post(&path, Some(&app.admin.token))
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
        let detail = app.detail(&id).await;
        assert_eq!(detail["transitions"].as_array().unwrap().len(), 2);
    }
    assert_eq!(app.events_of("order.cancelled").await.len(), 5);
}

#[tokio::test]
async fn a_refund_is_requested_once_and_lands_with_payment_refunded() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    let pending = app.order(&buyer, &[("A-1", 1)]).await["id"].clone();
    let refused = app
        .post(&uri(&pending, "refund"), Some(&app.admin.token))
        .await;
    let problem = refused.problem(StatusCode::CONFLICT);
    assert_eq!(
        problem["detail"],
        "an order that is pending cannot be refunded"
    );

    let paid = paid_order(&app).await;
    app.post(&uri(&paid, "fulfil"), Some(&app.admin.token))
        .await
        .ok();
    let first = app
        .post(&uri(&paid, "refund"), Some(&app.admin.token))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let body = first.json();
    assert_eq!(body["status"], "fulfilled");
    assert_eq!(body["refund_requests"][0]["reason"], "requested_by_admin");
    let again = app
        .post(&uri(&paid, "refund"), Some(&app.admin.token))
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    let requested = app.events_of("order.refund_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(
        requested[0].data,
        json!({"order_id": paid, "reason": "requested_by_admin", "payment_id": "pay-1",
               "amount_minor": 1000, "currency": "USD"})
    );
    app.handle(
        "payment",
        "payment.refunded",
        feed::refunded(&paid, "pay-1", 1000),
    )
    .await;
    assert_eq!(app.status(&paid).await, "refunded");
    app.post(&uri(&paid, "refund"), Some(&app.admin.token))
        .await
        .problem(StatusCode::CONFLICT);
}
