//! Brute force: per-account and per-address limits, lockout back-off, no hint whether an
//! email exists.

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, from_peer};

fn retry_after(response: &crate::helpers::TestResponse) -> u64 {
    response.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_eleventh_failed_login_within_an_hour_is_locked_out_then_back_off_grows() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    for i in 0..10 {
        app.clock.advance(chrono::Duration::minutes(1));
        let response = app
            .login("ann@example.com", &format!("wrong password {i}"))
            .await;
        response.problem(StatusCode::UNAUTHORIZED);
    }
    // The 11th is refused, even with the right password, before anything is hashed.
    app.clock.advance(chrono::Duration::minutes(1));
    let locked = app.login("ann@example.com", PASSWORD).await;
    let body = locked.problem(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        body["detail"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    assert_eq!(retry_after(&locked), 3600, "the first lockout is an hour");
    let counted: Vec<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT locked_until FROM login_throttle WHERE scope = 'account' AND locked_until IS NOT NULL",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(counted.len(), 1, "one locked account row");

    // Still locked a minute before the end; free afterwards.
    app.clock.advance(chrono::Duration::minutes(59));
    app.login("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(chrono::Duration::minutes(1));
    // Ten more failures: the next lockout is twice as long (consecutive lockouts).
    for i in 0..10 {
        app.login("ann@example.com", &format!("again wrong {i}"))
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    let locked = app.login("ann@example.com", PASSWORD).await;
    locked.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&locked), 7200);

    // After it, a successful log-in clears the slate: the next lockout is an hour again.
    app.clock.advance(chrono::Duration::hours(2));
    app.login("ann@example.com", PASSWORD).await.ok();
    for _ in 0..10 {
        app.login("ann@example.com", "still not it")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    let locked = app.login("ann@example.com", PASSWORD).await;
    assert_eq!(retry_after(&locked), 3600);
}

#[tokio::test]
async fn a_password_reset_lifts_the_lockout() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    for _ in 0..11 {
        app.login("ann@example.com", "wrong password!").await;
    }
    app.login("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
    app.post("/password/forgot", &json!({"email": "ann@example.com"}))
        .await
        .ok();
    let events = app
        .events(user::outbox::types::PASSWORD_RESET_REQUESTED)
        .await;
    let token = events[0]["data"]["reset_token"].as_str().unwrap();
    let reset = app
        .post(
            "/password/reset",
            &json!({"token": token, "new_password": "a brand new phrase"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.text());
    app.login("ann@example.com", "a brand new phrase")
        .await
        .ok();
}

#[tokio::test]
async fn unknown_emails_and_wrong_passwords_are_indistinguishable() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let wrong = app.login("ann@example.com", "not the password").await;
    let unknown = app.login("nobody@example.com", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body, "byte for byte");
    for name in [
        header::CONTENT_TYPE,
        header::WWW_AUTHENTICATE,
        header::CONTENT_LENGTH,
    ] {
        assert_eq!(
            wrong.headers.get(&name),
            unknown.headers.get(&name),
            "{name}"
        );
    }
    // The lockout too: an unknown email is throttled exactly like a known one.
    for _ in 0..9 {
        app.login("ann@example.com", "not the password").await;
        app.login("nobody@example.com", "not the password").await;
    }
    let known = app.login("ann@example.com", "not the password").await;
    let unknown = app.login("nobody@example.com", "not the password").await;
    assert_eq!(known.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body);
    assert_eq!(
        known.headers.get(header::RETRY_AFTER),
        unknown.headers.get(header::RETRY_AFTER)
    );
}

#[tokio::test]
async fn unknown_emails_cost_the_same_time_as_wrong_passwords() {
    // Production's argon2 parameters, so the hashing dominates the timing.
    let app = TestApp::with(&[
        ("ARGON2_MEMORY_KIB", "19456"),
        ("ARGON2_ITERATIONS", "2"),
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "100"),
    ])
    .await;
    app.register("ann@example.com", PASSWORD).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..7 {
        let started = Instant::now();
        app.login("ann@example.com", "not the password").await;
        known.push(started.elapsed());
        let started = Instant::now();
        app.login(&format!("nobody{i}@example.com"), "not the password")
            .await;
        unknown.push(started.elapsed());
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[3], unknown[3]);
    // Generous bounds: the point is that both hash (a skipped hash would be many
    // times faster), not a benchmark on a shared CI machine.
    assert!(
        unknown * 3 >= known && known * 3 >= unknown,
        "median known {known:?} vs unknown {unknown:?}"
    );
    assert!(
        unknown >= Duration::from_millis(2),
        "{unknown:?}: was anything hashed?"
    );
}

#[tokio::test]
async fn parallel_guesses_cannot_slip_past_the_limit() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let attempts = (0..25).map(|i| {
        let router = app.router.clone();
        async move {
            let body = json!({"email": "ann@example.com", "password": format!("guess number {i}")});
            let request = crate::helpers::request(
                axum::http::Method::POST,
                "/login",
                None,
                Some("application/json"),
                serde_json::to_vec(&body).unwrap(),
            );
            TestApp::send_to(&router, request).await.status
        }
    });
    let statuses = futures_join(attempts).await;
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let locked = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unauthorized, 10, "{statuses:?}");
    assert_eq!(locked, 15, "{statuses:?}");
}

async fn futures_join<F: std::future::Future<Output = StatusCode> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<StatusCode> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn failures_are_also_limited_per_client_address() {
    let app = TestApp::with(&[("LOGIN_MAX_FAILURES_PER_ADDRESS", "3")]).await;
    app.register("ann@example.com", PASSWORD).await;
    let login = |email: &str, password: &str| json!({"email": email, "password": password});
    // One host sprays three accounts, one guess each…
    for victim in ["a@example.com", "b@example.com", "c@example.com"] {
        app.send(from_peer(
            "/login",
            &login(victim, "guessing away"),
            "203.0.113.7:5000",
            &[],
        ))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    }
    // …and is then refused for any account, even with a right password…
    app.send(from_peer(
        "/login",
        &login("ann@example.com", PASSWORD),
        "203.0.113.7:5001",
        &[],
    ))
    .await
    .problem(StatusCode::TOO_MANY_REQUESTS);
    // …while everyone else is not.
    app.send(from_peer(
        "/login",
        &login("ann@example.com", PASSWORD),
        "198.51.100.1:5000",
        &[],
    ))
    .await
    .ok();
    // Successful log-ins do not count against an address.
    for _ in 0..5 {
        app.send(from_peer(
            "/login",
            &login("ann@example.com", PASSWORD),
            "198.51.100.2:1",
            &[],
        ))
        .await
        .ok();
    }
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = TestApp::with(&[
        ("LOGIN_MAX_FAILURES_PER_ADDRESS", "2"),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
    ])
    .await;
    let login = |email: &str| json!({"email": email, "password": "guessing away"});
    let spoofed = [("x-forwarded-for", "1.1.1.1")];
    // Behind the trusted gateway, each client's last hop is its own bucket: two failures
    // from 192.0.2.1 lock it, while 192.0.2.2 through the same gateway is fine.
    for (i, email) in ["a@example.com", "b@example.com"].iter().enumerate() {
        let forwarded = [("x-forwarded-for", "6.6.6.6, 192.0.2.1")];
        app.send(from_peer(
            "/login",
            &login(email),
            &format!("10.0.0.2:{}", 1000 + i),
            &forwarded,
        ))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    }
    let forwarded = [("x-forwarded-for", "192.0.2.1")];
    app.send(from_peer(
        "/login",
        &login("c@example.com"),
        "10.0.0.2:2000",
        &forwarded,
    ))
    .await
    .problem(StatusCode::TOO_MANY_REQUESTS);
    let forwarded = [("x-forwarded-for", "192.0.2.1, 192.0.2.2")];
    app.send(from_peer(
        "/login",
        &login("c@example.com"),
        "10.0.0.2:2001",
        &forwarded,
    ))
    .await
    .problem(StatusCode::UNAUTHORIZED);
    // An untrusted peer cannot escape its own bucket by sending the header.
    for email in ["d@example.com", "e@example.com"] {
        app.send(from_peer(
            "/login",
            &login(email),
            "203.0.113.9:1",
            &spoofed,
        ))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    }
    let fresh = [("x-forwarded-for", "8.8.8.8")];
    app.send(from_peer(
        "/login",
        &login("f@example.com"),
        "203.0.113.9:2",
        &fresh,
    ))
    .await
    .problem(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_password_change_check_is_throttled_too() {
    let app = TestApp::new().await;
    let token = app.customer("ann@example.com").await;
    let body = json!({"current_password": "a wrong guess", "new_password": "orange paper clip"});
    for _ in 0..10 {
        app.json_as(axum::http::Method::PUT, "/me/password", Some(&token), &body)
            .await
            .problem(StatusCode::FORBIDDEN);
    }
    app.json_as(axum::http::Method::PUT, "/me/password", Some(&token), &body)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
    // The account is locked for log-ins as well: it is one budget.
    app.login("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn stale_throttling_rows_are_pruned() {
    let app = TestApp::new().await;
    app.login("nobody@example.com", "not the password").await;
    assert_eq!(
        app.count("login_throttle").await,
        2,
        "the account and the address"
    );
    assert_eq!(app.state.maintain().await.unwrap(), 0);
    app.clock.advance(chrono::Duration::hours(25));
    assert!(app.state.maintain().await.unwrap() >= 2);
    assert_eq!(app.count("login_throttle").await, 0);
}
