//! `POST /carts/mine/merge`: an anonymous cart folded into the user's cart at log-in.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::{TestApp, line, quantity};

#[tokio::test]
async fn merging_adds_quantities_capped_by_stock_and_closes_the_anonymous_cart() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 4);
    app.catalog.sku("TEE-NVY-M", 1999, "USD", 10);
    app.catalog.sku("SOCK-1", 499, "USD", 10);
    app.catalog.sku("GONE-1", 100, "USD", 10);
    let (token, user_id) = app.user(&["customer"]);
    let mine = app.mine(&token).await;
    let mine_id: uuid::Uuid = mine["id"].as_str().unwrap().parse().unwrap();
    app.add_as(&token, mine_id, "MUG-BLU", 3).await.ok();
    app.add_as(&token, mine_id, "SOCK-1", 1).await.ok();

    let anonymous = app.create_anonymous().await;
    app.add(&anonymous, "MUG-BLU", 2).await.ok();
    app.add(&anonymous, "TEE-NVY-M", 2).await.ok();
    app.add(&anonymous, "GONE-1", 1).await.ok();
    // Since the anonymous cart was filled: the mug's price moved and GONE-1 was
    // unpublished.
    app.catalog.set("MUG-BLU", "price_minor", json!(1199));
    app.catalog.set("GONE-1", "published", json!(false));

    let merge = |body: serde_json::Value| {
        let token = token.clone();
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/carts/mine/merge",
                &[("authorization", &token)],
                Some(&body),
            )
            .await
        }
    };
    let body = merge(json!({"cart_id": anonymous.id, "cart_token": anonymous.token}))
        .await
        .ok();
    assert_eq!(body["id"], mine["id"]);
    assert_eq!(body["user_id"], user_id.to_string());
    // 3 + 2 = 5, but only 4 are available.
    assert_eq!(quantity(&body, "MUG-BLU"), 4);
    assert_eq!(line(&body, "MUG-BLU").unwrap()["unit_price_minor"], 1199);
    assert_eq!(quantity(&body, "TEE-NVY-M"), 2);
    assert_eq!(quantity(&body, "SOCK-1"), 1);
    assert_eq!(quantity(&body, "GONE-1"), 0);
    let adjustments = body["adjustments"].as_array().unwrap();
    assert!(
        adjustments.contains(
            &json!({"sku": "MUG-BLU", "requested": 5, "quantity": 4, "reason": "capped"})
        ),
        "{body}"
    );
    assert!(
        adjustments.contains(
            &json!({"sku": "GONE-1", "requested": 1, "quantity": 0, "reason": "unavailable"})
        ),
        "{body}"
    );
    assert_eq!(adjustments.len(), 2, "{body}");
    let version = body["version"].clone();

    // The anonymous cart is closed.
    app.get_anonymous(&anonymous)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.add(&anonymous, "SOCK-1", 1)
        .await
        .problem(StatusCode::NOT_FOUND);
    let status: String = sqlx::query_scalar("SELECT status FROM carts WHERE id = $1")
        .bind(anonymous.id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(status, "merged");

    // Again (a retried request, a second tab): the same cart, unchanged.
    let again = merge(json!({"cart_id": anonymous.id, "cart_token": anonymous.token}))
        .await
        .ok();
    assert_eq!(again["version"], version);
    assert_eq!(quantity(&again, "MUG-BLU"), 4);
    assert_eq!(again["adjustments"], json!([]));

    // Someone else with the token gets nothing: the cart is not theirs to see any more.
    let (other, _) = app.user(&["customer"]);
    let response = app
        .call(
            Method::POST,
            "/carts/mine/merge",
            &[("authorization", &other)],
            Some(&json!({"cart_id": anonymous.id, "cart_token": anonymous.token})),
        )
        .await;
    response.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn merging_needs_the_token_and_a_bearer_and_takes_the_cookie() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    app.catalog.sku("MUG-EUR", 1100, "EUR", 10);
    let anonymous = app.create_anonymous().await;
    app.add(&anonymous, "MUG-BLU", 2).await.ok();
    let (token, _) = app.user(&["customer"]);
    let body = json!({"cart_id": anonymous.id});

    // No bearer token.
    app.call(Method::POST, "/carts/mine/merge", &[], Some(&body))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    // No cart token anywhere.
    let missing = app
        .call(
            Method::POST,
            "/carts/mine/merge",
            &[("authorization", &token)],
            Some(&body),
        )
        .await;
    assert_eq!(missing.invalid_fields(), ["cart_token"]);
    // A wrong one.
    let wrong = app.create_anonymous().await;
    app.call(
        Method::POST,
        "/carts/mine/merge",
        &[("authorization", &token)],
        Some(&json!({"cart_id": anonymous.id, "cart_token": wrong.token})),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    // A user cart is never merged.
    let (other, _) = app.user(&["customer"]);
    let users = app.mine(&other).await;
    app.call(
        Method::POST,
        "/carts/mine/merge",
        &[("authorization", &token)],
        Some(&json!({"cart_id": users["id"], "cart_token": anonymous.token})),
    )
    .await
    .problem(StatusCode::NOT_FOUND);

    // The browser's way: the token in the HttpOnly cookie, which the merge then clears.
    let cookie = format!("cart_token={}", anonymous.token);
    let merged = app
        .call(
            Method::POST,
            "/carts/mine/merge",
            &[("authorization", &token), ("cookie", &cookie)],
            Some(&body),
        )
        .await;
    assert_eq!(quantity(&merged.ok(), "MUG-BLU"), 2);
    let cleared = merged.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("cart_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // Lines in another currency than the user's cart stay out, and are reported.
    let euros = app.create_anonymous().await;
    app.add(&euros, "MUG-EUR", 1).await.ok();
    let body = app
        .call(
            Method::POST,
            "/carts/mine/merge",
            &[("authorization", &token), ("x-cart-token", &euros.token)],
            Some(&json!({"cart_id": euros.id})),
        )
        .await
        .ok();
    assert_eq!(quantity(&body, "MUG-EUR"), 0);
    assert_eq!(body["adjustments"][0]["reason"], "currency");
    assert!(merged.headers.get(header::SET_COOKIE).is_some());
}

#[tokio::test]
async fn concurrent_merges_of_one_cart_add_once() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 50);
    let anonymous = app.create_anonymous().await;
    app.add(&anonymous, "MUG-BLU", 3).await.ok();
    let (token, _) = app.user(&["customer"]);
    let body = json!({"cart_id": anonymous.id, "cart_token": anonymous.token});
    let auth = [("authorization", token.as_str())];
    let merges = (0..5).map(|_| app.call(Method::POST, "/carts/mine/merge", &auth, Some(&body)));
    for response in futures::future::join_all(merges).await {
        response.ok();
    }
    assert_eq!(quantity(&app.mine(&token).await, "MUG-BLU"), 3);
}
