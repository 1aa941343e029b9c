//! The notification service: turns the shop's events (orders paid, shipped, refunded,
//! payments failed, account emails) into emails and text messages rendered from
//! [`templates`] the merchant can override, stores exactly one message per event and
//! channel in the inbox's transaction ([`handlers`]), and sends them through a
//! [`provider::Provider`] — SendGrid, SMTP, Twilio, or the local outbox — with retries and
//! parking ([`delivery`]). Customers choose what they get ([`api`], `/preferences/me`).
//!
//! Entry points: [`Application`] (the server), [`router`] (for `oneshot` tests),
//! [`handlers::Notifications`] (the events), [`delivery::run_once`] (one delivery pass).

pub mod api;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod handlers;
pub mod metrics;
pub mod provider;
pub mod routes;
pub mod startup;
pub mod store;
pub mod templates;

pub use config::Config;
pub use routes::openapi;
pub use startup::{AppState, Application, router};

/// The embedded schema migrations (`services/notification/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
