//! The ledger: its invariant after a mix of outcomes, its guards, and the admin reads.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{DECLINED, GOOD, NO_FUNDS, THREE_DS, TestApp, cancelled, refund_requested};

#[tokio::test]
async fn the_ledger_balances_after_a_mix_of_paid_failed_refunded_and_cancelled() {
    let app = TestApp::new().await;
    let buyer = app.buyer.clone();
    // (order, amount, expected status, expected balance)
    let mut cases = Vec::new();

    let paid = app.order(&buyer, 1000).await;
    app.confirm(&buyer, app.payment_of(paid).await, "a", GOOD)
        .await
        .ok();
    cases.push((paid, 1000, "succeeded", 1000));

    let declined = app.order(&buyer, 1100).await;
    app.confirm(&buyer, app.payment_of(declined).await, "b", DECLINED)
        .await
        .ok();
    cases.push((declined, 1100, "failed", 0));

    let broke = app.order(&buyer, 1200).await;
    app.confirm(&buyer, app.payment_of(broke).await, "c", NO_FUNDS)
        .await
        .ok();
    cases.push((broke, 1200, "failed", 0));

    let refunded = app.order(&buyer, 1300).await;
    app.confirm(&buyer, app.payment_of(refunded).await, "d", GOOD)
        .await
        .ok();
    app.deliver(&refund_requested(refunded)).await.unwrap();
    cases.push((refunded, 1300, "refunded", 0));

    let authenticated = app.order(&buyer, 1400).await;
    let id = app.payment_of(authenticated).await;
    app.confirm(&buyer, id, "e", THREE_DS).await.ok();
    app.authenticate(&buyer, id, "approve").await.ok();
    cases.push((authenticated, 1400, "succeeded", 1400));

    let authenticated_refunded = app.order(&buyer, 1450).await;
    let id = app.payment_of(authenticated_refunded).await;
    app.confirm(&buyer, id, "e2", THREE_DS).await.ok();
    app.authenticate(&buyer, id, "approve").await.ok();
    app.deliver(&refund_requested(authenticated_refunded))
        .await
        .unwrap();
    cases.push((authenticated_refunded, 1450, "refunded", 0));

    let denied = app.order(&buyer, 1500).await;
    let id = app.payment_of(denied).await;
    app.confirm(&buyer, id, "f", THREE_DS).await.ok();
    app.authenticate(&buyer, id, "deny").await.ok();
    cases.push((denied, 1500, "failed", 0));

    let waiting = app.order(&buyer, 1600).await;
    app.confirm(&buyer, app.payment_of(waiting).await, "g", THREE_DS)
        .await
        .ok();
    cases.push((waiting, 1600, "requires_action", 0));

    let abandoned = app.order(&buyer, 1700).await;
    app.deliver(&cancelled(abandoned)).await.unwrap();
    cases.push((abandoned, 1700, "cancelled", 0));

    let untouched = app.order(&buyer, 1800).await;
    cases.push((untouched, 1800, "requires_payment_method", 0));

    assert_eq!(app.violations().await, []);
    for (order_id, amount, status, balance) in &cases {
        let ledger = app
            .get(&app.admin, &format!("/admin/ledger/{order_id}"))
            .await
            .ok();
        assert_eq!(ledger["payment_status"], *status, "{ledger}");
        assert_eq!(ledger["balance_minor"], *balance, "{ledger}");
        assert_eq!(ledger["expected_balance_minor"], *balance, "{ledger}");
        assert_eq!(ledger["consistent"], true);
        for entry in ledger["entries"].as_array().unwrap() {
            assert_eq!(entry["amount_minor"], *amount);
            assert_eq!(entry["currency"], "USD");
            assert_eq!(entry["order_id"], json!(order_id));
        }
    }
    let charged: i64 = app
        .count("SELECT COALESCE(sum(amount_minor), 0)::bigint FROM ledger_entries WHERE kind = 'charge'")
        .await;
    assert_eq!(charged, 1000 + 1300 + 1400 + 1450);
    let held: i64 = cases.iter().map(|c| c.3).sum();
    let balance: i64 = app
        .count(
            "SELECT COALESCE(sum(CASE kind WHEN 'charge' THEN amount_minor ELSE -amount_minor END), 0)::bigint FROM ledger_entries",
        )
        .await;
    assert_eq!(balance, held);
}

#[tokio::test]
async fn the_ledger_is_append_only_with_one_charge_per_payment_and_breaks_are_found() {
    let app = TestApp::new().await;
    let order_id = app.order(&app.buyer, 2000).await;
    let id = app.payment_of(order_id).await;
    app.confirm(&app.buyer, id, "k", GOOD).await.ok();

    for sql in [
        "UPDATE ledger_entries SET amount_minor = 1",
        "DELETE FROM ledger_entries",
    ] {
        let err = sqlx::query(sql).execute(app.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    let second_charge = sqlx::query(
        "INSERT INTO ledger_entries (id, payment_id, order_id, kind, amount_minor, currency, provider_ref, at)
         VALUES ($1, $2, $3, 'charge', 2000, 'USD', 'x', now())",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(order_id)
    .execute(app.pool())
    .await
    .unwrap_err();
    assert!(
        second_charge
            .to_string()
            .contains("ledger_one_charge_per_payment"),
        "{second_charge}"
    );
    let zero = sqlx::query(
        "INSERT INTO ledger_entries (id, payment_id, order_id, kind, amount_minor, currency, provider_ref, at)
         VALUES ($1, $2, $3, 'refund', 0, 'USD', 'x', now())",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(order_id)
    .execute(app.pool())
    .await;
    assert!(zero.is_err());

    // A refund row without the status change: the invariant check names the payment.
    sqlx::query(
        "INSERT INTO ledger_entries (id, payment_id, order_id, kind, amount_minor, currency, provider_ref, at)
         VALUES ($1, $2, $3, 'refund', 2000, 'USD', 'manual', now())",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(order_id)
    .execute(app.pool())
    .await
    .unwrap();
    let violations = app.violations().await;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].payment_id, id);
    assert_eq!(violations[0].balance_minor, 0);
    assert_eq!(violations[0].expected_minor, 2000);
    let ledger = app
        .get(&app.admin, &format!("/admin/ledger/{order_id}"))
        .await
        .ok();
    assert_eq!(ledger["consistent"], false);
}

#[tokio::test]
async fn admin_reads_need_the_admin_role() {
    let app = TestApp::new().await;
    let paid = app.payment(&app.buyer, 300).await;
    app.confirm(&app.buyer, paid, "k", GOOD).await.ok();
    app.payment(&app.other, 400).await;

    app.get(&app.buyer, "/admin/payments")
        .await
        .problem(StatusCode::FORBIDDEN);
    let order_id = app.order_of(paid).await;
    app.get(&app.buyer, &format!("/admin/ledger/{order_id}"))
        .await
        .problem(StatusCode::FORBIDDEN);

    let all = app.get(&app.admin, "/admin/payments").await.ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let succeeded = app
        .get(&app.admin, "/admin/payments?status=succeeded")
        .await
        .ok();
    assert_eq!(succeeded["items"].as_array().unwrap().len(), 1);
    assert_eq!(succeeded["items"][0]["id"], json!(paid));
    let theirs = app
        .get(
            &app.admin,
            &format!("/admin/payments?user_id={}", app.other.id),
        )
        .await
        .ok();
    assert_eq!(theirs["items"][0]["user_id"], json!(app.other.id));
    app.get(&app.admin, "/admin/payments?status=paid")
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.get(&app.admin, &format!("/admin/ledger/{}", Uuid::now_v7()))
        .await
        .problem(StatusCode::NOT_FOUND);
}
