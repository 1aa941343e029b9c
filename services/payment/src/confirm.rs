//! Confirming a payment with a card, and completing its 3-D Secure authentication: the
//! logic behind `POST /payments/{id}/confirm` and `POST /payments/{id}/authenticate`.
//!
//! A confirmation runs in the transaction that holds its `Idempotency-Key` (scope: the
//! caller), from the claim of the key to the saved answer, so that a retry with the key
//! replays the first answer byte for byte and a concurrent duplicate waits for it. Inside
//! it, the payment itself is claimed in a short transaction of its own (see `process`),
//! so while that request transaction is open, a confirmation holds two connections; a
//! semaphore (half the pool) keeps concurrent confirmations from starving each other of
//! the second one.

use serde::{Deserialize, Serialize};
use shopkit::ApiError;
use shopkit::auth::Caller;
use shopkit::http::TraceContext;
use shopkit::idempotency::{self, Claim, StoredResponse};
use sqlx::PgConnection;
use uuid::Uuid;

use axum::http::StatusCode;

use crate::card::{ConfirmRequest, PaymentMethod};
use crate::model::{PaymentRow, Status};
use crate::process::{self, Step};
use crate::provider::{ActionOutcome, ProviderError};
use crate::recovery;
use crate::startup::AppState;
use crate::store::{self, Settled};

/// The body of `POST /payments/{id}/authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequest {
    pub outcome: ActionOutcome,
}

/// The 404 of a payment that is not there (yet) or not the caller's: the two look alike.
fn not_yet(id: Uuid) -> ApiError {
    ApiError::NotFound(format!(
        "there is no payment {id} for you (yet): a payment is created once its order awaits \
         payment (when its stock is reserved), moments after the order is placed — retry \
         shortly, with the payment's id or the order's"
    ))
}

/// Why a payment in `status` cannot be confirmed (or authenticated) now.
pub(crate) fn conflict(payment: &PaymentRow) -> ApiError {
    let id = payment.id;
    ApiError::Conflict(match payment.status() {
        Status::Succeeded => format!("payment {id} has succeeded already"),
        Status::Refunded => format!("payment {id} was charged and refunded; it is closed"),
        Status::Cancelled => format!("payment {id} was cancelled with its order"),
        Status::Failed => format!(
            "payment {id} failed ({}); its order is cancelled — place a new order to pay again",
            payment.failure_reason.as_deref().unwrap_or("declined")
        ),
        Status::RequiresAction => {
            format!("payment {id} waits for authentication: POST /payments/{id}/authenticate")
        }
        Status::RequiresPaymentMethod => {
            format!("payment {id} waits for a payment method: POST /payments/{id}/confirm")
        }
        Status::Processing => {
            format!("a confirmation of payment {id} is under way; retry shortly")
        }
    })
}

/// The caller's payment by its id or its order's id; 404 when it is not (yet) theirs.
pub(crate) async fn buyers_payment(
    conn: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
) -> Result<PaymentRow, ApiError> {
    match store::by_id_or_order(conn, id).await? {
        Some(payment) if payment.user_id == caller.user_id => Ok(payment),
        Some(_) if caller.is_admin() => Err(ApiError::Forbidden(
            "only the buyer can confirm or authenticate their payment".into(),
        )),
        _ => Err(not_yet(id)),
    }
}

/// A `processing` payment whose claim is stale is resolved by asking the provider
/// first; the payment as it stands afterwards.
async fn settled_enough(
    state: &AppState,
    conn: &mut PgConnection,
    payment: PaymentRow,
) -> Result<PaymentRow, ApiError> {
    if payment.status() != Status::Processing {
        return Ok(payment);
    }
    recovery::resolve(
        state.pool(),
        state.provider(),
        &payment,
        state.processing_timeout(),
    )
    .await
    .map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
    Ok(store::by_id(conn, payment.id).await?.unwrap_or(payment))
}

/// `POST /payments/{id}/confirm`: the answer (stored under the key when it is a 200).
pub async fn confirm(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    key: &str,
    request: &ConfirmRequest,
    trace: Option<&TraceContext>,
) -> Result<StoredResponse, ApiError> {
    let method = PaymentMethod::parse(&request.payment_method, chrono::Utc::now().date_naive())?;
    let field = match method {
        PaymentMethod::Card(_) => "payment_method.number",
        PaymentMethod::Token(_) => "payment_method.id",
    };
    state
        .provider()
        .check_method(&method)
        .map_err(|e| ApiError::invalid(field, e.to_string()))?;
    let body = serde_json::to_vec(request).map_err(|e| ApiError::Internal(e.into()))?;
    let path = format!("/payments/{id}/confirm");
    let fingerprint = idempotency::fingerprint(&[b"POST", path.as_bytes(), &body]);
    let scope = caller.user_id.to_string();

    let _slot = state.confirm_slot().await?;
    let mut tx = state.pool().begin().await?;
    match idempotency::claim(&mut tx, &scope, key, &fingerprint).await? {
        Claim::Fresh => {}
        Claim::Replay(stored) => return Ok(stored),
        Claim::Mismatch => return Err(Claim::mismatch_error()),
    }
    let payment = buyers_payment(&mut tx, caller, id).await?;
    let payment = settled_enough(state, &mut tx, payment).await?;
    if payment.status() != Status::RequiresPaymentMethod {
        return Err(conflict(&payment));
    }
    let summary = method.summary();
    let claimed = {
        let mut conn = state.pool().acquire().await?;
        match store::claim(
            &mut conn,
            payment.id,
            Status::RequiresPaymentMethod,
            summary.as_ref(),
        )
        .await?
        {
            Some(claimed) => claimed,
            // Another confirmation (or the order's cancellation) got there first.
            None => {
                let now = store::by_id(&mut conn, payment.id)
                    .await?
                    .unwrap_or(payment);
                return Err(conflict(&now));
            }
        }
    };
    let row = run_claimed(
        state,
        &mut tx,
        &claimed,
        Step::Confirm(&method),
        Settled::RequiresPaymentMethod,
        trace,
    )
    .await?;
    let response = StoredResponse::json(StatusCode::OK, &row.view());
    idempotency::save(&mut tx, &scope, key, &fingerprint, &response).await?;
    tx.commit().await?;
    process::count(&row);
    Ok(response)
}

/// `POST /payments/{id}/authenticate`: the payment after the outcome.
pub async fn authenticate(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    request: AuthenticateRequest,
    trace: Option<&TraceContext>,
) -> Result<PaymentRow, ApiError> {
    let mut conn = state.pool().acquire().await?;
    let payment = buyers_payment(&mut conn, caller, id).await?;
    let payment = settled_enough(state, &mut conn, payment).await?;
    if payment.status() != Status::RequiresAction {
        return Err(conflict(&payment));
    }
    let Some(claimed) = store::claim(&mut conn, payment.id, Status::RequiresAction, None).await?
    else {
        let now = store::by_id(&mut conn, payment.id)
            .await?
            .unwrap_or(payment);
        return Err(conflict(&now));
    };
    drop(conn);
    let back = Settled::RequiresAction {
        next_action: payment.next_action.clone().unwrap_or_default(),
    };
    let mut tx = state.pool().begin().await?;
    let row = run_claimed(
        state,
        &mut tx,
        &claimed,
        Step::Authenticate(request.outcome),
        back,
        trace,
    )
    .await?;
    tx.commit().await?;
    process::count(&row);
    Ok(row)
}

/// Drives a claimed payment at the provider and records the outcome on `tx`. When the
/// provider refused the request, the claim is released to `back` (nothing happened);
/// when it did not answer, the payment stays `processing` for recovery.
async fn run_claimed(
    state: &AppState,
    tx: &mut PgConnection,
    claimed: &PaymentRow,
    step: Step<'_>,
    back: Settled,
    trace: Option<&TraceContext>,
) -> Result<PaymentRow, ApiError> {
    let driven = match process::drive(state.provider(), claimed, step).await {
        Ok(driven) => driven,
        Err(ProviderError::Unavailable(cause)) => {
            return Err(ApiError::Unavailable(format!(
                "the payment provider did not answer (payment {} stays processing until it \
                 is resolved): {cause:#}",
                claimed.id
            )));
        }
        Err(refused) => {
            release(state, claimed, &back).await?;
            return Err(match refused {
                ProviderError::InvalidPaymentMethod(message) => {
                    ApiError::invalid("payment_method.number", message)
                }
                other => ApiError::Internal(anyhow::anyhow!(
                    "the payment provider refused the request for payment {}: {other}",
                    claimed.id
                )),
            });
        }
    };
    let Some(settled) = driven.settled else {
        // The provider is still working on it; recovery will settle it.
        return Ok(claimed.clone());
    };
    let recorded =
        process::record(tx, claimed, Some(&driven.provider_ref), &settled, trace).await?;
    match recorded {
        Some(row) => Ok(row),
        // Resolved by recovery meanwhile: answer with what it recorded.
        None => Ok(store::by_id(tx, claimed.id)
            .await?
            .unwrap_or_else(|| claimed.clone())),
    }
}

/// Gives a claim back (the provider refused the call, so nothing happened).
async fn release(state: &AppState, claimed: &PaymentRow, back: &Settled) -> Result<(), ApiError> {
    let Some(since) = claimed.processing_since else {
        return Ok(());
    };
    let mut conn = state.pool().acquire().await?;
    store::settle(&mut conn, claimed.id, since, None, back).await?;
    Ok(())
}
