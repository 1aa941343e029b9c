//! The order service: turns a cart into an order with a price snapshot (`POST /orders`,
//! idempotent), then follows it through the checkout — stock reserved, paid, fulfilled,
//! or cancelled and compensated — as the catalog's and the payment service's events
//! arrive. Built on [`shopkit`]; the contract is docs/checkout.md.
//!
//! Entry points: [`Application`] (the server), [`router`] (the same, for `oneshot`
//! tests), [`consumer::OrderEvents`] (the event handler), [`machine::transition`] (the
//! state machine).

pub mod admin;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod customer;
pub mod lifecycle;
pub mod machine;
pub mod metrics;
pub mod model;
pub mod peers;
pub mod routes;
pub mod startup;
pub mod store;

pub use config::Config;
pub use routes::openapi;
pub use startup::{AppState, Application, router};

/// The embedded schema migrations (`services/order/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
