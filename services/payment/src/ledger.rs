//! The ledger's invariant: for every order, sum(charge) − sum(refund) equals the amount
//! of its payment when that payment has succeeded, and 0 when it is refunded, failed,
//! cancelled or not yet paid. Ledger rows are written in the transaction of the status
//! change they belong to, so the invariant holds after every commit; [`violations`]
//! checks it (tests, and `GET /admin/ledger/{order_id}` for one order).

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::{OrderLedger, Status};
use crate::store;

/// A payment whose ledger does not fit its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub status: String,
    pub amount_minor: i64,
    pub balance_minor: i64,
    pub expected_minor: i64,
    /// Entries in another currency than the payment's.
    pub foreign_currency_entries: i64,
}

/// Every payment whose ledger breaks the invariant (empty when all is well).
pub async fn violations(conn: &mut PgConnection) -> sqlx::Result<Vec<Violation>> {
    let rows: Vec<(Uuid, Uuid, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT p.id, p.order_id, p.status, p.amount_minor,
                COALESCE(SUM(CASE l.kind WHEN 'charge' THEN l.amount_minor
                                         WHEN 'refund' THEN -l.amount_minor END), 0)::bigint,
                COUNT(l.id) FILTER (WHERE l.currency <> p.currency)
         FROM payments p LEFT JOIN ledger_entries l ON l.payment_id = p.id
         GROUP BY p.id
         ORDER BY p.id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(payment_id, order_id, status, amount, balance, foreign)| {
            let expected = Status::parse(&status).map_or(0, |s| s.ledger_balance(amount));
            let broken = balance != expected || foreign != 0 || Status::parse(&status).is_none();
            broken.then_some(Violation {
                payment_id,
                order_id,
                status,
                amount_minor: amount,
                balance_minor: balance,
                expected_minor: expected,
                foreign_currency_entries: foreign,
            })
        })
        .collect())
}

/// One order's entries, their balance, and whether it fits the order's payment.
pub async fn of_order(conn: &mut PgConnection, order_id: Uuid) -> sqlx::Result<OrderLedger> {
    let entries = store::ledger_of_order(conn, order_id).await?;
    let payment: Option<(String, i64)> =
        sqlx::query_as("SELECT status, amount_minor FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?;
    let balance_minor = entries
        .iter()
        .map(|e| {
            if e.kind == "refund" {
                -e.amount_minor
            } else {
                e.amount_minor
            }
        })
        .sum();
    let payment_status = payment.as_ref().and_then(|(s, _)| Status::parse(s));
    let expected_balance_minor = match (&payment, payment_status) {
        (Some((_, amount)), Some(status)) => status.ledger_balance(*amount),
        _ => 0,
    };
    Ok(OrderLedger {
        order_id,
        consistent: balance_minor == expected_balance_minor,
        entries,
        balance_minor,
        payment_status,
        expected_balance_minor,
    })
}
