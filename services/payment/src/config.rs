//! The service's settings, read once at start-up (see the README for the list). A
//! malformed or missing one stops the service with a message naming the variable; so
//! does the test gateway in a shop running in production mode.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use shopkit::auth::Verifier;
use shopkit::config::{ConfigError, Settings};
use shopkit::events::EventsConfig;
use sqlx::PgPool;

use crate::provider::{Provider, TestGateway, test_gateway};

/// How long a provider call may take before a `processing` payment counts as interrupted
/// and is resolved by asking the provider (`PAYMENT_PROCESSING_TIMEOUT_SECS`).
pub const DEFAULT_PROCESSING_TIMEOUT: Duration = Duration::from_secs(60);

/// `SHOP_MODE`: a shop under development may use test providers; one in production may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShopMode {
    #[default]
    Development,
    Production,
}

impl FromStr for ShopMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" => Ok(ShopMode::Development),
            "production" => Ok(ShopMode::Production),
            _ => Err("expected development or production".into()),
        }
    }
}

/// Everything `serve` needs. Tests build it with their own pool, verifier and provider.
#[derive(Clone)]
pub struct Config {
    /// `BIND_ADDR` (default `0.0.0.0`) and `PORT` (default 8080; 0 picks a free port).
    pub addr: SocketAddr,
    /// `DATABASE_URL`, `DATABASE_PASSWORD` (secret), `DATABASE_MAX_CONNECTIONS`; connects
    /// lazily, so the service starts (not ready) before its database does.
    pub pool: PgPool,
    /// `AUTH_JWKS_URL` or `AUTH_JWKS_FILE` (+ `AUTH_ISSUER`, `AUTH_AUDIENCE`): every
    /// endpoint needs a token.
    pub verifier: Verifier,
    /// `PAYMENT_PROVIDER` (default `test`).
    pub provider: Arc<dyn Provider>,
    /// `SHOP_MODE` (default `development`).
    pub mode: ShopMode,
    /// `AMQP_URL` (+ `AMQP_PASSWORD` secret); `None`: no events are consumed, and the
    /// outbox fills until a relay runs.
    pub events: Option<EventsConfig>,
    /// `PAYMENT_PROCESSING_TIMEOUT_SECS` (default 60).
    pub processing_timeout: Duration,
    /// `SHUTDOWN_DRAIN_MS`: how long readiness fails before the listener closes.
    pub drain: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("provider", &self.provider.name())
            .field("mode", &self.mode)
            .field("events", &self.events.is_some())
            .field("processing_timeout", &self.processing_timeout)
            .field("drain", &self.drain)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A development config with the settings' defaults: the test gateway, no events,
    /// the default processing timeout and drain period. For services started in code
    /// (tests); set the fields to change them.
    pub fn new(addr: SocketAddr, pool: PgPool, verifier: Verifier) -> Config {
        Config {
            addr,
            pool,
            verifier,
            provider: Arc::new(TestGateway),
            mode: ShopMode::Development,
            events: None,
            processing_timeout: DEFAULT_PROCESSING_TIMEOUT,
            drain: Duration::from_millis(3000),
        }
    }

    /// Must run inside a Tokio runtime (the pool spawns its maintenance task).
    pub fn from_settings(settings: &Settings) -> Result<Config, ConfigError> {
        let mode: ShopMode = settings.parse_or("SHOP_MODE", ShopMode::Development)?;
        let provider = provider_from_settings(settings, mode)?;
        let addr = shopkit::cli::bind_addr(settings)?;
        let drain = shopkit::cli::drain_period(settings)?;
        let processing_timeout = Duration::from_secs(settings.parse_or(
            "PAYMENT_PROCESSING_TIMEOUT_SECS",
            DEFAULT_PROCESSING_TIMEOUT.as_secs(),
        )?);
        if processing_timeout.is_zero() {
            return Err(ConfigError {
                name: "PAYMENT_PROCESSING_TIMEOUT_SECS".into(),
                problem: "must be at least 1".into(),
            });
        }
        let pool = shopkit::db::pool_from_settings(settings)?;
        // The JWKS client needs a TLS provider; `shopkit::cli::start` installs it in the
        // binary, this covers library users (tests).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let verifier = Verifier::from_settings(settings)?;
        let events = EventsConfig::from_settings(settings)?;
        Ok(Config {
            addr,
            pool,
            verifier,
            provider,
            mode,
            events,
            processing_timeout,
            drain,
        })
    }
}

/// The provider `PAYMENT_PROVIDER` names, if `mode` allows it.
pub fn provider_from_settings(
    settings: &Settings,
    mode: ShopMode,
) -> Result<Arc<dyn Provider>, ConfigError> {
    let name = settings
        .get("PAYMENT_PROVIDER")
        .unwrap_or(test_gateway::NAME);
    let provider: Arc<dyn Provider> = match name {
        test_gateway::NAME => Arc::new(TestGateway),
        "stripe" | "paypal" => {
            return Err(ConfigError {
                name: "PAYMENT_PROVIDER".into(),
                problem: format!(
                    "is {name:?}, which this version does not support yet; the only provider \
                     is \"test\" (the built-in test gateway, development mode only)"
                ),
            });
        }
        other => {
            return Err(ConfigError {
                name: "PAYMENT_PROVIDER".into(),
                problem: format!(
                    "has the unknown value {other:?}: expected \"test\" (the built-in test \
                     gateway; stripe and paypal are planned)"
                ),
            });
        }
    };
    check_mode(mode, provider.as_ref())?;
    Ok(provider)
}

/// A shop in production mode never takes payments through a test provider.
pub fn check_mode(mode: ShopMode, provider: &dyn Provider) -> Result<(), ConfigError> {
    if mode == ShopMode::Production && !provider.is_live() {
        return Err(ConfigError {
            name: "PAYMENT_PROVIDER".into(),
            problem: format!(
                "is {:?}, the built-in test gateway, which takes no real money and is refused \
                 when SHOP_MODE=production: configure a real payment provider (set \
                 PAYMENT_PROVIDER and its credentials), or run the shop with \
                 SHOP_MODE=development",
                provider.name()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn the_test_gateway_is_the_default_in_development() {
        let provider = provider_from_settings(&settings(&[]), ShopMode::Development).unwrap();
        assert_eq!(provider.name(), "test");
        let mode: ShopMode = settings(&[])
            .parse_or("SHOP_MODE", ShopMode::Development)
            .unwrap();
        assert_eq!(mode, ShopMode::Development);
    }

    #[test]
    fn production_mode_refuses_the_test_gateway_and_says_what_to_do() {
        for vars in [
            vec![("PAYMENT_PROVIDER", "test")],
            vec![], // test is the default
        ] {
            let err = provider_from_settings(&settings(&vars), ShopMode::Production).unwrap_err();
            assert_eq!(err.name, "PAYMENT_PROVIDER");
            let text = err.to_string();
            assert!(text.contains("SHOP_MODE=production"), "{text}");
            assert!(text.contains("configure a real payment provider"), "{text}");
        }
    }

    #[test]
    fn unknown_providers_and_modes_are_named() {
        let err = provider_from_settings(
            &settings(&[("PAYMENT_PROVIDER", "bitcoin")]),
            ShopMode::Development,
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"bitcoin\""), "{err}");
        let err = settings(&[("SHOP_MODE", "prod")])
            .parse_or("SHOP_MODE", ShopMode::Development)
            .unwrap_err();
        assert_eq!(err.name, "SHOP_MODE");
        assert!(
            err.to_string().contains("development or production"),
            "{err}"
        );
    }
}
