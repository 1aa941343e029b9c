//! The service as a process runs it: settings and secret files, a real listener, health,
//! metrics, OpenAPI, JWKS for other services, create-admin, shutdown.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use shopkit::auth::{KeySource, Verifier};
use shopkit::testing::TestDb;
use user::{Application, Clock, Config, Options};

use crate::helpers::{PASSWORD, base_settings, settings};

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("user-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn missing_or_malformed_settings_fail_fast_naming_the_variable() {
    let pem = shopkit::auth::keys::generate_pem().unwrap();
    let fails = |pairs: &[(&str, &str)], name: &str| {
        let err = Options::from_settings(&base_settings(&pem, pairs)).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
    };
    fails(&[("JWT_SIGNING_KEY", "")], "JWT_SIGNING_KEY");
    fails(&[("JWT_SIGNING_KEY", "not a pem")], "JWT_SIGNING_KEY");
    fails(
        &[("JWT_SIGNING_KEY_FILE", "/nonexistent/key.pem")],
        "JWT_SIGNING_KEY_FILE",
    );
    fails(
        &[("JWT_PREVIOUS_KEYS", "{\"keys\": 1}")],
        "JWT_PREVIOUS_KEYS",
    );
    fails(&[("ARGON2_MEMORY_KIB", "lots")], "ARGON2_MEMORY_KIB");
    fails(&[("ARGON2_MEMORY_KIB", "4")], "ARGON2_MEMORY_KIB");
    fails(&[("ARGON2_ITERATIONS", "0")], "ARGON2_ITERATIONS");
    fails(&[("ARGON2_PARALLELISM", "0")], "ARGON2_PARALLELISM");
    fails(&[("ACCESS_TOKEN_TTL_SECS", "5")], "ACCESS_TOKEN_TTL_SECS");
    fails(
        &[("REFRESH_TOKEN_TTL_SECS", "-1")],
        "REFRESH_TOKEN_TTL_SECS",
    );
    fails(
        &[("PASSWORD_RESET_TTL_SECS", "0")],
        "PASSWORD_RESET_TTL_SECS",
    );
    fails(&[("TRUSTED_PROXIES", "gateway")], "TRUSTED_PROXIES");
    fails(
        &[("LOGIN_MAX_FAILURES_PER_ACCOUNT", "0")],
        "LOGIN_MAX_FAILURES_PER_ACCOUNT",
    );
    fails(
        &[
            ("LOGIN_LOCKOUT_BASE_SECS", "100"),
            ("LOGIN_LOCKOUT_MAX_SECS", "10"),
        ],
        "LOGIN_LOCKOUT_MAX_SECS",
    );
    fails(
        &[("PASSWORD_HASH_CONCURRENCY", "0")],
        "PASSWORD_HASH_CONCURRENCY",
    );
    let err = Config::from_settings(&base_settings(&pem, &[])).unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    let missing =
        Options::from_settings(&settings(&[("SECRETS_DIR", "/nonexistent")])).unwrap_err();
    assert!(
        missing.to_string().contains("jwt_signing_key.pem"),
        "says where the key file goes: {missing}"
    );

    // The defaults: OWASP-level argon2, 15-minute access tokens, 10 failures an hour.
    let defaults = Options::from_settings(&settings(&[("JWT_SIGNING_KEY", &pem)])).unwrap();
    assert!(defaults.hash.meets_owasp_minimum());
    assert_eq!(defaults.keys.access_ttl(), Duration::from_secs(900));
    assert_eq!(defaults.throttle.account.max_failures, 10);
    assert_eq!(defaults.throttle.account.window, Duration::from_secs(3600));
    assert_eq!(
        defaults.keys.kid().len(),
        43,
        "a thumbprint when no key id is given"
    );
}

#[tokio::test]
async fn the_signing_key_and_its_id_come_from_the_secret_files_shopctl_writes() {
    let dir = temp_dir();
    let pem = shopkit::auth::keys::generate_pem().unwrap();
    std::fs::write(dir.join("jwt_signing_key.pem"), format!("{pem}\n")).unwrap();
    std::fs::write(dir.join("jwt_key_id"), "shop-0123456789abcdef\n").unwrap();
    let old = shopkit::auth::keys::Signer::generate("shop-retired").unwrap();
    std::fs::write(
        dir.join("jwt_previous_keys"),
        json!({"keys": [old.jwk()]}).to_string(),
    )
    .unwrap();
    let options =
        Options::from_settings(&settings(&[("SECRETS_DIR", dir.to_str().unwrap())])).unwrap();
    assert_eq!(options.keys.kid(), "shop-0123456789abcdef");
    let doc = options.keys.jwks(chrono::Utc::now());
    assert_eq!(doc["keys"][0]["kid"], "shop-0123456789abcdef");
    assert_eq!(
        doc["keys"][1]["kid"], "shop-retired",
        "no retired_at: kept until removed"
    );
    // The public half matches what shopctl publishes for the key.
    let signer = shopkit::auth::keys::Signer::from_pem("shop-0123456789abcdef", &pem).unwrap();
    assert_eq!(doc["keys"][0], signer.jwk());
}

#[tokio::test]
async fn serves_over_http_with_health_metrics_openapi_and_a_jwks_other_services_use() {
    let db = TestDb::new(&user::MIGRATOR).await.unwrap();
    let pem = shopkit::auth::keys::generate_pem().unwrap();
    let config = Config::from_settings(&base_settings(
        &pem,
        &[
            ("DATABASE_URL", &db.url),
            ("PORT", "0"),
            ("BIND_ADDR", "127.0.0.1"),
            ("SHUTDOWN_DRAIN_MS", "0"),
            ("LOGIN_MAX_FAILURES_PER_ADDRESS", "2"),
        ],
    ))
    .unwrap();
    let app = Application::build_with_clock(config, Clock::system())
        .await
        .unwrap();
    let port = app.port();
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
    assert_eq!(ready["service"], "user");
    assert!(ready["migration"].as_i64().unwrap() >= 1);

    let registered = client
        .post(format!("{base}/register"))
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 202);
    let tokens: serde_json::Value = client
        .post(format!("{base}/login"))
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    // Another service verifies the token against our JWKS over HTTP, as catalog would.
    let verifier = Verifier::new(
        KeySource::Url(format!("{base}/.well-known/jwks.json")),
        "shopstack",
        "shopstack",
    )
    .unwrap();
    let claims = verifier.verify(access).await.unwrap();
    assert_eq!(claims.roles, ["customer"]);

    // The peer address is real here: two failures from 127.0.0.1 lock the address.
    for email in ["x@example.com", "y@example.com"] {
        let response = client
            .post(format!("{base}/login"))
            .json(&json!({"email": email, "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let locked = client
        .post(format!("{base}/login"))
        .json(&json!({"email": "z@example.com", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().contains_key("retry-after"));

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "user_registrations_total",
        "user_logins_total",
        "route=\"/login\"",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
    assert!(metrics.contains("outcome=\"locked\""), "{metrics}");
    assert!(!metrics.contains("ann@example.com"), "no emails in labels");

    let doc: serde_json::Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/register",
        "/login",
        "/refresh",
        "/logout",
        "/logout/all",
        "/me",
        "/me/password",
        "/me/email/verification",
        "/me/addresses",
        "/me/addresses/{id}",
        "/email/verify",
        "/password/forgot",
        "/password/reset",
        "/.well-known/jwks.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["schemas"].get("TokenResponse").is_some());
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn create_admin_makes_a_verified_admin_and_refuses_bad_input() {
    let db = TestDb::new(&user::MIGRATOR).await.unwrap();
    let low = user::password::HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let clock = Clock::system();
    let id = user::cli::create_admin(&db.pool, low, "Boss@Example.com", PASSWORD, &clock)
        .await
        .unwrap();
    let (role, verified): (String, bool) =
        sqlx::query_as("SELECT role, email_verified_at IS NOT NULL FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((role.as_str(), verified), ("admin", true));
    let event: serde_json::Value =
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = 'user.admin_created'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(event["data"]["email"], "boss@example.com");

    for (email, password, says) in [
        ("boss@example.com", "another good phrase", "already exists"),
        ("not an email", PASSWORD, "--email"),
        ("other@example.com", "short", "at least 12"),
        ("other@example.com", "qwertyuiop123", "common"),
    ] {
        let err = user::cli::create_admin(&db.pool, low, email, password, &clock)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(says), "{says}: {err}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

/// Runs the real binary's `create-admin` with `stdin` piped in.
fn create_admin_binary(database_url: &str, email: &str, stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_user"))
        .args(["create-admin", "--email", email])
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("ARGON2_MEMORY_KIB", "64")
        .env("ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn the_binary_reads_the_admin_password_from_stdin() {
    let db = TestDb::new(&user::MIGRATOR).await.unwrap();
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        (
            create_admin_binary(&url, "root@example.com", &format!("{PASSWORD}\n")),
            create_admin_binary(&url, "empty@example.com", ""),
            create_admin_binary(&url, "root@example.com", &format!("{PASSWORD}\n")),
        )
    })
    .await
    .unwrap();
    let (created, empty, again) = out;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("administrator created"));
    assert!(
        !String::from_utf8_lossy(&created.stdout).contains(PASSWORD),
        "never logged"
    );
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stdout).contains("no password on standard input"));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already exists"));
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(admins, 1);
}

#[tokio::test]
async fn with_a_broker_the_outbox_is_published_with_confirms() {
    let db = TestDb::new(&user::MIGRATOR).await.unwrap();
    let broker = shopkit::testing::TestBroker::new().await.unwrap();
    let pem = shopkit::auth::keys::generate_pem().unwrap();
    let config = Config::from_settings(&base_settings(
        &pem,
        &[
            ("DATABASE_URL", &db.url),
            ("AMQP_URL", &broker.url),
            ("PORT", "0"),
            ("BIND_ADDR", "127.0.0.1"),
            ("SHUTDOWN_DRAIN_MS", "0"),
        ],
    ))
    .unwrap();
    let app = Application::build_with_clock(config, Clock::system())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    // Ready includes the broker once connected.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ready: serde_json::Value = client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["status"] == "ready" {
            assert!(ready.to_string().contains("broker"), "{ready}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let registered = client
        .post(format!("{base}/register"))
        .json(&json!({"email": "relay@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 202);
    loop {
        let (all, published): (i64, i64) =
            sqlx::query_as("SELECT count(*), count(published_at) FROM outbox")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        if all >= 1 && published == all {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{published} of {all} published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
