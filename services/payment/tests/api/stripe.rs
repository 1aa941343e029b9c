//! Stripe: the provider against a local server that speaks Stripe's documented
//! PaymentIntents API and checks every request it gets (method, path, bearer key,
//! `Stripe-Version`, `Idempotency-Key`, form encoding and fields); and the webhook
//! (`Stripe-Signature`, de-duplication, events in any order) through the service.

// The fakes answer a broken request with the provider's error response.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use payment::card::PaymentMethod;
use payment::provider::stripe::{self, Stripe, StripeConfig};
use payment::provider::{
    ClientSecret, NewIntent, Provider, ProviderError, ProviderStatus, RefundRequest, Retry,
};
use payment::webhooks::Webhooks;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, raw_post, serve_fake};

const SECRET_KEY: &str = "sk_test_51FakeKey";
const PUBLISHABLE_KEY: &str = "pk_test_51FakeKey";
const WEBHOOK_SECRET: &str = "whsec_current";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub form: BTreeMap<String, String>,
}

#[derive(Default)]
struct FakeState {
    seen: Vec<Seen>,
    /// Requests that broke the contract (each a description); must stay empty.
    violations: Vec<String>,
    intents: HashMap<String, Value>,
    /// Stripe replays the first answer to an idempotency key.
    answers: HashMap<String, (StatusCode, Value)>,
    /// Answers to give instead of the real one, to the next requests.
    inject: VecDeque<(StatusCode, Value)>,
    next: u32,
}

/// A local Stripe.
#[derive(Clone, Default)]
pub struct FakeStripe {
    state: Arc<Mutex<FakeState>>,
}

fn stripe_error(status: StatusCode, kind: &str, code: &str, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message,
                         "doc_url": format!("https://stripe.com/docs/error-codes/{code}"),
                         "request_log_url": "https://dashboard.stripe.com/test/logs/req_x"}}),
    )
}

impl FakeStripe {
    pub async fn start() -> (FakeStripe, String) {
        let fake = FakeStripe::default();
        let router = Router::new()
            .route("/v1/payment_intents", post(create))
            .route("/v1/payment_intents/{id}", get(retrieve))
            .route("/v1/payment_intents/{id}/{action}", post(act))
            .route("/v1/refunds", post(refund))
            .with_state(fake.clone());
        (fake, serve_fake(router).await)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    pub fn inject(&self, answer: (StatusCode, Value)) {
        self.state.lock().unwrap().inject.push_back(answer);
    }

    pub fn intent(&self, id: &str) -> Value {
        self.state.lock().unwrap().intents[id].clone()
    }

    /// What the buyer's browser does with the Payment Element: the card is authorised.
    pub fn authorise_in_browser(&self, id: &str) -> Value {
        let mut state = self.state.lock().unwrap();
        let intent = state.intents.get_mut(id).unwrap();
        intent["status"] = json!("requires_capture");
        intent["amount_capturable"] = intent["amount"].clone();
        intent.clone()
    }

    pub fn count(&self, method: &Method, path_end: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.ends_with(path_end))
            .count()
    }

    /// Checks what every request must carry; the form when it is a POST.
    fn check(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Seen, Response> {
        let mut problems = Vec::new();
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if text("authorization").as_deref() != Some(&format!("Bearer {SECRET_KEY}")) {
            problems.push(format!(
                "{path}: Authorization is {:?}",
                text("authorization")
            ));
        }
        if text("stripe-version").as_deref() != Some(stripe::API_VERSION) {
            problems.push(format!(
                "{path}: Stripe-Version is {:?}",
                text("stripe-version")
            ));
        }
        let idempotency_key = text("idempotency-key");
        let mut form = BTreeMap::new();
        if method == Method::POST {
            if idempotency_key.as_deref().is_none_or(str::is_empty) {
                problems.push(format!("{path}: a POST without Idempotency-Key"));
            }
            if text("content-type").as_deref() != Some("application/x-www-form-urlencoded") {
                problems.push(format!(
                    "{path}: Content-Type is {:?}",
                    text("content-type")
                ));
            }
            match serde_urlencoded_pairs(body) {
                Some(pairs) => {
                    for (k, v) in pairs {
                        if form.insert(k.clone(), v).is_some() {
                            problems.push(format!("{path}: field {k} twice"));
                        }
                    }
                }
                None => problems.push(format!("{path}: the body is not form-encoded")),
            }
        } else if !body.is_empty() {
            problems.push(format!("{path}: a GET with a body"));
        }
        let seen = Seen {
            method,
            path: path.to_owned(),
            idempotency_key,
            form,
        };
        let mut state = self.state.lock().unwrap();
        state.seen.push(seen.clone());
        if !problems.is_empty() {
            state.violations.extend(problems.iter().cloned());
            let (status, body) = stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "fake_contract",
                &problems.join("; "),
            );
            return Err((status, axum::Json(body)).into_response());
        }
        if let Some((status, body)) = state.inject.pop_front() {
            return Err((status, axum::Json(body)).into_response());
        }
        Ok(seen)
    }

    /// Stripe's idempotency: the first answer to a key, again.
    fn replay(&self, key: Option<&str>) -> Option<Response> {
        let state = self.state.lock().unwrap();
        let (status, body) = state.answers.get(key?)?.clone();
        Some((status, axum::Json(body)).into_response())
    }

    fn answer(&self, key: Option<&str>, status: StatusCode, body: Value) -> Response {
        if let Some(key) = key {
            self.state
                .lock()
                .unwrap()
                .answers
                .insert(key.to_owned(), (status, body.clone()));
        }
        (status, axum::Json(body)).into_response()
    }

    /// Checks that the form has exactly these fields.
    fn expect_form(&self, seen: &Seen, expected: &[(&str, &str)]) {
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if seen.form != expected {
            self.state.lock().unwrap().violations.push(format!(
                "{}: form {:?}, expected {:?}",
                seen.path, seen.form, expected
            ));
        }
    }
}

fn serde_urlencoded_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn create(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let seen = match fake.check(Method::POST, "/v1/payment_intents", &headers, &body) {
        Ok(seen) => seen,
        Err(response) => return response,
    };
    if let Some(replayed) = fake.replay(seen.idempotency_key.as_deref()) {
        return replayed;
    }
    let f = &seen.form;
    let id = {
        let mut state = fake.state.lock().unwrap();
        state.next += 1;
        format!("pi_3Fake{:04}", state.next)
    };
    let intent = json!({
        "id": id, "object": "payment_intent",
        "amount": f.get("amount").and_then(|a| a.parse::<i64>().ok()),
        "amount_capturable": 0, "amount_received": 0,
        "currency": f.get("currency"),
        "capture_method": f.get("capture_method"),
        "client_secret": format!("{id}_secret_FakeSecret"),
        "status": "requires_payment_method",
        "latest_charge": null, "last_payment_error": null, "next_action": null,
        "livemode": false,
        "metadata": {"payment_id": f.get("metadata[payment_id]"), "order_id": f.get("metadata[order_id]")},
        "automatic_payment_methods": {"enabled": true, "allow_redirects": f.get("automatic_payment_methods[allow_redirects]")},
    });
    fake.state
        .lock()
        .unwrap()
        .intents
        .insert(id, intent.clone());
    fake.answer(seen.idempotency_key.as_deref(), StatusCode::OK, intent)
}

async fn retrieve(
    State(fake): State<FakeStripe>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(response) = fake.check(
        Method::GET,
        &format!("/v1/payment_intents/{id}"),
        &headers,
        &body,
    ) {
        return response;
    }
    match fake.state.lock().unwrap().intents.get(&id) {
        Some(intent) => (StatusCode::OK, axum::Json(intent.clone())).into_response(),
        None => {
            let (s, b) = stripe_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                &format!("No such payment_intent: '{id}'"),
            );
            (s, axum::Json(b)).into_response()
        }
    }
}

async fn act(
    State(fake): State<FakeStripe>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/{action}");
    let seen = match fake.check(Method::POST, &path, &headers, &body) {
        Ok(seen) => seen,
        Err(response) => return response,
    };
    if let Some(replayed) = fake.replay(seen.idempotency_key.as_deref()) {
        return replayed;
    }
    let Some(mut intent) = fake.state.lock().unwrap().intents.get(&id).cloned() else {
        let (s, b) = stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            &format!("No such payment_intent: '{id}'"),
        );
        return (s, axum::Json(b)).into_response();
    };
    let status = intent["status"].as_str().unwrap_or_default().to_owned();
    let unexpected = |fake: &FakeStripe| {
        let (s, b) = stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "payment_intent_unexpected_state",
            &format!(
                "This PaymentIntent's {action} could not be performed because it has a status of {status}."
            ),
        );
        fake.answer(seen.idempotency_key.as_deref(), s, b)
    };
    match action.as_str() {
        "confirm" => {
            fake.expect_form(
                &seen,
                &[(
                    "payment_method",
                    seen.form.get("payment_method").map_or("", String::as_str),
                )],
            );
            if status != "requires_payment_method" {
                return unexpected(&fake);
            }
            match seen.form.get("payment_method").map(String::as_str) {
                Some("pm_card_visa") => {
                    intent["status"] = json!("requires_capture");
                    intent["amount_capturable"] = intent["amount"].clone();
                }
                Some("pm_card_threeDSecure2Required") => {
                    intent["status"] = json!("requires_action");
                    intent["next_action"] = json!({"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3d_secure_2/hosted?x=1", "return_url": "https://shop.example/return"}});
                }
                _ => {
                    let error = json!({"type": "card_error", "code": "card_declined", "decline_code": "generic_decline", "message": "Your card was declined."});
                    intent["last_payment_error"] = error.clone();
                    fake.state
                        .lock()
                        .unwrap()
                        .intents
                        .insert(id, intent.clone());
                    let mut body = json!({"error": error});
                    body["error"]["payment_intent"] = intent;
                    return fake.answer(
                        seen.idempotency_key.as_deref(),
                        StatusCode::PAYMENT_REQUIRED,
                        body,
                    );
                }
            }
        }
        "capture" => {
            let amount = intent["amount"].as_i64().unwrap_or_default().to_string();
            fake.expect_form(&seen, &[("amount_to_capture", &amount)]);
            if status != "requires_capture" {
                return unexpected(&fake);
            }
            intent["status"] = json!("succeeded");
            intent["amount_received"] = intent["amount"].clone();
            intent["amount_capturable"] = json!(0);
            intent["latest_charge"] = json!(id.replace("pi_", "ch_"));
        }
        "cancel" => {
            fake.expect_form(&seen, &[]);
            if status == "succeeded" || status == "canceled" {
                return unexpected(&fake);
            }
            intent["status"] = json!("canceled");
        }
        other => {
            let (s, b) = stripe_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "url_invalid",
                &format!("Unrecognized request URL ({other})"),
            );
            return (s, axum::Json(b)).into_response();
        }
    }
    fake.state
        .lock()
        .unwrap()
        .intents
        .insert(id, intent.clone());
    fake.answer(seen.idempotency_key.as_deref(), StatusCode::OK, intent)
}

async fn refund(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let seen = match fake.check(Method::POST, "/v1/refunds", &headers, &body) {
        Ok(seen) => seen,
        Err(response) => return response,
    };
    if let Some(replayed) = fake.replay(seen.idempotency_key.as_deref()) {
        return replayed;
    }
    let intent = seen.form.get("payment_intent").cloned().unwrap_or_default();
    let known = fake.state.lock().unwrap().intents.get(&intent).cloned();
    let Some(known) = known.filter(|i| i["status"] == "succeeded") else {
        let (s, b) = stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "charge_not_refundable",
            "nothing to refund",
        );
        return (s, axum::Json(b)).into_response();
    };
    let amount = known["amount"].as_i64().unwrap_or_default().to_string();
    fake.expect_form(&seen, &[("payment_intent", &intent), ("amount", &amount)]);
    let body = json!({"id": intent.replace("pi_", "re_"), "object": "refund", "amount": known["amount"],
        "charge": known["latest_charge"], "payment_intent": intent, "status": "succeeded", "currency": known["currency"]});
    fake.answer(seen.idempotency_key.as_deref(), StatusCode::OK, body)
}

pub fn stripe_client(base: &str) -> Stripe {
    crate::helpers::install_tls();
    Stripe::new(StripeConfig {
        api_base: base.to_owned(),
        secret_key: SECRET_KEY.into(),
        publishable_key: Some(PUBLISHABLE_KEY.into()),
        return_url: None,
        retry: Retry {
            attempts: 3,
            first_delay: Duration::from_millis(10),
        },
    })
    .unwrap()
}

fn new_intent(payment_id: Uuid, order_id: Uuid) -> NewIntent<'static> {
    NewIntent {
        payment_id,
        order_id,
        amount_minor: 1999,
        currency: "USD",
    }
}

#[tokio::test]
async fn the_client_speaks_stripes_payment_intents_api() {
    let (fake, base) = FakeStripe::start().await;
    let stripe = stripe_client(&base);
    let (payment_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    let created = stripe
        .create_intent(
            &new_intent(payment_id, order_id),
            &format!("{payment_id}:create"),
        )
        .await
        .unwrap();
    assert_eq!(created.status, ProviderStatus::RequiresPaymentMethod);
    assert_eq!(
        created.client_secret,
        Some(ClientSecret(format!(
            "{}_secret_FakeSecret",
            created.provider_ref
        )))
    );
    let seen = fake.seen();
    assert_eq!(
        seen[0].idempotency_key.as_deref(),
        Some(format!("{payment_id}:create").as_str())
    );
    let pid = payment_id.to_string();
    let oid = order_id.to_string();
    fake.expect_form(
        &seen[0],
        &[
            ("amount", "1999"),
            ("currency", "usd"),
            ("capture_method", "manual"),
            ("metadata[payment_id]", &pid),
            ("metadata[order_id]", &oid),
            ("automatic_payment_methods[enabled]", "true"),
            ("automatic_payment_methods[allow_redirects]", "never"),
        ],
    );
    let id = created.provider_ref.clone();

    let confirmed = stripe
        .confirm(
            &id,
            &PaymentMethod::Token("pm_card_visa".into()),
            "k:confirm",
        )
        .await
        .unwrap();
    assert_eq!(confirmed.status, ProviderStatus::RequiresCapture);
    let captured = stripe.capture(&id, 1999, "k:capture").await.unwrap();
    let charge = id.replace("pi_", "ch_");
    assert_eq!(
        captured.status,
        ProviderStatus::Succeeded {
            charge_ref: charge.clone()
        }
    );
    // A repeat after the key expired: Stripe says it is captured already; the state is the answer.
    let again = stripe.capture(&id, 1999, "k:capture-later").await.unwrap();
    assert_eq!(
        again.status,
        ProviderStatus::Succeeded {
            charge_ref: charge.clone()
        }
    );
    assert_eq!(stripe.retrieve(&id).await.unwrap().status, captured.status);
    let refund = stripe
        .refund(
            &RefundRequest {
                provider_ref: &id,
                charge_ref: &charge,
                amount_minor: 1999,
                currency: "USD",
            },
            "k:refund",
        )
        .await
        .unwrap();
    assert_eq!(refund.refund_ref, id.replace("pi_", "re_"));
    let paths: Vec<(Method, String)> = fake
        .seen()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(
        paths,
        [
            (Method::POST, "/v1/payment_intents".to_owned()),
            (Method::POST, format!("/v1/payment_intents/{id}/confirm")),
            (Method::POST, format!("/v1/payment_intents/{id}/capture")),
            (Method::POST, format!("/v1/payment_intents/{id}/capture")),
            (Method::GET, format!("/v1/payment_intents/{id}")),
            (Method::GET, format!("/v1/payment_intents/{id}")),
            (Method::POST, "/v1/refunds".to_owned()),
        ]
    );
    // Card numbers are refused before any call: card data never goes to Stripe from here.
    let card = crate::helpers::card_body(crate::helpers::GOOD);
    let input: payment::card::ConfirmRequest = serde_json::from_value(card).unwrap();
    let card =
        PaymentMethod::parse(&input.payment_method, chrono::Utc::now().date_naive()).unwrap();
    assert!(matches!(
        stripe.check_method(&card),
        Err(ProviderError::InvalidPaymentMethod(_))
    ));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn declines_errors_and_retries_are_mapped() {
    let (fake, base) = FakeStripe::start().await;
    let stripe = stripe_client(&base);
    let created = stripe
        .create_intent(&new_intent(Uuid::now_v7(), Uuid::now_v7()), "d:create")
        .await
        .unwrap();
    let id = created.provider_ref;

    // A decline (402 card_error) is an outcome.
    let declined = stripe
        .confirm(
            &id,
            &PaymentMethod::Token("pm_card_chargeDeclined".into()),
            "d:confirm",
        )
        .await
        .unwrap();
    assert_eq!(
        declined.status,
        ProviderStatus::Failed {
            reason: "generic_decline".into()
        }
    );
    // As is the intent Stripe then shows (requires_payment_method with last_payment_error).
    assert_eq!(stripe.retrieve(&id).await.unwrap().status, declined.status);

    // 5xx: repeated with the same key, then Unavailable.
    let before = fake.seen().len();
    for _ in 0..3 {
        fake.inject(stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "",
            "An unknown error occurred",
        ));
    }
    let err = stripe
        .create_intent(&new_intent(Uuid::now_v7(), Uuid::now_v7()), "u:create")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    let keys: Vec<Option<String>> = fake.seen()[before..]
        .iter()
        .map(|s| s.idempotency_key.clone())
        .collect();
    assert_eq!(keys, vec![Some("u:create".to_owned()); 3]);

    // One 503 and one 429, then an answer: the same key each time, and the call succeeds.
    let before = fake.seen().len();
    fake.inject(stripe_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        "",
        "try again",
    ));
    fake.inject(stripe_error(
        StatusCode::TOO_MANY_REQUESTS,
        "invalid_request_error",
        "rate_limit",
        "Too many requests",
    ));
    let retried = stripe
        .create_intent(&new_intent(Uuid::now_v7(), Uuid::now_v7()), "r:create")
        .await
        .unwrap();
    assert_eq!(retried.status, ProviderStatus::RequiresPaymentMethod);
    let keys: Vec<Option<String>> = fake.seen()[before..]
        .iter()
        .map(|s| s.idempotency_key.clone())
        .collect();
    assert_eq!(keys, vec![Some("r:create".to_owned()); 3]);
    // ... and the key replays: the same intent again.
    let replayed = stripe
        .create_intent(&new_intent(Uuid::now_v7(), Uuid::now_v7()), "r:create")
        .await
        .unwrap();
    assert_eq!(replayed.provider_ref, retried.provider_ref);

    // 404 and 400 are refusals, not retried.
    let before = fake.seen().len();
    let err = stripe.retrieve("pi_unknown").await.unwrap_err();
    let ProviderError::Rejected(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("resource_missing"), "{message}");
    assert_eq!(fake.seen().len(), before + 1);
    fake.inject(stripe_error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "api_key_invalid",
        "Invalid API Key provided: sk_test_****",
    ));
    assert!(matches!(
        stripe.retrieve(&id).await,
        Err(ProviderError::Rejected(_))
    ));
    // A path is never built from something that is not a Stripe id.
    assert!(matches!(
        stripe.retrieve("pi_1/../../v1/refunds").await,
        Err(ProviderError::Rejected(_))
    ));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// The service with Stripe and its webhook secrets (`whsec_previous` is being rolled).
async fn stripe_app(base: &str) -> TestApp {
    TestApp::with_webhooks(
        Arc::new(stripe_client(base)),
        Webhooks {
            stripe_secrets: vec![WEBHOOK_SECRET.into(), "whsec_previous".into()],
            paypal: None,
        },
    )
    .await
}

fn event(id: &str, event_type: &str, object: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "api_version": stripe::API_VERSION,
        "created": chrono::Utc::now().timestamp(), "livemode": false,
        "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
        "type": event_type, "data": {"object": object},
    }))
    .unwrap()
}

async fn deliver(app: &TestApp, body: &[u8], signature: &str) -> crate::helpers::TestResponse {
    app.send(raw_post(
        "/webhooks/stripe",
        &[("stripe-signature", signature)],
        body,
    ))
    .await
}

async fn deliver_signed(app: &TestApp, body: &[u8]) -> crate::helpers::TestResponse {
    let signature = stripe::sign(body, WEBHOOK_SECRET, chrono::Utc::now().timestamp());
    deliver(app, body, &signature).await
}

/// A payment whose Stripe intent the buyer has opened (POST /payments/{id}/intent).
async fn opened(app: &TestApp) -> (Uuid, String) {
    let payment_id = app.payment(&app.buyer, 1999).await;
    let session = app
        .post(
            &app.buyer,
            &format!("/payments/{payment_id}/intent"),
            None,
            &json!({}),
        )
        .await
        .ok();
    (
        payment_id,
        session["provider_ref"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_buyer_pays_in_the_browser_and_the_webhook_settles_it() {
    let (fake, base) = FakeStripe::start().await;
    let app = stripe_app(&base).await;
    // What the storefront may see, without a token.
    let config = app
        .send(
            axum::http::Request::get("/payments/config")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .ok();
    assert_eq!(
        config,
        json!({"provider": "stripe", "live": true, "publishable_key": PUBLISHABLE_KEY})
    );

    let payment_id = app.payment(&app.buyer, 1999).await;
    let uri = format!("/payments/{payment_id}/intent");
    let session = app.post(&app.buyer, &uri, None, &json!({})).await.ok();
    let intent_id = session["provider_ref"].as_str().unwrap().to_owned();
    assert_eq!(
        session["client_secret"],
        format!("{intent_id}_secret_FakeSecret")
    );
    assert_eq!(session["provider"]["publishable_key"], PUBLISHABLE_KEY);
    assert_eq!(session["payment"]["status"], "requires_payment_method");
    // Asked again: the same intent (retrieved, not created twice); nobody else gets the secret.
    let again = app.post(&app.buyer, &uri, None, &json!({})).await.ok();
    assert_eq!(again["client_secret"], session["client_secret"]);
    assert_eq!(fake.count(&Method::POST, "/v1/payment_intents"), 1);
    app.post(&app.other, &uri, None, &json!({}))
        .await
        .problem(StatusCode::NOT_FOUND);
    // Card numbers are refused: Stripe takes them only in its own Payment Element.
    let answer = app
        .confirm(&app.buyer, payment_id, "card-1", crate::helpers::GOOD)
        .await;
    assert_eq!(answer.invalid_fields(), ["payment_method.number"]);

    // The browser confirms; Stripe tells the service.
    let authorised = fake.authorise_in_browser(&intent_id);
    let body = event(
        "evt_1Auth",
        "payment_intent.amount_capturable_updated",
        &authorised,
    );
    let answer = deliver_signed(&app, &body).await.ok();
    assert_eq!(answer, json!({"received": true, "outcome": "applied"}));
    assert_eq!(app.status(payment_id).await, "succeeded");
    assert_eq!(app.ledger(payment_id).await, [("charge".to_owned(), 1999)]);
    let succeeded = app.events("payment.succeeded").await;
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0].data["payment_id"], json!(payment_id));
    // Captured by the service, with the payment's capture key.
    let captures: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with("/capture"))
        .collect();
    assert_eq!(captures.len(), 1);
    assert_eq!(
        captures[0].idempotency_key,
        Some(format!("{payment_id}:capture"))
    );
    let payment = app
        .get(&app.buyer, &format!("/payments/{payment_id}"))
        .await
        .ok();
    assert_eq!(payment["provider"], "stripe");

    // A stale payment_failed afterwards changes nothing.
    let mut failed = fake.intent(&intent_id);
    failed["status"] = json!("requires_payment_method");
    failed["last_payment_error"] =
        json!({"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"});
    let answer = deliver_signed(
        &app,
        &event("evt_1Stale", "payment_intent.payment_failed", &failed),
    )
    .await
    .ok();
    assert_eq!(answer["outcome"], "unchanged");
    assert_eq!(app.status(payment_id).await, "succeeded");
    assert!(app.events("payment.failed").await.is_empty());
    // The intent endpoint now says it is paid.
    app.post(&app.buyer, &uri, None, &json!({}))
        .await
        .problem(StatusCode::CONFLICT);
    assert!(app.violations().await.is_empty());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn signatures_are_checked_and_rotation_works() {
    let (fake, base) = FakeStripe::start().await;
    let app = stripe_app(&base).await;
    let (payment_id, intent_id) = opened(&app).await;
    let mut succeeded = fake.authorise_in_browser(&intent_id);
    succeeded["status"] = json!("succeeded");
    succeeded["latest_charge"] = json!("ch_3Browser");
    let body = event("evt_1Sig", "payment_intent.succeeded", &succeeded);
    let now = chrono::Utc::now().timestamp();

    let mut refusals = Vec::new();
    for (what, body_sent, signature) in [
        (
            "wrong secret",
            body.clone(),
            stripe::sign(&body, "whsec_wrong", now),
        ),
        (
            "stale",
            body.clone(),
            stripe::sign(&body, WEBHOOK_SECRET, now - 301),
        ),
        (
            "tampered",
            {
                let mut b = body.clone();
                let n = b.len();
                b[n - 3] = b'9';
                b
            },
            stripe::sign(&body, WEBHOOK_SECRET, now),
        ),
        ("no v1", body.clone(), format!("t={now}")),
        ("garbage", body.clone(), "nonsense".to_owned()),
    ] {
        let answer = deliver(&app, &body_sent, &signature).await;
        assert_eq!(
            answer.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json",
            "{what}"
        );
        refusals.push(answer.problem(StatusCode::BAD_REQUEST)["detail"].clone());
    }
    let missing = app.send(raw_post("/webhooks/stripe", &[], &body)).await;
    refusals.push(missing.problem(StatusCode::BAD_REQUEST)["detail"].clone());
    // One message for all: it says what to check, not which part failed.
    assert!(refusals.iter().all(|d| *d == refusals[0]), "{refusals:?}");
    assert!(
        refusals[0]
            .as_str()
            .unwrap()
            .contains("STRIPE_WEBHOOK_SECRET")
    );
    assert_eq!(app.status(payment_id).await, "requires_payment_method");

    // Rotation: two v1 signatures, only the second matches a secret of this service.
    let good = stripe::sign(&body, WEBHOOK_SECRET, now);
    let good_v1 = good.split_once(",v1=").unwrap().1;
    let unknown = stripe::sign(&body, "whsec_someone_else", now);
    let header = format!("{unknown},v1={good_v1}");
    assert_eq!(
        deliver(&app, &body, &header).await.ok()["outcome"],
        "applied"
    );
    assert_eq!(app.status(payment_id).await, "succeeded");
    // Captured in the browser already: no capture call from here.
    assert_eq!(fake.count(&Method::POST, "/capture"), 0);
    assert_eq!(app.ledger(payment_id).await, [("charge".to_owned(), 1999)]);

    // The same event again (a redelivery, signed anew, with the previous secret): 200, no second effect.
    let replay = stripe::sign(&body, "whsec_previous", chrono::Utc::now().timestamp());
    assert_eq!(
        deliver(&app, &body, &replay).await.ok()["outcome"],
        "duplicate"
    );
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 1);
}

#[tokio::test]
async fn events_in_any_order_and_repeated_change_a_payment_once() {
    let (fake, base) = FakeStripe::start().await;
    let app = stripe_app(&base).await;
    for (round, orders) in [
        // Authorisation first: the service captures.
        [[0, 1, 2], [2, 1, 0], [1, 0, 2]],
        // Success first: nothing to capture.
        [[1, 2, 0], [0, 2, 1], [2, 0, 1]],
    ]
    .into_iter()
    .enumerate()
    {
        let (payment_id, intent_id) = opened(&app).await;
        let created = fake.intent(&intent_id);
        let authorised = fake.authorise_in_browser(&intent_id);
        let mut succeeded = authorised.clone();
        succeeded["status"] = json!("succeeded");
        succeeded["latest_charge"] = json!(intent_id.replace("pi_", "ch_"));
        let events = [
            event(
                &format!("evt_{round}_capturable"),
                "payment_intent.amount_capturable_updated",
                &authorised,
            ),
            event(
                &format!("evt_{round}_succeeded"),
                "payment_intent.succeeded",
                &succeeded,
            ),
            event(
                &format!("evt_{round}_created"),
                "payment_intent.created",
                &created,
            ),
        ];
        let mut outcomes = Vec::new();
        for order in orders {
            for i in order {
                outcomes.push(deliver_signed(&app, &events[i]).await.ok()["outcome"].clone());
            }
        }
        assert_eq!(
            outcomes.iter().filter(|o| **o == "applied").count(),
            1,
            "{outcomes:?}"
        );
        assert_eq!(
            outcomes.iter().filter(|o| **o == "duplicate").count(),
            6,
            "{outcomes:?}"
        );
        assert_eq!(app.status(payment_id).await, "succeeded");
        assert_eq!(app.ledger(payment_id).await, [("charge".to_owned(), 1999)]);
        let succeeded_events = app.events("payment.succeeded").await;
        let mine = succeeded_events
            .iter()
            .filter(|e| e.data["payment_id"] == json!(payment_id))
            .count();
        assert_eq!(mine, 1);
        let captures = fake.count(&Method::POST, &format!("{intent_id}/capture"));
        assert_eq!(captures, if round == 0 { 1 } else { 0 });
    }
    // The same events delivered concurrently (a third payment): still once.
    let (payment_id, intent_id) = opened(&app).await;
    let authorised = fake.authorise_in_browser(&intent_id);
    let mut succeeded = authorised.clone();
    succeeded["status"] = json!("succeeded");
    succeeded["latest_charge"] = json!(intent_id.replace("pi_", "ch_"));
    let events = [
        event(
            "evt_c_capturable",
            "payment_intent.amount_capturable_updated",
            &authorised,
        ),
        event("evt_c_succeeded", "payment_intent.succeeded", &succeeded),
    ];
    let deliveries = (0..6).map(|i| deliver_signed(&app, &events[i % 2]));
    let answers = futures::future::join_all(deliveries).await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(app.status(payment_id).await, "succeeded");
    assert_eq!(app.ledger(payment_id).await.len(), 1);
    assert_eq!(app.events("payment.succeeded").await.len(), 3);
    assert!(app.violations().await.is_empty());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_decline_fails_the_payment_once_and_closes_the_intent() {
    let (fake, base) = FakeStripe::start().await;
    let app = stripe_app(&base).await;
    let (payment_id, intent_id) = opened(&app).await;
    let mut failed = fake.intent(&intent_id);
    failed["last_payment_error"] = json!({"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."});
    let body = event("evt_1Fail", "payment_intent.payment_failed", &failed);
    assert_eq!(deliver_signed(&app, &body).await.ok()["outcome"], "applied");
    assert_eq!(
        deliver_signed(&app, &body).await.ok()["outcome"],
        "duplicate"
    );
    assert_eq!(app.status(payment_id).await, "failed");
    let failed_events = app.events("payment.failed").await;
    assert_eq!(failed_events.len(), 1);
    assert_eq!(failed_events[0].data["reason"], "insufficient_funds");
    // The intent is cancelled at Stripe, so the buyer cannot pay a cancelled order.
    assert_eq!(fake.intent(&intent_id)["status"], "canceled");
    // A server-side confirmation with a PaymentMethod id works too (another payment).
    let payment_id = app.payment(&app.buyer, 500).await;
    let answer = app
        .post(
            &app.buyer,
            &format!("/payments/{payment_id}/confirm"),
            Some("tok-1"),
            &json!({"payment_method": {"type": "token", "id": "pm_card_visa"}}),
        )
        .await
        .ok();
    assert_eq!(answer["status"], "succeeded");
    assert!(answer.get("card").is_none());
    assert_eq!(app.ledger(payment_id).await, [("charge".to_owned(), 500)]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
