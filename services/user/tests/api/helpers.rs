//! The test app: the user service's router over a fresh database, called with
//! `oneshot`, with a manual clock and cheap argon2 parameters.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Utc;
use serde_json::{Value, json};
use shopkit::config::Settings;
use shopkit::testing::TestDb;
use user::{AppState, Clock, Options};

/// A password that meets the policy.
pub const PASSWORD: &str = "violet staple gun";
pub const OTHER_PASSWORD: &str = "orange paper clip";
pub const KID: &str = "test-key-1";

pub struct TestApp {
    pub db: TestDb,
    pub router: Router,
    pub state: AppState,
    pub clock: Clock,
    /// The signing key, for tokens built by hand.
    pub pem: String,
}

pub use shopkit::testing::TestResponse;

pub fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings::from_vars(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

/// The settings every test app starts from: a fresh key given in the variable itself,
/// argon2 parameters far below production's so that tests are fast.
pub fn base_settings(pem: &str, extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![
        ("SECRETS_DIR", "/nonexistent"),
        ("JWT_SIGNING_KEY", pem),
        ("JWT_KEY_ID", KID),
        ("ARGON2_MEMORY_KIB", "64"),
        ("ARGON2_ITERATIONS", "1"),
        ("ARGON2_PARALLELISM", "1"),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        pairs.push((k, v));
    }
    settings(&pairs)
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with(&[]).await
    }

    /// A test app with these settings on top of [`base_settings`].
    pub async fn with(extra: &[(&str, &str)]) -> Self {
        let db = TestDb::new(&user::MIGRATOR).await.unwrap();
        let pem = shopkit::auth::keys::generate_pem().unwrap();
        let clock = Clock::manual(Utc::now());
        let state = state(&db, &pem, extra, &clock);
        Self {
            router: user::router(state.clone()),
            state,
            clock,
            pem,
            db,
        }
    }

    /// Another app (a second replica, or one with new settings) over the same database,
    /// key and clock.
    pub fn replica(&self, extra: &[(&str, &str)]) -> Router {
        user::router(state(&self.db, &self.pem, extra, &self.clock))
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    pub async fn send_to(router: &Router, request: Request<Body>) -> TestResponse {
        shopkit::testing::send(router, request).await.unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        Self::send_to(&self.router, request).await
    }

    /// A request with a raw body and content type, as `token` (none: anonymous).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        self.send(request(method, uri, token, content_type, body))
            .await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> TestResponse {
        self.json_as(Method::POST, uri, None, body).await
    }

    pub async fn json_as(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: &Value,
    ) -> TestResponse {
        self.call(
            method,
            uri,
            token,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::GET, uri, token, None, Body::empty())
            .await
    }

    pub async fn register(&self, email: &str, password: &str) {
        let response = self
            .post("/register", &json!({"email": email, "password": password}))
            .await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.post("/login", &json!({"email": email, "password": password}))
            .await
    }

    /// Logs in (which must succeed) and returns (access token, refresh token).
    pub async fn tokens(&self, email: &str, password: &str) -> (String, String) {
        let body = self.login(email, password).await.ok();
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Registers and logs in a customer; returns its access token.
    pub async fn customer(&self, email: &str) -> String {
        self.register(email, PASSWORD).await;
        self.tokens(email, PASSWORD).await.0
    }

    /// The envelopes of the outbox events of one type, oldest first.
    pub async fn events(&self, event_type: &str) -> Vec<Value> {
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = $1 ORDER BY id")
            .bind(event_type)
            .fetch_all(self.pool())
            .await
            .unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        // Test-only: table names are literals from the tests.
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Row counts of every table, to check that a refused request wrote nothing.
    pub async fn counts(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for table in [
            "users",
            "refresh_families",
            "refresh_tokens",
            "one_time_tokens",
            "addresses",
            "outbox",
        ] {
            counts.push(self.count(table).await);
        }
        counts
    }
}

fn state(db: &TestDb, pem: &str, extra: &[(&str, &str)], clock: &Clock) -> AppState {
    let options = Options::from_settings(&base_settings(pem, extra)).unwrap();
    AppState::new(db.pool.clone(), options, clock.clone()).unwrap()
}

pub fn request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(body.into()).unwrap()
}

/// A JSON POST as if it came over a connection from `peer`, with extra headers.
pub fn from_peer(uri: &str, body: &Value, peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = request(
        Method::POST,
        uri,
        None,
        Some("application/json"),
        serde_json::to_vec(body).unwrap(),
    );
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    for (name, value) in headers {
        let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().append(name, value.parse().unwrap());
    }
    request
}
