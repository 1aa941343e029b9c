//! The test app: the cart router over a fresh database, called with `oneshot`; a local
//! catalog speaking `GET /skus?sku=…`; tokens; and an SSE reader for the live tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::get;
use cart::catalog::CatalogClient;
use cart::{AppState, Application, Config};
use serde_json::{Value, json};
use shopkit::testing::{TestDb, TestIssuer};
use uuid::Uuid;

pub use shopkit::testing::TestResponse;

pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A catalog on loopback that answers `/skus` from a table the test edits.
#[derive(Clone)]
pub struct FakeCatalog {
    pub url: String,
    skus: Arc<Mutex<HashMap<String, Value>>>,
    /// Every `/skus` request's SKUs, in order.
    pub requests: Arc<Mutex<Vec<Vec<String>>>>,
}

async fn skus_route(
    State(catalog): State<FakeCatalog>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> axum::Json<Vec<Value>> {
    let asked: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "sku")
        .map(|(_, v)| v)
        .collect();
    catalog.requests.lock().unwrap().push(asked.clone());
    let table = catalog.skus.lock().unwrap();
    axum::Json(asked.iter().filter_map(|s| table.get(s).cloned()).collect())
}

impl FakeCatalog {
    pub async fn start() -> FakeCatalog {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let catalog = FakeCatalog {
            url: format!("http://{addr}"),
            skus: Arc::default(),
            requests: Arc::default(),
        };
        let app = Router::new()
            .route("/skus", get(skus_route))
            .with_state(catalog.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        catalog
    }

    /// Adds or replaces a published SKU.
    pub fn sku(&self, sku: &str, price_minor: i64, currency: &str, available: i64) {
        self.put(json!({
            "sku": sku,
            "product_id": Uuid::now_v7(),
            "product_name": format!("Product {sku}"),
            "product_slug": sku.to_lowercase(),
            "attributes": {"size": "M"},
            "price_minor": price_minor,
            "currency": currency,
            "available": available,
            "published": true,
        }));
    }

    pub fn put(&self, value: Value) {
        let sku = value["sku"].as_str().unwrap().to_owned();
        self.skus.lock().unwrap().insert(sku, value);
    }

    pub fn set(&self, sku: &str, field: &str, value: Value) {
        self.skus.lock().unwrap().get_mut(sku).unwrap()[field] = value;
    }

    pub fn client(&self) -> CatalogClient {
        CatalogClient::new(&self.url).unwrap()
    }
}

/// A URL where nothing listens.
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub struct TestApp {
    pub db: TestDb,
    pub router: Router,
    pub catalog: FakeCatalog,
    pub issuer: TestIssuer,
}

/// A created anonymous cart.
pub struct Anonymous {
    pub id: Uuid,
    pub token: String,
}

impl TestApp {
    pub async fn new() -> Self {
        install_tls();
        let db = TestDb::new(&cart::MIGRATOR).await.unwrap();
        let issuer = TestIssuer::new().unwrap();
        let catalog = FakeCatalog::start().await;
        let router = Self::router_for(&db, &issuer, catalog.client());
        Self {
            db,
            router,
            catalog,
            issuer,
        }
    }

    pub fn router_for(db: &TestDb, issuer: &TestIssuer, catalog: CatalogClient) -> Router {
        let state = AppState::new(db.pool.clone(), Some(issuer.verifier().unwrap()), catalog);
        cart::router(state)
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    /// A token for a new user with `roles`, and that user's id.
    pub fn user(&self, roles: &[&str]) -> (String, Uuid) {
        let claims = self.issuer.claims(roles, Duration::from_secs(600));
        let id = claims.sub;
        (self.issuer.signer.sign(&claims).unwrap(), id)
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        shopkit::testing::send(&self.router, request).await.unwrap()
    }

    /// A request with optional JSON body and headers (`authorization` given as the bare
    /// token is sent as `Bearer`).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            if *name == "authorization" {
                request = request.header(header::AUTHORIZATION, format!("Bearer {value}"));
            } else {
                request = request.header(*name, *value);
            }
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(body).unwrap())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    pub async fn create_anonymous(&self) -> Anonymous {
        let response = self.call(Method::POST, "/carts", &[], None).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        let body = response.json();
        Anonymous {
            id: body["id"].as_str().unwrap().parse().unwrap(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn get_anonymous(&self, cart: &Anonymous) -> TestResponse {
        self.call(
            Method::GET,
            &format!("/carts/{}", cart.id),
            &[("x-cart-token", &cart.token)],
            None,
        )
        .await
    }

    pub async fn add(&self, cart: &Anonymous, sku: &str, quantity: i64) -> TestResponse {
        self.call(
            Method::POST,
            &format!("/carts/{}/items", cart.id),
            &[("x-cart-token", &cart.token)],
            Some(&json!({"sku": sku, "quantity": quantity})),
        )
        .await
    }

    pub async fn add_as(
        &self,
        token: &str,
        cart_id: Uuid,
        sku: &str,
        quantity: i64,
    ) -> TestResponse {
        self.call(
            Method::POST,
            &format!("/carts/{cart_id}/items"),
            &[("authorization", token)],
            Some(&json!({"sku": sku, "quantity": quantity})),
        )
        .await
    }

    pub async fn mine(&self, token: &str) -> Value {
        self.call(
            Method::GET,
            "/carts/mine",
            &[("authorization", token)],
            None,
        )
        .await
        .ok()
    }
}

/// The quantity of `sku` in a cart body (0 when absent).
pub fn quantity(cart: &Value, sku: &str) -> i64 {
    line(cart, sku).map_or(0, |l| l["quantity"].as_i64().unwrap())
}

pub fn line<'a>(cart: &'a Value, sku: &str) -> Option<&'a Value> {
    cart["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == sku)
}

/// A cart service as a process runs it (a "replica"), on its own port and pool, over
/// the given database.
pub struct Replica {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    pub async fn start(db: &TestDb, issuer: &TestIssuer, catalog: &FakeCatalog) -> Replica {
        install_tls();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .connect(&db.url)
            .await
            .unwrap();
        let config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            pool,
            verifier: Some(issuer.verifier().unwrap()),
            catalog: catalog.client(),
            events: None,
            cookie_secure: false,
            drain: Duration::ZERO,
        };
        let app = Application::build(config).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let replica = Replica {
            base,
            stop: Some(stop),
            server: Some(server),
        };
        replica.wait_ready().await;
        replica
    }

    /// Ready means the listener is connected too.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("replica at {} never became ready", self.base);
    }

    /// Stops it and waits for the server to finish (bounded: a hung stream would fail).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .expect("the replica did not stop within 5 s")
                .unwrap()
                .unwrap();
        }
    }
}

/// One SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

/// Reads a `text/event-stream` response event by event.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> SseReader {
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            "text/event-stream"
        );
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event within `within`, `None` when the stream ended or time ran out.
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, self.next())
            .await
            .ok()
            .flatten()
    }

    /// The next event (comments — keep-alives — skipped), `None` at the end.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.trim_start().to_owned());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data.join("\n")).unwrap();
                return Some(SseEvent { event, data });
            }
            match self.response.chunk().await.unwrap() {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// Skips events until one named `event` (within `within` overall).
    pub async fn expect(&mut self, event: &str, within: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(e) if e.event == event => return e,
                Some(_) => continue,
                None => panic!("no {event:?} event within {within:?}"),
            }
        }
    }
}
