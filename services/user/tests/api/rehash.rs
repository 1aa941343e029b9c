//! A hash made with weaker argon2 parameters is replaced at the next log-in.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

async fn stored_hash(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE email = 'ann@example.com'")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn raising_the_parameters_rehashes_on_the_next_login() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let before = stored_hash(&app).await;
    assert!(
        before.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{before}"
    );

    // Logging in with unchanged parameters leaves the hash alone.
    app.login("ann@example.com", PASSWORD).await.ok();
    assert_eq!(stored_hash(&app).await, before);

    // The operator raises the parameters; a replica with the new settings serves.
    let raised = app.replica(&[("ARGON2_MEMORY_KIB", "256"), ("ARGON2_ITERATIONS", "2")]);
    let login = |password: &str| {
        crate::helpers::request(
            Method::POST,
            "/login",
            None,
            Some("application/json"),
            serde_json::to_vec(&json!({"email": "ann@example.com", "password": password})).unwrap(),
        )
    };
    // A wrong password never rehashes.
    let wrong = TestApp::send_to(&raised, login("not the password")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stored_hash(&app).await, before);

    let ok = TestApp::send_to(&raised, login(PASSWORD)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let after = stored_hash(&app).await;
    assert!(
        after.starts_with("$argon2id$v=19$m=256,t=2,p=1$"),
        "{after}"
    );
    assert_ne!(after, before);

    // Stable from then on, and the old replica (lower parameters) still verifies it
    // without downgrading it.
    assert_eq!(
        TestApp::send_to(&raised, login(PASSWORD)).await.status,
        StatusCode::OK
    );
    assert_eq!(stored_hash(&app).await, after);
    app.login("ann@example.com", PASSWORD).await.ok();
    assert_eq!(stored_hash(&app).await, after);

    let metrics = app
        .call(Method::GET, "/metrics", None, None, Body::empty())
        .await
        .text();
    assert!(
        metrics.contains("user_password_rehashes_total"),
        "{metrics}"
    );
}
