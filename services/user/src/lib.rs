//! The user service: accounts with argon2id-hashed passwords, Ed25519-signed access
//! tokens with a published JWKS, rotating refresh tokens with reuse detection, email
//! verification and password reset through single-use tokens (events in an outbox),
//! brute-force limits kept in PostgreSQL, and an address book. Built on [`shopkit`].
//!
//! Entry points: [`Application`] (the server), [`router`] (the same, for `oneshot`
//! tests), [`cli`] (`serve | migrate | healthcheck | create-admin`).

pub mod addresses;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod keys;
pub mod me;
pub mod metrics;
pub mod model;
pub mod outbox;
pub mod password;
pub mod recovery;
pub mod routes;
pub mod session;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod validate;

pub use clock::Clock;
pub use config::{Config, Options};
pub use routes::openapi;
pub use startup::{AppState, Application, router};

/// The embedded schema migrations (`services/user/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
