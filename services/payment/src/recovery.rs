//! Resolving interrupted provider calls. A payment is `processing` from its claim until
//! the outcome is recorded; if the service crashed (or the provider did not answer) in
//! between, it stays `processing`. Once its claim is older than the processing timeout
//! (`PAYMENT_PROCESSING_TIMEOUT_SECS`, longer than any provider call may take), the
//! provider is asked where the intent stands (`retrieve`; an authorised one is captured)
//! and that is recorded exactly as the original call would have: status, ledger row and
//! event in one transaction, conditional on the same claim.
//!
//! Two paths get there: the next confirmation of the payment (it finds it `processing`
//! and stale), and the sweeper that every service runs ([`run_sweeper`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use shopkit::shutdown::Shutdown;
use sqlx::PgPool;

use crate::model::{PaymentRow, Status};
use crate::process;
use crate::provider::Provider;
use crate::store;

/// At most this many payments are resolved per sweep (the rest on the next).
const SWEEP_BATCH: i64 = 100;

/// Whether a `processing` payment's claim is older than `timeout`.
pub fn is_stale(payment: &PaymentRow, timeout: Duration) -> bool {
    let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    payment.status() == Status::Processing
        && payment
            .processing_since
            .is_some_and(|since| since + timeout <= Utc::now())
}

/// Resolves `payment` if it is stale: `Some(row)` as recorded now, `None` if it was not
/// stale, the provider is still working on it, or someone else resolved it first.
pub async fn resolve(
    pool: &PgPool,
    provider: &dyn Provider,
    payment: &PaymentRow,
    timeout: Duration,
) -> anyhow::Result<Option<PaymentRow>> {
    if !is_stale(payment, timeout) {
        return Ok(None);
    }
    let provider_ref = process::provider_intent(provider, payment)
        .await
        .context("finding the provider's intent")?;
    let intent = provider
        .retrieve(&provider_ref)
        .await
        .context("asking the provider about the intent")?;
    let Some(settled) = process::settle(provider, payment, &provider_ref, intent.status)
        .await
        .context("capturing an authorised intent")?
    else {
        return Ok(None);
    };
    let mut tx = pool.begin().await?;
    let row = process::record(&mut tx, payment, Some(&provider_ref), &settled, None).await?;
    tx.commit().await?;
    if let Some(row) = &row {
        process::count(row);
        tracing::info!(
            payment.id = %row.id,
            order.id = %row.order_id,
            status = %row.status(),
            "resolved an interrupted provider call"
        );
    }
    Ok(row)
}

/// Resolves every stale `processing` payment (up to a batch); returns how many changed.
pub async fn sweep(
    pool: &PgPool,
    provider: &dyn Provider,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let mut conn = pool.acquire().await?;
    let stale = store::stale_processing(&mut conn, cutoff, SWEEP_BATCH).await?;
    drop(conn);
    let mut resolved = 0;
    for payment in &stale {
        match resolve(pool, provider, payment, timeout).await {
            Ok(Some(_)) => resolved += 1,
            Ok(None) => {}
            Err(err) => tracing::warn!(
                payment.id = %payment.id,
                error = format!("{err:#}"),
                "could not resolve an interrupted provider call; trying again later"
            ),
        }
    }
    Ok(resolved)
}

/// Sweeps every half timeout until shutdown begins.
pub async fn run_sweeper(
    pool: PgPool,
    provider: Arc<dyn Provider>,
    timeout: Duration,
    shutdown: Shutdown,
) {
    let interval = (timeout / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.clone().started() => return,
        }
        if let Err(err) = sweep(&pool, provider.as_ref(), timeout).await {
            tracing::warn!(error = format!("{err:#}"), "payment sweep failed");
        }
    }
}
