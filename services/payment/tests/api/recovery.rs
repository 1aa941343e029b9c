//! Interrupted provider calls: a payment left `processing` is resolved by asking the
//! provider, on the next confirmation or by the sweeper, and recorded exactly once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use payment::provider::ProviderStatus;

use crate::helpers::{GOOD, ScriptedProvider, TestApp};

const TIMEOUT: Duration = Duration::from_secs(60);
const LONG_AGO: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_fresh_processing_payment_is_a_409_in_progress() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 900).await;
    app.interrupted(id, Duration::ZERO).await;
    let problem = app
        .confirm(&app.buyer, id, "k", GOOD)
        .await
        .problem(StatusCode::CONFLICT);
    assert!(problem["detail"].as_str().unwrap().contains("under way"));
    assert_eq!(
        payment::recovery::sweep(app.pool(), app.provider.as_ref(), TIMEOUT)
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.status(id).await, "processing");
}

#[tokio::test]
async fn the_sweeper_gives_an_interrupted_test_gateway_payment_back_to_the_buyer() {
    let app = TestApp::new().await;
    let id = app.payment(&app.buyer, 900).await;
    app.interrupted(id, LONG_AGO).await;
    // The stateless test gateway never charged anything that is not recorded.
    let resolved = payment::recovery::sweep(app.pool(), app.provider.as_ref(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resolved, 1);
    assert_eq!(app.status(id).await, "requires_payment_method");
    assert!(app.ledger(id).await.is_empty());
    assert_eq!(
        app.confirm(&app.buyer, id, "k", GOOD).await.ok()["status"],
        "succeeded"
    );
    assert_eq!(app.ledger(id).await.len(), 1);
}

#[tokio::test]
async fn a_charge_made_before_the_crash_is_recorded_once_by_the_next_confirmation() {
    let provider = Arc::new(ScriptedProvider::default());
    let app = TestApp::with_provider(provider.clone()).await;
    let order_id = app.order(&app.buyer, 4100).await;
    let id = app.payment_of(order_id).await;
    app.interrupted(id, LONG_AGO).await;
    // The provider had authorised it; the capture was lost with the crash.
    *provider.retrieve_says.lock().unwrap() = Some(ProviderStatus::RequiresCapture);

    let problem = app
        .confirm(&app.buyer, id, "retry", GOOD)
        .await
        .problem(StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("succeeded already")
    );
    assert_eq!(provider.captures.load(Ordering::SeqCst), 1);
    assert_eq!(app.status(id).await, "succeeded");
    assert_eq!(app.ledger(id).await, [("charge".to_owned(), 4100)]);
    let succeeded = app.events("payment.succeeded").await;
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0].data["order_id"], serde_json::json!(order_id));
    // Nothing is left for the sweeper.
    assert_eq!(
        payment::recovery::sweep(app.pool(), app.provider.as_ref(), TIMEOUT)
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.violations().await, []);
}

#[tokio::test]
async fn an_unanswered_confirmation_stays_processing_until_the_sweeper_resolves_it() {
    let provider = Arc::new(ScriptedProvider::default());
    let app = TestApp::with_provider(provider.clone()).await;
    let id = app.payment(&app.buyer, 3300).await;
    provider.confirm_unanswered.store(true, Ordering::SeqCst);
    app.confirm(&app.buyer, id, "k", GOOD)
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.status(id).await, "processing");
    // The answer was not stored: the key is free for the retry.
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
    app.confirm(&app.buyer, id, "k", GOOD)
        .await
        .problem(StatusCode::CONFLICT);

    // Later: the provider answers again and says the charge went through.
    provider.confirm_unanswered.store(false, Ordering::SeqCst);
    *provider.retrieve_says.lock().unwrap() = Some(ProviderStatus::Succeeded {
        charge_ref: "tg_ch_recovered".into(),
    });
    sqlx::query(
        "UPDATE payments SET processing_since = processing_since - interval '2 minutes' WHERE id = $1",
    )
    .bind(id)
    .execute(app.pool())
    .await
    .unwrap();
    assert_eq!(
        payment::recovery::sweep(app.pool(), app.provider.as_ref(), TIMEOUT)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.status(id).await, "succeeded");
    assert_eq!(app.ledger(id).await, [("charge".to_owned(), 3300)]);
    let provider_ref: String = sqlx::query_scalar("SELECT charge_ref FROM payments WHERE id = $1")
        .bind(id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(provider_ref, "tg_ch_recovered");
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
    // The retried request now learns the outcome.
    app.confirm(&app.buyer, id, "k", GOOD)
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(app.violations().await, []);
}
