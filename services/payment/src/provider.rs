//! Payment providers: what the service asks of one ([`Provider`]), the built-in
//! [`TestGateway`], [`Stripe`] (PaymentIntents) and [`PayPal`] (Orders v2). Both real
//! providers are reqwest clients of the providers' documented REST APIs; their webhooks
//! are verified in [`crate::webhooks`].
//!
//! The shape follows Stripe's PaymentIntents: an intent is created for an amount,
//! confirmed with a payment method (which may ask for customer action such as 3-D
//! Secure), captured, and later refunded. Every call that changes something carries an
//! idempotency key derived from the payment's id, so repeating a call after a crash or a
//! timeout returns the first result instead of charging again.

pub mod paypal;
pub mod stripe;
pub mod test_gateway;

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::card::PaymentMethod;

pub use paypal::PayPal;
pub use stripe::Stripe;
pub use test_gateway::TestGateway;

/// What a provider says an intent is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Created, or a confirmation never took effect: it waits for a payment method.
    RequiresPaymentMethod,
    /// The customer has to do something first (3-D Secure).
    RequiresAction(NextAction),
    /// Authorised; the money is held until captured.
    RequiresCapture,
    /// The provider is still working on it (asynchronous methods).
    Processing,
    /// Captured: the money is charged. `charge_ref` is what refunds refer to.
    Succeeded { charge_ref: String },
    /// Declined or not authenticated.
    Failed { reason: String },
    /// Cancelled at the provider; it can no longer be paid.
    Cancelled,
}

/// The action a customer has to complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextAction {
    /// `three_d_secure`.
    pub kind: String,
    /// Where a browser would go to complete it (real providers); the test gateway takes
    /// the outcome at `POST /payments/{id}/authenticate` instead.
    pub redirect_url: Option<String>,
}

/// An intent at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIntent {
    /// The provider's id of the intent.
    pub provider_ref: String,
    pub status: ProviderStatus,
    /// What the buyer's browser needs to confirm it with the provider's own client code
    /// (Stripe's `client_secret` for the Payment Element); never logged.
    pub client_secret: Option<ClientSecret>,
}

impl ProviderIntent {
    pub fn new(provider_ref: impl Into<String>, status: ProviderStatus) -> Self {
        Self {
            provider_ref: provider_ref.into(),
            status,
            client_secret: None,
        }
    }
}

/// A secret meant for the buyer's browser only (Stripe's PaymentIntent `client_secret`).
/// Its `Debug` is redacted; it is handed to the buyer of the payment and never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// What the storefront may know about the provider (`GET /payments/config`): nothing
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct PublicConfig {
    /// `test`, `stripe` or `paypal`.
    #[schema(example = "stripe")]
    pub provider: String,
    /// Whether real money moves (`false`: the built-in test gateway).
    pub live: bool,
    /// Stripe: the publishable key for Stripe.js (`pk_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publishable_key: Option<String>,
    /// PayPal: the client id for PayPal's JavaScript SDK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// What a new intent is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent<'a> {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount_minor: i64,
    pub currency: &'a str,
}

/// How the customer's authentication (3-D Secure) ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    Approve,
    Deny,
}

/// A refund to make: of the intent `provider_ref`, whose capture is `charge_ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest<'a> {
    pub provider_ref: &'a str,
    pub charge_ref: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
}

/// A refund at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub refund_ref: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// This provider cannot take the payment method (for the test gateway: not one of its
    /// test numbers). Nothing happened; the customer can correct it.
    #[error("{0}")]
    InvalidPaymentMethod(String),
    /// The provider refused the request itself (unknown intent, bad parameters): nothing
    /// happened, and repeating it will not help.
    #[error("{0}")]
    Rejected(String),
    /// No answer (timeout, network, 5xx): the outcome is unknown. Repeat the call with the
    /// same idempotency key, or ask the provider with [`Provider::retrieve`].
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
}

/// A payment provider. Implementations must be idempotent per `idempotency_key`: the
/// same key answers the same result, however often it is sent.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug + 'static {
    /// The name stored with every payment and accepted by `PAYMENT_PROVIDER`.
    fn name(&self) -> &'static str;

    /// Whether it moves real money. A shop in production mode refuses a provider that
    /// does not.
    fn is_live(&self) -> bool;

    /// Whether this provider can take the payment method at all, before anything is
    /// claimed (the test gateway takes cards; Stripe takes its tokens, never card data).
    fn check_method(&self, method: &PaymentMethod) -> Result<(), ProviderError>;

    /// What the storefront may know (no secrets).
    fn public_config(&self) -> PublicConfig {
        PublicConfig {
            provider: self.name().to_owned(),
            live: self.is_live(),
            ..PublicConfig::default()
        }
    }

    /// Creates the provider's intent (the same one again for the same key).
    async fn create_intent(
        &self,
        intent: &NewIntent<'_>,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError>;

    /// Confirms the intent with a payment method: authorised, declined, or an action is
    /// needed.
    async fn confirm(
        &self,
        provider_ref: &str,
        method: &PaymentMethod,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError>;

    /// Reports how the customer's action ended (the test gateway's 3-D Secure); a real
    /// provider learns it itself and answers the intent's state.
    async fn complete_action(
        &self,
        provider_ref: &str,
        outcome: ActionOutcome,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError>;

    /// Captures an authorised intent in full.
    async fn capture(
        &self,
        provider_ref: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError>;

    /// Refunds a capture in full.
    async fn refund(
        &self,
        refund: &RefundRequest<'_>,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError>;

    /// Cancels an intent that was not captured.
    async fn cancel(
        &self,
        provider_ref: &str,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError>;

    /// The intent's current state (to resolve a call whose answer was lost).
    async fn retrieve(&self, provider_ref: &str) -> Result<ProviderIntent, ProviderError>;
}

/// The idempotency keys of one payment's provider calls: the payment's id and the step,
/// so that each step is done at most once whatever is retried.
pub fn idempotency_key(payment_id: Uuid, step: &str) -> String {
    format!("{payment_id}:{step}")
}

/// How a provider client repeats a call that got no answer (network error, timeout, 409,
/// 429, 5xx): `attempts` in all, waiting `first_delay`, then twice as long each time.
/// Every repeat carries the same idempotency key, so it cannot charge twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Retry {
    /// Three attempts of at most [`REQUEST_TIMEOUT`] each stay well inside the default
    /// processing timeout (60 s) after which a `processing` payment counts as interrupted.
    fn default() -> Self {
        Self {
            attempts: 3,
            first_delay: Duration::from_millis(300),
        }
    }
}

impl Retry {
    /// The wait before attempt `attempt` (1-based; attempt 1 does not wait).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.first_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(2)))
    }
}

/// The longest a provider request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP client of a provider (rustls with ring; one per provider, pooled).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default TLS provider; the binary installs ring at
    // start-up, this covers library users.
    let _ = rustls::crypto::ring::default_provider().install_default();
    use anyhow::Context as _;
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("shopstack-payment/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the payment provider's HTTP client")
}

/// A base URL from the settings: no trailing slash.
pub(crate) fn trim_base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}
