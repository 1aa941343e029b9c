//! `POST /payments/{id}/intent`: the payment made ready at the provider, and what the
//! buyer's browser needs to pay it there — Stripe's `client_secret` (with the
//! publishable key) for the Payment Element, PayPal's approval link. Card data never
//! passes through this service with a real provider.
//!
//! The provider's intent is created once (idempotency key `<payment id>:create`) and
//! remembered; a repeated call asks the provider for it again (the client secret is
//! never stored). A PayPal order waits for the buyer's approval, so the payment moves to
//! `requires_action` with the approval link as `next_action.redirect_url`.

use serde::Serialize;
use shopkit::ApiError;
use shopkit::auth::Caller;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::confirm::{buyers_payment, conflict};
use crate::model::{Payment, Status};
use crate::process;
use crate::provider::{NewIntent, ProviderError, ProviderStatus, PublicConfig, idempotency_key};
use crate::startup::AppState;
use crate::store::{self, Settled};

/// What the buyer's browser needs to pay at the provider; only ever sent to the buyer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentSession {
    pub payment: Payment,
    /// The provider and its public keys (as `GET /payments/config`).
    pub provider: PublicConfig,
    /// The provider's id of the intent (Stripe `pi_…`, PayPal's order id for the JS
    /// SDK's `createOrder`).
    pub provider_ref: String,
    /// Stripe: the intent's client secret for `stripe.confirmPayment` / the Payment
    /// Element. For this buyer's browser only; not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

fn provider_error(err: ProviderError) -> ApiError {
    match err {
        ProviderError::Unavailable(cause) => {
            ApiError::Unavailable(format!("the payment provider did not answer: {cause:#}"))
        }
        ProviderError::InvalidPaymentMethod(message) => ApiError::Unprocessable(message),
        ProviderError::Rejected(message) => ApiError::Internal(anyhow::anyhow!(
            "the payment provider refused to create or show an intent: {message}"
        )),
    }
}

/// Creates (or finds again) the payment's intent at the provider.
pub async fn start(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<PaymentSession, ApiError> {
    let provider = state.provider();
    let mut conn = state.pool().acquire().await?;
    let payment = buyers_payment(&mut conn, caller, id).await?;
    if !matches!(
        payment.status(),
        Status::RequiresPaymentMethod | Status::RequiresAction
    ) {
        return Err(conflict(&payment));
    }
    if payment.provider != provider.name() {
        return Err(ApiError::Conflict(format!(
            "payment {} was made for the {:?} provider, and this shop now takes payments \
             through {:?}; place a new order",
            payment.id,
            payment.provider,
            provider.name()
        )));
    }
    drop(conn);
    let intent = match &payment.provider_ref {
        Some(provider_ref) => provider.retrieve(provider_ref).await,
        None => {
            let new = NewIntent {
                payment_id: payment.id,
                order_id: payment.order_id,
                amount_minor: payment.amount_minor,
                currency: &payment.currency,
            };
            provider
                .create_intent(&new, &idempotency_key(payment.id, "create"))
                .await
        }
    }
    .map_err(provider_error)?;

    let mut tx = state.pool().begin().await?;
    store::attach_provider_ref(&mut tx, payment.id, &intent.provider_ref).await?;
    let mut changed = None;
    if let ProviderStatus::RequiresAction(action) = &intent.status
        && payment.status() == Status::RequiresPaymentMethod
        && let Some(claimed) =
            store::claim(&mut tx, payment.id, Status::RequiresPaymentMethod, None).await?
    {
        let settled = Settled::RequiresAction {
            next_action: process::next_action_json(&claimed, action),
        };
        changed = process::record(
            &mut tx,
            &claimed,
            Some(&intent.provider_ref),
            &settled,
            None,
        )
        .await?;
    }
    let row = store::by_id(&mut tx, payment.id).await?.unwrap_or(payment);
    tx.commit().await?;
    if let Some(changed) = &changed {
        process::count(changed);
    }
    Ok(PaymentSession {
        payment: row.view(),
        provider: provider.public_config(),
        provider_ref: intent.provider_ref,
        client_secret: intent.client_secret.map(|s| s.0),
    })
}
