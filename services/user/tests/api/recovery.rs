//! Email verification and password reset: single use, expiring, and silent about
//! unknown emails.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;
use user::outbox::types;

use crate::helpers::{OTHER_PASSWORD, PASSWORD, TestApp};

async fn verification_token(app: &TestApp, event_type: &str) -> String {
    let events = app.events(event_type).await;
    events.last().unwrap()["data"]["verification_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn reset_token(app: &TestApp) -> String {
    let events = app.events(types::PASSWORD_RESET_REQUESTED).await;
    events.last().unwrap()["data"]["reset_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_verification_token_works_once() {
    let app = TestApp::new().await;
    let access = app.customer("ann@example.com").await;
    let token = verification_token(&app, types::REGISTERED).await;
    let verified = app.post("/email/verify", &json!({"token": token})).await;
    assert_eq!(
        verified.status,
        StatusCode::NO_CONTENT,
        "{}",
        verified.text()
    );
    let me = app.get("/me", Some(&access)).await.ok();
    assert_eq!(me["email_verified"], true);
    let events = app.events(types::EMAIL_VERIFIED).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["email"], "ann@example.com");
    // A second use is refused.
    app.post("/email/verify", &json!({"token": token}))
        .await
        .problem(StatusCode::BAD_REQUEST);
    // Asking for another link once verified is a conflict.
    app.call(
        Method::POST,
        "/me/email/verification",
        Some(&access),
        None,
        Body::empty(),
    )
    .await
    .problem(StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_verification_token_expires_and_a_new_one_replaces_it() {
    let app = TestApp::with(&[("EMAIL_VERIFICATION_TTL_SECS", "600")]).await;
    let access = app.customer("ann@example.com").await;
    let first = verification_token(&app, types::REGISTERED).await;
    let expires_at =
        app.events(types::REGISTERED).await[0]["data"]["verification_expires_at"].clone();
    assert!(expires_at.is_string());
    app.clock.advance(chrono::Duration::seconds(601));
    app.post("/email/verify", &json!({"token": first}))
        .await
        .problem(StatusCode::BAD_REQUEST);

    // A new link; the one before it (had it not expired) would be void too.
    let again = app
        .call(
            Method::POST,
            "/me/email/verification",
            Some(&access),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    let second = verification_token(&app, types::EMAIL_VERIFICATION_REQUESTED).await;
    let again = app
        .call(
            Method::POST,
            "/me/email/verification",
            Some(&access),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    let third = verification_token(&app, types::EMAIL_VERIFICATION_REQUESTED).await;
    assert_ne!(second, third);
    app.post("/email/verify", &json!({"token": second}))
        .await
        .problem(StatusCode::BAD_REQUEST);
    let ok = app.post("/email/verify", &json!({"token": third})).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.text());
}

#[tokio::test]
async fn a_reset_token_sets_a_new_password_once_and_ends_every_session() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let (_, refresh) = app.tokens("ann@example.com", PASSWORD).await;
    let forgot = app
        .post("/password/forgot", &json!({"email": "ANN@example.com"}))
        .await;
    assert_eq!(forgot.status, StatusCode::ACCEPTED);
    let token = reset_token(&app).await;
    let event = &app.events(types::PASSWORD_RESET_REQUESTED).await[0];
    assert_eq!(event["data"]["email"], "ann@example.com");
    assert!(event["data"]["reset_expires_at"].is_string());

    // A password the policy refuses leaves the token usable.
    let weak = app
        .post(
            "/password/reset",
            &json!({"token": token, "new_password": "ann@example.com"}),
        )
        .await;
    assert_eq!(weak.invalid_fields(), ["new_password"]);
    let reset = app
        .post(
            "/password/reset",
            &json!({"token": token, "new_password": OTHER_PASSWORD}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.text());

    app.login("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let (access, _) = app.tokens("ann@example.com", OTHER_PASSWORD).await;
    app.post("/refresh", &json!({"refresh_token": refresh}))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    // The link reached the mailbox, so the email counts as verified.
    assert_eq!(
        app.get("/me", Some(&access)).await.ok()["email_verified"],
        true
    );
    let changed = app.events(types::PASSWORD_CHANGED).await;
    assert_eq!(changed[0]["data"]["via"], "reset");

    // Used up.
    app.post(
        "/password/reset",
        &json!({"token": token, "new_password": "third time lucky"}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST);
    app.tokens("ann@example.com", OTHER_PASSWORD).await;
}

#[tokio::test]
async fn a_reset_token_expires() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    app.post("/password/forgot", &json!({"email": "ann@example.com"}))
        .await
        .ok();
    let token = reset_token(&app).await;
    app.clock.advance(chrono::Duration::minutes(60));
    app.post(
        "/password/reset",
        &json!({"token": token, "new_password": OTHER_PASSWORD}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST);
    app.login("ann@example.com", PASSWORD).await.ok();
}

#[tokio::test]
async fn forgetting_an_unknown_email_looks_the_same_and_sends_nothing() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let known = app
        .post("/password/forgot", &json!({"email": "ann@example.com"}))
        .await;
    let unknown = app
        .post("/password/forgot", &json!({"email": "nobody@example.com"}))
        .await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body);
    assert_eq!(app.events(types::PASSWORD_RESET_REQUESTED).await.len(), 1);
    // A second request within a minute sends no second email; later it does, and only
    // the newest link works.
    let first = reset_token(&app).await;
    app.post("/password/forgot", &json!({"email": "ann@example.com"}))
        .await
        .ok();
    assert_eq!(app.events(types::PASSWORD_RESET_REQUESTED).await.len(), 1);
    app.clock.advance(chrono::Duration::seconds(61));
    app.post("/password/forgot", &json!({"email": "ann@example.com"}))
        .await
        .ok();
    assert_eq!(app.events(types::PASSWORD_RESET_REQUESTED).await.len(), 2);
    let second = reset_token(&app).await;
    app.post(
        "/password/reset",
        &json!({"token": first, "new_password": OTHER_PASSWORD}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST);
    let ok = app
        .post(
            "/password/reset",
            &json!({"token": second, "new_password": OTHER_PASSWORD}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn tokens_of_one_purpose_do_not_work_for_the_other() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let verification = verification_token(&app, types::REGISTERED).await;
    app.post(
        "/password/reset",
        &json!({"token": verification, "new_password": OTHER_PASSWORD}),
    )
    .await
    .problem(StatusCode::BAD_REQUEST);
    app.post("/password/forgot", &json!({"email": "ann@example.com"}))
        .await
        .ok();
    let reset = reset_token(&app).await;
    app.post("/email/verify", &json!({"token": reset}))
        .await
        .problem(StatusCode::BAD_REQUEST);
    // Both still work for their own purpose.
    let ok = app
        .post("/email/verify", &json!({"token": verification}))
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    let ok = app
        .post(
            "/password/reset",
            &json!({"token": reset, "new_password": OTHER_PASSWORD}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn concurrent_uses_of_one_token_succeed_once() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    app.post("/password/forgot", &json!({"email": "ann@example.com"}))
        .await
        .ok();
    let token = reset_token(&app).await;
    let mut handles = Vec::new();
    for i in 0..8 {
        let router = app.router.clone();
        let body = json!({"token": token, "new_password": format!("parallel phrase {i}")});
        handles.push(tokio::spawn(async move {
            let request = crate::helpers::request(
                Method::POST,
                "/password/reset",
                None,
                Some("application/json"),
                serde_json::to_vec(&body).unwrap(),
            );
            TestApp::send_to(&router, request).await.status
        }));
    }
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap());
    }
    let done = statuses
        .iter()
        .filter(|s| **s == StatusCode::NO_CONTENT)
        .count();
    assert_eq!(done, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::BAD_REQUEST)
    );
    assert_eq!(app.events(types::PASSWORD_CHANGED).await.len(), 1);
}
