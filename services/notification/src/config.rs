//! The service's settings, read once at start-up (see the README for the list). A
//! malformed or missing one stops the service with a message naming the variable; so
//! does the outbox chosen silently in a shop running in production mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shopkit::auth::Verifier;
use shopkit::config::{ConfigError, Settings};
use shopkit::events::EventsConfig;
use sqlx::PgPool;

use crate::delivery::{Policy, Providers};
use crate::handlers::Shop;
use crate::provider::sendgrid::{self, Sender};
use crate::provider::smtp::{Security, SmtpSettings};
use crate::provider::twilio::{self, From};
use crate::provider::{Outbox, Provider, SendGrid, Smtp, Twilio, outbox};

/// `SHOP_MODE`: a shop under development may keep its messages in the outbox; one in
/// production must name its providers (or ask for the outbox explicitly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShopMode {
    #[default]
    Development,
    Production,
}

impl std::str::FromStr for ShopMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" => Ok(ShopMode::Development),
            "production" => Ok(ShopMode::Production),
            _ => Err("expected development or production".into()),
        }
    }
}

/// Everything `serve` needs. Tests build it with [`Config::new`] and set fields.
#[derive(Clone)]
pub struct Config {
    /// `BIND_ADDR` (default `0.0.0.0`) and `PORT` (default 8080; 0 picks a free port).
    pub addr: SocketAddr,
    /// `DATABASE_URL`, `DATABASE_PASSWORD` (secret), `DATABASE_MAX_CONNECTIONS`.
    pub pool: PgPool,
    /// `AUTH_JWKS_URL` or `AUTH_JWKS_FILE` (+ `AUTH_ISSUER`, `AUTH_AUDIENCE`).
    pub verifier: Verifier,
    /// `AMQP_URL` (+ `AMQP_PASSWORD` secret); `None`: no events, so no messages.
    pub events: Option<EventsConfig>,
    /// `EMAIL_PROVIDER`, `SMS_PROVIDER` and their settings.
    pub providers: Providers,
    /// `NOTIFICATION_TEMPLATES_DIR`: the merchant's templates.
    pub templates_dir: Option<PathBuf>,
    /// `SHOP_NAME`, `SHOP_URL`.
    pub shop: Shop,
    /// `NOTIFICATION_MAX_ATTEMPTS`, `NOTIFICATION_RETRY_BASE_MS`, `NOTIFICATION_RETRY_MAX_MS`.
    pub policy: Policy,
    /// `NOTIFICATION_POLL_MS`: how often the delivery worker looks for due messages.
    pub poll: Duration,
    /// `SHUTDOWN_DRAIN_MS`.
    pub drain: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("providers", &self.providers)
            .field("events", &self.events.is_some())
            .field("templates_dir", &self.templates_dir)
            .field("shop", &self.shop)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A development config: the outbox for email and SMS, no events, built-in templates.
    pub fn new(addr: SocketAddr, pool: PgPool, verifier: Verifier) -> Config {
        Config {
            addr,
            pool,
            verifier,
            events: None,
            providers: Providers {
                email: Arc::new(Outbox),
                sms: Some(Arc::new(Outbox)),
            },
            templates_dir: None,
            shop: Shop {
                name: "Shopstack".into(),
                url: "http://localhost:8080".into(),
            },
            policy: Policy::default(),
            poll: Duration::from_millis(500),
            drain: Duration::from_millis(3000),
        }
    }

    /// Must run inside a Tokio runtime (the pool spawns its maintenance task).
    pub fn from_settings(settings: &Settings) -> Result<Config, ConfigError> {
        // SHOP_MODE, else SHOPSTACK_MODE (what shopctl sets for every service).
        let mode: ShopMode = if settings.get("SHOP_MODE").is_none() {
            settings.parse_or("SHOPSTACK_MODE", ShopMode::Development)?
        } else {
            settings.parse_or("SHOP_MODE", ShopMode::Development)?
        };
        let shop = Shop {
            name: settings.get("SHOP_NAME").unwrap_or("Shopstack").to_owned(),
            url: settings
                .get("SHOP_URL")
                .unwrap_or("http://localhost:8080")
                .to_owned(),
        };
        let providers = providers_from_settings(settings, mode, &shop)?;
        let policy = policy_from_settings(settings)?;
        let poll =
            Duration::from_millis(settings.parse_or("NOTIFICATION_POLL_MS", 500u64)?.max(10));
        let addr = shopkit::cli::bind_addr(settings)?;
        let drain = shopkit::cli::drain_period(settings)?;
        let pool = shopkit::db::pool_from_settings(settings)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let verifier = Verifier::from_settings(settings)?;
        let events = EventsConfig::from_settings(settings)?;
        Ok(Config {
            addr,
            pool,
            verifier,
            events,
            providers,
            templates_dir: settings
                .get("NOTIFICATION_TEMPLATES_DIR")
                .map(PathBuf::from),
            shop,
            policy,
            poll,
            drain,
        })
    }
}

fn policy_from_settings(settings: &Settings) -> Result<Policy, ConfigError> {
    let defaults = Policy::default();
    let max_attempts: u32 =
        settings.parse_or("NOTIFICATION_MAX_ATTEMPTS", defaults.max_attempts)?;
    if max_attempts == 0 {
        return Err(ConfigError {
            name: "NOTIFICATION_MAX_ATTEMPTS".into(),
            problem: "must be at least 1".into(),
        });
    }
    let ms = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(settings.parse_or(
            name,
            u64::try_from(default.as_millis()).unwrap_or(u64::MAX),
        )?))
    };
    Ok(Policy {
        max_attempts,
        base_backoff: ms("NOTIFICATION_RETRY_BASE_MS", defaults.base_backoff)?,
        max_backoff: ms("NOTIFICATION_RETRY_MAX_MS", defaults.max_backoff)?,
        ..defaults
    })
}

fn sender(settings: &Settings, shop: &Shop, provider: &str) -> Result<Sender, ConfigError> {
    let email = settings.required(
        "NOTIFICATION_FROM_EMAIL",
        &format!("the {provider} provider sends from this address, e.g. shop@example.com"),
    )?;
    if !email.contains('@') {
        return Err(ConfigError {
            name: "NOTIFICATION_FROM_EMAIL".into(),
            problem: format!("has the malformed value {email:?}: expected an email address"),
        });
    }
    Ok(Sender {
        email,
        name: settings
            .get("NOTIFICATION_FROM_NAME")
            .unwrap_or(&shop.name)
            .to_owned(),
    })
}

fn client() -> Result<reqwest::Client, ConfigError> {
    crate::provider::http_client().map_err(|e| ConfigError {
        name: "EMAIL_PROVIDER".into(),
        problem: format!("needs an HTTP client, which could not be built: {e:#}"),
    })
}

/// The providers the settings name (or imply: a SendGrid key means SendGrid, an SMTP
/// host SMTP, a Twilio account Twilio; nothing means the outbox, in development only).
pub fn providers_from_settings(
    settings: &Settings,
    mode: ShopMode,
    shop: &Shop,
) -> Result<Providers, ConfigError> {
    let sendgrid_key = settings.secret("SENDGRID_API_KEY")?;
    let email_choice = match settings.get("EMAIL_PROVIDER") {
        Some(name) => name.to_owned(),
        None if sendgrid_key.is_some() => sendgrid::NAME.into(),
        None if settings.get("SMTP_HOST").is_some() => "smtp".into(),
        None if mode == ShopMode::Production => {
            return Err(ConfigError {
                name: "EMAIL_PROVIDER".into(),
                problem: "is not set and no SENDGRID_API_KEY or SMTP_HOST is configured: with \
                          SHOP_MODE=production emails must leave the shop; configure SendGrid or \
                          SMTP, or set EMAIL_PROVIDER=outbox to keep them in the shop's outbox \
                          on purpose"
                    .into(),
            });
        }
        None => outbox::NAME.into(),
    };
    let email: Arc<dyn Provider> = match email_choice.as_str() {
        sendgrid::NAME => {
            let key = match sendgrid_key {
                Some(key) => key,
                None => settings.required_secret(
                    "SENDGRID_API_KEY",
                    "EMAIL_PROVIDER=sendgrid needs an API key with the Mail Send permission",
                )?,
            };
            let base = settings
                .get("SENDGRID_API_BASE")
                .unwrap_or(sendgrid::DEFAULT_BASE);
            Arc::new(SendGrid::new(
                client()?,
                base,
                key,
                sender(settings, shop, "sendgrid")?,
            ))
        }
        "smtp" => {
            let host = settings.required(
                "SMTP_HOST",
                "EMAIL_PROVIDER=smtp needs the server's host name",
            )?;
            let security: Security = settings.parse_or("SMTP_TLS", Security::StartTls)?;
            let default_port = match security {
                Security::Tls => 465,
                Security::StartTls => 587,
                Security::None => 25,
            };
            let credentials = match settings.get("SMTP_USERNAME") {
                None => None,
                Some(user) => Some((
                    user.to_owned(),
                    settings.required_secret(
                        "SMTP_PASSWORD",
                        "SMTP_USERNAME is set, so the password is needed",
                    )?,
                )),
            };
            let smtp = SmtpSettings {
                host,
                port: settings.parse_or("SMTP_PORT", default_port)?,
                security,
                credentials,
            };
            Arc::new(
                Smtp::new(&smtp, sender(settings, shop, "smtp")?).map_err(|e| ConfigError {
                    name: "SMTP_HOST".into(),
                    problem: format!("cannot be used: {e:#}"),
                })?,
            )
        }
        outbox::NAME => Arc::new(Outbox),
        other => {
            return Err(ConfigError {
                name: "EMAIL_PROVIDER".into(),
                problem: format!(
                    "has the unknown value {other:?}: expected sendgrid, smtp or outbox"
                ),
            });
        }
    };

    let sms_choice = match settings.get("SMS_PROVIDER") {
        Some(name) => name.to_owned(),
        None if settings.get("TWILIO_ACCOUNT_SID").is_some() => twilio::NAME.into(),
        // Texts are optional: a production shop without an SMS provider sends none.
        None if mode == ShopMode::Production => "none".into(),
        None => outbox::NAME.into(),
    };
    let sms: Option<Arc<dyn Provider>> = match sms_choice.as_str() {
        twilio::NAME => {
            let sid = settings.required(
                "TWILIO_ACCOUNT_SID",
                "SMS_PROVIDER=twilio needs the account SID (AC…)",
            )?;
            let token = settings.required_secret(
                "TWILIO_AUTH_TOKEN",
                "SMS_PROVIDER=twilio needs the account's auth token",
            )?;
            let from = match (
                settings.get("TWILIO_MESSAGING_SERVICE_SID"),
                settings.get("TWILIO_FROM"),
            ) {
                (Some(service), _) => From::MessagingService(service.to_owned()),
                (None, Some(number)) => From::Number(number.to_owned()),
                (None, None) => {
                    return Err(ConfigError {
                        name: "TWILIO_FROM".into(),
                        problem: "is not set: texts need a sender, a Twilio number (+15005550006) \
                                  or TWILIO_MESSAGING_SERVICE_SID"
                            .into(),
                    });
                }
            };
            let base = settings
                .get("TWILIO_API_BASE")
                .unwrap_or(twilio::DEFAULT_BASE);
            Some(Arc::new(Twilio::new(client()?, base, sid, token, from)))
        }
        outbox::NAME => Some(Arc::new(Outbox)),
        "none" => None,
        other => {
            return Err(ConfigError {
                name: "SMS_PROVIDER".into(),
                problem: format!(
                    "has the unknown value {other:?}: expected twilio, outbox or none"
                ),
            });
        }
    };
    Ok(Providers { email, sms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .chain([("SECRETS_DIR".to_owned(), "/nonexistent".to_owned())]),
        )
    }

    fn shop() -> Shop {
        Shop {
            name: "S".into(),
            url: "http://s".into(),
        }
    }

    #[test]
    fn without_keys_development_uses_the_outbox_and_production_refuses() {
        let p = providers_from_settings(&settings(&[]), ShopMode::Development, &shop()).unwrap();
        assert_eq!(p.email.name(), "outbox");
        assert_eq!(p.sms.as_ref().unwrap().name(), "outbox");

        let err =
            providers_from_settings(&settings(&[]), ShopMode::Production, &shop()).unwrap_err();
        assert_eq!(err.name, "EMAIL_PROVIDER");
        assert!(err.problem.contains("EMAIL_PROVIDER=outbox"), "{err}");

        let p = providers_from_settings(
            &settings(&[("EMAIL_PROVIDER", "outbox")]),
            ShopMode::Production,
            &shop(),
        )
        .unwrap();
        assert_eq!(p.email.name(), "outbox");
        assert!(p.sms.is_none());
    }

    #[test]
    fn keys_choose_their_provider_and_missing_settings_are_named() {
        let p = providers_from_settings(
            &settings(&[
                ("SENDGRID_API_KEY", "SG.x"),
                ("NOTIFICATION_FROM_EMAIL", "shop@example.com"),
                ("TWILIO_ACCOUNT_SID", "AC1"),
                ("TWILIO_AUTH_TOKEN", "t"),
                ("TWILIO_FROM", "+15005550006"),
            ]),
            ShopMode::Production,
            &shop(),
        )
        .unwrap();
        assert_eq!(p.email.name(), "sendgrid");
        assert_eq!(p.sms.as_ref().unwrap().name(), "twilio");

        let err = providers_from_settings(
            &settings(&[("SENDGRID_API_KEY", "SG.x")]),
            ShopMode::Development,
            &shop(),
        )
        .unwrap_err();
        assert_eq!(err.name, "NOTIFICATION_FROM_EMAIL");
        let err = providers_from_settings(
            &settings(&[("SMS_PROVIDER", "twilio"), ("TWILIO_ACCOUNT_SID", "AC1")]),
            ShopMode::Development,
            &shop(),
        )
        .unwrap_err();
        assert_eq!(err.name, "TWILIO_AUTH_TOKEN");
        let err = providers_from_settings(
            &settings(&[("EMAIL_PROVIDER", "pigeon")]),
            ShopMode::Development,
            &shop(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"pigeon\""), "{err}");
        let p = providers_from_settings(
            &settings(&[
                ("SMTP_HOST", "mail.example.com"),
                ("NOTIFICATION_FROM_EMAIL", "a@b.c"),
                ("SMTP_TLS", "none"),
            ]),
            ShopMode::Development,
            &shop(),
        )
        .unwrap();
        assert_eq!(p.email.name(), "smtp");
    }
}
