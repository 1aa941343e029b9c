//! shopkit: the conventions every Shopstack service shares, so that six services do not
//! each reinvent them.
//!
//! A service builds its own `Router` of business routes and hands it to [`http::Kit`],
//! which adds health, metrics, OpenAPI, request ids, problem+json fallbacks and limits.
//! Its `main` is [`cli::run`], which parses `serve | migrate | healthcheck`.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod discovery;
pub mod error;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ApiError, ApiResult};
