//! PayPal: the provider against a local server that speaks PayPal's documented OAuth2
//! and Orders v2 APIs and checks every request (method, path, Basic then Bearer auth,
//! `PayPal-Request-Id`, JSON bodies); token caching and refresh; and the webhook
//! (verified through PayPal's verify-webhook-signature, de-duplicated) through the service.

// The fakes answer a broken request with the provider's error response.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use payment::provider::paypal::{PayPal, PayPalConfig};
use payment::provider::{
    NewIntent, NextAction, Provider, ProviderError, ProviderStatus, RefundRequest, Retry,
};
use payment::webhooks::Webhooks;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, raw_post, serve_fake};

const CLIENT_ID: &str = "AYSq3RDGsmBLJE-otTkBtM-jBRd1TCQwFf9RGfwddNXWz0uFU9ztymylOhRS";
const CLIENT_SECRET: &str = "EGnHDxD_qRPdaLdZz8iCr8N7_MzF-YHPTkjs6NKYQvQSBngp4PTTVWkPZRbL";
const WEBHOOK_ID: &str = "8PT597110X687430LKGECATA";
const GOOD_SIG: &str = "lmI95Jx3Y9nhR5SJWlHVIWpg4AgFk7n9bCHSRxbrd8A9zrhdu2rMyFrmz+Zjh3s3boXB07VXCXUZy/UFzUlnGJn0wDugt7FlSvdKeIJenLRemUxYCPVoEZzg9VFNqOa48gMkvF+XTpxBeUx/kWy6B5cp7GkT2+pOowfRK7OaynuxUoKW3JcMWw272VKjLTtTAShncla7tGF+55rxyt2KNZIIqxNMJ48RDZheGU5w1npu9dZHnPgTXB9iomeVRoD8O/jhRpnKsGrDschyNdkeh81BJJMH4Ctc6lnCCquoP/GzCzz33MMsNdid7vL/NIWaCsekQpW26FpWPi/tfj8nLA==";

#[derive(Default)]
struct FakeState {
    violations: Vec<String>,
    /// Every request: method, path, PayPal-Request-Id.
    seen: Vec<(Method, String, Option<String>)>,
    token_calls: usize,
    /// Tokens PayPal accepts now.
    valid_tokens: Vec<String>,
    orders: HashMap<String, Value>,
    /// Orders whose buyer's funding source will be declined on capture.
    declining: Vec<String>,
    answers: HashMap<String, (StatusCode, Value)>,
    inject: VecDeque<(StatusCode, Value)>,
    /// The bodies verify-webhook-signature got.
    verifications: Vec<Value>,
    next: u32,
}

/// A local PayPal.
#[derive(Clone, Default)]
struct FakePayPal {
    state: Arc<Mutex<FakeState>>,
}

fn paypal_error(
    status: StatusCode,
    name: &str,
    issue: &str,
    description: &str,
) -> (StatusCode, Value) {
    (
        status,
        json!({"name": name, "message": "The requested action could not be performed, semantically incorrect, or failed business validation.",
               "debug_id": "90957fca61718", "details": [{"issue": issue, "description": description}],
               "links": [{"href": format!("https://developer.paypal.com/docs/api/orders/v2/#error-{issue}"), "rel": "information_link", "method": "GET"}]}),
    )
}

impl FakePayPal {
    async fn start() -> (FakePayPal, String) {
        let fake = FakePayPal::default();
        let router = Router::new()
            .route("/v1/oauth2/token", post(token))
            .route("/v2/checkout/orders", post(create_order))
            .route("/v2/checkout/orders/{id}", get(get_order))
            .route("/v2/checkout/orders/{id}/capture", post(capture))
            .route("/v2/payments/captures/{id}/refund", post(refund))
            .route("/v1/notifications/verify-webhook-signature", post(verify))
            .with_state(fake.clone());
        (fake, serve_fake(router).await)
    }

    fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    fn token_calls(&self) -> usize {
        self.state.lock().unwrap().token_calls
    }

    fn revoke_tokens(&self) {
        self.state.lock().unwrap().valid_tokens.clear();
    }

    fn inject(&self, answer: (StatusCode, Value)) {
        self.state.lock().unwrap().inject.push_back(answer);
    }

    fn seen(&self) -> Vec<(Method, String, Option<String>)> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The buyer approves at PayPal.
    fn approve(&self, id: &str) -> Value {
        let mut state = self.state.lock().unwrap();
        let order = state.orders.get_mut(id).unwrap();
        order["status"] = json!("APPROVED");
        order["payer"] = json!({"payer_id": "QYR5Z8XDVJNXQ", "email_address": "buyer@example.com"});
        order.clone()
    }

    fn violate(&self, problem: String) {
        self.state.lock().unwrap().violations.push(problem);
    }

    /// Checks the bearer token and the JSON content type; records the request.
    fn check(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        needs_request_id: bool,
        json_body: bool,
    ) -> Result<Option<String>, Response> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = text("paypal-request-id");
        let mut state = self.state.lock().unwrap();
        state
            .seen
            .push((method, path.to_owned(), request_id.clone()));
        let auth = text("authorization").unwrap_or_default();
        let Some(token) = auth.strip_prefix("Bearer ") else {
            state
                .violations
                .push(format!("{path}: Authorization is {auth:?}"));
            return Err((
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "invalid_token"})),
            )
                .into_response());
        };
        if !state.valid_tokens.iter().any(|t| t == token) {
            return Err((StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token", "error_description": "The token passed in was not found in the system"}))).into_response());
        }
        if needs_request_id && request_id.as_deref().is_none_or(str::is_empty) {
            state
                .violations
                .push(format!("{path}: no PayPal-Request-Id"));
        }
        if json_body && text("content-type").as_deref() != Some("application/json") {
            state.violations.push(format!(
                "{path}: Content-Type is {:?}",
                text("content-type")
            ));
        }
        if let Some((status, body)) = state.inject.pop_front() {
            return Err((status, axum::Json(body)).into_response());
        }
        if let Some(id) = &request_id
            && let Some((status, body)) = state.answers.get(id)
        {
            return Err((*status, axum::Json(body.clone())).into_response());
        }
        Ok(request_id)
    }

    fn answer(&self, request_id: Option<&str>, status: StatusCode, body: Value) -> Response {
        if let Some(id) = request_id {
            self.state
                .lock()
                .unwrap()
                .answers
                .insert(id.to_owned(), (status, body.clone()));
        }
        (status, axum::Json(body)).into_response()
    }
}

async fn token(State(fake): State<FakePayPal>, headers: HeaderMap, body: String) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut state = fake.state.lock().unwrap();
    state.token_calls += 1;
    state
        .seen
        .push((Method::POST, "/v1/oauth2/token".into(), None));
    if auth != expected {
        state
            .violations
            .push(format!("token: Authorization is {auth:?}"));
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client", "error_description": "Client Authentication failed"}))).into_response();
    }
    if content_type != "application/x-www-form-urlencoded"
        || body != "grant_type=client_credentials"
    {
        state
            .violations
            .push(format!("token: {content_type:?} {body:?}"));
    }
    state.next += 1;
    let token = format!("A21AAFakeToken{}", state.next);
    state.valid_tokens.push(token.clone());
    axum::Json(json!({
        "scope": "https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/payments/refund",
        "access_token": token, "token_type": "Bearer", "app_id": "APP-80W284485P519543T",
        "expires_in": 32400, "nonce": "2020-04-03T15:35:36ZaYZlGvEkV4yVSz8g6bAKFoGSEzuy3CQcz3ljhibkOHg",
    }))
    .into_response()
}

async fn create_order(
    State(fake): State<FakePayPal>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let request_id = match fake.check(Method::POST, "/v2/checkout/orders", &headers, true, true) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let Ok(order) = serde_json::from_str::<Value>(&body) else {
        fake.violate(format!("create: not JSON: {body}"));
        return (StatusCode::BAD_REQUEST, "").into_response();
    };
    let unit = &order["purchase_units"][0];
    let mut keys: Vec<&String> = order
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.sort();
    if order["intent"] != "CAPTURE"
        || keys != ["intent", "purchase_units"]
        || order["purchase_units"].as_array().map(Vec::len) != Some(1)
        || unit["custom_id"] != unit["invoice_id"]
        || Uuid::try_parse(unit["custom_id"].as_str().unwrap_or_default()).is_err()
        || !unit["amount"]["value"].is_string()
        || unit["amount"]["currency_code"].as_str().map(str::len) != Some(3)
    {
        fake.violate(format!("create: body {order}"));
    }
    let id = {
        let mut state = fake.state.lock().unwrap();
        state.next += 1;
        format!("5O190127TN36{:05}T", state.next)
    };
    let created = json!({
        "id": id, "status": "CREATED", "intent": "CAPTURE",
        "purchase_units": [{"reference_id": unit["reference_id"], "custom_id": unit["custom_id"], "invoice_id": unit["invoice_id"], "amount": unit["amount"]}],
        "create_time": "2026-12-02T10:00:00Z",
        "links": [
            {"href": format!("https://api-m.paypal.com/v2/checkout/orders/{id}"), "rel": "self", "method": "GET"},
            {"href": format!("https://www.paypal.com/checkoutnow?token={id}"), "rel": "approve", "method": "GET"},
            {"href": format!("https://api-m.paypal.com/v2/checkout/orders/{id}"), "rel": "update", "method": "PATCH"},
            {"href": format!("https://api-m.paypal.com/v2/checkout/orders/{id}/capture"), "rel": "capture", "method": "POST"}
        ]
    });
    fake.state
        .lock()
        .unwrap()
        .orders
        .insert(id, created.clone());
    fake.answer(request_id.as_deref(), StatusCode::CREATED, created)
}

async fn get_order(
    State(fake): State<FakePayPal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = fake.check(
        Method::GET,
        &format!("/v2/checkout/orders/{id}"),
        &headers,
        false,
        false,
    ) {
        return response;
    }
    match fake.state.lock().unwrap().orders.get(&id) {
        Some(order) => axum::Json(order.clone()).into_response(),
        None => {
            let (s, b) = paypal_error(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                "INVALID_RESOURCE_ID",
                "Specified resource ID does not exist.",
            );
            (s, axum::Json(b)).into_response()
        }
    }
}

async fn capture(
    State(fake): State<FakePayPal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let request_id = match fake.check(
        Method::POST,
        &format!("/v2/checkout/orders/{id}/capture"),
        &headers,
        true,
        true,
    ) {
        Ok(id) => id,
        Err(response) => return response,
    };
    if !body.is_empty() && body != "{}" {
        fake.violate(format!("capture: body {body:?}"));
    }
    let (order, declining) = {
        let state = fake.state.lock().unwrap();
        (
            state.orders.get(&id).cloned(),
            state.declining.contains(&id),
        )
    };
    let Some(mut order) = order else {
        let (s, b) = paypal_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "INVALID_RESOURCE_ID",
            "Specified resource ID does not exist.",
        );
        return (s, axum::Json(b)).into_response();
    };
    match order["status"].as_str() {
        Some("APPROVED") if declining => {
            let (s, b) = paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                "INSTRUMENT_DECLINED",
                "The instrument presented  was either declined by the processor or bank, or it can't be used for this payment.",
            );
            return fake.answer(request_id.as_deref(), s, b);
        }
        Some("APPROVED") => {}
        Some("COMPLETED") => {
            let (s, b) = paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                "ORDER_ALREADY_CAPTURED",
                "Order already captured.",
            );
            return fake.answer(request_id.as_deref(), s, b);
        }
        _ => {
            let (s, b) = paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order for payment.",
            );
            return fake.answer(request_id.as_deref(), s, b);
        }
    }
    let capture_id = format!("3C6793{}", &id[..10]);
    order["status"] = json!("COMPLETED");
    order["purchase_units"][0]["payments"] = json!({"captures": [{
        "id": capture_id, "status": "COMPLETED", "amount": order["purchase_units"][0]["amount"],
        "final_capture": true, "custom_id": order["purchase_units"][0]["custom_id"],
        "invoice_id": order["purchase_units"][0]["invoice_id"],
        "seller_protection": {"status": "ELIGIBLE"},
    }]});
    fake.state.lock().unwrap().orders.insert(id, order.clone());
    fake.answer(request_id.as_deref(), StatusCode::CREATED, order)
}

async fn refund(
    State(fake): State<FakePayPal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let request_id = match fake.check(
        Method::POST,
        &format!("/v2/payments/captures/{id}/refund"),
        &headers,
        true,
        true,
    ) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    if !body["amount"]["value"].is_string() || !body["amount"]["currency_code"].is_string() {
        fake.violate(format!("refund: body {body}"));
    }
    fake.answer(request_id.as_deref(), StatusCode::CREATED, json!({
        "id": format!("1JU08902{}", &id[..8]), "status": "COMPLETED",
        "links": [{"href": "https://api-m.paypal.com/v2/payments/refunds/1JU08902", "rel": "self", "method": "GET"}]
    }))
}

async fn verify(State(fake): State<FakePayPal>, headers: HeaderMap, body: String) -> Response {
    if let Err(response) = fake.check(
        Method::POST,
        "/v1/notifications/verify-webhook-signature",
        &headers,
        false,
        true,
    ) {
        return response;
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        fake.violate(format!("verify: not JSON: {body}"));
        return (StatusCode::BAD_REQUEST, "").into_response();
    };
    let mut keys: Vec<String> = request
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    let expected = [
        "auth_algo",
        "cert_url",
        "transmission_id",
        "transmission_sig",
        "transmission_time",
        "webhook_event",
        "webhook_id",
    ];
    if keys != expected
        || request["webhook_id"] != WEBHOOK_ID
        || request["auth_algo"] != "SHA256withRSA"
        || !request["webhook_event"]["id"].is_string()
    {
        fake.violate(format!("verify: body {request}"));
    }
    let status = if request["transmission_sig"] == GOOD_SIG {
        "SUCCESS"
    } else {
        "FAILURE"
    };
    fake.state.lock().unwrap().verifications.push(request);
    axum::Json(json!({"verification_status": status})).into_response()
}

fn client(base: &str) -> PayPal {
    crate::helpers::install_tls();
    PayPal::new(PayPalConfig {
        api_base: base.to_owned(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        webhook_id: WEBHOOK_ID.into(),
        return_url: None,
        retry: Retry {
            attempts: 3,
            first_delay: Duration::from_millis(10),
        },
    })
    .unwrap()
}

fn new_intent(payment_id: Uuid) -> NewIntent<'static> {
    NewIntent {
        payment_id,
        order_id: Uuid::now_v7(),
        amount_minor: 1999,
        currency: "USD",
    }
}

#[tokio::test]
async fn the_client_speaks_paypals_orders_api_with_one_cached_token() {
    let (fake, base) = FakePayPal::start().await;
    let paypal = client(&base);
    let payment_id = Uuid::now_v7();
    let created = paypal
        .create_intent(&new_intent(payment_id), &format!("{payment_id}:create"))
        .await
        .unwrap();
    let id = created.provider_ref.clone();
    assert_eq!(
        created.status,
        ProviderStatus::RequiresAction(NextAction {
            kind: "redirect_to_url".into(),
            redirect_url: Some(format!("https://www.paypal.com/checkoutnow?token={id}")),
        })
    );
    let order = fake.state.lock().unwrap().orders[&id].clone();
    assert_eq!(
        order["purchase_units"][0]["amount"],
        json!({"currency_code": "USD", "value": "19.99"})
    );
    assert_eq!(order["purchase_units"][0]["custom_id"], json!(payment_id));
    // Not approved yet: capturing answers the order's state.
    assert!(matches!(
        paypal.capture(&id, 1999, "c:early").await.unwrap().status,
        ProviderStatus::RequiresAction(_)
    ));
    fake.approve(&id);
    assert_eq!(
        paypal.retrieve(&id).await.unwrap().status,
        ProviderStatus::RequiresCapture
    );
    let captured = paypal
        .capture(&id, 1999, &format!("{payment_id}:capture"))
        .await
        .unwrap();
    let ProviderStatus::Succeeded { charge_ref } = captured.status.clone() else {
        panic!("{captured:?}")
    };
    // Repeated with its request id: PayPal's first answer.
    assert_eq!(
        paypal
            .capture(&id, 1999, &format!("{payment_id}:capture"))
            .await
            .unwrap(),
        captured
    );
    let refund = paypal
        .refund(
            &RefundRequest {
                provider_ref: &id,
                charge_ref: &charge_ref,
                amount_minor: 1999,
                currency: "USD",
            },
            "r:refund",
        )
        .await
        .unwrap();
    assert!(refund.refund_ref.starts_with("1JU08902"));
    // One token for all of it.
    assert_eq!(fake.token_calls(), 1);

    // A revoked token: the 401 brings one new token, and the call goes through.
    fake.revoke_tokens();
    assert!(matches!(
        paypal.retrieve(&id).await.unwrap().status,
        ProviderStatus::Succeeded { .. }
    ));
    assert_eq!(fake.token_calls(), 2);
    assert_eq!(paypal.retrieve(&id).await.unwrap().status, captured.status);
    assert_eq!(fake.token_calls(), 2);

    let requests: Vec<(Method, String)> = fake.seen().into_iter().map(|(m, p, _)| (m, p)).collect();
    assert_eq!(requests[0], (Method::POST, "/v1/oauth2/token".to_owned()));
    assert_eq!(
        requests[1],
        (Method::POST, "/v2/checkout/orders".to_owned())
    );
    assert!(requests.contains(&(
        Method::POST,
        format!("/v2/payments/captures/{charge_ref}/refund")
    )));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn declines_and_outages_are_mapped() {
    let (fake, base) = FakePayPal::start().await;
    let paypal = client(&base);
    let id = paypal
        .create_intent(&new_intent(Uuid::now_v7()), "d:create")
        .await
        .unwrap()
        .provider_ref;
    fake.approve(&id);
    fake.state.lock().unwrap().declining.push(id.clone());
    let declined = paypal.capture(&id, 1999, "d:capture").await.unwrap();
    assert_eq!(
        declined.status,
        ProviderStatus::Failed {
            reason: "instrument_declined".into()
        }
    );

    // 5xx: three attempts with one PayPal-Request-Id, then Unavailable.
    let before = fake.seen().len();
    for _ in 0..3 {
        fake.inject((StatusCode::SERVICE_UNAVAILABLE, json!({"name": "SERVICE_UNAVAILABLE", "message": "Service Unavailable.", "debug_id": "b1e5a7"})));
    }
    let err = paypal
        .create_intent(&new_intent(Uuid::now_v7()), "u:create")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    let ids: Vec<Option<String>> = fake.seen()[before..]
        .iter()
        .map(|(_, _, r)| r.clone())
        .collect();
    assert_eq!(ids, vec![Some("u:create".to_owned()); 3]);
    // A refusal names PayPal's issue and debug id.
    let err = paypal.retrieve("UNKNOWN1").await.unwrap_err();
    let ProviderError::Rejected(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("INVALID_RESOURCE_ID") && message.contains("debug_id"),
        "{message}"
    );
    // Wrong credentials: a refusal, not an outage.
    let wrong = PayPal::new(PayPalConfig {
        api_base: base.clone(),
        client_id: "nobody".into(),
        client_secret: "x".into(),
        webhook_id: WEBHOOK_ID.into(),
        return_url: None,
        retry: Retry {
            attempts: 3,
            first_delay: Duration::from_millis(10),
        },
    })
    .unwrap();
    assert!(matches!(
        wrong.retrieve(&id).await,
        Err(ProviderError::Rejected(_))
    ));
    fake.state
        .lock()
        .unwrap()
        .violations
        .retain(|v| !v.starts_with("token: Authorization"));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

fn webhook_event(id: &str, event_type: &str, resource: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "create_time": "2026-12-02T10:01:00.000Z", "resource_type": if event_type.starts_with("CHECKOUT") { "checkout-order" } else { "capture" },
        "event_type": event_type, "summary": "An event", "resource": resource,
        "links": [{"href": format!("https://api.paypal.com/v1/notifications/webhooks-events/{id}"), "rel": "self", "method": "GET"}],
        "event_version": "1.0", "resource_version": "2.0",
    }))
    .unwrap()
}

async fn deliver(app: &TestApp, body: &[u8], sig: &str) -> crate::helpers::TestResponse {
    app.send(raw_post(
        "/webhooks/paypal",
        &[
            (
                "paypal-transmission-id",
                "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
            ),
            ("paypal-transmission-time", "2026-12-02T10:01:00Z"),
            ("paypal-transmission-sig", sig),
            (
                "paypal-cert-url",
                "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
            ),
            ("paypal-auth-algo", "SHA256withRSA"),
        ],
        body,
    ))
    .await
}

#[tokio::test]
async fn the_buyer_approves_at_paypal_and_the_webhook_captures_once() {
    let (fake, base) = FakePayPal::start().await;
    let paypal = Arc::new(client(&base));
    let app = TestApp::with_webhooks(
        paypal.clone(),
        Webhooks {
            stripe_secrets: Vec::new(),
            paypal: Some(paypal),
        },
    )
    .await;
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
        json!({"provider": "paypal", "live": true, "client_id": CLIENT_ID})
    );

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
    let order_id = session["provider_ref"].as_str().unwrap().to_owned();
    assert!(session.get("client_secret").is_none());
    assert_eq!(session["payment"]["status"], "requires_action");
    assert_eq!(
        session["payment"]["next_action"]["redirect_url"],
        format!("https://www.paypal.com/checkoutnow?token={order_id}")
    );

    let approved = fake.approve(&order_id);
    let body = webhook_event(
        "WH-2WR32451HC0233532-67976317FL4543714",
        "CHECKOUT.ORDER.APPROVED",
        &approved,
    );
    // Not verified by PayPal: refused, nothing changes.
    let refused = deliver(&app, &body, "forged")
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("PAYPAL_WEBHOOK_ID"),
        "{refused}"
    );
    assert_eq!(app.status(payment_id).await, "requires_action");
    // Verified: captured and recorded.
    assert_eq!(
        deliver(&app, &body, GOOD_SIG).await.ok()["outcome"],
        "applied"
    );
    assert_eq!(app.status(payment_id).await, "succeeded");
    assert_eq!(app.ledger(payment_id).await, [("charge".to_owned(), 1999)]);
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
    // The verify endpoint got the transmission headers and the event as delivered.
    let verifications = fake.state.lock().unwrap().verifications.clone();
    assert_eq!(verifications.len(), 2);
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(verifications[1]["webhook_event"], sent);
    assert_eq!(
        verifications[1]["transmission_id"],
        "69cd13f0-d67a-11e5-baa3-778b53f4ae55"
    );
    assert_eq!(
        verifications[1]["transmission_time"],
        "2026-12-02T10:01:00Z"
    );
    assert_eq!(
        verifications[1]["cert_url"],
        "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"
    );
    assert_eq!(verifications[1]["webhook_id"], WEBHOOK_ID);

    // The replay and the capture's own event change nothing.
    assert_eq!(
        deliver(&app, &body, GOOD_SIG).await.ok()["outcome"],
        "duplicate"
    );
    let order = fake.state.lock().unwrap().orders[&order_id].clone();
    let mut capture = order["purchase_units"][0]["payments"]["captures"][0].clone();
    capture["supplementary_data"] = json!({"related_ids": {"order_id": order_id}});
    let completed = webhook_event(
        "WH-58D329510W468432D-8HN650336L201105X",
        "PAYMENT.CAPTURE.COMPLETED",
        &capture,
    );
    assert_eq!(
        deliver(&app, &completed, GOOD_SIG).await.ok()["outcome"],
        "unchanged"
    );
    assert_eq!(
        deliver(&app, &completed, GOOD_SIG).await.ok()["outcome"],
        "duplicate"
    );
    assert_eq!(app.events("payment.succeeded").await.len(), 1);
    let captures = fake
        .seen()
        .iter()
        .filter(|(_, p, _)| p.ends_with("/capture"))
        .count();
    assert_eq!(captures, 1);
    // Missing transmission headers: a 400 naming the header.
    let missing = app
        .send(raw_post("/webhooks/paypal", &[], &body))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("paypal-transmission-id"),
        "{missing}"
    );
    // Stripe's webhook is not this shop's.
    app.send(raw_post(
        "/webhooks/stripe",
        &[("stripe-signature", "t=1,v1=00")],
        b"{}",
    ))
    .await
    .problem(StatusCode::NOT_FOUND);

    // Another payment: the buyer comes back from PayPal and the storefront says so.
    let second = app.payment(&app.buyer, 500).await;
    let session = app
        .post(
            &app.buyer,
            &format!("/payments/{second}/intent"),
            None,
            &json!({}),
        )
        .await
        .ok();
    let second_order = session["provider_ref"].as_str().unwrap().to_owned();
    fake.approve(&second_order);
    let paid = app.authenticate(&app.buyer, second, "approve").await.ok();
    assert_eq!(paid["status"], "succeeded");
    // Its denied capture event, late, regresses nothing.
    let denied = json!({"id": "7NW873794T343360M", "status": "DECLINED", "custom_id": second.to_string(),
        "supplementary_data": {"related_ids": {"order_id": second_order}}});
    let body = webhook_event("WH-DENIED-1", "PAYMENT.CAPTURE.DENIED", &denied);
    assert_eq!(
        deliver(&app, &body, GOOD_SIG).await.ok()["outcome"],
        "unchanged"
    );
    assert_eq!(app.status(second).await, "succeeded");
    assert!(app.events("payment.failed").await.is_empty());
    assert!(app.violations().await.is_empty());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
