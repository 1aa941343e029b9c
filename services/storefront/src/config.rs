//! The storefront's settings, read once at start-up (the README lists them). A missing or
//! malformed one stops the service with a message naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shopkit::config::{ConfigError, Settings};

/// The shop's look, from `shop.toml` through the environment shopctl sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    /// `SHOP_NAME` (default `Shopstack`).
    pub name: String,
    /// `SHOP_PRIMARY_COLOR` (default `#1f4e79`): links, buttons, the header.
    pub primary: String,
    /// `SHOP_ACCENT_COLOR` (default `#c2410c`): the cart badge, sale marks.
    pub accent: String,
    /// `SHOP_LOGO_URL`: an image path or URL shown in the header instead of the name.
    pub logo_url: Option<String>,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            name: "Shopstack".into(),
            primary: "#1f4e79".into(),
            accent: "#c2410c".into(),
            logo_url: None,
        }
    }
}

/// The services the storefront calls (base URLs without a trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    pub catalog: String,
    pub user: String,
    pub cart: String,
    pub order: String,
    pub payment: String,
    /// `NOTIFICATION_URL`: when set, the account links to notification preferences.
    pub notification: Option<String>,
}

/// Everything `serve` needs. Tests build it with [`Config::new`].
#[derive(Debug, Clone)]
pub struct Config {
    /// `BIND_ADDR` (default `0.0.0.0`) and `PORT` (default 8080; 0 picks a free port).
    pub addr: SocketAddr,
    pub upstreams: Upstreams,
    /// `STOREFRONT_THEME_DIR`: templates (`templates/*.html`) and assets (`static/*`)
    /// that replace the embedded default theme, file by file.
    pub theme_dir: Option<PathBuf>,
    pub branding: Branding,
    /// `STOREFRONT_SESSION_KEY` (secret; 64 hex digits): the key that encrypts session
    /// cookies. Unset: a random key per process (sessions end at a restart and do not
    /// cross replicas), with a warning.
    pub session_key: Option<[u8; 32]>,
    /// `STOREFRONT_COOKIE_SECURE` (default `true`): mark the session cookie `Secure`.
    /// Only a shop served over plain HTTP (a local test) turns it off.
    pub cookie_secure: bool,
    /// `UPSTREAM_TIMEOUT_MS` (default 5000): the longest a call to a service may take.
    pub upstream_timeout: Duration,
    /// `CATALOG_CACHE_MS` (default 2000; 0 turns it off): how long an anonymous catalog
    /// read that every visitor shares (the category tree, a category's listing) is
    /// reused. Writes through this storefront's admin clear it at once.
    pub catalog_cache: Duration,
    /// `SHUTDOWN_DRAIN_MS`: how long readiness fails before the listener closes.
    pub drain: Duration,
}

fn url(settings: &Settings, name: &str, example: &str) -> Result<String, ConfigError> {
    let value = settings.required(name, &format!("the service's base URL, e.g. {example}"))?;
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(ConfigError {
            name: name.into(),
            problem: format!("has the malformed value {value:?}: expected an http(s):// URL"),
        });
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// A CSS colour we are willing to write into the theme's stylesheet: `#rgb` or `#rrggbb`.
pub fn parse_color(name: &str, value: &str) -> Result<String, ConfigError> {
    let hex = value.strip_prefix('#').unwrap_or("");
    if (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(ConfigError {
            name: name.into(),
            problem: format!("has the malformed value {value:?}: expected #rgb or #rrggbb"),
        })
    }
}

fn parse_key(value: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = hex::decode(value.trim()).map_err(|e| ConfigError {
        name: "STOREFRONT_SESSION_KEY".into(),
        problem: format!("is not hex: {e}"),
    })?;
    bytes.try_into().map_err(|_| ConfigError {
        name: "STOREFRONT_SESSION_KEY".into(),
        problem: "must be 32 bytes (64 hex digits)".into(),
    })
}

impl Config {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let branding = Branding {
            name: settings.get("SHOP_NAME").unwrap_or("Shopstack").to_owned(),
            primary: parse_color(
                "SHOP_PRIMARY_COLOR",
                settings.get("SHOP_PRIMARY_COLOR").unwrap_or("#1f4e79"),
            )?,
            accent: parse_color(
                "SHOP_ACCENT_COLOR",
                settings.get("SHOP_ACCENT_COLOR").unwrap_or("#c2410c"),
            )?,
            logo_url: settings
                .get("SHOP_LOGO_URL")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        };
        let notification = match settings.get("NOTIFICATION_URL") {
            Some(v) if !v.is_empty() => Some(url(
                settings,
                "NOTIFICATION_URL",
                "http://notification:8080",
            )?),
            _ => None,
        };
        Ok(Config {
            addr: shopkit::cli::bind_addr(settings)?,
            upstreams: Upstreams {
                catalog: url(settings, "CATALOG_URL", "http://catalog:8080")?,
                user: url(settings, "USER_URL", "http://user:8080")?,
                cart: url(settings, "CART_URL", "http://cart:8080")?,
                order: url(settings, "ORDER_URL", "http://order:8080")?,
                payment: url(settings, "PAYMENT_URL", "http://payment:8080")?,
                notification,
            },
            theme_dir: settings
                .get("STOREFRONT_THEME_DIR")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            branding,
            session_key: settings
                .secret("STOREFRONT_SESSION_KEY")?
                .map(|v| parse_key(&v))
                .transpose()?,
            cookie_secure: settings.parse_or("STOREFRONT_COOKIE_SECURE", true)?,
            upstream_timeout: Duration::from_millis(
                settings.parse_or("UPSTREAM_TIMEOUT_MS", 5000)?,
            ),
            catalog_cache: Duration::from_millis(settings.parse_or("CATALOG_CACHE_MS", 2000)?),
            drain: shopkit::cli::drain_period(settings)?,
        })
    }
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

    const BASE: [(&str, &str); 6] = [
        ("CATALOG_URL", "http://catalog:8080/"),
        ("USER_URL", "http://user:8080"),
        ("CART_URL", "http://cart:8080"),
        ("ORDER_URL", "http://order:8080"),
        ("PAYMENT_URL", "http://payment:8080"),
        ("SECRETS_DIR", "/nonexistent"),
    ];

    #[test]
    fn defaults_and_trailing_slashes() {
        let config = Config::from_settings(&settings(&BASE)).unwrap();
        assert_eq!(config.upstreams.catalog, "http://catalog:8080");
        assert!(config.cookie_secure, "Secure is on unless turned off");
        assert_eq!(config.branding, Branding::default());
        assert!(config.session_key.is_none());
    }

    #[test]
    fn a_missing_service_url_is_named() {
        let err = Config::from_settings(&settings(&BASE[1..])).unwrap_err();
        assert!(err.to_string().contains("CATALOG_URL is not set"), "{err}");
    }

    #[test]
    fn colours_must_be_hex_so_nothing_else_reaches_the_stylesheet() {
        assert_eq!(parse_color("X", "#ABC").unwrap(), "#abc");
        assert!(parse_color("X", "red;}body{display:none").is_err());
        let mut pairs = BASE.to_vec();
        pairs.push(("SHOP_PRIMARY_COLOR", "blue"));
        let err = Config::from_settings(&settings(&pairs)).unwrap_err();
        assert!(err.to_string().contains("SHOP_PRIMARY_COLOR"), "{err}");
    }

    #[test]
    fn the_session_key_is_32_hex_bytes() {
        let mut pairs = BASE.to_vec();
        pairs.push(("STOREFRONT_SESSION_KEY", "00ff"));
        assert!(Config::from_settings(&settings(&pairs)).is_err());
        let key = "11".repeat(32);
        let mut pairs = BASE.to_vec();
        pairs.push(("STOREFRONT_SESSION_KEY", &key));
        assert_eq!(
            Config::from_settings(&settings(&pairs))
                .unwrap()
                .session_key,
            Some([0x11; 32])
        );
    }
}
