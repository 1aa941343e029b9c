//! Admin writes: authorisation, validation (every refusal a 4xx problem that writes
//! nothing), stock adjustments, categories.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use catalog::AppState;
use serde_json::{Value, json};

use crate::helpers::{TestApp, fixture, product_json};

fn shirt() -> Value {
    product_json(
        "Blue Oxford Shirt",
        "shirts",
        "Crisp.",
        &[("OXF-1-M", json!({"color": "blue", "size": "M"}), 4999, 7)],
    )
}

async fn with_shirts() -> TestApp {
    let app = TestApp::new().await;
    app.category("shirts", "Shirts", None).await;
    app
}

#[tokio::test]
async fn writes_need_an_admin_token() {
    let app = with_shirts().await;
    let writes: [(Method, &str, Value); 9] = [
        (Method::POST, "/admin/products", shirt()),
        (Method::PATCH, "/admin/products/x", json!({"name": "y"})),
        (Method::DELETE, "/admin/products/x", Value::Null),
        (Method::POST, "/admin/products/x/variants", json!({})),
        (Method::PATCH, "/admin/variants/X", json!({})),
        (
            Method::POST,
            "/admin/categories",
            json!({"slug": "a", "name": "A"}),
        ),
        (Method::DELETE, "/admin/categories/shirts", Value::Null),
        (
            Method::POST,
            "/admin/inventory/X/adjust",
            json!({"delta": 1, "reason": "r"}),
        ),
        (Method::POST, "/admin/import", json!([])),
    ];
    let stranger = shopkit::testing::TestIssuer::new()
        .unwrap()
        .token(&["admin"]);
    for (method, uri, body) in &writes {
        let anonymous = app.json_as(method.clone(), uri, None, body).await;
        let problem = anonymous.problem(StatusCode::UNAUTHORIZED);
        assert!(
            problem["detail"].as_str().unwrap().contains("bearer"),
            "{problem}"
        );
        assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
        app.json_as(method.clone(), uri, Some(&app.customer), body)
            .await
            .problem(StatusCode::FORBIDDEN);
        // A token signed by someone else's key.
        app.json_as(method.clone(), uri, Some(&stranger), body)
            .await
            .problem(StatusCode::UNAUTHORIZED);
        app.json_as(method.clone(), uri, Some("not.a.jwt"), body)
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.count("products").await, 0);
    let created = app
        .admin_json(Method::POST, "/admin/products", &shirt())
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert!(
        created.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/products/")
    );
    assert_eq!(app.count("products").await, 1);
}

#[tokio::test]
async fn without_keys_reads_work_and_writes_say_auth_is_off() {
    let app = TestApp::new().await;
    let router = catalog::router(AppState::new(app.pool().clone(), None));
    let unauthenticated = TestApp { router, ..app };
    let r = unauthenticated.get("/products").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = unauthenticated
        .json_as(
            Method::POST,
            "/admin/categories",
            Some(&unauthenticated.admin),
            &json!({"slug": "a", "name": "A"}),
        )
        .await;
    let problem = r.problem(StatusCode::UNAUTHORIZED);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{problem}"
    );
    assert_eq!(unauthenticated.count("categories").await, 0);
}

#[tokio::test]
async fn bad_input_is_a_problem_and_writes_nothing() {
    let app = with_shirts().await;
    app.product(shirt()).await;
    let before = app.counts().await;
    let admin = Some(app.admin.as_str());

    let malformed = app
        .call(
            Method::POST,
            "/admin/products",
            admin,
            Some("application/json"),
            "{\"name\": ",
        )
        .await;
    malformed.problem(StatusCode::BAD_REQUEST);

    let no_type = app
        .call(Method::POST, "/admin/products", admin, None, "{}")
        .await;
    no_type.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let mut cases: Vec<(&str, Value, StatusCode, Option<&str>)> = Vec::new();
    let mut negative = shirt();
    negative["variants"][0]["price_minor"] = json!(-1);
    cases.push((
        "negative price",
        negative,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("variants[0].price_minor"),
    ));
    let mut float = shirt();
    float["variants"][0]["price_minor"] = json!(19.99);
    cases.push(("float price", float, StatusCode::UNPROCESSABLE_ENTITY, None));
    let mut string = shirt();
    string["variants"][0]["price_minor"] = json!("19");
    cases.push((
        "string price",
        string,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    ));
    let mut unknown = shirt();
    unknown["category"] = json!("nope");
    cases.push((
        "unknown category",
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("category"),
    ));
    let mut long_name = shirt();
    long_name["name"] = json!("x".repeat(201));
    cases.push((
        "long name",
        long_name,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("name"),
    ));
    let mut long_description = shirt();
    long_description["description"] = json!("x".repeat(10_001));
    cases.push((
        "long description",
        long_description,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("description"),
    ));
    let mut bad_sku = shirt();
    bad_sku["variants"][0]["sku"] = json!("lower case");
    cases.push((
        "bad sku",
        bad_sku,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("variants[0].sku"),
    ));
    let mut long_sku = shirt();
    long_sku["variants"][0]["sku"] = json!("A".repeat(65));
    cases.push((
        "long sku",
        long_sku,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("variants[0].sku"),
    ));
    let mut currency = shirt();
    currency["variants"][0]["currency"] = json!("usd");
    cases.push((
        "currency",
        currency,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("variants[0].currency"),
    ));
    let mut unknown_field = shirt();
    unknown_field["colour"] = json!("blue");
    cases.push((
        "unknown field",
        unknown_field,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    ));
    let mut taken_slug = shirt();
    taken_slug["variants"][0]["sku"] = json!("OTHER-1");
    cases.push(("taken slug", taken_slug, StatusCode::CONFLICT, None));
    let mut taken_sku = shirt();
    taken_sku["name"] = json!("Another Shirt");
    cases.push(("taken sku", taken_sku, StatusCode::CONFLICT, None));
    let mut twice = shirt();
    twice["name"] = json!("Twice");
    twice["variants"] = json!([
        {"sku": "T-1", "price_minor": 1, "currency": "USD"},
        {"sku": "T-1", "price_minor": 1, "currency": "USD"},
    ]);
    cases.push((
        "sku twice",
        twice,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("variants[1].sku"),
    ));

    for (what, body, status, field) in cases {
        let r = app.admin_json(Method::POST, "/admin/products", &body).await;
        let problem = r.problem(status);
        if let Some(field) = field {
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no errors in {problem}"))
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{what}: {fields:?}");
        }
        assert_eq!(app.counts().await, before, "{what} wrote something");
    }

    // 10 MB: refused before it is parsed.
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
    let r = app
        .call(
            Method::POST,
            "/admin/products",
            admin,
            Some("application/json"),
            huge,
        )
        .await;
    r.problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.counts().await, before);
}

#[tokio::test]
async fn sql_looking_text_is_stored_literally() {
    let app = with_shirts().await;
    let hostile = "'; DROP TABLE products; --";
    let mut body = product_json(
        hostile,
        "shirts",
        "Robert'); DROP TABLE variants;--",
        &[("SQL-1", json!({"color": "' OR 1=1 --"}), 100, 1)],
    );
    body["image_urls"] = json!([]);
    let detail = app.product(body).await;
    assert_eq!(detail["name"], hostile);
    assert_eq!(detail["slug"], "drop-table-products");
    let stored = app.get("/products/drop-table-products").await.ok();
    assert_eq!(stored["name"], hostile);
    assert_eq!(stored["description"], "Robert'); DROP TABLE variants;--");
    assert_eq!(stored["variants"][0]["attributes"]["color"], "' OR 1=1 --");
    assert_eq!(app.count("products").await, 1);
    assert_eq!(app.count("variants").await, 1);
    let found = app.get("/products?q=drop%20table").await.ok();
    assert_eq!(found["total"], 1);
}

#[tokio::test]
async fn products_and_variants_can_be_changed_and_deleted() {
    let app = fixture().await;
    let r = app
        .admin_json(
            Method::PATCH,
            "/admin/products/blue-linen-shirt",
            &json!({"slug": "linen-shirt-blue", "category": "t-shirts", "description": "New."}),
        )
        .await;
    let changed = r.ok();
    assert_eq!(changed["slug"], "linen-shirt-blue");
    assert_eq!(changed["category"]["slug"], "t-shirts");
    assert_eq!(changed["name"], "Blue Linen Shirt");
    app.admin_json(
        Method::PATCH,
        "/admin/products/linen-shirt-blue",
        &json!({"slug": "blue-oxford-cotton-shirt"}),
    )
    .await
    .problem(StatusCode::CONFLICT);
    app.admin_json(
        Method::PATCH,
        "/admin/products/linen-shirt-blue",
        &json!({"category": "nope"}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);

    // Variants: add, change the price (the listing price follows), delete.
    let added = app
        .admin_json(
            Method::POST,
            "/admin/products/linen-shirt-blue/variants",
            &json!({"sku": "LIN-BLU-XL", "attributes": {"color": "blue", "size": "XL"},
                    "price_minor": 1500, "currency": "USD", "on_hand": 2}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
    assert_eq!(added.json()["available"], 2);
    let listed = app.get("/products/linen-shirt-blue").await.ok();
    assert_eq!(listed["price_from"]["amount_minor"], 1500);
    let patched = app
        .admin_json(
            Method::PATCH,
            "/admin/variants/LIN-BLU-XL",
            &json!({"price_minor": 5500}),
        )
        .await
        .ok();
    assert_eq!(patched["price"]["amount_minor"], 5500);
    let listed = app.get("/products/linen-shirt-blue").await.ok();
    assert_eq!(listed["price_from"]["amount_minor"], 3999);
    app.admin_json(
        Method::PATCH,
        "/admin/variants/LIN-BLU-XL",
        &json!({"price_minor": -5}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.admin_delete("/admin/variants/LIN-BLU-XL").await.status,
        StatusCode::NO_CONTENT
    );
    app.admin_delete("/admin/variants/LIN-BLU-XL")
        .await
        .problem(StatusCode::NOT_FOUND);

    // Drafts are visible to admins only.
    let r = app
        .call(
            Method::GET,
            "/admin/products/blue-striped-shirt",
            Some(&app.admin),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(r.ok()["status"], "draft");

    // Deleting takes variants and stock along; the audit trail stays.
    let audit_before = app.count("inventory_adjustments").await;
    assert_eq!(
        app.admin_delete("/admin/products/linen-shirt-blue")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get("/products/linen-shirt-blue")
        .await
        .problem(StatusCode::NOT_FOUND);
    let orphans: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory WHERE sku LIKE 'LIN-%'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(orphans, 0);
    assert_eq!(app.count("inventory_adjustments").await, audit_before);
}

#[tokio::test]
async fn stock_adjustments_are_atomic_audited_and_bounded() {
    let app = with_shirts().await;
    app.product(product_json(
        "Counted Shirt",
        "shirts",
        "",
        &[("CNT-1", json!({}), 100, 10)],
    ))
    .await;
    let uri = "/admin/inventory/CNT-1/adjust";
    let level = app
        .admin_json(
            Method::POST,
            uri,
            &json!({"delta": 5, "reason": "delivery"}),
        )
        .await
        .ok();
    assert_eq!(level["on_hand"], 15);
    assert_eq!(level["available"], 15);

    // Reserved stock cannot be adjusted away.
    sqlx::query("UPDATE inventory SET reserved = 4 WHERE sku = 'CNT-1'")
        .execute(app.pool())
        .await
        .unwrap();
    let r = app
        .admin_json(
            Method::POST,
            uri,
            &json!({"delta": -12, "reason": "shrinkage"}),
        )
        .await;
    let problem = r.problem(StatusCode::CONFLICT);
    assert!(
        problem["detail"].as_str().unwrap().contains("reserved"),
        "{problem}"
    );
    for bad in [
        json!({"delta": 0, "reason": "nothing"}),
        json!({"delta": 1, "reason": ""}),
        json!({"delta": 1.5, "reason": "half"}),
        json!({"delta": 1}),
    ] {
        app.admin_json(Method::POST, uri, &bad)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    app.admin_json(
        Method::POST,
        "/admin/inventory/NOPE/adjust",
        &json!({"delta": 1, "reason": "x"}),
    )
    .await
    .problem(StatusCode::NOT_FOUND);

    // 20 concurrent removals of one unit from 11 unreserved: exactly 11 succeed.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let router = app.router.clone();
            let token = app.admin.clone();
            tokio::spawn(async move {
                use tower::ServiceExt;
                let request = axum::http::Request::post("/admin/inventory/CNT-1/adjust")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Body::from(format!(
                        r#"{{"delta": -1, "reason": "sale {i}"}}"#
                    )))
                    .unwrap();
                router.oneshot(request).await.unwrap().status()
            })
        })
        .collect();
    let mut ok = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, conflicts), (11, 9));
    let inventory = app
        .call(
            Method::GET,
            "/admin/inventory/CNT-1",
            Some(&app.admin),
            None,
            Body::empty(),
        )
        .await
        .ok();
    assert_eq!(inventory["on_hand"], 4);
    assert_eq!(inventory["reserved"], 4);
    assert_eq!(inventory["available"], 0);
    let adjustments = inventory["adjustments"].as_array().unwrap();
    // Initial stock, the delivery, and the 11 sales.
    assert_eq!(adjustments.len(), 13);
    assert_eq!(adjustments[0]["on_hand_after"], 4);
    let total: i64 = adjustments
        .iter()
        .map(|a| a["delta"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 4, "the audit trail adds up to on hand");
    // And the database would refuse it too.
    let direct = sqlx::query("UPDATE inventory SET on_hand = 3 WHERE sku = 'CNT-1'")
        .execute(app.pool())
        .await;
    assert!(direct.is_err());
}

#[tokio::test]
async fn categories_form_a_tree_without_cycles() {
    let app = TestApp::new().await;
    app.category("apparel", "Apparel", None).await;
    app.category("shirts", "Shirts", Some("apparel")).await;
    app.category("oxford", "Oxford", Some("shirts")).await;
    app.admin_json(
        Method::POST,
        "/admin/categories",
        &json!({"slug": "shirts", "name": "Again"}),
    )
    .await
    .problem(StatusCode::CONFLICT);
    app.admin_json(
        Method::POST,
        "/admin/categories",
        &json!({"slug": "orphan", "name": "Orphan", "parent": "nope"}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.admin_json(
        Method::POST,
        "/admin/categories",
        &json!({"slug": "Bad Slug", "name": "x"}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    // Moving apparel under its grandchild would make a cycle.
    app.admin_json(
        Method::PUT,
        "/admin/categories/apparel",
        &json!({"slug": "apparel", "name": "Apparel", "parent": "oxford"}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    // Moving oxford to the top is fine.
    let moved = app
        .admin_json(
            Method::PUT,
            "/admin/categories/oxford",
            &json!({"slug": "oxford-shirts", "name": "Oxford Shirts", "position": 3}),
        )
        .await
        .ok();
    assert_eq!(moved["parent"], Value::Null);
    let tree = app.get("/categories").await.ok();
    assert_eq!(tree.as_array().unwrap().len(), 2);
    // A category with children cannot go; a leaf can.
    app.admin_delete("/admin/categories/apparel")
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(
        app.admin_delete("/admin/categories/shirts").await.status,
        StatusCode::NO_CONTENT
    );
    app.admin_delete("/admin/categories/shirts")
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(app.count("categories").await, 2);
}
