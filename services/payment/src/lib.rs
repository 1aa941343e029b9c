//! The payment service (being built; see docs/checkout.md): payment intents, the card
//! input, and the provider trait with the built-in test gateway.

pub mod card;
pub mod model;
pub mod provider;

/// The embedded schema migrations (`services/payment/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
