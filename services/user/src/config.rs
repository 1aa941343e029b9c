//! The service's settings, read once at start-up (see the README for the list). A
//! malformed or missing one stops the service with a message naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use shopkit::config::{ConfigError, Settings};
use shopkit::events::EventsConfig;
use sqlx::PgPool;

use crate::client::TrustedProxies;
use crate::keys::KeyRing;
use crate::password::HashParams;
use crate::throttle::{Policies, Policy};

/// Everything `serve` needs.
#[derive(Debug)]
pub struct Config {
    /// `BIND_ADDR` (default `0.0.0.0`) and `PORT` (default 8080; 0 picks a free port).
    pub addr: SocketAddr,
    /// `DATABASE_URL`, `DATABASE_PASSWORD` (secret), `DATABASE_MAX_CONNECTIONS`.
    pub pool: PgPool,
    /// `SHUTDOWN_DRAIN_MS`.
    pub drain: Duration,
    pub options: Options,
    /// `AMQP_URL` (+ the `AMQP_PASSWORD` secret): where the outbox relay publishes the
    /// service's `user.*` events. `None`: they wait in the outbox.
    pub events: Option<EventsConfig>,
}

impl Config {
    /// Must run inside a Tokio runtime (the pool spawns its maintenance task).
    pub fn from_settings(settings: &Settings) -> Result<Config, ConfigError> {
        Ok(Config {
            addr: shopkit::cli::bind_addr(settings)?,
            pool: shopkit::db::pool_from_settings(settings)?,
            drain: shopkit::cli::drain_period(settings)?,
            options: Options::from_settings(settings)?,
            events: EventsConfig::from_settings(settings)?,
        })
    }
}

/// How long each kind of token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// `REFRESH_TOKEN_TTL_SECS` (default 30 days): each use rotates it and starts afresh.
    pub refresh: Duration,
    /// `EMAIL_VERIFICATION_TTL_SECS` (default 1 day).
    pub email_verification: Duration,
    /// `PASSWORD_RESET_TTL_SECS` (default 1 hour).
    pub password_reset: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(30 * 86_400),
            email_verification: Duration::from_secs(86_400),
            password_reset: Duration::from_secs(3600),
        }
    }
}

/// The service's own settings (everything but the listener and the database).
#[derive(Debug)]
pub struct Options {
    /// Signing key, retired keys, issuer, audience, access-token lifetime.
    pub keys: KeyRing,
    /// `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM`.
    pub hash: HashParams,
    /// `PASSWORD_HASH_CONCURRENCY` (default: the number of CPUs): hashes in flight at once.
    pub hash_concurrency: usize,
    pub lifetimes: Lifetimes,
    /// `LOGIN_*`.
    pub throttle: Policies,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
}

impl Options {
    pub fn from_settings(settings: &Settings) -> Result<Options, ConfigError> {
        let hash = hash_params(settings)?;
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let hash_concurrency = settings.parse_or("PASSWORD_HASH_CONCURRENCY", cpus)?;
        if hash_concurrency == 0 {
            return Err(invalid("PASSWORD_HASH_CONCURRENCY", "must be at least 1"));
        }
        let defaults = Lifetimes::default();
        let lifetimes = Lifetimes {
            refresh: seconds(settings, "REFRESH_TOKEN_TTL_SECS", defaults.refresh, 60)?,
            email_verification: seconds(
                settings,
                "EMAIL_VERIFICATION_TTL_SECS",
                defaults.email_verification,
                1,
            )?,
            password_reset: seconds(
                settings,
                "PASSWORD_RESET_TTL_SECS",
                defaults.password_reset,
                1,
            )?,
        };
        Ok(Options {
            keys: KeyRing::from_settings(settings)?,
            hash,
            hash_concurrency,
            lifetimes,
            throttle: throttle(settings)?,
            trusted_proxies: TrustedProxies::from_settings(settings)?,
        })
    }
}

fn invalid(name: &str, problem: &str) -> ConfigError {
    ConfigError {
        name: name.into(),
        problem: problem.into(),
    }
}

/// A duration in whole seconds, at least `min`.
fn seconds(
    settings: &Settings,
    name: &str,
    default: Duration,
    min: u64,
) -> Result<Duration, ConfigError> {
    let secs: u64 = settings.parse_or(name, default.as_secs())?;
    if secs < min {
        return Err(invalid(name, &format!("must be at least {min} seconds")));
    }
    Ok(Duration::from_secs(secs))
}

/// Argon2id parameters; `create-admin` needs only these and the database.
pub fn hash_params(settings: &Settings) -> Result<HashParams, ConfigError> {
    let d = HashParams::DEFAULT;
    let params = HashParams {
        memory_kib: settings.parse_or("ARGON2_MEMORY_KIB", d.memory_kib)?,
        iterations: settings.parse_or("ARGON2_ITERATIONS", d.iterations)?,
        parallelism: settings.parse_or("ARGON2_PARALLELISM", d.parallelism)?,
    };
    if params.iterations == 0 {
        return Err(invalid("ARGON2_ITERATIONS", "must be at least 1"));
    }
    if !(1..=255).contains(&params.parallelism) {
        return Err(invalid("ARGON2_PARALLELISM", "must be 1 to 255"));
    }
    if params.memory_kib < 8 * params.parallelism {
        return Err(invalid(
            "ARGON2_MEMORY_KIB",
            "must be at least 8 KiB per lane (ARGON2_PARALLELISM)",
        ));
    }
    Ok(params)
}

fn throttle(settings: &Settings) -> Result<Policies, ConfigError> {
    let d = Policy::ACCOUNT;
    let window = seconds(settings, "LOGIN_FAILURE_WINDOW_SECS", d.window, 1)?;
    let lockout_base = seconds(settings, "LOGIN_LOCKOUT_BASE_SECS", d.lockout_base, 1)?;
    let lockout_max = seconds(settings, "LOGIN_LOCKOUT_MAX_SECS", d.lockout_max, 1)?;
    if lockout_max < lockout_base {
        return Err(invalid(
            "LOGIN_LOCKOUT_MAX_SECS",
            "must not be less than LOGIN_LOCKOUT_BASE_SECS",
        ));
    }
    let shared = Policy {
        max_failures: d.max_failures,
        window,
        lockout_base,
        lockout_max,
        memory: d.memory,
    };
    let account = settings.parse_or(
        "LOGIN_MAX_FAILURES_PER_ACCOUNT",
        Policy::ACCOUNT.max_failures,
    )?;
    let address = settings.parse_or(
        "LOGIN_MAX_FAILURES_PER_ADDRESS",
        Policy::ADDRESS.max_failures,
    )?;
    for (name, value) in [
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", account),
        ("LOGIN_MAX_FAILURES_PER_ADDRESS", address),
    ] {
        if !(1..=1000).contains(&value) {
            return Err(invalid(name, "must be 1 to 1000"));
        }
    }
    Ok(Policies {
        account: Policy {
            max_failures: account,
            ..shared
        },
        address: Policy {
            max_failures: address,
            ..shared
        },
    })
}
