//! The catalog's business metrics (request counts and latencies come from shopkit).

use std::sync::Once;

pub const SEARCHES_TOTAL: &str = "catalog_searches_total";
pub const INVENTORY_ADJUSTMENTS_TOTAL: &str = "catalog_inventory_adjustments_total";
pub const IMPORTS_TOTAL: &str = "catalog_imports_total";
pub const IMPORTED_ROWS_TOTAL: &str = "catalog_imported_rows_total";
pub const RESERVATIONS_TOTAL: &str = "catalog_reservations_total";

/// Registers help texts once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The recorder must exist before descriptions are registered with it.
        shopkit::metrics::handle();
        metrics::describe_counter!(
            SEARCHES_TOTAL,
            "Product searches and listings, by whether the query was typo-corrected"
        );
        metrics::describe_counter!(
            INVENTORY_ADJUSTMENTS_TOTAL,
            "Stock adjustments applied, by direction"
        );
        metrics::describe_counter!(IMPORTS_TOTAL, "Bulk imports, by outcome");
        metrics::describe_counter!(IMPORTED_ROWS_TOTAL, "Rows written by bulk imports");
        metrics::describe_counter!(
            RESERVATIONS_TOTAL,
            "Stock reservations for orders, by outcome (reserved, rejected, committed, released, expired)"
        );
    });
}

pub fn search(corrected: bool) {
    let corrected = if corrected { "true" } else { "false" };
    metrics::counter!(SEARCHES_TOTAL, "corrected" => corrected).increment(1);
}

pub fn adjustment(delta: i64) {
    let direction = if delta > 0 { "increase" } else { "decrease" };
    metrics::counter!(INVENTORY_ADJUSTMENTS_TOTAL, "direction" => direction).increment(1);
}

pub fn import(imported_rows: Option<usize>) {
    match imported_rows {
        Some(rows) => {
            metrics::counter!(IMPORTS_TOTAL, "outcome" => "imported").increment(1);
            metrics::counter!(IMPORTED_ROWS_TOTAL).increment(rows as u64);
        }
        None => metrics::counter!(IMPORTS_TOTAL, "outcome" => "rejected").increment(1),
    }
}

pub fn reservation(outcome: &'static str) {
    metrics::counter!(RESERVATIONS_TOTAL, "outcome" => outcome).increment(1);
}
