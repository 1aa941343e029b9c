//! The service as a process would run it: configuration from settings, a real listener
//! on port 0, health, metrics, OpenAPI, and events through a real RabbitMQ.

use std::path::PathBuf;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use order::{Application, Config};
use serde_json::{Value, json};
use shopkit::config::Settings;
use shopkit::events::{EXCHANGE, Envelope};
use shopkit::testing::{TestBroker, TestDb, TestIssuer};
use uuid::Uuid;

use crate::helpers::{Fakes, install_tls, user};

fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings::from_vars(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

/// A setting to set (`Some`) or remove (`None`).
type Change = (&'static str, Option<&'static str>);

fn jwks_file(issuer: &TestIssuer) -> PathBuf {
    let path = std::env::temp_dir().join(format!("order-jwks-{}.json", Uuid::now_v7()));
    std::fs::write(&path, issuer.jwks().to_string()).unwrap();
    path
}

#[tokio::test]
async fn missing_or_malformed_settings_fail_fast_naming_the_variable() {
    install_tls();
    let issuer = TestIssuer::new().unwrap();
    let jwks = jwks_file(&issuer);
    let jwks = jwks.to_str().unwrap();
    let base = [
        ("DATABASE_URL", "postgres://u@localhost/db"),
        ("AUTH_JWKS_FILE", jwks),
        ("CART_URL", "http://cart:8080"),
        ("CATALOG_URL", "http://catalog:8080"),
    ];
    let with = |changes: &[Change]| {
        let mut pairs: Vec<(&str, &str)> = base
            .iter()
            .copied()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .collect();
        pairs.extend(changes.iter().filter_map(|(k, v)| v.map(|v| (*k, v))));
        Config::from_settings(&settings(&pairs))
    };
    let cases: [(&[Change], &str); 8] = [
        (&[("DATABASE_URL", None)], "DATABASE_URL"),
        (&[("AUTH_JWKS_FILE", None)], "AUTH_JWKS_URL"),
        (
            &[("AUTH_JWKS_FILE", Some("/nonexistent/jwks.json"))],
            "AUTH_JWKS_FILE",
        ),
        (&[("CART_URL", None)], "CART_URL"),
        (&[("CATALOG_URL", Some("catalog:8080"))], "CATALOG_URL"),
        (&[("CATALOG_URL", Some("ftp://catalog"))], "CATALOG_URL"),
        (&[("AMQP_URL", Some("http://rabbit"))], "AMQP_URL"),
        (&[("PORT", Some("80x"))], "PORT"),
    ];
    for (changes, variable) in cases {
        let err = with(changes).unwrap_err();
        assert!(err.to_string().contains(variable), "{changes:?}: {err}");
    }
    let ok = with(&[]).unwrap();
    assert!(ok.events.is_none());
    assert_eq!(ok.addr.port(), 8080);
    assert_eq!(ok.cart_url.as_str(), "http://cart:8080/");
    let with_broker = with(&[("AMQP_URL", Some("amqp://guest@rabbit:5672/%2f"))]).unwrap();
    assert!(with_broker.events.is_some());
}

/// A running service, its base URL and the stop switch.
struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn run(app: Application) -> Running {
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Running { base, stop, server }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn orders_flow_through_a_real_broker() {
    install_tls();
    let db = TestDb::new(&order::MIGRATOR).await.unwrap();
    let broker = TestBroker::new().await.unwrap();
    let issuer = TestIssuer::new().unwrap();
    let fakes = Fakes::start(issuer.verifier().unwrap()).await;
    let jwks = jwks_file(&issuer);
    let fake_url = fakes.url.to_string();
    let config = Config::from_settings(&settings(&[
        ("DATABASE_URL", &db.url),
        ("PORT", "0"),
        ("BIND_ADDR", "127.0.0.1"),
        ("AUTH_JWKS_FILE", jwks.to_str().unwrap()),
        ("CART_URL", &fake_url),
        ("CATALOG_URL", &fake_url),
        ("AMQP_URL", &broker.url),
        ("SHUTDOWN_DRAIN_MS", "0"),
    ]))
    .unwrap();
    let app = Application::build(config).await.unwrap();
    assert!(
        app.events()
            .unwrap()
            .wait_connected(Duration::from_secs(30))
            .await
    );
    let running = run(app).await;
    let base = &running.base;
    let client = reqwest::Client::new();

    let ready: Value = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["service"], "order");
    assert_eq!(ready["checks"]["broker"], "ok", "{ready}");

    // Place an order over HTTP: its order.created leaves through the relay.
    let buyer = user(&issuer, &["customer"]);
    fakes.sku("A-1", 1250, 4);
    let cart = fakes.cart(&buyer, &[("A-1", 2)]);
    let created = client
        .post(format!("{base}/orders"))
        .bearer_auth(&buyer.token)
        .header("idempotency-key", "over-http")
        .json(&json!({"cart_id": cart}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let order: Value = created.json().await.unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    eventually("order.created to be published", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT published_at IS NOT NULL FROM outbox WHERE event_type = 'order.created'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    })
    .await;

    // The catalog reserves the stock: the order moves and announces it.
    let connection = broker.connect().await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let reserved = Envelope::new(
        "catalog",
        "inventory.reserved",
        json!({"order_id": id, "expires_at": "2030-01-01T00:00:00Z"}),
    );
    channel
        .basic_publish(
            EXCHANGE.into(),
            ShortString::from("inventory.reserved"),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&reserved).unwrap(),
            BasicProperties::default().with_message_id(ShortString::from(reserved.id.to_string())),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let status = || async {
        let order: Value = client
            .get(format!("{base}/orders/{id}"))
            .bearer_auth(&buyer.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        order["status"] == "awaiting_payment"
    };
    eventually("the order to await payment", status).await;
    eventually("order.awaiting_payment to be published", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT count(*) = 1 FROM outbox
             WHERE event_type = 'order.awaiting_payment' AND published_at IS NOT NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    })
    .await;

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("orders_created_total"), "{metrics}");
    assert!(
        metrics.contains("order_transitions_total{to=\"awaiting_payment\"}"),
        "{metrics}"
    );
    let openapi: Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/orders",
        "/orders/{id}",
        "/admin/orders",
        "/admin/orders/{id}/refund",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} missing");
    }

    running.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), running.server)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn without_a_broker_the_service_is_ready_and_an_unreachable_cart_is_a_503() {
    install_tls();
    let db = TestDb::new(&order::MIGRATOR).await.unwrap();
    let issuer = TestIssuer::new().unwrap();
    let jwks = jwks_file(&issuer);
    let config = Config::from_settings(&settings(&[
        ("DATABASE_URL", &db.url),
        ("PORT", "0"),
        ("BIND_ADDR", "127.0.0.1"),
        ("AUTH_JWKS_FILE", jwks.to_str().unwrap()),
        ("CART_URL", "http://127.0.0.1:9"),
        ("CATALOG_URL", "http://127.0.0.1:9"),
        ("SHUTDOWN_DRAIN_MS", "0"),
    ]))
    .unwrap();
    let app = Application::build(config).await.unwrap();
    assert!(app.events().is_none());
    let running = run(app).await;
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/health/ready", running.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["checks"].get("broker").is_none(), "{ready}");

    // With the cart unreachable, checkout is a 503 that says to retry.
    let buyer = user(&issuer, &["customer"]);
    let response = client
        .post(format!("{}/orders", running.base))
        .bearer_auth(&buyer.token)
        .header("idempotency-key", "k")
        .json(&json!({"cart_id": Uuid::now_v7()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    running.stop.send(()).unwrap();
    running.server.await.unwrap().unwrap();
}
