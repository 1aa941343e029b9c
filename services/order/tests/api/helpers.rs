//! The test app: the order router over a fresh database, called with `oneshot`; a fake
//! cart and catalog on a local port that speak their services' formats; tokens; events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use order::AppState;
use order::consumer::{CONSUMER, OrderEvents};
use order::peers::Peers;
use reqwest::Url;
use serde_json::{Value, json};
use shopkit::auth::Verifier;
use shopkit::events::{Envelope, HandlerError};
use shopkit::testing::{TestDb, TestIssuer};
use uuid::Uuid;

pub use shopkit::testing::TestResponse;

pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// A SKU as the fake catalog knows it.
#[derive(Debug, Clone)]
pub struct CatalogSku {
    pub product_id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub available: i64,
    pub published: bool,
}

/// A cart as the fake cart service knows it.
#[derive(Debug, Clone)]
pub struct FakeCart {
    pub owner: Option<Uuid>,
    /// A guest cart's token (`X-Cart-Token`).
    pub token: Option<String>,
    /// `(sku, quantity, unit price the cart shows)`.
    pub lines: Vec<(String, i64, i64)>,
}

/// One request the fakes received.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub carts: HashMap<Uuid, FakeCart>,
    pub skus: HashMap<String, CatalogSku>,
    pub calls: Vec<Call>,
    /// When set, the catalog answers 503.
    pub catalog_down: bool,
}

/// The cart and catalog services, faked on a local port.
#[derive(Clone)]
pub struct Fakes {
    pub state: Arc<Mutex<FakeState>>,
    pub url: Url,
    verifier: Verifier,
}

impl Fakes {
    pub async fn start(verifier: Verifier) -> Fakes {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let fakes = Fakes {
            state,
            url,
            verifier,
        };
        let router = Router::new()
            .route("/carts/{id}", get(cart))
            .route("/skus", get(skus))
            .with_state(fakes.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        fakes
    }

    pub fn sku(&self, sku: &str, price_minor: i64, available: i64) {
        self.state.lock().unwrap().skus.insert(
            sku.to_owned(),
            CatalogSku {
                product_id: Uuid::now_v7(),
                name: format!("Product {sku}"),
                price_minor,
                currency: "USD".into(),
                available,
                published: true,
            },
        );
    }

    pub fn edit_sku(&self, sku: &str, edit: impl FnOnce(&mut CatalogSku)) {
        edit(self.state.lock().unwrap().skus.get_mut(sku).unwrap());
    }

    /// A cart of `owner` with `(sku, quantity)` lines.
    pub fn cart(&self, owner: &User, lines: &[(&str, i64)]) -> Uuid {
        self.put_cart(FakeCart {
            owner: Some(owner.id),
            token: None,
            lines: lines
                .iter()
                .map(|(sku, q)| ((*sku).to_owned(), *q, 1))
                .collect(),
        })
    }

    pub fn put_cart(&self, cart: FakeCart) -> Uuid {
        let id = Uuid::now_v7();
        self.state.lock().unwrap().carts.insert(id, cart);
        id
    }

    pub fn calls(&self, prefix: &str) -> Vec<Call> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    pub fn set_catalog_down(&self, down: bool) {
        self.state.lock().unwrap().catalog_down = down;
    }
}

fn record(fakes: &Fakes, path: String, query: Option<String>, headers: &HeaderMap) {
    fakes.state.lock().unwrap().calls.push(Call {
        path,
        query,
        headers: headers.clone(),
    });
}

fn problem(status: StatusCode) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"status": status.as_u16()}).to_string(),
    )
        .into_response()
}

/// `GET /carts/{id}`: the owner's bearer token or the guest cart's token, else 404.
async fn cart(State(fakes): State<Fakes>, Path(id): Path<Uuid>, headers: HeaderMap) -> Response {
    record(&fakes, format!("/carts/{id}"), None, &headers);
    let cart = fakes.state.lock().unwrap().carts.get(&id).cloned();
    let Some(cart) = cart else {
        return problem(StatusCode::NOT_FOUND);
    };
    let caller = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        Some(token) => match fakes.verifier.verify(token).await {
            Ok(claims) => Some(claims.sub),
            Err(_) => return problem(StatusCode::UNAUTHORIZED),
        },
        None => None,
    };
    let token = headers.get("x-cart-token").and_then(|v| v.to_str().ok());
    let allowed = match cart.owner {
        Some(owner) => caller == Some(owner),
        None => cart.token.is_some() && token == cart.token.as_deref(),
    };
    if !allowed {
        return problem(StatusCode::NOT_FOUND);
    }
    let skus = fakes.state.lock().unwrap().skus.clone();
    let lines: Vec<Value> = cart
        .lines
        .iter()
        .map(|(sku, quantity, price)| {
            json!({
                "sku": sku, "quantity": quantity, "unit_price_minor": price, "currency": "USD",
                "product_name": skus.get(sku).map(|s| s.name.clone()).unwrap_or_default(),
            })
        })
        .collect();
    axum::Json(json!({
        "id": id, "user_id": cart.owner, "lines": lines,
        "updated_at": "2026-01-01T00:00:00Z",
    }))
    .into_response()
}

/// `GET /skus?sku=A&sku=B`: the known ones, unpublished included (flagged).
async fn skus(
    State(fakes): State<Fakes>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    record(&fakes, "/skus".into(), query.clone(), &headers);
    let state = fakes.state.lock().unwrap();
    if state.catalog_down {
        return problem(StatusCode::SERVICE_UNAVAILABLE);
    }
    let url = Url::parse(&format!("http://fake/skus?{}", query.unwrap_or_default())).unwrap();
    let wanted: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "sku")
        .map(|(_, v)| v.into_owned())
        .collect();
    let found: Vec<Value> = wanted
        .iter()
        .filter_map(|sku| state.skus.get(sku).map(|s| (sku, s)))
        .map(|(sku, s)| {
            json!({
                "sku": sku, "product_id": s.product_id, "product_name": s.name,
                "product_slug": "a-product", "attributes": {}, "price_minor": s.price_minor,
                "currency": s.currency, "available": s.available, "published": s.published,
            })
        })
        .collect();
    axum::Json(found).into_response()
}

pub struct TestApp {
    pub db: TestDb,
    pub router: Router,
    pub issuer: TestIssuer,
    pub fakes: Fakes,
    pub admin: User,
}

impl TestApp {
    pub async fn new() -> Self {
        install_tls();
        let db = TestDb::new(&order::MIGRATOR).await.unwrap();
        let issuer = TestIssuer::new().unwrap();
        let fakes = Fakes::start(issuer.verifier().unwrap()).await;
        let peers = Peers::new(fakes.url.clone(), fakes.url.clone()).unwrap();
        let state = AppState::new(db.pool.clone(), issuer.verifier().unwrap(), peers);
        let admin = user(&issuer, &["admin"]);
        Self {
            router: order::router(state),
            db,
            issuer,
            fakes,
            admin,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    pub fn customer(&self) -> User {
        user(&self.issuer, &["customer"])
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        shopkit::testing::send(&self.router, request).await.unwrap()
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::GET, uri, token, &[], Body::empty()).await
    }

    pub async fn post(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::POST, uri, token, &[], Body::empty())
            .await
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Body,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(body).unwrap()).await
    }

    /// `POST /orders` with a raw body and an optional `Idempotency-Key`.
    pub async fn place_raw(
        &self,
        token: Option<&str>,
        key: Option<&str>,
        body: &str,
    ) -> TestResponse {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(key) = key {
            headers.push(("idempotency-key", key));
        }
        self.call(
            Method::POST,
            "/orders",
            token,
            &headers,
            Body::from(body.to_owned()),
        )
        .await
    }

    pub async fn place(&self, user: &User, key: &str, cart_id: Uuid) -> TestResponse {
        let body = json!({"cart_id": cart_id}).to_string();
        self.place_raw(Some(&user.token), Some(key), &body).await
    }

    /// A placed order: a cart of `lines` (each SKU stocked at 10, price 1000) checked out.
    pub async fn order(&self, user: &User, lines: &[(&str, i64)]) -> Value {
        for (sku, _) in lines {
            if !self.fakes.state.lock().unwrap().skus.contains_key(*sku) {
                self.fakes.sku(sku, 1000, 10);
            }
        }
        let cart = self.fakes.cart(user, lines);
        let response = self.place(user, &Uuid::now_v7().to_string(), cart).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        response.json()
    }

    pub async fn detail(&self, id: &Value) -> Value {
        let id = id.as_str().unwrap();
        self.get(&format!("/orders/{id}"), Some(&self.admin.token))
            .await
            .ok()
    }

    pub async fn status(&self, id: &Value) -> String {
        self.detail(id).await["status"].as_str().unwrap().to_owned()
    }

    pub async fn count(&self, table: &str) -> i64 {
        // Test-only: table names are literals from the tests.
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Every event the service recorded, oldest first.
    pub async fn events(&self) -> Vec<Envelope> {
        shopkit::testing::outbox_events(self.pool()).await.unwrap()
    }

    /// The recorded events of one type.
    pub async fn events_of(&self, event_type: &str) -> Vec<Envelope> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .collect()
    }

    /// Delivers `event` to the order consumer as the broker would: `Ok(false)` when it was
    /// handled before.
    pub async fn deliver(&self, event: &Envelope) -> Result<bool, HandlerError> {
        shopkit::events::handle_once(self.pool(), CONSUMER, &OrderEvents, event).await
    }

    /// Delivers a fresh event and expects it handled.
    pub async fn handle(&self, source: &str, event_type: &str, data: Value) -> Envelope {
        let event = Envelope::new(source, event_type, data);
        assert!(self.deliver(&event).await.unwrap());
        event
    }
}

pub fn user(issuer: &TestIssuer, roles: &[&str]) -> User {
    let claims = issuer.claims(roles, Duration::from_secs(600));
    User {
        id: claims.sub,
        token: issuer.signer.sign(&claims).unwrap(),
    }
}

/// The checkout's events, as catalog and payment send them.
pub mod feed {
    use serde_json::{Value, json};

    pub fn reserved(order: &Value) -> Value {
        json!({"order_id": order, "expires_at": "2030-01-01T00:00:00Z"})
    }

    pub fn rejected(order: &Value, skus: &[&str]) -> Value {
        json!({"order_id": order, "reason": "out_of_stock", "skus": skus})
    }

    pub fn expired(order: &Value) -> Value {
        json!({"order_id": order})
    }

    pub fn succeeded(order: &Value, payment_id: &str, amount: i64) -> Value {
        json!({"order_id": order, "payment_id": payment_id, "amount_minor": amount, "currency": "USD"})
    }

    pub fn failed(order: &Value, payment_id: &str) -> Value {
        json!({"order_id": order, "payment_id": payment_id, "reason": "card_declined"})
    }

    pub fn refunded(order: &Value, payment_id: &str, amount: i64) -> Value {
        json!({"order_id": order, "payment_id": payment_id, "amount_minor": amount, "currency": "USD"})
    }
}
