//! The service's settings, read once at start-up from the environment (see the README
//! for the full list). Malformed settings fail fast with a message naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use shopkit::auth::Verifier;
use shopkit::config::{ConfigError, Settings};
use shopkit::events::EventsConfig;
use sqlx::PgPool;

use crate::catalog::CatalogClient;

#[derive(Debug, Clone)]
pub struct Config {
    /// `BIND_ADDR` (default `0.0.0.0`) and `PORT` (default 8080; 0 picks a free port).
    pub addr: SocketAddr,
    /// From `DATABASE_URL`, `DATABASE_PASSWORD` (a secret) and `DATABASE_MAX_CONNECTIONS`;
    /// connects lazily, so the service starts (not ready) before its database does. One
    /// connection is held by the change listener.
    pub pool: PgPool,
    /// From `AUTH_JWKS_URL` or `AUTH_JWKS_FILE` (+ `AUTH_ISSUER`, `AUTH_AUDIENCE`). `None`
    /// when neither is set: anonymous carts work, user carts answer 401.
    pub verifier: Option<Verifier>,
    /// `CATALOG_URL`: where SKUs are validated and priced.
    pub catalog: CatalogClient,
    /// `AMQP_URL` (+ `AMQP_PASSWORD` secret, `EVENTS_RETRY_DELAYS_MS`); `None`: no
    /// events are consumed (carts work, but prices and stock are only refreshed when a
    /// line changes, and paid orders do not empty their carts).
    pub events: Option<EventsConfig>,
    /// `CART_COOKIE_SECURE` (default false): mark the `cart_token` cookie `Secure`, for
    /// shops served over HTTPS.
    pub cookie_secure: bool,
    /// `SHUTDOWN_DRAIN_MS`: how long readiness fails before the listener closes.
    pub drain: Duration,
}

impl Config {
    /// Must run inside a Tokio runtime (the pool spawns its maintenance task).
    pub fn from_settings(settings: &Settings) -> Result<Config, ConfigError> {
        let addr = shopkit::cli::bind_addr(settings)?;
        let drain = shopkit::cli::drain_period(settings)?;
        let pool = shopkit::db::pool_from_settings(settings)?;
        let verifier = if auth_configured(settings) {
            // The JWKS client needs a TLS provider; `shopkit::cli::start` installs it in
            // the binary, this covers library users (tests, benchmarks).
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(Verifier::from_settings(settings)?)
        } else {
            None
        };
        let catalog_url = settings.required(
            "CATALOG_URL",
            "the catalog service's base URL, e.g. http://catalog:8080",
        )?;
        let catalog = CatalogClient::new(&catalog_url).map_err(|e| ConfigError {
            name: "CATALOG_URL".into(),
            problem: format!("{e:#}"),
        })?;
        let cookie_secure = settings.parse_or("CART_COOKIE_SECURE", false)?;
        let events = EventsConfig::from_settings(settings)?;
        Ok(Config {
            addr,
            pool,
            verifier,
            catalog,
            events,
            cookie_secure,
            drain,
        })
    }
}

/// Whether either JWKS source is set.
pub fn auth_configured(settings: &Settings) -> bool {
    settings.get("AUTH_JWKS_URL").is_some() || settings.get("AUTH_JWKS_FILE").is_some()
}
