//! The providers' webhooks: `POST /webhooks/stripe` and `POST /webhooks/paypal` (no
//! bearer token: the provider signs them; the gateway exposes them under
//! `/api/payment/webhooks/…`).
//!
//! A delivery is verified first (Stripe: `Stripe-Signature`, HMAC-SHA256 with the
//! endpoint's secrets; PayPal: PayPal's `verify-webhook-signature` API), then turned into
//! what it says about one payment's intent, and applied in one transaction: the event's id
//! is inserted into `webhook_events` (`ON CONFLICT DO NOTHING`: a redelivery stops here),
//! the payment is locked, and [`reconcile`] compares what the provider reports with the
//! payment's status. Changes go through the state machine's one path — claim, capture an
//! authorisation, `process::record` (status, ledger row, `payment.succeeded` /
//! `payment.failed`) — so events in any order, repeated or stale, change a payment at most
//! once and never move it backwards.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use shopkit::error::{Json, Problem};
use shopkit::{ApiError, ApiResult};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{PaymentRow, Status};
use crate::process;
use crate::provider::paypal::{self, PayPal, Transmission};
use crate::provider::stripe;
use crate::provider::{Provider, ProviderError, ProviderIntent, ProviderStatus, idempotency_key};
use crate::startup::AppState;
use crate::store;

/// What verifies the configured provider's webhooks.
#[derive(Clone, Default)]
pub struct Webhooks {
    /// `STRIPE_WEBHOOK_SECRET`: the endpoint's signing secrets (`whsec_…`); more than one
    /// while a secret is rolled. Empty: Stripe webhooks are not taken.
    pub stripe_secrets: Vec<String>,
    /// The PayPal client (it asks PayPal to verify); `None`: PayPal webhooks are not taken.
    pub paypal: Option<Arc<PayPal>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("stripe_secrets", &self.stripe_secrets.len())
            .field("paypal", &self.paypal.is_some())
            .finish()
    }
}

/// What a verified event says about one payment.
#[derive(Debug, Clone)]
pub struct Report {
    pub provider: &'static str,
    pub event_id: String,
    pub event_type: String,
    /// The payment's id, when the provider echoes it (Stripe's `metadata[payment_id]`,
    /// PayPal's `custom_id`); else the payment is found by the intent's id.
    pub payment_id: Option<Uuid>,
    /// The intent as the event reports it (`provider_ref` may be empty when the event
    /// does not name it).
    pub intent: ProviderIntent,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The payment changed.
    Applied,
    /// Nothing to change: the payment is past this (a repeat or a stale event), or the
    /// provider is still working on it.
    Unchanged,
    /// This event id was handled before.
    Duplicate,
    /// Not about a payment of this service, or of a type it does not act on.
    Ignored,
}

/// The answer to a provider (any 2xx stops its redeliveries).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Received {
    pub received: bool,
    pub outcome: Outcome,
}

fn received(outcome: Outcome) -> Response {
    Json(Received {
        received: true,
        outcome,
    })
    .into_response()
}

/// A provider error while acting on a webhook: no answer is worth the provider's
/// redelivery (503), a refusal is logged (500; redelivered too, with its back-off).
fn provider_failure(err: ProviderError) -> ApiError {
    match err {
        ProviderError::Unavailable(cause) => {
            ApiError::Unavailable(format!("the payment provider did not answer: {cause:#}"))
        }
        other => ApiError::Internal(anyhow::anyhow!(
            "the payment provider refused a call made for its webhook: {other}"
        )),
    }
}

/// Applies a verified event: records its id, and reconciles the payment, in one
/// transaction. Returns the outcome and, if it changed, the payment.
pub async fn apply(
    state: &AppState,
    report: &Report,
) -> Result<(Outcome, Option<PaymentRow>), ApiError> {
    let mut tx = state.pool().begin().await?;
    if !store::record_webhook_event(
        &mut tx,
        report.provider,
        &report.event_id,
        &report.event_type,
    )
    .await?
    {
        tx.commit().await?;
        return Ok((Outcome::Duplicate, None));
    }
    let payment = match report.payment_id {
        Some(id) => store::lock_by_id(&mut tx, id).await?,
        None if !report.intent.provider_ref.is_empty() => {
            store::lock_by_provider_ref(&mut tx, report.provider, &report.intent.provider_ref)
                .await?
        }
        None => None,
    };
    let Some(payment) = payment.filter(|p| p.provider == report.provider) else {
        // Another shop's payment on the same provider account, or not ours at all.
        tracing::info!(event.id = %report.event_id, event.r#type = %report.event_type, "webhook event about no payment of this service");
        tx.commit().await?;
        return Ok((Outcome::Ignored, None));
    };
    let mut intent = report.intent.clone();
    if intent.provider_ref.is_empty() {
        intent.provider_ref = payment.provider_ref.clone().unwrap_or_default();
    }
    if payment
        .provider_ref
        .as_ref()
        .is_some_and(|known| *known != intent.provider_ref)
        || intent.provider_ref.is_empty()
    {
        tracing::warn!(payment.id = %payment.id, event.id = %report.event_id, "webhook event about another intent than the payment's; ignored");
        tx.commit().await?;
        return Ok((Outcome::Ignored, None));
    }
    let changed = reconcile(state.provider(), &mut tx, &payment, &intent).await?;
    tx.commit().await?;
    match changed {
        Some(row) => {
            process::count(&row);
            tracing::info!(payment.id = %row.id, order.id = %row.order_id, status = %row.status(), event.id = %report.event_id, event.r#type = %report.event_type, "payment changed by a provider webhook");
            Ok((Outcome::Applied, Some(row)))
        }
        None => Ok((Outcome::Unchanged, None)),
    }
}

/// Brings a locked payment in line with what the provider reports, on `conn` (the
/// webhook's transaction). `Some(row)` if it changed.
///
/// | payment | provider says | effect |
/// | --- | --- | --- |
/// | `requires_payment_method`, `requires_action` | authorised | claim, capture, record `succeeded` |
/// | | captured / declined / cancelled | claim, record `succeeded` / `failed` |
/// | | anything else | nothing (the buyer is still at it) |
/// | `processing` (a confirmation under way) | captured / declined | record it against that claim |
/// | `succeeded`, `refunded` | anything | nothing: a stale or repeated event |
/// | `failed`, `cancelled` | authorised | the hold is released (the intent cancelled) |
pub async fn reconcile(
    provider: &dyn Provider,
    conn: &mut PgConnection,
    payment: &PaymentRow,
    intent: &ProviderIntent,
) -> Result<Option<PaymentRow>, ApiError> {
    let provider_ref = intent.provider_ref.as_str();
    match payment.status() {
        Status::Succeeded | Status::Refunded => Ok(None),
        Status::Failed | Status::Cancelled => {
            match &intent.status {
                ProviderStatus::RequiresCapture => {
                    // Authorised after the payment was given up: never capture it.
                    provider
                        .cancel(provider_ref, &idempotency_key(payment.id, "cancel"))
                        .await
                        .map_err(provider_failure)?;
                    tracing::warn!(payment.id = %payment.id, status = %payment.status(), "released an authorisation of a payment that had ended");
                }
                ProviderStatus::Succeeded { charge_ref } => {
                    tracing::error!(payment.id = %payment.id, status = %payment.status(), charge = %charge_ref, "the provider reports money captured for a payment that had ended; refund it at the provider");
                }
                _ => {}
            }
            Ok(None)
        }
        from @ (Status::RequiresPaymentMethod | Status::RequiresAction) => {
            if !matches!(
                intent.status,
                ProviderStatus::RequiresCapture
                    | ProviderStatus::Succeeded { .. }
                    | ProviderStatus::Failed { .. }
                    | ProviderStatus::Cancelled
            ) {
                return Ok(None);
            }
            let Some(claimed) = store::claim(conn, payment.id, from, None).await? else {
                return Ok(None);
            };
            let settled = process::settle(provider, &claimed, provider_ref, intent.status.clone())
                .await
                .map_err(provider_failure)?;
            let Some(settled) = settled else {
                // Captured but still pending: it stays `processing` until the next event
                // or the sweeper (which asks the provider) settles it.
                return Ok(Some(claimed));
            };
            let row = process::record(conn, &claimed, Some(provider_ref), &settled, None).await?;
            if matches!(intent.status, ProviderStatus::Failed { .. }) {
                // A declined intent could still be paid with another card in the browser;
                // the payment is over (its order is cancelled), so close the intent too.
                if let Err(err) = provider
                    .cancel(provider_ref, &idempotency_key(payment.id, "cancel"))
                    .await
                {
                    tracing::warn!(payment.id = %payment.id, error = %err, "could not cancel the declined intent at the provider");
                }
            }
            Ok(row)
        }
        Status::Processing => {
            let settled = match &intent.status {
                ProviderStatus::Succeeded { .. } | ProviderStatus::Failed { .. } => {
                    process::settle(provider, payment, provider_ref, intent.status.clone())
                        .await
                        .map_err(provider_failure)?
                }
                // The confirmation under way (or the sweeper) settles it.
                _ => None,
            };
            match settled {
                Some(settled) => {
                    Ok(process::record(conn, payment, Some(provider_ref), &settled, None).await?)
                }
                None => Ok(None),
            }
        }
    }
}

/// The one answer to a delivery that does not verify: it says what to check, not which
/// part failed.
fn bad_signature(provider: &str, hint: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "the webhook's signature does not verify for this endpoint; {provider} deliveries are \
         checked against {hint}"
    ))
}

fn field<'a>(event: &'a Value, pointer: &str) -> Option<&'a str> {
    event.pointer(pointer).and_then(Value::as_str)
}

fn not_configured(provider: &str) -> ApiError {
    ApiError::NotFound(format!(
        "this shop does not take {provider} webhooks: PAYMENT_PROVIDER is not {provider}"
    ))
}

/// A Stripe event (signed with `Stripe-Signature`).
#[utoipa::path(
    post, path = "/webhooks/stripe", tag = "webhooks",
    request_body(content = Object, description = "A Stripe event (`payment_intent.*` are acted on)", content_type = "application/json"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix time>,v1=<hex HMAC-SHA256>[,v1=…]")),
    responses(
        (status = 200, description = "Received (also when repeated or ignored)", body = Received),
        (status = 400, description = "Signature missing, malformed, stale or wrong; or not an event", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The shop does not use Stripe", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe did not answer a call the event needed; redeliver", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let secrets = &state.webhooks().stripe_secrets;
    if secrets.is_empty() {
        return Err(not_configured("Stripe"));
    }
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Err(why) =
        stripe::verify_signature(header, &body, secrets, chrono::Utc::now().timestamp())
    {
        tracing::warn!(reason = %why, "refused a Stripe webhook delivery");
        return Err(bad_signature(
            "Stripe",
            "the endpoint's signing secret(s) in STRIPE_WEBHOOK_SECRET, within 300 s of the signed time",
        ));
    }
    let event: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("the body is not a JSON Stripe event".into()))?;
    let (Some(event_id), Some(event_type)) = (field(&event, "/id"), field(&event, "/type")) else {
        return Err(ApiError::BadRequest("the event has no id or type".into()));
    };
    if !event_type.starts_with("payment_intent.") {
        return Ok(received(Outcome::Ignored));
    }
    let object = event.pointer("/data/object").unwrap_or(&Value::Null);
    let Some(intent) = stripe::intent_from_object(object) else {
        return Err(ApiError::BadRequest(format!(
            "the {event_type} event carries no PaymentIntent in data.object"
        )));
    };
    let report = Report {
        provider: stripe::NAME,
        event_id: event_id.to_owned(),
        event_type: event_type.to_owned(),
        payment_id: field(object, "/metadata/payment_id").and_then(|id| Uuid::try_parse(id).ok()),
        intent,
    };
    let (outcome, _) = apply(&state, &report).await?;
    Ok(received(outcome))
}

/// The transmission headers, or a 400 naming the missing one.
fn transmission(headers: &HeaderMap) -> Result<Transmission, ApiError> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "the {name} header is missing; PayPal sends it with every webhook"
                ))
            })
    };
    Ok(Transmission {
        id: get("paypal-transmission-id")?,
        time: get("paypal-transmission-time")?,
        sig: get("paypal-transmission-sig")?,
        cert_url: get("paypal-cert-url")?,
        auth_algo: get("paypal-auth-algo")?,
    })
}

/// A PayPal event (verified by asking PayPal).
#[utoipa::path(
    post, path = "/webhooks/paypal", tag = "webhooks",
    request_body(content = Object, description = "A PayPal webhook event (CHECKOUT.ORDER.APPROVED, PAYMENT.CAPTURE.COMPLETED, PAYMENT.CAPTURE.DENIED are acted on)", content_type = "application/json"),
    responses(
        (status = 200, description = "Received (also when repeated or ignored)", body = Received),
        (status = 400, description = "Transmission headers missing, or PayPal did not verify the signature", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The shop does not use PayPal", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PayPal did not answer; redeliver", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn paypal_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let Some(client) = state.webhooks().paypal.clone() else {
        return Err(not_configured("PayPal"));
    };
    let transmission = transmission(&headers)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the body is not a JSON PayPal event".into()))?;
    let event: Value = serde_json::from_str(text)
        .map_err(|_| ApiError::BadRequest("the body is not a JSON PayPal event".into()))?;
    let verified = client
        .verify_webhook(&transmission, text)
        .await
        .map_err(provider_failure)?;
    if !verified {
        tracing::warn!(transmission.id = %transmission.id, "PayPal did not verify a webhook delivery");
        return Err(bad_signature(
            "PayPal",
            "PAYPAL_WEBHOOK_ID by PayPal's verify-webhook-signature",
        ));
    }
    let (Some(event_id), Some(event_type)) = (field(&event, "/id"), field(&event, "/event_type"))
    else {
        return Err(ApiError::BadRequest(
            "the event has no id or event_type".into(),
        ));
    };
    let resource = event.get("resource").unwrap_or(&Value::Null);
    let payment_id = |custom: Option<&str>| custom.and_then(|id| Uuid::try_parse(id).ok());
    let (intent, payment) = match event_type {
        "CHECKOUT.ORDER.APPROVED" => {
            let Some(intent) = paypal::intent_from_order(resource) else {
                return Err(ApiError::BadRequest(
                    "the CHECKOUT.ORDER.APPROVED event carries no order".into(),
                ));
            };
            (
                intent,
                payment_id(field(resource, "/purchase_units/0/custom_id")),
            )
        }
        "PAYMENT.CAPTURE.COMPLETED" | "PAYMENT.CAPTURE.DENIED" | "PAYMENT.CAPTURE.DECLINED" => {
            let order =
                field(resource, "/supplementary_data/related_ids/order_id").unwrap_or_default();
            (
                ProviderIntent::new(order, paypal::status_of_capture(resource)),
                payment_id(field(resource, "/custom_id")),
            )
        }
        _ => return Ok(received(Outcome::Ignored)),
    };
    let report = Report {
        provider: paypal::NAME,
        event_id: event_id.to_owned(),
        event_type: event_type.to_owned(),
        payment_id: payment,
        intent,
    };
    let (outcome, _) = apply(&state, &report).await?;
    Ok(received(outcome))
}
