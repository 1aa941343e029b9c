//! Reading orders: one's own, newest first with a keyset cursor; another's is a 404.

use axum::http::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::TestApp;

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_customer_lists_their_own_orders_newest_first_page_by_page() {
    let app = TestApp::new().await;
    let (buyer, other) = (app.customer(), app.customer());
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(app.order(&buyer, &[("A-1", 1)]).await["id"].clone());
    }
    app.order(&other, &[("A-1", 1)]).await;
    let newest_first: Vec<String> = placed
        .iter()
        .rev()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();

    let first = app.get("/orders?limit=2", Some(&buyer.token)).await.ok();
    assert_eq!(ids(&first), newest_first[..2]);
    assert_eq!(first["items"][0]["lines"][0]["sku"], "A-1");
    assert!(first["items"][0].get("transitions").is_none());
    let cursor = first["next_cursor"].as_str().unwrap();
    // An order placed meanwhile does not shift the pages.
    app.order(&buyer, &[("A-1", 1)]).await;
    let second = app
        .get(
            &format!("/orders?limit=2&cursor={cursor}"),
            Some(&buyer.token),
        )
        .await
        .ok();
    assert_eq!(ids(&second), newest_first[2..4]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let last = app
        .get(
            &format!("/orders?limit=2&cursor={cursor}"),
            Some(&buyer.token),
        )
        .await
        .ok();
    assert_eq!(ids(&last), newest_first[4..]);
    assert!(last.get("next_cursor").is_none(), "{last}");

    let all = app.get("/orders", Some(&buyer.token)).await.ok();
    assert_eq!(ids(&all).len(), 6);
    let theirs = app.get("/orders", Some(&other.token)).await.ok();
    assert_eq!(ids(&theirs).len(), 1);
    let nobody = app.customer();
    let none = app.get("/orders", Some(&nobody.token)).await.ok();
    assert!(ids(&none).is_empty());
}

#[tokio::test]
async fn listing_parameters_are_checked() {
    let app = TestApp::new().await;
    let buyer = app.customer();
    for query in ["limit=0", "limit=101", "limit=x", "cursor=nope"] {
        app.get(&format!("/orders?{query}"), Some(&buyer.token))
            .await
            .problem(StatusCode::BAD_REQUEST);
    }
    app.get("/orders", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_customers_order_is_not_found_and_an_admin_sees_it() {
    let app = TestApp::new().await;
    let (buyer, other) = (app.customer(), app.customer());
    let order = app.order(&buyer, &[("A-1", 2)]).await;
    let uri = format!("/orders/{}", order["id"].as_str().unwrap());

    let theirs = app.get(&uri, Some(&other.token)).await;
    let missing = app
        .get(&format!("/orders/{}", Uuid::now_v7()), Some(&other.token))
        .await;
    // Indistinguishable from an order that does not exist.
    let (a, b) = (
        theirs.problem(StatusCode::NOT_FOUND),
        missing.problem(StatusCode::NOT_FOUND),
    );
    assert_eq!(a, b);
    app.get("/orders/not-a-uuid", Some(&other.token))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get(&uri, None).await.problem(StatusCode::UNAUTHORIZED);

    let own = app.get(&uri, Some(&buyer.token)).await.ok();
    assert_eq!(own["id"], order["id"]);
    let admin = app.get(&uri, Some(&app.admin.token)).await.ok();
    assert_eq!(admin, own);
}
