//! Confirming payments: each test card, 3-D Secure, idempotency keys, concurrency, and
//! who may see what.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{DECLINED, GOOD, NO_FUNDS, THREE_DS, TestApp, card_body, post_request};

#[tokio::test]
async fn a_good_card_succeeds_with_one_charge_and_an_event() {
    let app = TestApp::new().await;
    let order_id = app.order(&app.buyer, 1999).await;
    let id = app.payment_of(order_id).await;

    let response = app.confirm(&app.buyer, id, "k1", GOOD).await;
    let body = response.ok();
    assert_eq!(response.headers["cache-control"], "no-store");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["amount_minor"], 1999);
    assert_eq!(body["currency"], "USD");
    assert_eq!(body["card"], json!({"brand": "visa", "last4": "4242"}));
    assert!(body.get("failure_reason").is_none());

    assert_eq!(app.ledger(id).await, [("charge".to_owned(), 1999)]);
    let events = app.events("payment.succeeded").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].source, "payment");
    assert_eq!(
        events[0].data,
        json!({"order_id": order_id, "payment_id": id, "amount_minor": 1999, "currency": "USD"})
    );
    assert!(app.events("payment.failed").await.is_empty());

    // The card number is nowhere in the database: not in the payment, the stored answer,
    // the ledger or the outbox.
    for sql in [
        "SELECT count(*) FROM payments WHERE row_to_json(payments)::text LIKE '%424242424242%'",
        "SELECT count(*) FROM idempotency_keys WHERE convert_from(body, 'UTF8') LIKE '%424242424242%'",
        "SELECT count(*) FROM ledger_entries WHERE row_to_json(ledger_entries)::text LIKE '%424242424242%'",
        "SELECT count(*) FROM outbox WHERE envelope::text LIKE '%424242424242%'",
    ] {
        assert_eq!(app.count(sql).await, 0, "{sql}");
    }
    assert_eq!(app.violations().await, []);
}

#[tokio::test]
async fn declined_cards_fail_with_their_reason_and_charge_nothing() {
    let app = TestApp::new().await;
    for (number, reason) in [
        (DECLINED, "card_declined"),
        (NO_FUNDS, "insufficient_funds"),
    ] {
        let order_id = app.order(&app.buyer, 500).await;
        let id = app.payment_of(order_id).await;
        let body = app.confirm(&app.buyer, id, number, number).await.ok();
        assert_eq!(body["status"], "failed", "{body}");
        assert_eq!(body["failure_reason"], reason);
        assert_eq!(body["card"]["last4"], &number[12..]);
        assert!(app.ledger(id).await.is_empty());
        let failed: Vec<_> = app
            .events("payment.failed")
            .await
            .into_iter()
            .filter(|e| e.data["payment_id"] == json!(id))
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            failed[0].data,
            json!({"order_id": order_id, "payment_id": id, "reason": reason})
        );
        // Failed is final: the order is cancelled, a new card does not revive it.
        let again = app.confirm(&app.buyer, id, "another-key", GOOD).await;
        let problem = again.problem(StatusCode::CONFLICT);
        assert!(
            problem["detail"].as_str().unwrap().contains(reason),
            "{problem}"
        );
    }
    assert!(app.events("payment.succeeded").await.is_empty());
    assert_eq!(app.violations().await, []);
}

#[tokio::test]
async fn an_unknown_card_number_is_a_422_naming_the_test_numbers_and_changes_nothing() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 700).await;
    let response = app.confirm(&app.buyer, id, "k", "5555555555554444").await;
    assert_eq!(response.invalid_fields(), ["payment_method.number"]);
    let text = response.text();
    for number in [GOOD, DECLINED, NO_FUNDS, THREE_DS] {
        assert!(text.contains(number), "{text}");
    }
    assert!(!text.contains("5555555555554444"), "{text}");
    assert_eq!(app.status(id).await, "requires_payment_method");
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
    // The key was not used up: the corrected request goes through with it.
    assert_eq!(
        app.confirm(&app.buyer, id, "k", GOOD).await.ok()["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn invalid_card_fields_are_named() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 700).await;
    let body = json!({"payment_method": {
        "type": "card", "number": "4242424242424241", "exp_month": 0, "exp_year": 2001, "cvc": "1"
    }});
    let response = app
        .post(
            &app.buyer,
            &format!("/payments/{id}/confirm"),
            Some("k"),
            &body,
        )
        .await;
    assert_eq!(
        response.invalid_fields(),
        [
            "payment_method.number",
            "payment_method.exp_month",
            "payment_method.cvc"
        ]
    );
    let unknown_field = json!({"payment_method": {
        "type": "card", "number": GOOD, "exp_month": 1, "exp_year": 2035, "cvc": "123", "pin": "1"
    }});
    let response = app
        .post(
            &app.buyer,
            &format!("/payments/{id}/confirm"),
            Some("k"),
            &unknown_field,
        )
        .await;
    response.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.status(id).await, "requires_payment_method");
}

#[tokio::test]
async fn three_d_secure_approve_succeeds_and_deny_fails() {
    let app = TestApp::new().await;

    let approved = app.payment(&app.buyer, 4200).await;
    let body = app
        .confirm(&app.buyer, approved, "3ds-1", THREE_DS)
        .await
        .ok();
    assert_eq!(body["status"], "requires_action");
    assert_eq!(body["next_action"]["type"], "three_d_secure");
    assert_eq!(
        body["next_action"]["authenticate"]["path"],
        format!("/payments/{approved}/authenticate")
    );
    assert!(app.ledger(approved).await.is_empty());
    // It waits for authentication, not for another card.
    let problem = app
        .confirm(&app.buyer, approved, "3ds-2", GOOD)
        .await
        .problem(StatusCode::CONFLICT);
    assert!(problem["detail"].as_str().unwrap().contains("authenticate"));
    // Only approve and deny exist; only the buyer may answer.
    app.authenticate(&app.buyer, approved, "maybe")
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.authenticate(&app.other, approved, "approve")
        .await
        .problem(StatusCode::NOT_FOUND);

    let body = app.authenticate(&app.buyer, approved, "approve").await.ok();
    assert_eq!(body["status"], "succeeded");
    assert!(body.get("next_action").is_none());
    assert_eq!(app.ledger(approved).await, [("charge".to_owned(), 4200)]);
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
    app.authenticate(&app.buyer, approved, "approve")
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(app.ledger(approved).await.len(), 1);

    let denied = app.payment(&app.buyer, 4300).await;
    let body = app
        .confirm(&app.buyer, denied, "3ds-3", THREE_DS)
        .await
        .ok();
    assert_eq!(body["status"], "requires_action");
    let body = app.authenticate(&app.buyer, denied, "deny").await.ok();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["failure_reason"], "authentication_failed");
    assert!(app.ledger(denied).await.is_empty());
    let failed = app.events("payment.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["reason"], "authentication_failed");
    assert_eq!(app.violations().await, []);
}

#[tokio::test]
async fn a_replay_with_the_same_key_is_byte_for_byte_the_first_answer() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 1500).await;
    let first = app.confirm(&app.buyer, id, "replay-key", GOOD).await;
    assert_eq!(first.status, StatusCode::OK);
    // Time passes and the payment changes (updated_at would differ in a fresh answer).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    sqlx::query("UPDATE payments SET updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(app.pool())
        .await
        .unwrap();
    let again = app.confirm(&app.buyer, id, "replay-key", GOOD).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["content-type"], first.headers["content-type"]);
    assert_eq!(app.ledger(id).await.len(), 1);
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
}

#[tokio::test]
async fn ten_concurrent_identical_confirms_charge_once_and_answer_alike() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 2500).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let router = app.router.clone();
            let request = post_request(
                &app.buyer.token,
                &format!("/payments/{id}/confirm"),
                Some("same-key"),
                &card_body(GOOD),
            );
            tokio::spawn(async move { shopkit::testing::send(&router, request).await.unwrap() })
        })
        .collect();
    let mut bodies = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        bodies.push(response.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(app.ledger(id).await, [("charge".to_owned(), 2500)]);
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 1);
}

#[tokio::test]
async fn concurrent_confirms_with_different_keys_charge_once() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 2600).await;
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let router = app.router.clone();
            let request = post_request(
                &app.buyer.token,
                &format!("/payments/{id}/confirm"),
                Some(&format!("key-{n}")),
                &card_body(GOOD),
            );
            tokio::spawn(async move { shopkit::testing::send(&router, request).await.unwrap() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflicts), (1, 9), "{statuses:?}");
    assert_eq!(app.ledger(id).await, [("charge".to_owned(), 2600)]);
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_422() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 900).await;
    app.confirm(&app.buyer, id, "k", GOOD).await.ok();
    let mut other_body = card_body(GOOD);
    other_body["payment_method"]["exp_month"] = json!(11);
    let response = app
        .post(
            &app.buyer,
            &format!("/payments/{id}/confirm"),
            Some("k"),
            &other_body,
        )
        .await;
    let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{problem}"
    );
    // Another payment with the key is another request as well.
    let second = app.payment(&app.buyer, 901).await;
    app.confirm(&app.buyer, second, "k", GOOD)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.status(second).await, "requires_payment_method");
    // Keys are per user: another buyer's "k" is theirs.
    let someone = app.customer();
    let theirs = app.payment(&someone, 902).await;
    assert_eq!(
        app.confirm(&someone, theirs, "k", GOOD).await.ok()["status"],
        "succeeded"
    );
    assert_eq!(app.ledger(id).await.len(), 1);
}

#[tokio::test]
async fn a_confirm_without_a_valid_key_is_a_400() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 900).await;
    let uri = format!("/payments/{id}/confirm");
    let problem = app
        .post(&app.buyer, &uri, None, &card_body(GOOD))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    app.post(&app.buyer, &uri, Some(&"k".repeat(256)), &card_body(GOOD))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert_eq!(app.status(id).await, "requires_payment_method");
}

#[tokio::test]
async fn a_second_confirm_after_success_is_a_409_and_charges_nothing() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 1200).await;
    app.confirm(&app.buyer, id, "first", GOOD).await.ok();
    let problem = app
        .confirm(&app.buyer, id, "second", GOOD)
        .await
        .problem(StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("succeeded already")
    );
    assert_eq!(app.ledger(id).await, [("charge".to_owned(), 1200)]);
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
}

#[tokio::test]
async fn another_users_payment_is_a_404() {
    let app = TestApp::new().await;
    let order_id = app.order(&app.buyer, 800).await;
    let id = app.payment_of(order_id).await;

    let mine = app.get(&app.buyer, &format!("/payments/{id}")).await.ok();
    assert_eq!(mine["id"], json!(id));
    let by_order = app
        .get(&app.buyer, &format!("/payments/{order_id}"))
        .await
        .ok();
    assert_eq!(by_order, mine);

    let theirs = app
        .get(&app.other, &format!("/payments/{id}"))
        .await
        .problem(StatusCode::NOT_FOUND);
    let unknown = Uuid::now_v7();
    let nothing = app
        .get(&app.other, &format!("/payments/{unknown}"))
        .await
        .problem(StatusCode::NOT_FOUND);
    // Identical but for the id: nothing says that the payment exists.
    assert_eq!(
        theirs["detail"]
            .as_str()
            .unwrap()
            .replace(&id.to_string(), "X"),
        nothing["detail"]
            .as_str()
            .unwrap()
            .replace(&unknown.to_string(), "X")
    );
    app.confirm(&app.other, id, "k", GOOD)
        .await
        .problem(StatusCode::NOT_FOUND);
    let listed = app
        .get(&app.other, &format!("/payments?order_id={order_id}"))
        .await
        .ok();
    assert_eq!(listed["items"], json!([]));
    assert_eq!(app.status(id).await, "requires_payment_method");

    // Admins see it; only the buyer pays it.
    assert_eq!(
        app.get(&app.admin, &format!("/payments/{id}")).await.ok()["id"],
        json!(id)
    );
    app.confirm(&app.admin, id, "k", GOOD)
        .await
        .problem(StatusCode::FORBIDDEN);
    // Without a token: 401.
    let anonymous = app
        .send(
            axum::http::Request::get(format!("/payments/{id}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    anonymous.problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_payment_not_created_yet_is_a_404_that_says_to_retry_shortly() {
    let app = TestApp::new().await;
    let order_id = Uuid::now_v7();
    let problem = app
        .confirm(&app.buyer, order_id, "early", GOOD)
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("retry shortly"),
        "{problem}"
    );
    // The event arrives; the same request (key and all) now goes through, by order id.
    let envelope = crate::helpers::awaiting_payment(order_id, app.buyer.id, 3100, "EUR");
    app.deliver(&envelope).await.unwrap();
    let body = app.confirm(&app.buyer, order_id, "early", GOOD).await.ok();
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["order_id"], json!(order_id));
    assert_eq!(body["currency"], "EUR");
}

#[tokio::test]
async fn listing_pages_through_the_callers_payments_newest_first() {
    let app = TestApp::new().await;
    let mut mine = Vec::new();
    for amount in [100, 200, 300] {
        mine.push(app.payment(&app.buyer, amount).await);
    }
    app.payment(&app.other, 400).await;
    let page = app.get(&app.buyer, "/payments?limit=2").await.ok();
    let ids: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(ids, [json!(mine[2]), json!(mine[1])]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = app
        .get(&app.buyer, &format!("/payments?limit=2&cursor={cursor}"))
        .await
        .ok();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], json!(mine[0]));
    assert!(page["next_cursor"].is_null());

    let order_id = app.order_of(mine[1]).await;
    let page = app
        .get(&app.buyer, &format!("/payments?order_id={order_id}"))
        .await
        .ok();
    assert_eq!(page["items"][0]["id"], json!(mine[1]));
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    app.get(&app.buyer, "/payments?limit=0")
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.get(&app.buyer, "/payments?cursor=nope")
        .await
        .problem(StatusCode::BAD_REQUEST);
    // Admins list everyone's.
    let all = app.get(&app.admin, "/payments").await.ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
}
