//! The order service (being built; see docs/checkout.md): so far its state machine and
//! its schema.

pub mod machine;

/// The embedded schema migrations (`services/order/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
