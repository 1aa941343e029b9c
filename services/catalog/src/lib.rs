//! The catalog service: a category tree, products with variants, stock per SKU with an
//! audit trail, and PostgreSQL full-text search with typo correction, facets and keyset
//! pagination. Built on [`shopkit`].
//!
//! Entry points: [`Application`] (the server), [`router`] (the same, for `oneshot`
//! tests), [`queries`] (the SQL of the public reads, for benchmarks), [`demo::seed`].

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod import;
pub mod metrics;
pub mod model;
pub mod public;
pub mod queries;
pub mod reservations;
pub mod routes;
pub mod search;
pub mod startup;
mod store;
pub mod validate;

pub use config::Config;
pub use routes::openapi;
pub use startup::{AppState, Application, router};

/// The embedded schema migrations (`services/catalog/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
