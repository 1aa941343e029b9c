//! The HTTP API: admin-only messages, the caller's own preferences, clear 4xx answers.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, registered};

#[tokio::test]
async fn messages_are_for_admins_and_filter_by_recipient_and_kind() {
    let app = TestApp::new().await;
    let customer = app.user(&["customer"]);
    app.deliver(&registered(Uuid::now_v7(), "a@example.com"))
        .await;
    app.deliver(&registered(Uuid::now_v7(), "b@example.com"))
        .await;

    app.get(&customer, "/messages")
        .await
        .problem(StatusCode::FORBIDDEN);
    let r = app
        .send(
            axum::http::Request::get("/messages")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    r.problem(StatusCode::UNAUTHORIZED);

    let to_a = app
        .messages("to=a@example.com&kind=email_verification")
        .await;
    assert_eq!(to_a.len(), 1);
    assert_eq!(to_a[0]["recipient"], "a@example.com");
    assert_eq!(app.messages("kind=password_reset").await.len(), 0);

    let page = app.get(&app.admin, "/messages?limit=1").await.ok();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .get(&app.admin, &format!("/messages?limit=1&cursor={cursor}"))
        .await
        .ok();
    assert_eq!(next["items"].as_array().unwrap().len(), 1);
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
    assert!(next.get("next_cursor").is_none());

    let p = app
        .get(&app.admin, "/messages?kind=spam")
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(
        p["detail"].as_str().unwrap().contains("order_confirmation"),
        "{p}"
    );
    app.get(&app.admin, "/messages?limit=0")
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.get(&app.admin, "/messages?colour=red")
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.get(&app.admin, &format!("/messages/{}", Uuid::now_v7()))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn preferences_belong_to_the_caller_and_bad_ones_are_named() {
    let app = TestApp::new().await;
    let a = app.user(&["customer"]);
    let b = app.user(&["customer"]);
    assert_eq!(
        app.get(&a, "/preferences/me").await.ok(),
        json!({"email": true, "sms": false, "phone": null})
    );
    app.put_json(
        &a,
        "/preferences/me",
        &json!({"email": false, "sms": true, "phone": "+15005550006"}),
    )
    .await
    .ok();
    assert_eq!(
        app.get(&a, "/preferences/me").await.ok(),
        json!({"email": false, "sms": true, "phone": "+15005550006"})
    );
    assert_eq!(app.get(&b, "/preferences/me").await.ok()["email"], true);

    let r = app
        .put_json(&a, "/preferences/me", &json!({"email": true, "sms": true}))
        .await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.invalid_fields(), ["phone"]);
    let r = app
        .put_json(
            &a,
            "/preferences/me",
            &json!({"email": true, "sms": false, "phone": "030 123"}),
        )
        .await;
    assert_eq!(r.invalid_fields(), ["phone"]);
    app.put_json(
        &a,
        "/preferences/me",
        &json!({"email": "yes", "sms": false}),
    )
    .await;
    let r = app
        .put_json(&a, "/preferences/me", &json!({"email": true}))
        .await;
    assert!(r.status.is_client_error(), "{}", r.text());
    // Nothing of that changed what was saved.
    assert_eq!(
        app.get(&a, "/preferences/me").await.ok()["phone"],
        "+15005550006"
    );
}

#[tokio::test]
async fn the_service_has_health_metrics_and_openapi() {
    let app = TestApp::new().await;
    let r = app
        .send(
            axum::http::Request::get("/openapi.json")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let doc = r.ok();
    assert!(doc["paths"]["/messages"]["get"].is_object());
    assert!(doc["paths"]["/preferences/me"]["put"].is_object());
    let r = app
        .send(
            axum::http::Request::get("/health/ready")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
