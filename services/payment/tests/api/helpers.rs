//! The test app: the payment router over a fresh database, called with `oneshot`; users
//! with tokens; the order's events delivered through shopkit's inbox logic; and a
//! provider whose answers a test can script.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use payment::AppState;
use payment::card::PaymentMethod;
use payment::handlers::{self, OrderEvents};
use payment::provider::{
    ActionOutcome, NewIntent, Provider, ProviderError, ProviderIntent, ProviderRefund,
    ProviderStatus, RefundRequest, TestGateway,
};
use serde_json::{Value, json};
use shopkit::events::{Envelope, HandlerError};
use shopkit::testing::{TestDb, TestIssuer};
use uuid::Uuid;

pub use shopkit::testing::TestResponse;

pub const GOOD: &str = "4242424242424242";
pub const DECLINED: &str = "4000000000000002";
pub const NO_FUNDS: &str = "4000000000009995";
pub const THREE_DS: &str = "4000002760003184";

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

pub struct TestApp {
    pub db: TestDb,
    pub router: Router,
    pub issuer: TestIssuer,
    pub handler: OrderEvents,
    pub provider: Arc<dyn Provider>,
    pub buyer: User,
    pub other: User,
    pub admin: User,
}

pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A card payment method body.
pub fn card_body(number: &str) -> Value {
    json!({"payment_method": {
        "type": "card", "number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"
    }})
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_provider(Arc::new(TestGateway)).await
    }

    pub async fn with_provider(provider: Arc<dyn Provider>) -> Self {
        Self::with_webhooks(provider, payment::webhooks::Webhooks::default()).await
    }

    /// The app with a provider and what verifies its webhooks.
    pub async fn with_webhooks(
        provider: Arc<dyn Provider>,
        webhooks: payment::webhooks::Webhooks,
    ) -> Self {
        install_tls();
        let db = TestDb::new(&payment::MIGRATOR).await.unwrap();
        let issuer = TestIssuer::new().unwrap();
        let state = AppState::with_webhooks(
            db.pool.clone(),
            issuer.verifier().unwrap(),
            provider.clone(),
            Duration::from_secs(60),
            webhooks,
        );
        let user = |roles: &[&str]| {
            let claims = issuer.claims(roles, Duration::from_secs(600));
            User {
                id: claims.sub,
                token: issuer.signer.sign(&claims).unwrap(),
            }
        };
        let buyer = user(&["customer"]);
        let other = user(&["customer"]);
        let admin = user(&["admin"]);
        Self {
            router: payment::router(state),
            handler: OrderEvents::new(provider.clone()),
            provider,
            buyer,
            other,
            admin,
            issuer,
            db,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    /// Another customer with a token.
    pub fn customer(&self) -> User {
        let claims = self.issuer.claims(&["customer"], Duration::from_secs(600));
        User {
            id: claims.sub,
            token: self.issuer.signer.sign(&claims).unwrap(),
        }
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        shopkit::testing::send(&self.router, request).await.unwrap()
    }

    pub async fn get(&self, user: &User, uri: &str) -> TestResponse {
        self.send(
            Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {}", user.token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// A POST with a JSON body, as `user`, with an `Idempotency-Key` when given.
    pub async fn post(
        &self,
        user: &User,
        uri: &str,
        key: Option<&str>,
        body: &Value,
    ) -> TestResponse {
        self.send(post_request(&user.token, uri, key, body)).await
    }

    pub async fn confirm(&self, user: &User, id: Uuid, key: &str, number: &str) -> TestResponse {
        self.post(
            user,
            &format!("/payments/{id}/confirm"),
            Some(key),
            &card_body(number),
        )
        .await
    }

    pub async fn authenticate(&self, user: &User, id: Uuid, outcome: &str) -> TestResponse {
        self.post(
            user,
            &format!("/payments/{id}/authenticate"),
            None,
            &json!({"outcome": outcome}),
        )
        .await
    }

    /// Delivers an event as the consumer would: `Ok(true)` if it was handled now.
    pub async fn deliver(&self, envelope: &Envelope) -> Result<bool, HandlerError> {
        shopkit::events::handle_once(self.pool(), handlers::CONSUMER, &self.handler, envelope).await
    }

    /// `order.awaiting_payment` for a new order of `user`; returns the order's id.
    pub async fn order(&self, user: &User, total_minor: i64) -> Uuid {
        let order_id = Uuid::now_v7();
        let envelope = awaiting_payment(order_id, user.id, total_minor, "USD");
        assert!(self.deliver(&envelope).await.unwrap());
        order_id
    }

    /// A new order's payment id.
    pub async fn payment(&self, user: &User, total_minor: i64) -> Uuid {
        let order_id = self.order(user, total_minor).await;
        self.payment_of(order_id).await
    }

    pub async fn payment_of(&self, order_id: Uuid) -> Uuid {
        sqlx::query_scalar("SELECT id FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn order_of(&self, payment_id: Uuid) -> Uuid {
        sqlx::query_scalar("SELECT order_id FROM payments WHERE id = $1")
            .bind(payment_id)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn status(&self, payment_id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM payments WHERE id = $1")
            .bind(payment_id)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// The payment's ledger rows as (kind, amount).
    pub async fn ledger(&self, payment_id: Uuid) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT kind, amount_minor FROM ledger_entries WHERE payment_id = $1 ORDER BY at, id",
        )
        .bind(payment_id)
        .fetch_all(self.pool())
        .await
        .unwrap()
    }

    pub async fn events(&self, event_type: &str) -> Vec<Envelope> {
        shopkit::testing::outbox_events(self.pool())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .collect()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Puts a payment into `processing` as a confirmation that never came back would
    /// have left it, `age` ago.
    pub async fn interrupted(&self, payment_id: Uuid, age: Duration) {
        let changed = sqlx::query(
            "UPDATE payments SET status = 'processing',
                    processing_since = clock_timestamp() - make_interval(secs => $2)
             WHERE id = $1 AND status = 'requires_payment_method'",
        )
        .bind(payment_id)
        .bind(age.as_secs_f64())
        .execute(self.pool())
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(changed, 1);
    }

    pub async fn violations(&self) -> Vec<payment::ledger::Violation> {
        let mut conn = self.pool().acquire().await.unwrap();
        payment::ledger::violations(&mut conn).await.unwrap()
    }
}

/// Starts `router` on 127.0.0.1:0 (a provider's fake); its base URL.
pub async fn serve_fake(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// A raw POST (webhooks: no token, the provider's headers).
pub fn raw_post(uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(body.to_vec())).unwrap()
}

pub fn post_request(token: &str, uri: &str, key: Option<&str>, body: &Value) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

pub fn awaiting_payment(
    order_id: Uuid,
    user_id: Uuid,
    total_minor: i64,
    currency: &str,
) -> Envelope {
    Envelope::new(
        "order",
        handlers::AWAITING_PAYMENT,
        json!({"order_id": order_id, "user_id": user_id, "currency": currency, "total_minor": total_minor}),
    )
}

pub fn cancelled(order_id: Uuid) -> Envelope {
    Envelope::new(
        "order",
        handlers::CANCELLED,
        json!({"order_id": order_id, "reason": "reservation_expired"}),
    )
}

pub fn refund_requested(order_id: Uuid) -> Envelope {
    Envelope::new(
        "order",
        handlers::REFUND_REQUESTED,
        json!({"order_id": order_id, "reason": "paid_after_cancellation"}),
    )
}

/// The test gateway with answers a test can change: a confirmation that gets no answer,
/// and what `retrieve` says (a real provider knows how an interrupted call ended).
#[derive(Debug, Default)]
pub struct ScriptedProvider {
    pub inner: TestGateway,
    pub confirm_unanswered: AtomicBool,
    pub retrieve_says: Mutex<Option<ProviderStatus>>,
    pub captures: AtomicUsize,
    pub refunds: AtomicUsize,
}

#[async_trait::async_trait]
impl Provider for ScriptedProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    fn is_live(&self) -> bool {
        false
    }

    fn check_method(&self, method: &PaymentMethod) -> Result<(), ProviderError> {
        self.inner.check_method(method)
    }

    async fn create_intent(
        &self,
        intent: &NewIntent<'_>,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        self.inner.create_intent(intent, key).await
    }

    async fn confirm(
        &self,
        provider_ref: &str,
        method: &PaymentMethod,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        if self.confirm_unanswered.load(Ordering::SeqCst) {
            return Err(ProviderError::Unavailable(anyhow::anyhow!("timed out")));
        }
        self.inner.confirm(provider_ref, method, key).await
    }

    async fn complete_action(
        &self,
        provider_ref: &str,
        outcome: ActionOutcome,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        self.inner.complete_action(provider_ref, outcome, key).await
    }

    async fn capture(
        &self,
        provider_ref: &str,
        amount_minor: i64,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        self.captures.fetch_add(1, Ordering::SeqCst);
        self.inner.capture(provider_ref, amount_minor, key).await
    }

    async fn refund(
        &self,
        refund: &RefundRequest<'_>,
        key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        self.refunds.fetch_add(1, Ordering::SeqCst);
        self.inner.refund(refund, key).await
    }

    async fn cancel(&self, provider_ref: &str, key: &str) -> Result<ProviderIntent, ProviderError> {
        self.inner.cancel(provider_ref, key).await
    }

    async fn retrieve(&self, provider_ref: &str) -> Result<ProviderIntent, ProviderError> {
        let scripted = self.retrieve_says.lock().unwrap().clone();
        match scripted {
            Some(status) => Ok(ProviderIntent::new(provider_ref, status)),
            None => self.inner.retrieve(provider_ref).await,
        }
    }
}
