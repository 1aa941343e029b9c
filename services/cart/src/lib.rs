//! The cart service: anonymous carts (reached with a token) and user carts (one open
//! cart per user), validated and priced against the catalog, merged at log-in, kept
//! current by catalog events, emptied when their order is paid, and live over
//! Server-Sent Events across replicas (PostgreSQL `LISTEN/NOTIFY`). Built on
//! [`shopkit`].
//!
//! Entry points: [`Application`] (the server), [`router`] (the same, for `oneshot`
//! tests), [`handlers`] (the event handlers' logic), [`store`] (the SQL).

pub mod access;
pub mod carts;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod error;
pub mod handlers;
pub mod live;
pub mod metrics;
pub mod model;
pub mod routes;
pub mod startup;
pub mod store;
pub mod token;

pub use config::Config;
pub use routes::openapi;
pub use startup::{AppState, Application, router};

/// The embedded schema migrations (`services/cart/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
