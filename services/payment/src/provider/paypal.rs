//! PayPal, through its Orders v2 REST API (`PAYMENT_PROVIDER=paypal`).
//!
//! Every call carries an OAuth2 access token from `POST /v1/oauth2/token` (HTTP basic
//! auth with the client id and secret, `grant_type=client_credentials`), cached until
//! shortly before its `expires_in` and fetched again when PayPal answers 401. Calls that
//! change something carry `PayPal-Request-Id` (the service's `<payment id>:<step>`
//! keys), so a repeat returns PayPal's first answer.
//!
//! The flow: `POST /payments/{id}/intent` creates a PayPal order (intent `CAPTURE`, one
//! purchase unit with the amount as a decimal string and the payment's id as
//! `custom_id` and `invoice_id`); the payment waits in `requires_action` with the
//! order's approval link as `next_action.redirect_url`. The buyer approves at PayPal; the
//! `CHECKOUT.ORDER.APPROVED` webhook (or `POST /payments/{id}/authenticate` when the
//! buyer comes back) makes the service capture the order and record the payment.
//!
//! | PayPal order status | [`ProviderStatus`] |
//! | --- | --- |
//! | `CREATED`, `SAVED`, `PAYER_ACTION_REQUIRED` | `RequiresAction` (the `approve` / `payer-action` link) |
//! | `APPROVED` | `RequiresCapture` |
//! | `COMPLETED` with a `COMPLETED` capture | `Succeeded { charge_ref: capture id }` |
//! | `COMPLETED` with a `PENDING` capture | `Processing` |
//! | `COMPLETED` with a `DECLINED` / `FAILED` capture | `Failed` |
//! | `VOIDED` | `Cancelled` |
//!
//! Errors (`{"name", "message", "details": [{"issue", "description"}], "debug_id"}`):
//! `INSTRUMENT_DECLINED` / `TRANSACTION_REFUSED` on capture are declines (`Failed`);
//! other 4xx are `Rejected` (with PayPal's `debug_id`); 429, 5xx and network errors are
//! `Unavailable` after [`Retry`] attempts with the same `PayPal-Request-Id`.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ActionOutcome, NewIntent, NextAction, Provider, ProviderError, ProviderIntent, ProviderRefund,
    ProviderStatus, PublicConfig, RefundRequest, Retry,
};
use crate::card::PaymentMethod;

pub const NAME: &str = "paypal";
/// `PAYPAL_API_BASE`'s default (live); the sandbox is `https://api-m.sandbox.paypal.com`.
pub const DEFAULT_API_BASE: &str = "https://api-m.paypal.com";
/// A cached token is replaced this long before PayPal says it expires, so that no call
/// goes out with a token about to lapse.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// What the PayPal client needs.
#[derive(Clone)]
pub struct PayPalConfig {
    /// `PAYPAL_API_BASE`.
    pub api_base: String,
    /// `PAYPAL_CLIENT_ID` (secret file, though the storefront's JS SDK sees it too).
    pub client_id: String,
    /// `PAYPAL_CLIENT_SECRET` (secret).
    pub client_secret: String,
    /// `PAYPAL_WEBHOOK_ID` (secret): the id PayPal gave the webhook; signatures are
    /// verified against it.
    pub webhook_id: String,
    /// `PAYMENT_RETURN_URL`: where PayPal sends the buyer after approving (or
    /// cancelling); without it the storefront uses PayPal's JS SDK buttons.
    pub return_url: Option<String>,
    pub retry: Retry,
}

impl std::fmt::Debug for PayPalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPalConfig")
            .field("api_base", &self.api_base)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("webhook_id", &self.webhook_id)
            .field("return_url", &self.return_url)
            .field("retry", &self.retry)
            .finish()
    }
}

struct Token {
    value: String,
    renew_at: Instant,
}

/// The PayPal provider.
pub struct PayPal {
    http: reqwest::Client,
    config: PayPalConfig,
    /// The cached access token. A tokio mutex, held while a new token is fetched, so
    /// that concurrent calls wait for one fetch instead of each making their own.
    token: tokio::sync::Mutex<Option<Token>>,
}

impl std::fmt::Debug for PayPal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPal")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// PayPal's error body.
#[derive(Debug, Clone, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
    #[serde(default)]
    debug_id: Option<String>,
    /// The token endpoint's OAuth error (`invalid_client`).
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    issue: String,
    #[serde(default)]
    description: Option<String>,
}

impl ErrorBody {
    fn issue(&self) -> Option<&str> {
        self.details.first().map(|d| d.issue.as_str())
    }

    fn describe(&self) -> String {
        let mut text = if self.name.is_empty() {
            self.error.clone().unwrap_or_else(|| "unknown error".into())
        } else {
            self.name.clone()
        };
        if let Some(detail) = self.details.first() {
            text.push('/');
            text.push_str(&detail.issue);
            if let Some(description) = &detail.description {
                text.push_str(": ");
                text.push_str(description);
            }
        } else if let Some(message) = &self.message {
            text.push_str(": ");
            text.push_str(message);
        }
        if let Some(debug_id) = &self.debug_id {
            text.push_str(&format!(" (debug_id {debug_id})"));
        }
        text
    }
}

#[derive(Debug)]
enum Failure {
    Api {
        status: StatusCode,
        error: ErrorBody,
    },
    Unavailable(anyhow::Error),
}

impl Failure {
    fn is_retryable_status(status: StatusCode) -> bool {
        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
    }

    fn into_provider_error(self) -> ProviderError {
        match self {
            Failure::Unavailable(cause) => ProviderError::Unavailable(cause),
            Failure::Api { status, error } if Self::is_retryable_status(status) => {
                ProviderError::Unavailable(anyhow!(
                    "PayPal answered {status}: {}",
                    error.describe()
                ))
            }
            Failure::Api { status, error } => ProviderError::Rejected(format!(
                "PayPal refused the request ({status}): {}",
                error.describe()
            )),
        }
    }

    fn issue(&self) -> Option<&str> {
        match self {
            Failure::Api { error, .. } => error.issue(),
            Failure::Unavailable(_) => None,
        }
    }
}

/// An id that may go into a URL path: PayPal's ids are upper-case letters and digits.
fn path_id(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(id)
    } else {
        Err(ProviderError::Rejected(format!(
            "{id:?} is not a PayPal id"
        )))
    }
}

/// The amount as PayPal's decimal string: two decimals, none for the currencies PayPal
/// takes in whole units only (JPY, whose minor unit is the yen; HUF and TWD, whose
/// ISO 4217 minor units PayPal does not take).
pub fn decimal_value(amount_minor: i64, currency: &str) -> Result<String, ProviderError> {
    if amount_minor <= 0 {
        return Err(ProviderError::Rejected(
            "the amount must be positive".into(),
        ));
    }
    match currency {
        "JPY" => Ok(amount_minor.to_string()),
        "HUF" | "TWD" => {
            if amount_minor % 100 == 0 {
                Ok((amount_minor / 100).to_string())
            } else {
                Err(ProviderError::Rejected(format!(
                    "PayPal takes {currency} in whole units only; {amount_minor} minor units is not one"
                )))
            }
        }
        _ => Ok(format!("{}.{:02}", amount_minor / 100, amount_minor % 100)),
    }
}

/// A PayPal order (an API answer, or a `CHECKOUT.ORDER.*` event's resource) as the
/// service sees it; `None` if it is not one.
pub fn intent_from_order(order: &Value) -> Option<ProviderIntent> {
    let id = order.get("id")?.as_str()?;
    let status = match order.get("status")?.as_str()? {
        "CREATED" | "SAVED" | "PAYER_ACTION_REQUIRED" => {
            let approve = order
                .get("links")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|l| {
                    matches!(
                        l.get("rel").and_then(Value::as_str),
                        Some("approve" | "payer-action")
                    )
                })
                .and_then(|l| l.get("href"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            ProviderStatus::RequiresAction(NextAction {
                kind: "redirect_to_url".into(),
                redirect_url: approve,
            })
        }
        "APPROVED" => ProviderStatus::RequiresCapture,
        "VOIDED" => ProviderStatus::Cancelled,
        "COMPLETED" => {
            let capture = order
                .pointer("/purchase_units/0/payments/captures/0")
                .cloned()
                .unwrap_or(Value::Null);
            status_of_capture(&capture)
        }
        _ => return None,
    };
    Some(ProviderIntent::new(id, status))
}

/// A capture (`purchase_units[].payments.captures[]`, or a `PAYMENT.CAPTURE.*` event's
/// resource) as a status.
pub fn status_of_capture(capture: &Value) -> ProviderStatus {
    let id = capture.get("id").and_then(Value::as_str);
    match (capture.get("status").and_then(Value::as_str), id) {
        (Some("COMPLETED" | "REFUNDED" | "PARTIALLY_REFUNDED"), Some(id)) => {
            ProviderStatus::Succeeded {
                charge_ref: id.to_owned(),
            }
        }
        (Some(status @ ("DECLINED" | "FAILED")), _) => ProviderStatus::Failed {
            reason: capture
                .pointer("/status_details/reason")
                .and_then(Value::as_str)
                .map_or_else(
                    || format!("capture_{}", status.to_ascii_lowercase()),
                    str::to_ascii_lowercase,
                ),
        },
        _ => ProviderStatus::Processing,
    }
}

/// The transmission headers of a PayPal webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmission {
    /// `PAYPAL-TRANSMISSION-ID`
    pub id: String,
    /// `PAYPAL-TRANSMISSION-TIME`
    pub time: String,
    /// `PAYPAL-TRANSMISSION-SIG`
    pub sig: String,
    /// `PAYPAL-CERT-URL`
    pub cert_url: String,
    /// `PAYPAL-AUTH-ALGO`
    pub auth_algo: String,
}

impl PayPal {
    pub fn new(config: PayPalConfig) -> anyhow::Result<Self> {
        Ok(Self {
            http: super::http_client()?,
            config: PayPalConfig {
                api_base: super::trim_base(&config.api_base),
                ..config
            },
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, unless it is about to expire or is `stale`
    /// (PayPal refused it).
    async fn token(&self, stale: Option<&str>) -> Result<String, Failure> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
            && stale != Some(token.value.as_str())
        {
            return Ok(token.value.clone());
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            expires_in: u64,
        }
        let url = format!("{}/v1/oauth2/token", self.config.api_base);
        let mut attempt = 1;
        let answer: TokenAnswer = loop {
            let sent = self
                .http
                .post(&url)
                .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
                .header(header::ACCEPT, "application/json")
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await;
            let failure = match sent {
                Err(err) => Failure::Unavailable(
                    anyhow::Error::new(err).context("asking PayPal for an access token"),
                ),
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    if status.is_success() {
                        break serde_json::from_slice(&body).map_err(|e| {
                            Failure::Unavailable(anyhow!("PayPal's token answer is malformed: {e}"))
                        })?;
                    }
                    let error: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
                    if !Failure::is_retryable_status(status) {
                        return Err(Failure::Api { status, error });
                    }
                    Failure::Api { status, error }
                }
            };
            if attempt >= self.config.retry.attempts {
                return Err(failure);
            }
            attempt += 1;
            tokio::time::sleep(self.config.retry.delay(attempt)).await;
        };
        let lifetime = Duration::from_secs(answer.expires_in);
        let usable = lifetime.checked_sub(TOKEN_MARGIN).unwrap_or(lifetime / 2);
        *cached = Some(Token {
            value: answer.access_token.clone(),
            renew_at: Instant::now() + usable,
        });
        Ok(answer.access_token)
    }

    /// One API call with a token (fetched again once on a 401), repeated on no answer,
    /// 429 and 5xx with the same `PayPal-Request-Id`. `body` is JSON text.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.config.api_base);
        let mut attempt = 1;
        let mut refused_token: Option<String> = None;
        let mut refreshed = false;
        loop {
            let token = self.token(refused_token.as_deref()).await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header(header::ACCEPT, "application/json")
                .header("Prefer", "return=representation");
            if let Some(id) = request_id {
                request = request.header("PayPal-Request-Id", id);
            }
            if let Some(body) = body {
                request = request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body.to_owned());
            }
            let failure = match request.send().await {
                Err(err) => Failure::Unavailable(
                    anyhow::Error::new(err).context(format!("calling PayPal {method} {path}")),
                ),
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Err(err) => Failure::Unavailable(
                            anyhow::Error::new(err)
                                .context(format!("reading PayPal's answer to {method} {path}")),
                        ),
                        Ok(bytes) if status.is_success() => {
                            if bytes.is_empty() {
                                return Ok(Value::Null);
                            }
                            return serde_json::from_slice(&bytes).map_err(|e| {
                                Failure::Unavailable(anyhow!(
                                    "PayPal's answer to {method} {path} is not JSON: {e}"
                                ))
                            });
                        }
                        Ok(bytes) => {
                            let error: ErrorBody =
                                serde_json::from_slice(&bytes).unwrap_or_default();
                            if status == StatusCode::UNAUTHORIZED && !refreshed {
                                // Revoked or expired early: one new token, then again.
                                refreshed = true;
                                refused_token = Some(token);
                                continue;
                            }
                            if !Failure::is_retryable_status(status) {
                                return Err(Failure::Api { status, error });
                            }
                            Failure::Api { status, error }
                        }
                    }
                }
            };
            if attempt >= self.config.retry.attempts {
                return Err(failure);
            }
            attempt += 1;
            tracing::debug!(attempt, path, "repeating a PayPal call that got no answer");
            tokio::time::sleep(self.config.retry.delay(attempt)).await;
        }
    }

    fn intent(order: &Value) -> Result<ProviderIntent, ProviderError> {
        intent_from_order(order).ok_or_else(|| {
            ProviderError::Unavailable(anyhow!("PayPal answered something that is not an order"))
        })
    }

    /// Asks PayPal whether a webhook delivery is genuine
    /// (`POST /v1/notifications/verify-webhook-signature`): `true` only for
    /// `verification_status: "SUCCESS"`. `event` is the delivery's body, passed on
    /// byte for byte (re-serialising it could change what PayPal signed).
    pub async fn verify_webhook(
        &self,
        transmission: &Transmission,
        event: &str,
    ) -> Result<bool, ProviderError> {
        // The event must be JSON to be spliced into the request as it is.
        serde_json::from_str::<serde::de::IgnoredAny>(event)
            .map_err(|e| ProviderError::Rejected(format!("the event is not JSON: {e}")))?;
        let string = |s: &str| Value::String(s.to_owned()).to_string();
        let body = format!(
            "{{\"auth_algo\":{},\"cert_url\":{},\"transmission_id\":{},\"transmission_sig\":{},\
             \"transmission_time\":{},\"webhook_id\":{},\"webhook_event\":{event}}}",
            string(&transmission.auth_algo),
            string(&transmission.cert_url),
            string(&transmission.id),
            string(&transmission.sig),
            string(&transmission.time),
            string(&self.config.webhook_id),
        );
        let answer = self
            .call(
                Method::POST,
                "/v1/notifications/verify-webhook-signature",
                Some(&body),
                None,
            )
            .await
            .map_err(Failure::into_provider_error)?;
        Ok(answer.get("verification_status").and_then(Value::as_str) == Some("SUCCESS"))
    }
}

#[async_trait::async_trait]
impl Provider for PayPal {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_live(&self) -> bool {
        true
    }

    fn check_method(&self, _method: &PaymentMethod) -> Result<(), ProviderError> {
        Err(ProviderError::InvalidPaymentMethod(
            "PayPal payments are approved by the buyer at PayPal, not confirmed with a payment \
             method here: POST /payments/{id}/intent gives the approval link \
             (next_action.redirect_url); when the buyer is back, POST \
             /payments/{id}/authenticate"
                .into(),
        ))
    }

    fn public_config(&self) -> PublicConfig {
        PublicConfig {
            provider: NAME.into(),
            live: true,
            publishable_key: None,
            client_id: Some(self.config.client_id.clone()),
        }
    }

    async fn create_intent(
        &self,
        intent: &NewIntent<'_>,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        let mut order = json!({
            "intent": "CAPTURE",
            "purchase_units": [{
                "reference_id": intent.order_id.to_string(),
                "custom_id": intent.payment_id.to_string(),
                "invoice_id": intent.payment_id.to_string(),
                "amount": {
                    "currency_code": intent.currency,
                    "value": decimal_value(intent.amount_minor, intent.currency)?,
                },
            }],
        });
        if let Some(url) = &self.config.return_url {
            order["payment_source"] = json!({"paypal": {"experience_context": {
                "return_url": url,
                "cancel_url": url,
                "user_action": "PAY_NOW",
            }}});
        }
        let answer = self
            .call(
                Method::POST,
                "/v2/checkout/orders",
                Some(&order.to_string()),
                Some(idempotency_key),
            )
            .await
            .map_err(Failure::into_provider_error)?;
        Self::intent(&answer)
    }

    async fn confirm(
        &self,
        _provider_ref: &str,
        method: &PaymentMethod,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        self.check_method(method)?;
        Err(ProviderError::InvalidPaymentMethod(
            "PayPal takes no payment method".into(),
        ))
    }

    async fn complete_action(
        &self,
        provider_ref: &str,
        _outcome: ActionOutcome,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        // PayPal knows whether the buyer approved, whatever the browser says.
        self.retrieve(provider_ref).await
    }

    async fn capture(
        &self,
        provider_ref: &str,
        _amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        let id = path_id(provider_ref)?;
        match self
            .call(
                Method::POST,
                &format!("/v2/checkout/orders/{id}/capture"),
                Some(""),
                Some(idempotency_key),
            )
            .await
        {
            Ok(order) => Self::intent(&order),
            Err(failure) => match failure.issue() {
                Some(issue @ ("INSTRUMENT_DECLINED" | "TRANSACTION_REFUSED")) => {
                    Ok(ProviderIntent::new(
                        id,
                        ProviderStatus::Failed {
                            reason: issue.to_ascii_lowercase(),
                        },
                    ))
                }
                // Captured already, or not approved yet: the order's state is the answer.
                Some("ORDER_ALREADY_CAPTURED" | "ORDER_NOT_APPROVED") => self.retrieve(id).await,
                _ => Err(failure.into_provider_error()),
            },
        }
    }

    async fn refund(
        &self,
        refund: &RefundRequest<'_>,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        let capture = path_id(refund.charge_ref)?;
        let body = json!({"amount": {
            "currency_code": refund.currency,
            "value": decimal_value(refund.amount_minor, refund.currency)?,
        }});
        let answer = self
            .call(
                Method::POST,
                &format!("/v2/payments/captures/{capture}/refund"),
                Some(&body.to_string()),
                Some(idempotency_key),
            )
            .await
            .map_err(Failure::into_provider_error)?;
        let status = answer.get("status").and_then(Value::as_str).unwrap_or("");
        if matches!(status, "FAILED" | "CANCELLED") {
            return Err(ProviderError::Rejected(format!(
                "PayPal's refund of capture {capture} is {status}"
            )));
        }
        let refund_ref = answer
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::Unavailable(anyhow!("PayPal's refund has no id")))?;
        Ok(ProviderRefund {
            refund_ref: refund_ref.to_owned(),
        })
    }

    async fn cancel(
        &self,
        provider_ref: &str,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        // An uncaptured PayPal order cannot be voided through the API; it expires. Only
        // the service captures, and it never captures a cancelled payment.
        let id = path_id(provider_ref)?;
        Ok(ProviderIntent::new(id, ProviderStatus::Cancelled))
    }

    async fn retrieve(&self, provider_ref: &str) -> Result<ProviderIntent, ProviderError> {
        let id = path_id(provider_ref)?;
        let order = self
            .call(
                Method::GET,
                &format!("/v2/checkout/orders/{id}"),
                None,
                None,
            )
            .await
            .map_err(Failure::into_provider_error)?;
        Self::intent(&order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_decimal_strings_in_paypals_units() {
        assert_eq!(decimal_value(1999, "USD").unwrap(), "19.99");
        assert_eq!(decimal_value(5, "EUR").unwrap(), "0.05");
        assert_eq!(decimal_value(100, "GBP").unwrap(), "1.00");
        assert_eq!(decimal_value(1500, "JPY").unwrap(), "1500");
        assert_eq!(decimal_value(150_000, "HUF").unwrap(), "1500");
        assert!(decimal_value(150_050, "HUF").is_err());
        assert!(decimal_value(0, "USD").is_err());
    }

    #[test]
    fn orders_map_to_the_providers_view() {
        let status = |order: Value| intent_from_order(&order).unwrap().status;
        assert_eq!(
            status(
                json!({"id": "5O190127TN364715T", "status": "CREATED", "links": [
                    {"href": "https://api-m.paypal.com/v2/checkout/orders/5O190127TN364715T", "rel": "self", "method": "GET"},
                    {"href": "https://www.paypal.com/checkoutnow?token=5O190127TN364715T", "rel": "approve", "method": "GET"}
                ]})
            ),
            ProviderStatus::RequiresAction(NextAction {
                kind: "redirect_to_url".into(),
                redirect_url: Some(
                    "https://www.paypal.com/checkoutnow?token=5O190127TN364715T".into()
                )
            })
        );
        assert_eq!(
            status(json!({"id": "X", "status": "APPROVED"})),
            ProviderStatus::RequiresCapture
        );
        assert_eq!(
            status(
                json!({"id": "X", "status": "COMPLETED", "purchase_units": [{"payments": {"captures": [{"id": "3C679366HH908993F", "status": "COMPLETED"}]}}]})
            ),
            ProviderStatus::Succeeded {
                charge_ref: "3C679366HH908993F".into()
            }
        );
        assert_eq!(
            status(
                json!({"id": "X", "status": "COMPLETED", "purchase_units": [{"payments": {"captures": [{"id": "C", "status": "PENDING"}]}}]})
            ),
            ProviderStatus::Processing
        );
        assert_eq!(
            status_of_capture(&json!({"id": "C", "status": "DECLINED"})),
            ProviderStatus::Failed {
                reason: "capture_declined".into()
            }
        );
        assert_eq!(
            status(json!({"id": "X", "status": "VOIDED"})),
            ProviderStatus::Cancelled
        );
        assert!(intent_from_order(&json!({"id": "X"})).is_none());
        assert!(path_id("5O190127TN364715T").is_ok());
        assert!(path_id("../v1/x").is_err());
    }
}
