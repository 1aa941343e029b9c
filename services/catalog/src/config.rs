//! The service's settings, read once at start-up from the environment (see the README
//! for the full list). Malformed settings fail fast with a message naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// From `AUTH_JWKS_URL` or `AUTH_JWKS_FILE` (+ `AUTH_ISSUER`, `AUTH_AUDIENCE`). `None`
    /// when neither is set: reads work, admin writes answer 401.
    pub verifier: Option<Verifier>,
    /// `SHUTDOWN_DRAIN_MS`: how long readiness fails before the listener closes.
    pub drain: Duration,
    /// `AMQP_URL` (+ the `AMQP_PASSWORD` secret): where checkout events come and go.
    /// `None`: no reservations are made (the catalog alone still serves reads and writes).
    pub events: Option<EventsConfig>,
    /// `RESERVATION_TTL_SECS` (default 900): how long stock is held for an unpaid order.
    pub reservation_ttl: Duration,
    /// `RESERVATION_SWEEP_MS` (default 1000): how often expired reservations are released.
    pub reservation_sweep: Duration,
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
        Ok(Config {
            addr,
            pool,
            verifier,
            drain,
            events: EventsConfig::from_settings(settings)?,
            reservation_ttl: Duration::from_secs(settings.parse_or("RESERVATION_TTL_SECS", 900)?),
            reservation_sweep: Duration::from_millis(
                settings.parse_or("RESERVATION_SWEEP_MS", 1000)?,
            ),
        })
    }
}

/// Whether either JWKS source is set.
pub fn auth_configured(settings: &Settings) -> bool {
    settings.get("AUTH_JWKS_URL").is_some() || settings.get("AUTH_JWKS_FILE").is_some()
}
