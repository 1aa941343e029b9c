//! The service's settings, read once at start-up from the environment (see the README
//! for the full list). Malformed or missing settings fail fast with a message naming the
//! variable.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Url;
use shopkit::auth::Verifier;
use shopkit::config::{ConfigError, Settings};
use shopkit::events::EventsConfig;
use sqlx::PgPool;

#[derive(Debug, Clone)]
pub struct Config {
    /// `BIND_ADDR` (default `0.0.0.0`) and `PORT` (default 8080; 0 picks a free port).
    pub addr: SocketAddr,
    /// From `DATABASE_URL`, `DATABASE_PASSWORD` (a secret) and `DATABASE_MAX_CONNECTIONS`;
    /// connects lazily, so the service starts (not ready) before its database does.
    pub pool: PgPool,
    /// From `AUTH_JWKS_URL` or `AUTH_JWKS_FILE` (+ `AUTH_ISSUER`, `AUTH_AUDIENCE`):
    /// required, since every order belongs to a signed-in caller.
    pub verifier: Verifier,
    /// `CART_URL`: the cart service the lines come from (`http://cart:8080`).
    pub cart_url: Url,
    /// `CATALOG_URL`: the catalog that prices them and knows the stock.
    pub catalog_url: Url,
    /// `AMQP_URL` (+ `AMQP_PASSWORD`): `None` runs without events — orders are created
    /// and their events wait in the outbox, but nothing moves them on.
    pub events: Option<EventsConfig>,
    /// `SHUTDOWN_DRAIN_MS`: how long readiness fails before the listener closes.
    pub drain: Duration,
}

impl Config {
    /// Must run inside a Tokio runtime (the pool spawns its maintenance task).
    pub fn from_settings(settings: &Settings) -> Result<Config, ConfigError> {
        let addr = shopkit::cli::bind_addr(settings)?;
        let drain = shopkit::cli::drain_period(settings)?;
        let pool = shopkit::db::pool_from_settings(settings)?;
        // The JWKS client needs a TLS provider; `shopkit::cli::start` installs it in the
        // binary, this covers library users (tests, benchmarks).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let verifier = Verifier::from_settings(settings)?;
        let cart_url = service_url(
            settings,
            "CART_URL",
            "the cart service, e.g. http://cart:8080",
        )?;
        let catalog_url = service_url(
            settings,
            "CATALOG_URL",
            "the catalog service, e.g. http://catalog:8080",
        )?;
        let events = EventsConfig::from_settings(settings)?;
        Ok(Config {
            addr,
            pool,
            verifier,
            cart_url,
            catalog_url,
            events,
            drain,
        })
    }
}

/// A required http(s) base URL.
fn service_url(settings: &Settings, name: &str, hint: &str) -> Result<Url, ConfigError> {
    let raw = settings.required(name, hint)?;
    let malformed = |problem: String| ConfigError {
        name: name.to_owned(),
        problem,
    };
    let url = Url::parse(&raw)
        .map_err(|e| malformed(format!("has the malformed value {raw:?}: {e} ({hint})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(malformed(format!(
            "must be an http:// or https:// base URL, not {raw:?} ({hint})"
        )));
    }
    Ok(url)
}
