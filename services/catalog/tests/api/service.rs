//! The service as a process would run it: configuration from settings, a real listener
//! on port 0, health, metrics, OpenAPI, shutdown.

use std::time::Duration;

use catalog::{Application, Config};
use shopkit::config::Settings;
use shopkit::testing::{TestDb, TestIssuer};

use crate::helpers::install_tls;

fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings::from_vars(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

#[tokio::test]
async fn malformed_settings_fail_fast_naming_the_variable() {
    let err = Config::from_settings(&settings(&[])).unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    let err = Config::from_settings(&settings(&[
        ("DATABASE_URL", "postgres://u@localhost/db"),
        ("PORT", "80x"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("PORT"), "{err}");
    let err = Config::from_settings(&settings(&[
        ("DATABASE_URL", "postgres://u@localhost/db"),
        ("DATABASE_MAX_CONNECTIONS", "many"),
    ]))
    .unwrap_err();
    assert!(
        err.to_string().contains("DATABASE_MAX_CONNECTIONS"),
        "{err}"
    );
    let err = Config::from_settings(&settings(&[
        ("DATABASE_URL", "postgres://u@localhost/db"),
        ("AUTH_JWKS_FILE", "/nonexistent/jwks.json"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("AUTH_JWKS_FILE"), "{err}");
    let ok =
        Config::from_settings(&settings(&[("DATABASE_URL", "postgres://u@localhost/db")])).unwrap();
    assert!(ok.verifier.is_none());
    assert_eq!(ok.addr.port(), 8080);
}

#[tokio::test]
async fn serves_health_metrics_openapi_and_admin_writes_over_http() {
    install_tls();
    let db = TestDb::new(&catalog::MIGRATOR).await.unwrap();
    let issuer = TestIssuer::new().unwrap();
    let dir = tempfile_dir();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, issuer.jwks().to_string()).unwrap();
    let config = Config::from_settings(&settings(&[
        ("DATABASE_URL", &db.url),
        ("PORT", "0"),
        ("BIND_ADDR", "127.0.0.1"),
        ("AUTH_JWKS_FILE", jwks.to_str().unwrap()),
        ("SHUTDOWN_DRAIN_MS", "0"),
    ]))
    .unwrap();
    let app = Application::build(config).await.unwrap();
    let port = app.port();
    assert_ne!(port, 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let ready: serde_json::Value = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["service"], "catalog");
    assert!(ready["migration"].as_i64().unwrap() >= 1);
    let live = client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    // An admin write through the JWKS file, then a search that the metrics count.
    let created = client
        .post(format!("{base}/admin/categories"))
        .bearer_auth(issuer.token(&["admin"]))
        .json(&serde_json::json!({"slug": "shirts", "name": "Shirts"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let search = client
        .get(format!("{base}/products?q=shrit"))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
    assert!(search.headers().contains_key("x-request-id"));
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("catalog_searches_total"), "{metrics}");
    assert!(
        metrics.contains("route=\"/products\""),
        "per-route request metrics: {metrics}"
    );

    let doc: serde_json::Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/products",
        "/products/{id}",
        "/categories",
        "/categories/{slug}/products",
        "/admin/products",
        "/admin/products/{id}",
        "/admin/inventory/{sku}/adjust",
        "/admin/import",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["schemas"].get("SearchResults").is_some());
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(
        client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_err(),
        "the listener is closed"
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("catalog-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
