//! The service as a process would run it: configuration from settings, a real listener
//! on port 0, health, OpenAPI, events over a real broker, shutdown.

use std::time::Duration;

use cart::{Application, Config};
use serde_json::json;
use shopkit::config::Settings;
use shopkit::testing::{TestBroker, TestDb, TestIssuer};

use crate::helpers::{FakeCatalog, SseReader, install_tls, quantity};

fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings::from_vars(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

#[tokio::test]
async fn malformed_settings_fail_fast_naming_the_variable() {
    let base = [
        ("DATABASE_URL", "postgres://u@localhost/db"),
        ("CATALOG_URL", "http://catalog:8080"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        Config::from_settings(&settings(&pairs))
    };
    let err = Config::from_settings(&settings(&base[1..])).unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    let err = Config::from_settings(&settings(&base[..1])).unwrap_err();
    assert!(err.to_string().contains("CATALOG_URL"), "{err}");
    for (name, value) in [
        ("CATALOG_URL", "ftp://catalog"),
        ("PORT", "80x"),
        ("SHUTDOWN_DRAIN_MS", "soon"),
        ("AUTH_JWKS_FILE", "/nonexistent/jwks.json"),
        ("AMQP_URL", "http://rabbitmq"),
        ("CART_COOKIE_SECURE", "maybe"),
    ] {
        let err = with(&[(name, value)]).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    let ok = with(&[("CART_COOKIE_SECURE", "true")]).unwrap();
    assert!(ok.verifier.is_none() && ok.events.is_none() && ok.cookie_secure);
    assert_eq!(ok.addr.port(), 8080);
}

#[tokio::test]
async fn consumes_its_events_from_the_broker_and_serves_openapi() {
    install_tls();
    let db = TestDb::new(&cart::MIGRATOR).await.unwrap();
    let broker = TestBroker::new().await.unwrap();
    let issuer = TestIssuer::new().unwrap();
    let catalog = FakeCatalog::start().await;
    catalog.sku("MUG-BLU", 1299, "USD", 10);
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks().to_string()).unwrap();
    let config = Config::from_settings(&settings(&[
        ("DATABASE_URL", &db.url),
        ("CATALOG_URL", &catalog.url),
        ("AMQP_URL", &broker.url),
        ("PORT", "0"),
        ("BIND_ADDR", "127.0.0.1"),
        ("AUTH_JWKS_FILE", jwks.to_str().unwrap()),
        ("SHUTDOWN_DRAIN_MS", "0"),
    ]))
    .unwrap();
    let app = Application::build(config).await.unwrap();
    assert!(app.wait_events_connected(Duration::from_secs(20)).await);
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    let ready: serde_json::Value = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["broker"], "ok", "{ready}");
    let openapi: serde_json::Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/carts",
        "/carts/mine",
        "/carts/mine/merge",
        "/carts/{id}",
        "/carts/{id}/items",
        "/carts/{id}/items/{sku}",
        "/carts/{id}/events",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} missing");
    }

    // A user's cart with a line, watched live.
    let claims = issuer.claims(&["customer"], Duration::from_secs(600));
    let user_id = claims.sub;
    let token = issuer.signer.sign(&claims).unwrap();
    let cart: serde_json::Value = client
        .get(format!("{base}/carts/mine"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cart_id = cart["id"].as_str().unwrap().to_owned();
    let added = client
        .post(format!("{base}/carts/{cart_id}/items"))
        .bearer_auth(&token)
        .json(&json!({"sku": "MUG-BLU", "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let bearer = format!("Bearer {token}");
    let mut live = SseReader::open(
        &format!("{base}/carts/{cart_id}/events"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(
        quantity(
            &live.expect("cart", Duration::from_secs(1)).await.data,
            "MUG-BLU"
        ),
        2
    );

    // `order.paid` through the broker (published from this database's outbox by the
    // relay, as the order service's relay would): the cart empties, live.
    let mut tx = db.pool.begin().await.unwrap();
    shopkit::events::record(
        &mut tx,
        "order",
        "order.paid",
        json!({"order_id": uuid::Uuid::now_v7(), "user_id": user_id, "cart_id": cart_id,
               "currency": "USD", "total_minor": 2598}),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let emptied = live.expect("cart", Duration::from_secs(10)).await;
    assert_eq!(emptied.data["lines"], json!([]));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the service did not stop")
        .unwrap()
        .unwrap();
}
