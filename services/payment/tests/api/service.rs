//! The service as a process would run it: configuration from settings, the real listener,
//! and the event broker (a real RabbitMQ).

use std::time::{Duration, Instant};

use payment::config::ShopMode;
use payment::{Application, Config};
use serde_json::json;
use shopkit::config::Settings;
use shopkit::testing::{TestBroker, TestDb, TestIssuer};
use uuid::Uuid;

use crate::helpers::{GOOD, card_body, install_tls};

/// Settings for a service on a free port over `db`, trusting `issuer`.
fn settings(db: &TestDb, issuer: &TestIssuer, extra: &[(&str, &str)]) -> Settings {
    let jwks = std::env::temp_dir().join(format!("payment-jwks-{}.json", Uuid::now_v7()));
    std::fs::write(&jwks, issuer.jwks().to_string()).unwrap();
    let mut vars = vec![
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("AUTH_JWKS_FILE".to_owned(), jwks.display().to_string()),
        ("PORT".to_owned(), "0".to_owned()),
        ("BIND_ADDR".to_owned(), "127.0.0.1".to_owned()),
        ("SHUTDOWN_DRAIN_MS".to_owned(), "0".to_owned()),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Settings::from_vars(vars)
}

#[tokio::test]
async fn production_mode_refuses_the_test_provider_at_start_up() {
    install_tls();
    let db = TestDb::new(&payment::MIGRATOR).await.unwrap();
    let issuer = TestIssuer::new().unwrap();
    for extra in [
        vec![("SHOP_MODE", "production"), ("PAYMENT_PROVIDER", "test")],
        vec![("SHOP_MODE", "production")],
    ] {
        let err = Config::from_settings(&settings(&db, &issuer, &extra)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("PAYMENT_PROVIDER"), "{text}");
        assert!(text.contains("configure a real payment provider"), "{text}");
    }
    let config = Config::from_settings(&settings(&db, &issuer, &[])).unwrap();
    assert_eq!(config.mode, ShopMode::Development);
    assert_eq!(config.provider.name(), "test");
    // A config made in code is refused by the application itself.
    let mut config = Config::new(
        ([127, 0, 0, 1], 0).into(),
        db.pool.clone(),
        issuer.verifier().unwrap(),
    );
    config.mode = ShopMode::Production;
    let err = Application::build(config).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("SHOP_MODE=production"),
        "{err:#}"
    );

    let err = Config::from_settings(&settings(&db, &issuer, &[("SHOP_MODE", "live")])).unwrap_err();
    assert!(err.to_string().contains("SHOP_MODE"), "{err}");
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_service_consumes_order_events_and_publishes_its_own_over_the_broker() {
    install_tls();
    let db = TestDb::new(&payment::MIGRATOR).await.unwrap();
    let issuer = TestIssuer::new().unwrap();
    let broker = TestBroker::new().await.unwrap();
    let config = Config::from_settings(&settings(
        &db,
        &issuer,
        &[
            ("AMQP_URL", &broker.url),
            ("PAYMENT_PROCESSING_TIMEOUT_SECS", "1"),
        ],
    ))
    .unwrap();
    let app = Application::build(config).await.unwrap();
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually("readiness with the broker", || async {
        match http.get(format!("{base}/health/ready")).send().await {
            Ok(r) if r.status() == 200 => {
                let body: serde_json::Value = r.json().await.unwrap();
                body["checks"]["broker"] == "ok"
            }
            _ => false,
        }
    })
    .await;

    // The order service's event, published to the exchange (here through this database's
    // outbox and the service's own relay: the exchange does not care who sends).
    let claims = issuer.claims(&["customer"], Duration::from_secs(600));
    let token = issuer.signer.sign(&claims).unwrap();
    let order_id = Uuid::now_v7();
    let mut conn = db.pool.acquire().await.unwrap();
    shopkit::events::record(
        &mut conn,
        "order",
        "order.awaiting_payment",
        json!({"order_id": order_id, "user_id": claims.sub, "currency": "USD", "total_minor": 2750}),
        None,
    )
    .await
    .unwrap();
    drop(conn);
    eventually("the payment intent", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        n == 1
    })
    .await;

    let response = http
        .post(format!("{base}/payments/{order_id}/confirm"))
        .bearer_auth(&token)
        .header("idempotency-key", "e2e")
        .json(&card_body(GOOD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "succeeded");
    eventually("payment.succeeded published", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE event_type = 'payment.succeeded' AND published_at IS NOT NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        n == 1
    })
    .await;
    // The service's sweeper resolves a payment whose confirmation was interrupted.
    let stuck = Uuid::now_v7();
    let mut conn = db.pool.acquire().await.unwrap();
    shopkit::events::record(
        &mut conn,
        "order",
        "order.awaiting_payment",
        json!({"order_id": stuck, "user_id": claims.sub, "currency": "USD", "total_minor": 100}),
        None,
    )
    .await
    .unwrap();
    drop(conn);
    let status = |order_id: Uuid| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM payments WHERE order_id = $1")
                .bind(order_id)
                .fetch_optional(&pool)
                .await
                .unwrap()
        }
    };
    eventually("the second intent", || async {
        status(stuck).await.is_some()
    })
    .await;
    sqlx::query(
        "UPDATE payments SET status = 'processing', processing_since = now() - interval '5 seconds'
         WHERE order_id = $1",
    )
    .bind(stuck)
    .execute(&db.pool)
    .await
    .unwrap();
    eventually("the sweeper", || async {
        status(stuck).await.as_deref() == Some("requires_payment_method")
    })
    .await;

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("payments_total"), "{metrics}");
    assert!(metrics.contains("payment_amount_minor_total"), "{metrics}");
    let openapi: serde_json::Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/payments",
        "/payments/{id}",
        "/payments/{id}/confirm",
        "/payments/{id}/authenticate",
        "/admin/payments",
        "/admin/ledger/{order_id}",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} missing");
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
}
