//! Payment providers: what the service asks of one ([`Provider`]), and the built-in
//! [`TestGateway`]. Stripe and PayPal become further implementations of the same trait.
//!
//! The shape follows Stripe's PaymentIntents: an intent is created for an amount,
//! confirmed with a payment method (which may ask for customer action such as 3-D
//! Secure), captured, and later refunded. Every call that changes something carries an
//! idempotency key derived from the payment's id, so repeating a call after a crash or a
//! timeout returns the first result instead of charging again.

pub mod test_gateway;

use uuid::Uuid;

use crate::card::Card;

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

    /// Whether this provider can take `card` at all, before anything is claimed.
    fn check_card(&self, card: &Card) -> Result<(), ProviderError>;

    /// Creates the provider's intent (the same one again for the same key).
    async fn create_intent(
        &self,
        intent: &NewIntent<'_>,
        idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError>;

    /// Confirms the intent with a card: authorised, declined, or an action is needed.
    async fn confirm(
        &self,
        provider_ref: &str,
        card: &Card,
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

    /// Refunds a capture.
    async fn refund(
        &self,
        charge_ref: &str,
        amount_minor: i64,
        currency: &str,
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
