//! Stripe, through its PaymentIntents REST API (`PAYMENT_PROVIDER=stripe`).
//!
//! Requests are form-encoded (`application/x-www-form-urlencoded`) with
//! `Authorization: Bearer sk_…`, a pinned `Stripe-Version`, and an `Idempotency-Key` on
//! every POST (the service's `<payment id>:<step>` keys), so a repeated call — after a
//! timeout, a 5xx, or a crash — returns Stripe's first answer instead of acting twice.
//!
//! The flow: the storefront asks `POST /payments/{id}/intent`, which creates the intent
//! (`capture_method=manual`, `metadata[payment_id]`, `metadata[order_id]`) and hands the
//! buyer its `client_secret` and the publishable key; the buyer confirms in the browser
//! with Stripe's Payment Element, so card data never reaches Shopstack. Stripe's webhooks
//! tell the service how it went; an authorised intent (`requires_capture`) is captured
//! by the service, exactly once, when it records the payment as succeeded. A server-side
//! confirmation with a PaymentMethod id (`pm_card_visa` in test mode) works too.
//!
//! | Stripe status | [`ProviderStatus`] |
//! | --- | --- |
//! | `requires_payment_method` (with `last_payment_error`: declined) | `RequiresPaymentMethod` (`Failed { reason: decline_code }`) |
//! | `requires_confirmation` | `RequiresPaymentMethod` |
//! | `requires_action` | `RequiresAction` (`next_action.redirect_to_url.url` as the redirect) |
//! | `requires_capture` | `RequiresCapture` |
//! | `processing` | `Processing` |
//! | `succeeded` | `Succeeded { charge_ref: latest_charge }` |
//! | `canceled` | `Cancelled` |
//!
//! Errors: a `card_error` (402) on confirmation is a decline (`Failed`), not an error;
//! 400, 401, 403, 404 and other 402s are `Rejected`; 409, 429, 5xx and network errors are
//! `Unavailable`, after [`Retry`] attempts with the same idempotency key (a
//! `Stripe-Should-Retry` header overrides that choice).
//!
//! Webhook signatures (`Stripe-Signature`) are checked by [`verify_signature`].

use anyhow::anyhow;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use super::{
    ActionOutcome, ClientSecret, NewIntent, NextAction, Provider, ProviderError, ProviderIntent,
    ProviderRefund, ProviderStatus, PublicConfig, RefundRequest, Retry,
};
use crate::card::PaymentMethod;

pub const NAME: &str = "stripe";
/// `STRIPE_API_BASE`'s default.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// The API version every request pins (`Stripe-Version`). The webhook endpoint should be
/// created with the same version, so events carry objects of the same shape.
pub const API_VERSION: &str = "2024-06-20";
/// How old a webhook's signed timestamp may be (Stripe's libraries' default): older
/// deliveries are refused as possible replays.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// What the Stripe client needs.
#[derive(Clone)]
pub struct StripeConfig {
    /// `STRIPE_API_BASE` (default `https://api.stripe.com`): tests point it at a local
    /// server.
    pub api_base: String,
    /// `STRIPE_SECRET_KEY` (secret): `sk_live_…` or `sk_test_…` (or a restricted `rk_…`).
    pub secret_key: String,
    /// `STRIPE_PUBLISHABLE_KEY`: `pk_…`, for Stripe.js in the buyer's browser.
    pub publishable_key: Option<String>,
    /// `PAYMENT_RETURN_URL`: where Stripe sends the buyer back after a redirect (3-D
    /// Secure, bank redirects). Without it, intents allow no redirect-based methods.
    pub return_url: Option<String>,
    pub retry: Retry,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"[redacted]")
            .field("publishable_key", &self.publishable_key)
            .field("return_url", &self.return_url)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The Stripe provider.
#[derive(Debug)]
pub struct Stripe {
    http: reqwest::Client,
    config: StripeConfig,
}

/// Stripe's error body: `{"error": {"type", "code", "decline_code", "message", …}}`.
#[derive(Debug, Clone, Default, Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

impl ErrorBody {
    fn describe(&self) -> String {
        let mut text = if self.kind.is_empty() {
            "unknown error".to_owned()
        } else {
            self.kind.clone()
        };
        if let Some(code) = &self.code {
            text.push('/');
            text.push_str(code);
        }
        if let Some(decline) = &self.decline_code {
            text.push_str(&format!(" ({decline})"));
        }
        if let Some(message) = &self.message {
            text.push_str(": ");
            text.push_str(message);
        }
        text
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
enum Failure {
    /// Stripe answered with an error.
    Api {
        status: StatusCode,
        error: ErrorBody,
    },
    /// No usable answer.
    Unavailable(anyhow::Error),
}

impl Failure {
    fn is_retryable_status(status: StatusCode) -> bool {
        status == StatusCode::CONFLICT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
    }

    fn into_provider_error(self) -> ProviderError {
        match self {
            Failure::Unavailable(cause) => ProviderError::Unavailable(cause),
            Failure::Api { status, error } if Self::is_retryable_status(status) => {
                ProviderError::Unavailable(anyhow!(
                    "Stripe answered {status}: {}",
                    error.describe()
                ))
            }
            Failure::Api { status, error } => ProviderError::Rejected(format!(
                "Stripe refused the request ({status}): {}",
                error.describe()
            )),
        }
    }

    fn code(&self) -> Option<&str> {
        match self {
            Failure::Api { error, .. } => error.code.as_deref(),
            Failure::Unavailable(_) => None,
        }
    }
}

/// An id that may go into a URL path: Stripe's ids are letters, digits and `_`.
fn path_id<'a>(id: &'a str, prefix: &str) -> Result<&'a str, ProviderError> {
    let ok = id.starts_with(prefix)
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(ProviderError::Rejected(format!(
            "{id:?} is not a Stripe id ({prefix}…)"
        )))
    }
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl Stripe {
    pub fn new(config: StripeConfig) -> anyhow::Result<Self> {
        Ok(Self {
            http: super::http_client()?,
            config: StripeConfig {
                api_base: super::trim_base(&config.api_base),
                ..config
            },
        })
    }

    /// One API call, repeated on no answer / 409 / 429 / 5xx with the same key.
    async fn call(
        &self,
        method: Method,
        path: &str,
        form: Option<&[(String, String)]>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.config.api_base);
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.config.secret_key)
                .header("Stripe-Version", API_VERSION);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(form) = form {
                request = request.form(form);
            }
            let failure = match request.send().await {
                Err(err) => Failure::Unavailable(
                    anyhow::Error::new(err).context(format!("calling Stripe {method} {path}")),
                ),
                Ok(response) => {
                    let status = response.status();
                    let should_retry = response
                        .headers()
                        .get("stripe-should-retry")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == "true");
                    match response.bytes().await {
                        Err(err) => Failure::Unavailable(
                            anyhow::Error::new(err)
                                .context(format!("reading Stripe's answer to {method} {path}")),
                        ),
                        Ok(body) if status.is_success() => {
                            return serde_json::from_slice(&body).map_err(|e| {
                                Failure::Unavailable(anyhow!(
                                    "Stripe's answer to {method} {path} is not JSON: {e}"
                                ))
                            });
                        }
                        Ok(body) => {
                            let error = serde_json::from_slice::<ErrorEnvelope>(&body)
                                .map(|e| e.error)
                                .unwrap_or_default();
                            let retry = should_retry
                                .unwrap_or_else(|| Failure::is_retryable_status(status));
                            let failure = Failure::Api { status, error };
                            if !retry {
                                return Err(failure);
                            }
                            failure
                        }
                    }
                }
            };
            if attempt >= self.config.retry.attempts {
                return Err(failure);
            }
            attempt += 1;
            tracing::debug!(attempt, path, "repeating a Stripe call that got no answer");
            tokio::time::sleep(self.config.retry.delay(attempt)).await;
        }
    }

    async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Value, Failure> {
        self.call(Method::POST, path, Some(form), Some(idempotency_key))
            .await
    }

    fn intent(object: &Value) -> Result<ProviderIntent, ProviderError> {
        intent_from_object(object).ok_or_else(|| {
            ProviderError::Unavailable(anyhow!(
                "Stripe answered something that is not a PaymentIntent"
            ))
        })
    }
}

/// A PaymentIntent object (an API answer, or an event's `data.object`) as the service
/// sees it; `None` if it is not one.
pub fn intent_from_object(object: &Value) -> Option<ProviderIntent> {
    if object
        .get("object")
        .and_then(Value::as_str)
        .is_some_and(|o| o != "payment_intent")
    {
        return None;
    }
    let id = object.get("id")?.as_str()?;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let status = match object.get("status")?.as_str()? {
        "requires_payment_method" => match object.get("last_payment_error") {
            Some(error) if error.is_object() => ProviderStatus::Failed {
                reason: error
                    .get("decline_code")
                    .and_then(text)
                    .or_else(|| error.get("code").and_then(text))
                    .unwrap_or_else(|| "payment_failed".into()),
            },
            _ => ProviderStatus::RequiresPaymentMethod,
        },
        "requires_confirmation" => ProviderStatus::RequiresPaymentMethod,
        "requires_action" => {
            let next = object.get("next_action");
            ProviderStatus::RequiresAction(NextAction {
                kind: next
                    .and_then(|n| n.get("type"))
                    .and_then(text)
                    .unwrap_or_else(|| "three_d_secure".into()),
                redirect_url: next
                    .and_then(|n| n.get("redirect_to_url"))
                    .and_then(|r| r.get("url"))
                    .and_then(text),
            })
        }
        "requires_capture" => ProviderStatus::RequiresCapture,
        "processing" => ProviderStatus::Processing,
        "succeeded" => {
            // `latest_charge` is an id, or the charge itself when expanded.
            let charge = object.get("latest_charge");
            let charge_ref = charge
                .and_then(text)
                .or_else(|| charge.and_then(|c| c.get("id")).and_then(text))
                .unwrap_or_else(|| id.to_owned());
            ProviderStatus::Succeeded { charge_ref }
        }
        "canceled" => ProviderStatus::Cancelled,
        _ => return None,
    };
    Some(ProviderIntent {
        provider_ref: id.to_owned(),
        status,
        client_secret: object.get("client_secret").and_then(text).map(ClientSecret),
    })
}

#[async_trait::async_trait]
impl Provider for Stripe {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_live(&self) -> bool {
        true
    }

    fn check_method(&self, method: &PaymentMethod) -> Result<(), ProviderError> {
        match method {
            PaymentMethod::Token(id) if id.starts_with("pm_") => Ok(()),
            PaymentMethod::Token(id) => Err(ProviderError::InvalidPaymentMethod(format!(
                "{id:?} is not a Stripe PaymentMethod id (pm_…)"
            ))),
            PaymentMethod::Card(_) => Err(ProviderError::InvalidPaymentMethod(
                "card numbers are not taken here: the buyer confirms in the browser with \
                 Stripe's Payment Element (the client_secret comes from POST \
                 /payments/{id}/intent), or the payment method is a Stripe PaymentMethod id: \
                 {\"type\": \"token\", \"id\": \"pm_…\"}"
                    .into(),
            )),
        }
    }

    fn public_config(&self) -> PublicConfig {
        PublicConfig {
            provider: NAME.into(),
            live: true,
            publishable_key: self.config.publishable_key.clone(),
            client_id: None,
        }
    }

    async fn create_intent(
        &self,
        intent: &NewIntent<'_>,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        if intent.amount_minor <= 0 {
            return Err(ProviderError::Rejected(
                "the amount must be positive".into(),
            ));
        }
        let mut form = vec![
            ("amount", intent.amount_minor.to_string()),
            ("currency", intent.currency.to_ascii_lowercase()),
            // Authorise in the browser, capture here: the service captures when it
            // records the payment, so an order cancelled meanwhile only releases a hold.
            ("capture_method", "manual".into()),
            ("metadata[payment_id]", intent.payment_id.to_string()),
            ("metadata[order_id]", intent.order_id.to_string()),
            ("automatic_payment_methods[enabled]", "true".into()),
        ];
        if self.config.return_url.is_none() {
            form.push(("automatic_payment_methods[allow_redirects]", "never".into()));
        }
        let object = self
            .post("/v1/payment_intents", &pairs(&form), idempotency_key)
            .await
            .map_err(Failure::into_provider_error)?;
        Self::intent(&object)
    }

    async fn confirm(
        &self,
        provider_ref: &str,
        method: &PaymentMethod,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        let id = path_id(provider_ref, "pi_")?;
        self.check_method(method)?;
        let PaymentMethod::Token(payment_method) = method else {
            return Err(ProviderError::InvalidPaymentMethod(
                "Stripe takes a PaymentMethod id".into(),
            ));
        };
        let mut form = vec![("payment_method", payment_method.clone())];
        if let Some(url) = &self.config.return_url {
            form.push(("return_url", url.clone()));
        }
        match self
            .post(
                &format!("/v1/payment_intents/{id}/confirm"),
                &pairs(&form),
                idempotency_key,
            )
            .await
        {
            Ok(object) => Self::intent(&object),
            // A decline is an outcome, not an error.
            Err(Failure::Api { status, error })
                if status == StatusCode::PAYMENT_REQUIRED && error.kind == "card_error" =>
            {
                Ok(ProviderIntent::new(
                    id,
                    ProviderStatus::Failed {
                        reason: error
                            .decline_code
                            .or(error.code)
                            .unwrap_or_else(|| "card_declined".into()),
                    },
                ))
            }
            Err(other) => Err(other.into_provider_error()),
        }
    }

    async fn complete_action(
        &self,
        provider_ref: &str,
        _outcome: ActionOutcome,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        // The buyer completed (or abandoned) the action with Stripe; Stripe knows how it
        // ended, whatever the browser says.
        self.retrieve(provider_ref).await
    }

    async fn capture(
        &self,
        provider_ref: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        let id = path_id(provider_ref, "pi_")?;
        let form = [("amount_to_capture", amount_minor.to_string())];
        match self
            .post(
                &format!("/v1/payment_intents/{id}/capture"),
                &pairs(&form),
                idempotency_key,
            )
            .await
        {
            Ok(object) => Self::intent(&object),
            // Captured (or cancelled) already, e.g. by a repeat after the idempotency key
            // expired: the intent's state is the answer.
            Err(failure) if failure.code() == Some("payment_intent_unexpected_state") => {
                self.retrieve(id).await
            }
            Err(other) => Err(other.into_provider_error()),
        }
    }

    async fn refund(
        &self,
        refund: &RefundRequest<'_>,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        let intent = path_id(refund.provider_ref, "pi_")?;
        let form = [
            ("payment_intent", intent.to_owned()),
            ("amount", refund.amount_minor.to_string()),
        ];
        let object = self
            .post("/v1/refunds", &pairs(&form), idempotency_key)
            .await
            .map_err(Failure::into_provider_error)?;
        let status = object.get("status").and_then(Value::as_str).unwrap_or("");
        if matches!(status, "failed" | "canceled") {
            return Err(ProviderError::Rejected(format!(
                "Stripe's refund of {intent} is {status}"
            )));
        }
        let refund_ref = object
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::Unavailable(anyhow!("Stripe's refund has no id")))?;
        Ok(ProviderRefund {
            refund_ref: refund_ref.to_owned(),
        })
    }

    async fn cancel(
        &self,
        provider_ref: &str,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        let id = path_id(provider_ref, "pi_")?;
        match self
            .post(
                &format!("/v1/payment_intents/{id}/cancel"),
                &[],
                idempotency_key,
            )
            .await
        {
            Ok(object) => Self::intent(&object),
            Err(failure) if failure.code() == Some("payment_intent_unexpected_state") => {
                self.retrieve(id).await
            }
            Err(other) => Err(other.into_provider_error()),
        }
    }

    async fn retrieve(&self, provider_ref: &str) -> Result<ProviderIntent, ProviderError> {
        let id = path_id(provider_ref, "pi_")?;
        let object = self
            .call(
                Method::GET,
                &format!("/v1/payment_intents/{id}"),
                None,
                None,
            )
            .await
            .map_err(Failure::into_provider_error)?;
        Self::intent(&object)
    }
}

/// Why a `Stripe-Signature` was refused. The webhook answers one message for all of them
/// (only the log says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    #[error("the signed timestamp is more than {SIGNATURE_TOLERANCE_SECS} s from now")]
    Stale,
    #[error("no v1 signature matches a configured webhook secret")]
    NoMatch,
}

/// Checks a webhook's `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>…]` against the
/// endpoint's secrets (`whsec_…`; several during a rotation): one `v1` must be the
/// HMAC-SHA256 of `"{t}.{raw body}"` under one secret (compared in constant time), and
/// `t` within [`SIGNATURE_TOLERANCE_SECS`] of `now` (unix seconds).
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = value.parse::<i64>().ok(),
            "v1" => {
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            // v0 (test-mode legacy) and unknown schemes are ignored, as Stripe advises.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let prefix = format!("{timestamp}.");
    for secret in secrets {
        for signature in &signatures {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                continue;
            };
            mac.update(prefix.as_bytes());
            mac.update(body);
            // `verify_slice` compares in constant time.
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoMatch)
}

/// The `Stripe-Signature` header Stripe would send for `body` at `timestamp` (tests, and
/// tools that replay events).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    // HMAC takes keys of any length; the error cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let now = 1_700_000_000;
        let header = sign(body, SECRET, now);
        assert_eq!(
            verify_signature(&header, body, &[SECRET.into()], now),
            Ok(())
        );
        // Within the tolerance either way.
        assert_eq!(
            verify_signature(&header, body, &[SECRET.into()], now + 300),
            Ok(())
        );
        assert_eq!(
            verify_signature(&header, body, &[SECRET.into()], now + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(&header, b"{\"id\":\"evt_2\"}", &[SECRET.into()], now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature(&header, body, &["whsec_other".into()], now),
            Err(SignatureError::NoMatch)
        );
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1700000000", "garbage"] {
            assert_eq!(
                verify_signature(bad, body, &[SECRET.into()], now),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn rotation_accepts_any_matching_signature_and_secret() {
        let body = b"{}";
        let now = 1_700_000_000;
        let old = sign(body, "whsec_old", now);
        let new = sign(body, "whsec_new", now);
        let new_v1 = new.split_once(",v1=").unwrap().1;
        // Two signatures (Stripe signs with both secrets while one is rolled): only the
        // second matches the secret configured here.
        let both = format!("{old},v1={new_v1},v0=deadbeef");
        assert_eq!(
            verify_signature(&both, body, &["whsec_new".into()], now),
            Ok(())
        );
        // The service configured with both secrets accepts either.
        let secrets = ["whsec_old".to_owned(), "whsec_new".to_owned()];
        assert_eq!(verify_signature(&new, body, &secrets, now), Ok(()));
        assert_eq!(verify_signature(&old, body, &secrets, now), Ok(()));
    }

    #[test]
    fn statuses_map_to_the_providers_view() {
        let status = |object: Value| intent_from_object(&object).unwrap().status;
        assert_eq!(
            status(
                json!({"id": "pi_1", "object": "payment_intent", "status": "requires_payment_method"})
            ),
            ProviderStatus::RequiresPaymentMethod
        );
        assert_eq!(
            status(json!({"id": "pi_1", "status": "requires_payment_method",
                "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}})),
            ProviderStatus::Failed {
                reason: "insufficient_funds".into()
            }
        );
        assert_eq!(
            status(json!({"id": "pi_1", "status": "requires_action",
                "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3ds", "return_url": "https://shop/return"}}})),
            ProviderStatus::RequiresAction(NextAction {
                kind: "redirect_to_url".into(),
                redirect_url: Some("https://hooks.stripe.com/3ds".into())
            })
        );
        assert_eq!(
            status(json!({"id": "pi_1", "status": "requires_capture"})),
            ProviderStatus::RequiresCapture
        );
        assert_eq!(
            status(json!({"id": "pi_1", "status": "processing"})),
            ProviderStatus::Processing
        );
        assert_eq!(
            status(json!({"id": "pi_1", "status": "succeeded", "latest_charge": "ch_1"})),
            ProviderStatus::Succeeded {
                charge_ref: "ch_1".into()
            }
        );
        assert_eq!(
            status(
                json!({"id": "pi_1", "status": "succeeded", "latest_charge": {"id": "ch_2", "object": "charge"}})
            ),
            ProviderStatus::Succeeded {
                charge_ref: "ch_2".into()
            }
        );
        assert_eq!(
            status(json!({"id": "pi_1", "status": "canceled"})),
            ProviderStatus::Cancelled
        );
        assert!(
            intent_from_object(&json!({"id": "ch_1", "object": "charge", "status": "succeeded"}))
                .is_none()
        );
        let secret = intent_from_object(
            &json!({"id": "pi_1", "status": "processing", "client_secret": "pi_1_secret_x"}),
        )
        .unwrap();
        assert_eq!(
            secret.client_secret,
            Some(ClientSecret("pi_1_secret_x".into()))
        );
        assert!(!format!("{secret:?}").contains("pi_1_secret_x"));
    }

    #[test]
    fn ids_in_paths_are_checked() {
        assert!(path_id("pi_123abc", "pi_").is_ok());
        assert!(path_id("pi_1/../refunds", "pi_").is_err());
        assert!(path_id("ch_1", "pi_").is_err());
    }
}
