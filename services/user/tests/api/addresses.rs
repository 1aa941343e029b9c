//! The address book: CRUD, defaults, paging, and isolation between users.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};

fn address(name: &str) -> Value {
    json!({
        "kind": "shipping",
        "name": name,
        "line1": "Invalidenstraße 116",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
        "phone": "+49 30 1234567",
    })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app
        .json_as(Method::POST, "/me/addresses", Some(token), body)
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let created = response.json();
    assert_eq!(
        response.headers[header::LOCATION],
        format!("/me/addresses/{}", created["id"].as_str().unwrap()).as_str()
    );
    created
}

#[tokio::test]
async fn create_read_replace_delete() {
    let app = TestApp::new().await;
    let ann = app.customer("ann@example.com").await;
    let created = create(&app, &ann, &address("Ann Example")).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["kind"], "shipping");
    assert_eq!(created["line2"], Value::Null);
    assert_eq!(created["is_default"], false);

    let read = app
        .get(&format!("/me/addresses/{id}"), Some(&ann))
        .await
        .ok();
    assert_eq!(read, created);

    let mut changed = address("Ann B. Example");
    changed["kind"] = json!("billing");
    changed["line2"] = json!("Hinterhaus");
    changed["phone"] = json!(null);
    let replaced = app
        .json_as(
            Method::PUT,
            &format!("/me/addresses/{id}"),
            Some(&ann),
            &changed,
        )
        .await
        .ok();
    assert_eq!(replaced["name"], "Ann B. Example");
    assert_eq!(replaced["kind"], "billing");
    assert_eq!(replaced["line2"], "Hinterhaus");
    assert_eq!(replaced["phone"], Value::Null);
    assert_eq!(replaced["created_at"], created["created_at"]);

    let deleted = app
        .call(
            Method::DELETE,
            &format!("/me/addresses/{id}"),
            Some(&ann),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.get(&format!("/me/addresses/{id}"), Some(&ann))
        .await
        .problem(StatusCode::NOT_FOUND);
    let again = app
        .call(
            Method::DELETE,
            &format!("/me/addresses/{id}"),
            Some(&ann),
            None,
            Body::empty(),
        )
        .await;
    again.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn one_default_per_kind() {
    let app = TestApp::new().await;
    let ann = app.customer("ann@example.com").await;
    let mut home = address("Home");
    home["is_default"] = json!(true);
    let home = create(&app, &ann, &home).await;
    let mut work = address("Work");
    work["is_default"] = json!(true);
    let work = create(&app, &ann, &work).await;
    let mut billing = address("Billing");
    billing["kind"] = json!("billing");
    billing["is_default"] = json!(true);
    create(&app, &ann, &billing).await;
    let list = app.get("/me/addresses", Some(&ann)).await.ok();
    let defaults: Vec<(&str, bool)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap(),
                a["is_default"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        defaults,
        [("Home", false), ("Work", true), ("Billing", true)]
    );
    // Making Home the default again moves it back.
    let mut again = address("Home");
    again["is_default"] = json!(true);
    let uri = format!("/me/addresses/{}", home["id"].as_str().unwrap());
    app.json_as(Method::PUT, &uri, Some(&ann), &again)
        .await
        .ok();
    let work = app
        .get(
            &format!("/me/addresses/{}", work["id"].as_str().unwrap()),
            Some(&ann),
        )
        .await
        .ok();
    assert_eq!(work["is_default"], false);
}

#[tokio::test]
async fn pages_follow_the_cursor_and_the_book_has_a_limit() {
    let app = TestApp::new().await;
    let ann = app.customer("ann@example.com").await;
    for i in 0..user::addresses::MAX_ADDRESSES {
        create(&app, &ann, &address(&format!("A{i:02}"))).await;
    }
    let full = app
        .json_as(
            Method::POST,
            "/me/addresses",
            Some(&ann),
            &address("One too many"),
        )
        .await;
    full.problem(StatusCode::CONFLICT);

    let mut names = Vec::new();
    let mut uri = "/me/addresses?limit=15".to_owned();
    loop {
        let page = app.get(&uri, Some(&ann)).await.ok();
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/me/addresses?limit=15&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..50).map(|i| format!("A{i:02}")).collect();
    assert_eq!(names, expected, "every address once, in creation order");
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=nope",
        "colour=blue",
    ] {
        app.get(&format!("/me/addresses?{bad}"), Some(&ann))
            .await
            .problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn another_users_address_is_not_found_and_stays_untouched() {
    let app = TestApp::new().await;
    let ann = app.customer("ann@example.com").await;
    let bob = app.customer("bob@example.com").await;
    let annes = create(&app, &ann, &address("Ann Example")).await;
    let uri = format!("/me/addresses/{}", annes["id"].as_str().unwrap());

    // Bob can neither read, replace nor delete it: 404, as for an id that never existed.
    let read = app
        .get(&uri, Some(&bob))
        .await
        .problem(StatusCode::NOT_FOUND);
    let never = app
        .get(
            &format!("/me/addresses/{}", uuid::Uuid::now_v7()),
            Some(&bob),
        )
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(read, never, "indistinguishable from a missing id");
    app.json_as(Method::PUT, &uri, Some(&bob), &address("Bob was here"))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.call(Method::DELETE, &uri, Some(&bob), None, Body::empty())
        .await
        .problem(StatusCode::NOT_FOUND);
    let bobs_list = app.get("/me/addresses", Some(&bob)).await.ok();
    assert_eq!(bobs_list["items"], json!([]));
    // A cursor taken from Ann's ids shows Bob nothing of hers either.
    let with_cursor = app
        .get(
            &format!("/me/addresses?cursor={}", uuid::Uuid::nil()),
            Some(&bob),
        )
        .await
        .ok();
    assert_eq!(with_cursor["items"], json!([]));

    // Ann's address is exactly as she left it.
    assert_eq!(app.get(&uri, Some(&ann)).await.ok(), annes);
    // And each caller's /me is their own.
    let me_ann = app.get("/me", Some(&ann)).await.ok();
    let me_bob = app.get("/me", Some(&bob)).await.ok();
    assert_eq!(me_ann["email"], "ann@example.com");
    assert_eq!(me_bob["email"], "bob@example.com");
    // Bob changing his password leaves Ann's untouched.
    app.json_as(
        Method::PUT,
        "/me/password",
        Some(&bob),
        &json!({"current_password": PASSWORD, "new_password": "bob's new phrase"}),
    )
    .await
    .ok();
    app.login("ann@example.com", PASSWORD).await.ok();
}

#[tokio::test]
async fn addresses_are_validated_field_by_field() {
    let app = TestApp::new().await;
    let ann = app.customer("ann@example.com").await;
    let before = app.counts().await;
    let mut bad = address(" ");
    bad["country"] = json!("Germany");
    bad["city"] = json!("x".repeat(101));
    bad["phone"] = json!("call me maybe");
    bad["postal_code"] = json!("1".repeat(21));
    bad["line2"] = json!("two\nlines");
    let response = app
        .json_as(Method::POST, "/me/addresses", Some(&ann), &bad)
        .await;
    let mut fields = response.invalid_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["city", "country", "line2", "name", "phone", "postal_code"]
    );
    for (field, value) in [
        ("kind", json!("holiday")),
        ("is_default", json!("yes")),
        ("name", json!(42)),
        ("surprise", json!(1)),
    ] {
        let mut body = address("Ann");
        body[field] = value;
        let response = app
            .json_as(Method::POST, "/me/addresses", Some(&ann), &body)
            .await;
        assert!(
            response.status.is_client_error(),
            "{field}: {}",
            response.text()
        );
        assert_eq!(
            response.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
    let missing = json!({"kind": "shipping", "name": "Ann"});
    assert!(
        app.json_as(Method::POST, "/me/addresses", Some(&ann), &missing)
            .await
            .status
            .is_client_error()
    );
    // A malformed id is a 404 like any other unknown one.
    app.get("/me/addresses/not-a-uuid", Some(&ann))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(app.counts().await, before, "nothing was written");
    // Without a token: 401.
    app.json_as(Method::POST, "/me/addresses", None, &address("Ann"))
        .await
        .problem(StatusCode::UNAUTHORIZED);
}
