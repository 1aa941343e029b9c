//! The payment service: one payment intent per order awaiting payment, paid through a
//! [`provider::Provider`] (the built-in test gateway, Stripe, or PayPal; their webhooks
//! in [`webhooks`]), with an append-only [`ledger`] of money charged and refunded, written
//! in the same transaction as the status change and the event it causes. Built on
//! [`shopkit`]; see `docs/checkout.md` for the events.
//!
//! Entry points: [`Application`] (the server), [`router`] (the same, for `oneshot`
//! tests), [`handlers::OrderEvents`] (the order's events), [`ledger::violations`] (the
//! ledger's invariant), [`recovery::sweep`] (interrupted provider calls).

pub mod admin;
pub mod api;
pub mod card;
pub mod cli;
pub mod config;
pub mod confirm;
pub mod handlers;
pub mod intent;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod process;
pub mod provider;
pub mod recovery;
pub mod routes;
pub mod startup;
pub mod store;
pub mod webhooks;

pub use config::Config;
pub use routes::openapi;
pub use startup::{AppState, Application, router};

/// The embedded schema migrations (`services/payment/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
