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

use crate::provider::paypal::{self, PayPal, PayPalConfig};
use crate::provider::stripe::{self, Stripe, StripeConfig};
use crate::provider::{Provider, Retry, TestGateway, test_gateway};
use crate::webhooks::Webhooks;

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
    /// `PAYMENT_PROVIDER` (default `test`) and its credentials.
    pub provider: Arc<dyn Provider>,
    /// What verifies the provider's webhooks (`STRIPE_WEBHOOK_SECRET`, PayPal's
    /// `PAYPAL_WEBHOOK_ID`); empty for the test gateway.
    pub webhooks: Webhooks,
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
            webhooks: Webhooks::default(),
            mode: ShopMode::Development,
            events: None,
            processing_timeout: DEFAULT_PROCESSING_TIMEOUT,
            drain: Duration::from_millis(3000),
        }
    }

    /// Must run inside a Tokio runtime (the pool spawns its maintenance task).
    pub fn from_settings(settings: &Settings) -> Result<Config, ConfigError> {
        let mode = shop_mode(settings)?;
        let Providers { provider, webhooks } = providers_from_settings(settings, mode)?;
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
            webhooks,
            mode,
            events,
            processing_timeout,
            drain,
        })
    }
}

/// `SHOP_MODE`, else `SHOPSTACK_MODE` (what shopctl sets for every service), else
/// development.
pub fn shop_mode(settings: &Settings) -> Result<ShopMode, ConfigError> {
    if settings.get("SHOP_MODE").is_none() && settings.get("SHOPSTACK_MODE").is_some() {
        return settings.parse_or("SHOPSTACK_MODE", ShopMode::Development);
    }
    settings.parse_or("SHOP_MODE", ShopMode::Development)
}

/// The configured provider and what verifies its webhooks.
#[derive(Debug, Clone)]
pub struct Providers {
    pub provider: Arc<dyn Provider>,
    pub webhooks: Webhooks,
}

/// The provider `PAYMENT_PROVIDER` names, if `mode` allows it.
pub fn provider_from_settings(
    settings: &Settings,
    mode: ShopMode,
) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(providers_from_settings(settings, mode)?.provider)
}

/// A secret the chosen provider cannot work without; the message names the variable
/// and the file of the shop's `secrets/` directory to create.
fn provider_secret(settings: &Settings, name: &str, what: &str) -> Result<String, ConfigError> {
    let file = name.to_lowercase();
    settings.secret(name)?.ok_or_else(|| ConfigError {
        name: name.to_owned(),
        problem: format!(
            "is not set, and PAYMENT_PROVIDER={} needs it: {what}. With shopctl, put it in the \
             shop's secrets/{file} (mounted as {}/{file}); or name a file in {name}_FILE, or \
             set {name}",
            settings.get("PAYMENT_PROVIDER").unwrap_or_default(),
            settings.secrets_dir().display()
        ),
    })
}

/// Refuses a value that is not the kind of key its variable takes (keys pasted into the
/// wrong file).
fn expect_prefix(name: &str, value: &str, prefixes: &[&str]) -> Result<(), ConfigError> {
    if prefixes.iter().any(|p| value.starts_with(p)) {
        Ok(())
    } else {
        Err(ConfigError {
            name: name.to_owned(),
            problem: format!(
                "does not look like one: it should start with {}",
                prefixes.join(" or ")
            ),
        })
    }
}

fn url_setting(
    settings: &Settings,
    name: &str,
    default: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = settings.get(name).or(default) else {
        return Ok(None);
    };
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(Some(value.to_owned()))
    } else {
        Err(ConfigError {
            name: name.to_owned(),
            problem: format!("has the value {value:?}; expected an http(s):// URL"),
        })
    }
}

fn client_error(name: &str, err: &anyhow::Error) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        problem: format!("could not be used: {err:#}"),
    }
}

/// The provider `PAYMENT_PROVIDER` names with its credentials, if `mode` allows it.
pub fn providers_from_settings(
    settings: &Settings,
    mode: ShopMode,
) -> Result<Providers, ConfigError> {
    let name = settings
        .get("PAYMENT_PROVIDER")
        .unwrap_or(test_gateway::NAME);
    let return_url = url_setting(settings, "PAYMENT_RETURN_URL", None)?;
    let providers = match name {
        test_gateway::NAME => Providers {
            provider: Arc::new(TestGateway),
            webhooks: Webhooks::default(),
        },
        stripe::NAME => {
            let secret_key = provider_secret(
                settings,
                "STRIPE_SECRET_KEY",
                "the secret API key from Stripe's dashboard (sk_live_… or sk_test_…)",
            )?;
            expect_prefix("STRIPE_SECRET_KEY", &secret_key, &["sk_", "rk_"])?;
            let webhook_secrets: Vec<String> = provider_secret(
                settings,
                "STRIPE_WEBHOOK_SECRET",
                "the signing secret of the webhook endpoint (whsec_…; several, comma-separated, \
                 while one is rolled)",
            )?
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
            for secret in &webhook_secrets {
                expect_prefix("STRIPE_WEBHOOK_SECRET", secret, &["whsec_"])?;
            }
            let publishable_key = provider_secret(
                settings,
                "STRIPE_PUBLISHABLE_KEY",
                "the publishable key for Stripe.js in the storefront (pk_live_… or pk_test_…; not \
                 secret)",
            )?;
            expect_prefix("STRIPE_PUBLISHABLE_KEY", &publishable_key, &["pk_"])?;
            let api_base =
                url_setting(settings, "STRIPE_API_BASE", Some(stripe::DEFAULT_API_BASE))?
                    .unwrap_or_default();
            let stripe = Stripe::new(StripeConfig {
                api_base,
                secret_key,
                publishable_key: Some(publishable_key),
                return_url,
                retry: Retry::default(),
            })
            .map_err(|e| client_error("STRIPE_API_BASE", &e))?;
            Providers {
                provider: Arc::new(stripe),
                webhooks: Webhooks {
                    stripe_secrets: webhook_secrets,
                    paypal: None,
                },
            }
        }
        paypal::NAME => {
            let client_id = provider_secret(
                settings,
                "PAYPAL_CLIENT_ID",
                "the REST app's client id from PayPal's developer dashboard",
            )?;
            let client_secret = provider_secret(
                settings,
                "PAYPAL_CLIENT_SECRET",
                "the REST app's secret from PayPal's developer dashboard",
            )?;
            let webhook_id = provider_secret(
                settings,
                "PAYPAL_WEBHOOK_ID",
                "the id PayPal shows for the webhook pointing at /api/payment/webhooks/paypal",
            )?;
            let api_base =
                url_setting(settings, "PAYPAL_API_BASE", Some(paypal::DEFAULT_API_BASE))?
                    .unwrap_or_default();
            let paypal = Arc::new(
                PayPal::new(PayPalConfig {
                    api_base,
                    client_id,
                    client_secret,
                    webhook_id,
                    return_url,
                    retry: Retry::default(),
                })
                .map_err(|e| client_error("PAYPAL_API_BASE", &e))?,
            );
            Providers {
                provider: paypal.clone(),
                webhooks: Webhooks {
                    stripe_secrets: Vec::new(),
                    paypal: Some(paypal),
                },
            }
        }
        other => {
            return Err(ConfigError {
                name: "PAYMENT_PROVIDER".into(),
                problem: format!(
                    "has the unknown value {other:?}: expected \"test\" (the built-in test \
                     gateway, development only), \"stripe\" or \"paypal\""
                ),
            });
        }
    };
    check_mode(mode, providers.provider.as_ref())?;
    Ok(providers)
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
    fn a_missing_key_names_the_variable_and_the_secret_file() {
        let dir = std::env::temp_dir().join(format!("payment-secrets-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let secrets = dir.display().to_string();
        let base = [
            ("PAYMENT_PROVIDER", "stripe"),
            ("SECRETS_DIR", secrets.as_str()),
        ];
        let err = provider_from_settings(&settings(&base), ShopMode::Production).unwrap_err();
        assert_eq!(err.name, "STRIPE_SECRET_KEY");
        assert!(
            err.to_string().contains("secrets/stripe_secret_key"),
            "{err}"
        );
        std::fs::write(dir.join("stripe_secret_key"), "sk_test_123\n").unwrap();
        let err = provider_from_settings(&settings(&base), ShopMode::Production).unwrap_err();
        assert_eq!(err.name, "STRIPE_WEBHOOK_SECRET");
        std::fs::write(dir.join("stripe_webhook_secret"), "whsec_a, whsec_b").unwrap();
        let err = provider_from_settings(&settings(&base), ShopMode::Production).unwrap_err();
        assert_eq!(err.name, "STRIPE_PUBLISHABLE_KEY");
        let mut vars = base.to_vec();
        vars.push(("STRIPE_PUBLISHABLE_KEY", "sk_test_swapped"));
        let err = provider_from_settings(&settings(&vars), ShopMode::Production).unwrap_err();
        assert!(err.to_string().contains("pk_"), "{err}");
        vars.pop();
        vars.push(("STRIPE_PUBLISHABLE_KEY", "pk_test_123"));
        // Production mode takes a real provider.
        let providers = providers_from_settings(&settings(&vars), ShopMode::Production).unwrap();
        assert_eq!(providers.provider.name(), "stripe");
        assert_eq!(providers.webhooks.stripe_secrets, ["whsec_a", "whsec_b"]);
        let public = providers.provider.public_config();
        assert_eq!(public.publishable_key.as_deref(), Some("pk_test_123"));
        assert!(!format!("{:?}", providers.provider).contains("sk_test_123"));

        let paypal = [
            ("PAYMENT_PROVIDER", "paypal"),
            ("SECRETS_DIR", secrets.as_str()),
        ];
        let err = provider_from_settings(&settings(&paypal), ShopMode::Development).unwrap_err();
        assert_eq!(err.name, "PAYPAL_CLIENT_ID");
        assert!(
            err.to_string().contains("secrets/paypal_client_id"),
            "{err}"
        );
        std::fs::write(dir.join("paypal_client_id"), "AYclient").unwrap();
        std::fs::write(dir.join("paypal_client_secret"), "ELsecret").unwrap();
        let err = provider_from_settings(&settings(&paypal), ShopMode::Development).unwrap_err();
        assert_eq!(err.name, "PAYPAL_WEBHOOK_ID");
        std::fs::write(dir.join("paypal_webhook_id"), "WH-1").unwrap();
        let providers = providers_from_settings(&settings(&paypal), ShopMode::Development).unwrap();
        assert_eq!(
            providers.provider.public_config().client_id.as_deref(),
            Some("AYclient")
        );
        assert!(providers.webhooks.paypal.is_some());
        assert!(!format!("{:?}", providers.provider).contains("ELsecret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shopctls_mode_variable_counts_too() {
        assert_eq!(
            shop_mode(&settings(&[("SHOPSTACK_MODE", "production")])).unwrap(),
            ShopMode::Production
        );
        assert_eq!(
            shop_mode(&settings(&[
                ("SHOPSTACK_MODE", "production"),
                ("SHOP_MODE", "development")
            ]))
            .unwrap(),
            ShopMode::Development
        );
        assert_eq!(shop_mode(&settings(&[])).unwrap(), ShopMode::Development);
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
