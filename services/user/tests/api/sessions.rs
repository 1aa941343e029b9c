//! Register, log in, refresh, log out; refresh-token rotation and reuse detection;
//! password change.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;
use user::outbox::types;

use crate::helpers::{OTHER_PASSWORD, PASSWORD, TestApp};

#[tokio::test]
async fn register_then_log_in_and_read_me() {
    let app = TestApp::new().await;
    let response = app
        .post(
            "/register",
            &json!({"email": " Ann@Example.com ", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    assert_eq!(response.json()["status"], "accepted");

    let login = app.login("ann@example.COM", PASSWORD).await;
    let body = login.ok();
    assert_eq!(login.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 30 * 86_400);
    let access = body["access_token"].as_str().unwrap();

    let me = app.get("/me", Some(access)).await.ok();
    assert_eq!(
        me["email"], "ann@example.com",
        "stored trimmed and lower-cased"
    );
    assert_eq!(me["email_verified"], false);
    assert_eq!(me["roles"], json!(["customer"]));

    // The token verifies with the published keys, like any other service would do it.
    let claims = app.state.keys().verifier().verify(access).await.unwrap();
    assert_eq!(claims.sub.to_string(), me["id"].as_str().unwrap());
    assert_eq!(claims.exp - claims.iat, 900);
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(crate::helpers::KID));

    // The registration event, with its envelope.
    let events = app.events(types::REGISTERED).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["type"], "user.registered");
    assert_eq!(event["source"], "user");
    assert_eq!(event["data"]["email"], "ann@example.com");
    assert_eq!(event["data"]["user_id"], me["id"]);
    assert_eq!(
        event["data"]["verification_token"].as_str().unwrap().len(),
        43
    );
    assert!(event["trace"]["trace_id"].is_string());
    let id: uuid::Uuid = event["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7);
    chrono::DateTime::parse_from_rfc3339(event["occurred_at"].as_str().unwrap()).unwrap();

    // The password is stored as argon2id, never in clear.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn registering_a_taken_email_answers_the_same_and_tells_the_owner() {
    let app = TestApp::new().await;
    let first = app
        .post(
            "/register",
            &json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    let second = app
        .post(
            "/register",
            &json!({"email": "ANN@example.com", "password": OTHER_PASSWORD}),
        )
        .await;
    assert_eq!(first.status, second.status);
    assert_eq!(first.body, second.body);
    assert_eq!(app.count("users").await, 1);
    // The first password still works; the second attempt changed nothing.
    app.login("ann@example.com", PASSWORD).await.ok();
    app.login("ann@example.com", OTHER_PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let attempts = app.events(types::REGISTRATION_ATTEMPTED).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["data"]["email"], "ann@example.com");
    assert!(attempts[0]["data"].get("verification_token").is_none());
    // More attempts within the hour notify the owner no more; a later one does.
    let third = app
        .post(
            "/register",
            &json!({"email": "ann@example.com", "password": OTHER_PASSWORD}),
        )
        .await;
    assert_eq!(third.body, first.body);
    assert_eq!(app.events(types::REGISTRATION_ATTEMPTED).await.len(), 1);
    app.clock.advance(chrono::Duration::minutes(61));
    app.register("ann@example.com", OTHER_PASSWORD).await;
    assert_eq!(app.events(types::REGISTRATION_ATTEMPTED).await.len(), 2);
}

#[tokio::test]
async fn refresh_rotates_and_the_new_pair_works() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let (_, refresh) = app.tokens("ann@example.com", PASSWORD).await;
    let rotated = app
        .post("/refresh", &json!({"refresh_token": refresh}))
        .await;
    let body = rotated.ok();
    assert_eq!(rotated.headers[header::CACHE_CONTROL], "no-store");
    let next = body["refresh_token"].as_str().unwrap();
    assert_ne!(next, refresh);
    let access = body["access_token"].as_str().unwrap();
    app.get("/me", Some(access)).await.ok();
    // And again with the new one.
    app.post("/refresh", &json!({"refresh_token": next}))
        .await
        .ok();
    // Only hashes are stored.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.contains(&user::tokens::token_hash(next)));
    assert!(stored.iter().all(|h| h.as_slice() != next.as_bytes()));
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let (_, stolen) = app.tokens("ann@example.com", PASSWORD).await;
    let (_, other_device) = app.tokens("ann@example.com", PASSWORD).await;
    // The legitimate client rotates…
    let first = app
        .post("/refresh", &json!({"refresh_token": stolen}))
        .await
        .ok();
    let current = first["refresh_token"].as_str().unwrap().to_owned();
    let second = app
        .post("/refresh", &json!({"refresh_token": current}))
        .await
        .ok();
    let newest = second["refresh_token"].as_str().unwrap().to_owned();
    // …then the thief presents the old token: refused, and the family is revoked…
    let reuse = app
        .post("/refresh", &json!({"refresh_token": stolen}))
        .await;
    let body = reuse.problem(StatusCode::UNAUTHORIZED);
    // …so the newest token of that family is dead too.
    let after = app
        .post("/refresh", &json!({"refresh_token": newest}))
        .await;
    assert_eq!(
        after.problem(StatusCode::UNAUTHORIZED),
        body,
        "one answer for every bad token"
    );
    let reason: String = sqlx::query_scalar(
        "SELECT revoked_reason FROM refresh_families WHERE revoked_at IS NOT NULL",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(reason, "reuse");
    // The other session (another family) is untouched.
    app.post("/refresh", &json!({"refresh_token": other_device}))
        .await
        .ok();
}

#[tokio::test]
async fn refresh_tokens_expire_and_garbage_is_refused() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let (_, refresh) = app.tokens("ann@example.com", PASSWORD).await;
    for garbage in ["", "x", &"a".repeat(43), &format!("{refresh}x")] {
        app.post("/refresh", &json!({"refresh_token": garbage}))
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    let overlong = app
        .post("/refresh", &json!({"refresh_token": "a".repeat(10_000)}))
        .await;
    assert_eq!(overlong.invalid_fields(), ["refresh_token"]);
    app.clock
        .advance(chrono::Duration::days(30) + chrono::Duration::seconds(1));
    app.post("/refresh", &json!({"refresh_token": refresh}))
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session_and_logout_all_ends_every_one() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let (_, one) = app.tokens("ann@example.com", PASSWORD).await;
    let (access, two) = app.tokens("ann@example.com", PASSWORD).await;
    let (_, three) = app.tokens("ann@example.com", PASSWORD).await;

    let out = app.post("/logout", &json!({"refresh_token": one})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    app.post("/refresh", &json!({"refresh_token": one}))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.post("/refresh", &json!({"refresh_token": two}))
        .await
        .ok();
    // Logging out with nonsense says nothing either way.
    let out = app
        .post("/logout", &json!({"refresh_token": "nonsense"}))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);

    let anonymous = app
        .call(Method::POST, "/logout/all", None, None, Body::empty())
        .await;
    anonymous.problem(StatusCode::UNAUTHORIZED);
    let all = app
        .call(
            Method::POST,
            "/logout/all",
            Some(&access),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(all.status, StatusCode::NO_CONTENT, "{}", all.text());
    app.post("/refresh", &json!({"refresh_token": three}))
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = TestApp::new().await;
    app.register("ann@example.com", PASSWORD).await;
    let (access, other_session) = app.tokens("ann@example.com", PASSWORD).await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let wrong = app
        .json_as(
            Method::PUT,
            "/me/password",
            Some(&access),
            &change("not the password", OTHER_PASSWORD),
        )
        .await;
    wrong.problem(StatusCode::FORBIDDEN);
    let weak = app
        .json_as(
            Method::PUT,
            "/me/password",
            Some(&access),
            &change(PASSWORD, "qwertyuiop123"),
        )
        .await;
    assert_eq!(weak.invalid_fields(), ["new_password"]);
    let same = app
        .json_as(
            Method::PUT,
            "/me/password",
            Some(&access),
            &change(PASSWORD, PASSWORD),
        )
        .await;
    assert_eq!(same.invalid_fields(), ["new_password"]);
    app.login("ann@example.com", PASSWORD).await.ok();

    let changed = app
        .json_as(
            Method::PUT,
            "/me/password",
            Some(&access),
            &change(PASSWORD, OTHER_PASSWORD),
        )
        .await
        .ok();
    // A fresh pair for this device; every earlier session is over.
    let fresh = changed["refresh_token"].as_str().unwrap();
    app.post("/refresh", &json!({"refresh_token": fresh}))
        .await
        .ok();
    app.post("/refresh", &json!({"refresh_token": other_session}))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.login("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.login("ann@example.com", OTHER_PASSWORD).await.ok();
    let events = app.events(types::PASSWORD_CHANGED).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["via"], "change");
}

#[tokio::test]
async fn jwks_publishes_the_current_key_and_retired_ones_until_their_tokens_expire() {
    let old = shopkit::auth::keys::Signer::generate("retired-1").unwrap();
    let mut old_jwk = old.jwk();
    let retired_at = chrono::Utc::now();
    old_jwk["retired_at"] = json!(retired_at.to_rfc3339());
    let previous = json!({ "keys": [old_jwk] }).to_string();
    let app = TestApp::with(&[("JWT_PREVIOUS_KEYS", &previous)]).await;

    let response = app.get("/.well-known/jwks.json", None).await;
    let doc = response.ok();
    assert_eq!(
        response.headers[header::CACHE_CONTROL],
        "public, max-age=300"
    );
    let kids: Vec<&str> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [crate::helpers::KID, "retired-1"]);
    for key in doc["keys"].as_array().unwrap() {
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert!(key.get("d").is_none(), "never a private part");
        assert!(key.get("retired_at").is_none());
    }

    // A token the retired key signed before the rotation still works while unexpired.
    app.register("ann@example.com", PASSWORD).await;
    let me = app
        .get(
            "/me",
            Some(&app.tokens("ann@example.com", PASSWORD).await.0),
        )
        .await
        .ok();
    let now = chrono::Utc::now().timestamp();
    let claims = shopkit::auth::Claims {
        sub: me["id"].as_str().unwrap().parse().unwrap(),
        roles: vec!["customer".into()],
        iss: "shopstack".into(),
        aud: "shopstack".into(),
        iat: now - 60,
        exp: now + 840,
    };
    let old_token = old.sign(&claims).unwrap();
    app.get("/me", Some(&old_token)).await.ok();

    // Once the access-token lifetime (plus leeway) has passed, the key is withdrawn.
    app.clock.advance(chrono::Duration::seconds(931));
    let doc = app.get("/.well-known/jwks.json", None).await.ok();
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
}
