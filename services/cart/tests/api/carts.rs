//! Carts and their lines through the API: who may reach which cart, and every check a
//! change goes through.

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::{FakeCatalog, TestApp, line, quantity, unreachable_url};

#[tokio::test]
async fn an_anonymous_cart_is_reached_with_its_token_only() {
    let app = TestApp::new().await;
    let response = app.call(Method::POST, "/carts", &[], None).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let body = response.json();
    let id = body["id"].as_str().unwrap().to_owned();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(body["user_id"], serde_json::Value::Null);
    assert_eq!(body["lines"], json!([]));
    assert_eq!(body["total_minor"], 0);
    assert_eq!(body["version"], 1);
    assert_eq!(
        response.headers[header::LOCATION],
        format!("/carts/{id}").as_str()
    );
    let cookie = response.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("cart_token={token};")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    // Stored as its SHA-256 only.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM carts WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, Sha256::digest(token.as_bytes()).to_vec());
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM carts WHERE strpos(row_to_json(carts)::text, $1) > 0",
    )
    .bind(&token)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(leaked, 0);

    let uri = format!("/carts/{id}");
    let by_header = app
        .call(Method::GET, &uri, &[("x-cart-token", &token)], None)
        .await;
    assert_eq!(by_header.ok()["id"], id.as_str());
    assert_eq!(by_header.headers[header::ETAG], "\"1\"");
    assert_eq!(by_header.headers[header::CACHE_CONTROL], "no-store");
    let cookie = format!("theme=dark; cart_token={token}");
    let by_cookie = app
        .call(Method::GET, &uri, &[("cookie", &cookie)], None)
        .await;
    assert_eq!(by_cookie.ok()["id"], id.as_str());

    // Without any credentials: 401, saying what to send.
    let bare = app.call(Method::GET, &uri, &[], None).await;
    let problem = bare.problem(StatusCode::UNAUTHORIZED);
    assert!(
        problem["detail"].as_str().unwrap().contains("X-Cart-Token"),
        "{problem}"
    );
    // The same for a cart that does not exist: the 401 reveals nothing.
    let nowhere = format!("/carts/{}", Uuid::now_v7());
    app.call(Method::GET, &nowhere, &[], None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    // A wrong token, a malformed one, or another cart's: 404, like a cart that does not
    // exist.
    let other = app.create_anonymous().await;
    for wrong in [other.token.as_str(), "short", &"A".repeat(43)] {
        app.call(Method::GET, &uri, &[("x-cart-token", wrong)], None)
            .await
            .problem(StatusCode::NOT_FOUND);
    }
    app.call(Method::GET, &nowhere, &[("x-cart-token", &token)], None)
        .await
        .problem(StatusCode::NOT_FOUND);
    // A user's bearer token opens no anonymous cart; an admin's reads it.
    let (customer, _) = app.user(&["customer"]);
    app.call(Method::GET, &uri, &[("authorization", &customer)], None)
        .await
        .problem(StatusCode::NOT_FOUND);
    let (admin, _) = app.user(&["admin"]);
    app.call(Method::GET, &uri, &[("authorization", &admin)], None)
        .await
        .ok();
    // An invalid bearer token is a 401 even with a good cart token.
    app.call(
        Method::GET,
        &uri,
        &[("authorization", "not-a-jwt"), ("x-cart-token", &token)],
        None,
    )
    .await
    .problem(StatusCode::UNAUTHORIZED);
    // Writes follow the same rules.
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    let anonymous_write = app
        .call(
            Method::POST,
            &format!("{uri}/items"),
            &[("x-cart-token", &other.token)],
            Some(&json!({"sku": "MUG-BLU", "quantity": 1})),
        )
        .await;
    anonymous_write.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_user_cart_is_visible_to_its_user_only() {
    let app = TestApp::new().await;
    app.call(Method::GET, "/carts/mine", &[], None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let (token, user_id) = app.user(&["customer"]);
    let cart = app.mine(&token).await;
    assert_eq!(cart["user_id"], user_id.to_string());
    let id: Uuid = cart["id"].as_str().unwrap().parse().unwrap();
    // The same open cart every time, also when asked for at once from many tabs.
    assert_eq!(app.mine(&token).await["id"], cart["id"]);
    let (racer, racer_id) = app.user(&["customer"]);
    let ids: Vec<_> = futures::future::join_all((0..10).map(|_| app.mine(&racer)))
        .await
        .into_iter()
        .map(|c| c["id"].clone())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM carts WHERE user_id = $1")
        .bind(racer_id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(open, 1);

    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    let uri = format!("/carts/{id}");
    app.add_as(&token, id, "MUG-BLU", 2).await.ok();
    let read = app
        .call(Method::GET, &uri, &[("authorization", &token)], None)
        .await
        .ok();
    assert_eq!(quantity(&read, "MUG-BLU"), 2);

    // Another customer, a cart token, nothing: the cart does not exist for them.
    let (stranger, _) = app.user(&["customer"]);
    app.call(Method::GET, &uri, &[("authorization", &stranger)], None)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.add_as(&stranger, id, "MUG-BLU", 1)
        .await
        .problem(StatusCode::NOT_FOUND);
    let anonymous = app.create_anonymous().await;
    app.call(
        Method::GET,
        &uri,
        &[("x-cart-token", &anonymous.token)],
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    // An admin (the order service's lookups use the buyer's token; admins may read, for
    // support) reads it but cannot change it.
    let (admin, _) = app.user(&["admin"]);
    let seen = app
        .call(Method::GET, &uri, &[("authorization", &admin)], None)
        .await
        .ok();
    assert_eq!(quantity(&seen, "MUG-BLU"), 2);
    app.add_as(&admin, id, "MUG-BLU", 1)
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lines_add_update_and_remove_at_the_current_price() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    app.catalog.sku("TEE-NVY-M", 1999, "USD", 5);
    let cart = app.create_anonymous().await;

    let body = app.add(&cart, "MUG-BLU", 2).await.ok();
    assert_eq!(body["version"], 2);
    let mug = line(&body, "MUG-BLU").unwrap();
    assert_eq!(mug["quantity"], 2);
    assert_eq!(mug["unit_price_minor"], 1299);
    assert_eq!(mug["currency"], "USD");
    assert_eq!(mug["product_name"], "Product MUG-BLU");
    assert_eq!(mug["product_slug"], "mug-blu");
    assert_eq!(mug["available"], 10);
    assert_eq!(mug["insufficient_stock"], false);
    assert_eq!(body["total_minor"], 2 * 1299);
    assert_eq!(body["currency"], "USD");

    // Adding again adds to the line, at the price the catalog says now.
    app.catalog.set("MUG-BLU", "price_minor", json!(1099));
    let body = app.add(&cart, "MUG-BLU", 3).await.ok();
    assert_eq!(quantity(&body, "MUG-BLU"), 5);
    assert_eq!(line(&body, "MUG-BLU").unwrap()["unit_price_minor"], 1099);
    let body = app.add(&cart, "TEE-NVY-M", 1).await.ok();
    assert_eq!(body["total_minor"], 5 * 1099 + 1999);
    assert_eq!(body["version"], 4);

    let item = format!("/carts/{}/items/MUG-BLU", cart.id);
    let auth = [("x-cart-token", cart.token.as_str())];
    let body = app
        .call(Method::PATCH, &item, &auth, Some(&json!({"quantity": 1})))
        .await
        .ok();
    assert_eq!(quantity(&body, "MUG-BLU"), 1);
    assert_eq!(body["version"], 5);
    // PATCH to 0 removes the line.
    let body = app
        .call(Method::PATCH, &item, &auth, Some(&json!({"quantity": 0})))
        .await
        .ok();
    assert!(line(&body, "MUG-BLU").is_none());
    // Gone: PATCH and DELETE say so (and change nothing).
    app.call(Method::PATCH, &item, &auth, Some(&json!({"quantity": 2})))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.call(Method::DELETE, &item, &auth, None)
        .await
        .problem(StatusCode::NOT_FOUND);
    let tee = format!("/carts/{}/items/TEE-NVY-M", cart.id);
    let body = app.call(Method::DELETE, &tee, &auth, None).await.ok();
    assert_eq!(body["lines"], json!([]));
    assert_eq!(body["currency"], serde_json::Value::Null);
    assert_eq!(body["total_minor"], 0);
    assert_eq!(body["version"], 7);

    // If-Match: a stale version is refused with the current one.
    let stale = app
        .call(
            Method::POST,
            &format!("/carts/{}/items", cart.id),
            &[("x-cart-token", &cart.token), ("if-match", "\"3\"")],
            Some(&json!({"sku": "MUG-BLU", "quantity": 1})),
        )
        .await
        .problem(StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale["version"], 7);
    let fresh = app
        .call(
            Method::POST,
            &format!("/carts/{}/items", cart.id),
            &[("x-cart-token", &cart.token), ("if-match", "\"7\"")],
            Some(&json!({"sku": "MUG-BLU", "quantity": 1})),
        )
        .await;
    assert_eq!(fresh.ok()["version"], 8);
    assert_eq!(fresh.headers[header::ETAG], "\"8\"");
}

#[tokio::test]
async fn every_change_is_checked_against_the_catalog() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 3);
    app.catalog.sku("MUG-EUR", 1100, "EUR", 50);
    app.catalog.sku("TEE-NVY-M", 1999, "USD", 500);
    app.catalog.sku("DRAFT-1", 500, "USD", 9);
    app.catalog.set("DRAFT-1", "published", json!(false));
    let cart = app.create_anonymous().await;
    let version = || async { app.get_anonymous(&cart).await.ok()["version"].clone() };
    let before = version().await;

    // Unknown, unpublished, malformed: 422 naming the SKU.
    for sku in ["NOPE-1", "DRAFT-1", "lower-case"] {
        let problem = app
            .add(&cart, sku, 1)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem["detail"].as_str().unwrap().contains(sku),
            "{problem}"
        );
        assert_eq!(problem["sku"], sku);
        assert_eq!(
            problem["type"],
            "https://shopstack.dev/problems/unknown-sku"
        );
    }
    // Quantities outside 1–99.
    for bad in [0, -1, 100] {
        assert_eq!(
            app.add(&cart, "MUG-BLU", bad).await.invalid_fields(),
            ["quantity"]
        );
    }
    // More than available: 409 with what is.
    let problem = app
        .add(&cart, "MUG-BLU", 4)
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(
        problem["type"],
        "https://shopstack.dev/problems/out-of-stock"
    );
    assert_eq!(problem["available"], 3);
    assert_eq!(problem["requested"], 4);
    app.add(&cart, "MUG-BLU", 2).await.ok();
    let problem = app
        .add(&cart, "MUG-BLU", 2)
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(problem["available"], 3);
    assert_eq!(problem["requested"], 4);
    let item = format!("/carts/{}/items/MUG-BLU", cart.id);
    let auth = [("x-cart-token", cart.token.as_str())];
    app.call(Method::PATCH, &item, &auth, Some(&json!({"quantity": 5})))
        .await
        .problem(StatusCode::CONFLICT);
    for bad in [-1, 100] {
        let response = app
            .call(Method::PATCH, &item, &auth, Some(&json!({"quantity": bad})))
            .await;
        assert_eq!(response.invalid_fields(), ["quantity"]);
    }
    // The per-line limit, with plenty in stock.
    app.add(&cart, "TEE-NVY-M", 90).await.ok();
    assert_eq!(
        app.add(&cart, "TEE-NVY-M", 10).await.invalid_fields(),
        ["quantity"]
    );
    // One currency per cart.
    let problem = app
        .add(&cart, "MUG-EUR", 1)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["type"],
        "https://shopstack.dev/problems/currency-mismatch"
    );
    assert_eq!(problem["cart_currency"], "USD");
    // Refusals change nothing: two accepted adds, nothing else.
    let after = app.get_anonymous(&cart).await.ok();
    assert_eq!(
        after["version"].as_i64().unwrap(),
        before.as_i64().unwrap() + 2
    );
    assert_eq!(quantity(&after, "MUG-BLU"), 2);
    assert_eq!(quantity(&after, "TEE-NVY-M"), 90);
    // Malformed bodies are problems too.
    let raw = app
        .call(
            Method::POST,
            &format!("/carts/{}/items", cart.id),
            &auth,
            Some(&json!({"sku": "MUG-BLU"})),
        )
        .await;
    raw.problem(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_unreachable_catalog_is_a_503_and_removal_still_works() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 3);
    let cart = app.create_anonymous().await;
    app.add(&cart, "MUG-BLU", 1).await.ok();
    let catalog = cart::catalog::CatalogClient::new(&unreachable_url()).unwrap();
    let router = TestApp::router_for(&app.db, &app.issuer, catalog);
    let down = shopkit::testing::send(
        &router,
        axum::http::Request::post(format!("/carts/{}/items", cart.id))
            .header("x-cart-token", &cart.token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(r#"{"sku":"MUG-BLU","quantity":1}"#))
            .unwrap(),
    )
    .await
    .unwrap();
    let problem = down.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !problem["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{problem}"
    );
    // Removing needs no catalog.
    let removed = shopkit::testing::send(
        &router,
        axum::http::Request::delete(format!("/carts/{}/items/MUG-BLU", cart.id))
            .header("x-cart-token", &cart.token)
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(removed.ok()["lines"], json!([]));
}

#[tokio::test]
async fn a_catalog_answering_garbage_is_unavailable_too() {
    let catalog = FakeCatalog::start().await;
    catalog.put(json!({"sku": "MUG-BLU", "price_minor": "twelve"}));
    let client = catalog.client();
    let err = client.sku("MUG-BLU").await.unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
    // Unknown SKUs are simply absent.
    let empty = FakeCatalog::start().await;
    assert_eq!(empty.client().sku("NOPE").await.unwrap(), None);
}

#[tokio::test]
async fn twenty_concurrent_adds_to_one_line_make_twenty() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 50);
    let cart = app.create_anonymous().await;
    let adds = (0..20).map(|_| app.add(&cart, "MUG-BLU", 1));
    for response in futures::future::join_all(adds).await {
        response.ok();
    }
    let body = app.get_anonymous(&cart).await.ok();
    assert_eq!(quantity(&body, "MUG-BLU"), 20);
    assert_eq!(body["version"], 21);
    assert_eq!(body["total_minor"], 20 * 1299);

    // At the stock limit, concurrent adds never overshoot: 30 left, 40 tabs add one.
    app.catalog.set("MUG-BLU", "available", json!(50));
    let second = app.create_anonymous().await;
    app.add(&second, "MUG-BLU", 20).await.ok();
    let adds = (0..40).map(|_| app.add(&second, "MUG-BLU", 1));
    let statuses: Vec<StatusCode> = futures::future::join_all(adds)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    let accepted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((accepted, refused), (30, 10), "{statuses:?}");
    assert_eq!(
        quantity(&app.get_anonymous(&second).await.ok(), "MUG-BLU"),
        50
    );
}

#[tokio::test]
async fn idle_anonymous_carts_are_purged_and_user_carts_kept() {
    let app = TestApp::new().await;
    app.catalog.sku("MUG-BLU", 1299, "USD", 10);
    let idle = app.create_anonymous().await;
    app.add(&idle, "MUG-BLU", 1).await.ok();
    let recent = app.create_anonymous().await;
    let (token, _) = app.user(&["customer"]);
    let users: Uuid = app.mine(&token).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    sqlx::query("UPDATE carts SET updated_at = now() - interval '31 days' WHERE id = ANY($1)")
        .bind([idle.id, users].as_slice())
        .execute(app.pool())
        .await
        .unwrap();
    let thirty_days = std::time::Duration::from_secs(30 * 24 * 3600);
    let purged = cart::store::purge_idle_anonymous(app.pool(), thirty_days)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    app.get_anonymous(&idle)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get_anonymous(&recent).await.ok();
    assert_eq!(app.mine(&token).await["id"], users.to_string());
}
