//! Every endpoint validates its input: malformed JSON, wrong types, unknown fields,
//! overlong strings and oversized bodies are 4xx problem+json, and nothing is written.

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};

/// (method, path, needs a token, a valid-looking body)
fn endpoints() -> Vec<(Method, &'static str, bool, Value)> {
    vec![
        (
            Method::POST,
            "/register",
            false,
            json!({"email": "new@example.com", "password": PASSWORD}),
        ),
        (
            Method::POST,
            "/login",
            false,
            json!({"email": "ann@example.com", "password": PASSWORD}),
        ),
        (
            Method::POST,
            "/refresh",
            false,
            json!({"refresh_token": "x"}),
        ),
        (
            Method::POST,
            "/logout",
            false,
            json!({"refresh_token": "x"}),
        ),
        (Method::POST, "/email/verify", false, json!({"token": "x"})),
        (
            Method::POST,
            "/password/forgot",
            false,
            json!({"email": "ann@example.com"}),
        ),
        (
            Method::POST,
            "/password/reset",
            false,
            json!({"token": "x", "new_password": PASSWORD}),
        ),
        (
            Method::PUT,
            "/me/password",
            true,
            json!({"current_password": PASSWORD, "new_password": "orange paper clip"}),
        ),
        (
            Method::POST,
            "/me/addresses",
            true,
            json!({"kind": "billing", "name": "Ann", "line1": "1 Main St", "city": "Springfield", "country": "US"}),
        ),
    ]
}

#[tokio::test]
async fn malformed_bodies_are_problem_json_and_write_nothing() {
    let app = TestApp::new().await;
    let token = app.customer("ann@example.com").await;
    let before = app.counts().await;
    for (method, path, auth, valid) in endpoints() {
        let token = auth.then_some(token.as_str());
        let mut cases: Vec<(String, Option<&str>, Vec<u8>)> = vec![
            (
                "truncated JSON".into(),
                Some("application/json"),
                b"{\"email\": ".to_vec(),
            ),
            (
                "not JSON".into(),
                Some("application/json"),
                b"email=ann".to_vec(),
            ),
            ("an array".into(), Some("application/json"), b"[]".to_vec()),
            ("null".into(), Some("application/json"), b"null".to_vec()),
            ("empty".into(), Some("application/json"), Vec::new()),
            (
                "no content type".into(),
                None,
                serde_json::to_vec(&valid).unwrap(),
            ),
            (
                "form content type".into(),
                Some("application/x-www-form-urlencoded"),
                serde_json::to_vec(&valid).unwrap(),
            ),
            (
                "over 1 MiB".into(),
                Some("application/json"),
                vec![b' '; 1024 * 1024 + 1],
            ),
        ];
        let object = valid.as_object().unwrap();
        for key in object.keys() {
            let mut wrong_type = valid.clone();
            wrong_type[key] = json!(12345);
            cases.push((
                format!("{key} as a number"),
                Some("application/json"),
                serde_json::to_vec(&wrong_type).unwrap(),
            ));
            let mut missing = valid.clone();
            missing.as_object_mut().unwrap().remove(key);
            cases.push((
                format!("{key} missing"),
                Some("application/json"),
                serde_json::to_vec(&missing).unwrap(),
            ));
            let mut overlong = valid.clone();
            if valid[key].is_string() {
                overlong[key] = json!("x".repeat(100_000));
                cases.push((
                    format!("{key} overlong"),
                    Some("application/json"),
                    serde_json::to_vec(&overlong).unwrap(),
                ));
            }
        }
        let mut unknown = valid.clone();
        unknown["is_admin"] = json!(true);
        cases.push((
            "an unknown field".into(),
            Some("application/json"),
            serde_json::to_vec(&unknown).unwrap(),
        ));

        for (what, content_type, body) in cases {
            let response = app
                .call(method.clone(), path, token, content_type, body)
                .await;
            assert!(
                response.status.is_client_error(),
                "{method} {path} with {what}: {} {}",
                response.status,
                response.text()
            );
            // /logout answers 204 to any well-formed body, but a malformed one is still a 4xx.
            assert_eq!(
                response.headers[header::CONTENT_TYPE],
                "application/problem+json",
                "{method} {path} with {what}"
            );
            let problem = response.json();
            assert_eq!(problem["status"], response.status.as_u16());
            assert!(problem["detail"].is_string());
        }
    }
    assert_eq!(app.counts().await, before, "nothing was written");
}

#[tokio::test]
async fn the_password_policy_applies_to_registration() {
    let app = TestApp::new().await;
    let register = |email: &str, password: &str| json!({"email": email, "password": password});
    let cases = [
        ("ann@example.com", "eleven char"),
        ("ann@example.com", &"x".repeat(129)),
        ("long.address@example.com", "Long.Address@Example.com"),
        ("ann@example.com", "qwertyuiop123"),
        ("ann@example.com", "1q2w3e4r5t6y"),
        ("ann@example.com", "PASSWORD1234"),
        ("ann@example.com", "null\u{0}character"),
    ];
    for (email, password) in cases {
        let response = app.post("/register", &register(email, password)).await;
        assert_eq!(response.invalid_fields(), ["password"], "{password:?}");
    }
    // Both fields at once.
    let both = app
        .post("/register", &register("not an email", "short"))
        .await;
    assert_eq!(both.invalid_fields(), ["email", "password"]);
    assert_eq!(app.count("users").await, 0);
    // Exactly 12 and exactly 128 characters are fine.
    app.register("twelve@example.com", "twelve chars").await;
    app.register("long@example.com", &"long phrase ".repeat(11)[..128])
        .await;
    assert_eq!(app.count("users").await, 2);
}

#[tokio::test]
async fn login_fields_are_bounded_too() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let overlong = app
        .post(
            "/login",
            &json!({"email": "ann@example.com", "password": "x".repeat(129)}),
        )
        .await;
    assert_eq!(overlong.invalid_fields(), ["password"]);
    let bad_email = app
        .post(
            "/login",
            &json!({"email": "x".repeat(300), "password": PASSWORD}),
        )
        .await;
    assert_eq!(bad_email.invalid_fields(), ["email"]);
    let empty = app
        .post(
            "/login",
            &json!({"email": "ann@example.com", "password": ""}),
        )
        .await;
    assert_eq!(empty.invalid_fields(), ["password"]);
    // None of these counted as a failed attempt.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM login_throttle")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(
        app.login("ann@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}
