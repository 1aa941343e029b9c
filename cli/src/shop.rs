//! A shop: its directory, its `shop.toml`, and the checks that run before anything
//! touches the engine.
//!
//! Parse errors and semantic errors both carry the line and column in `shop.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use stack::{Profile, Stack};
use toml::Spanned;

pub const SHOP_FILE: &str = "shop.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopSection {
    pub name: Spanned<String>,
    #[serde(default = "localhost")]
    pub domain: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "core_only")]
    pub profiles: Spanned<Vec<String>>,
    /// Load the demo catalog after the first migration.
    #[serde(default)]
    pub demo: bool,
    /// How the gateway and Prometheus find replicas (`crate::discovery`).
    #[serde(default = "docker_discovery")]
    pub discovery: Spanned<crate::discovery::Mode>,
}

fn localhost() -> String {
    "localhost".into()
}

fn docker_discovery() -> Spanned<crate::discovery::Mode> {
    Spanned::new(0..0, crate::discovery::Mode::Docker)
}

fn core_only() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["core".into()])
}

/// Per-component settings a merchant may change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSettings {
    pub image: Option<String>,
    pub replicas: Option<Spanned<i64>>,
    /// Memory limit, e.g. "512m", "1g".
    pub memory: Option<Spanned<String>>,
    /// CPU limit in cores, e.g. 0.5.
    pub cpus: Option<Spanned<f64>>,
    /// Host port per named port of the component (`http = 8080`).
    #[serde(default)]
    pub ports: BTreeMap<String, Spanned<i64>>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The gateway's rate limit on this component's route, instead of `[gateway]`'s.
    pub rate_limit: Option<Spanned<RateLimit>>,
}

/// Traefik's `ratelimit` per client IP: `average` requests per second sustained, bursts
/// of up to `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub average: i64,
    pub burst: i64,
}

impl Default for RateLimit {
    /// A browser opening a page makes a few dozen requests at once; 100/s sustained per
    /// client IP leaves room for a shop's busiest pages and stops a single scraper.
    fn default() -> Self {
        Self {
            average: 100,
            burst: 200,
        }
    }
}

/// `[gateway]`: TLS and the default rate limit of every route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// With a public `domain`, the gateway gets its certificate from Let's Encrypt for
    /// this address; without one it serves a self-signed certificate.
    pub acme_email: Option<String>,
    /// Every route's limit unless its component sets its own.
    pub rate_limit: Option<Spanned<RateLimit>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payments {
    #[serde(default = "test_provider")]
    pub provider: String,
}

fn test_provider() -> String {
    "test".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    pub email: Option<String>,
    pub sms: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopFile {
    pub shop: ShopSection,
    #[serde(default)]
    pub components: BTreeMap<Spanned<String>, ComponentSettings>,
    #[serde(default)]
    pub payments: Option<Payments>,
    #[serde(default)]
    pub notifications: Option<Notifications>,
    #[serde(default)]
    pub gateway: GatewaySection,
}

/// A problem in `shop.toml`, located.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("no {SHOP_FILE} in {0}: create a shop with `shopctl init {0}`, or pass --shop DIR")]
    Missing(String),
    #[error("cannot read {path}: {cause}")]
    Unreadable { path: String, cause: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    #[error("the embedded stack definition is invalid: {0}")]
    Stack(#[from] stack::StackError),
}

/// A loaded, checked shop.
#[derive(Debug, Clone)]
pub struct Shop {
    pub dir: PathBuf,
    pub file: ShopFile,
    pub stack: Stack,
}

/// Where shop.toml's text lives, to turn byte spans into line and column.
struct Source<'a> {
    file: String,
    text: &'a str,
}

impl Source<'_> {
    fn at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        let offset = span.map_or(0, |s| s.start).min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl Shop {
    pub fn load(dir: &Path) -> Result<Self, ShopError> {
        let path = dir.join(SHOP_FILE);
        if !path.exists() {
            return Err(ShopError::Missing(dir.display().to_string()));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ShopError::Unreadable {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        let file = parse(&text, &path.display().to_string()).map_err(ShopError::Invalid)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            stack: Stack::embedded()?,
        })
    }

    pub fn name(&self) -> &str {
        self.file.shop.name.get_ref()
    }

    pub fn network(&self) -> String {
        format!("shopstack-{}", self.name())
    }

    pub fn profiles(&self) -> Vec<Profile> {
        let mut profiles: Vec<Profile> = self
            .file
            .shop
            .profiles
            .get_ref()
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        if !profiles.contains(&Profile::Core) {
            profiles.insert(0, Profile::Core);
        }
        profiles
    }

    pub fn settings(&self, component: &str) -> Option<&ComponentSettings> {
        self.file
            .components
            .iter()
            .find(|(k, _)| k.get_ref() == component)
            .map(|(_, v)| v)
    }

    /// The components this shop runs: those of its profiles.
    pub fn enabled(&self) -> Vec<&stack::Component> {
        let profiles = self.profiles();
        self.stack
            .components
            .iter()
            .filter(|c| profiles.contains(&c.profile))
            .collect()
    }

    pub fn image(&self, component: &stack::Component) -> String {
        self.settings(&component.name)
            .and_then(|s| s.image.clone())
            .unwrap_or_else(|| {
                component
                    .image
                    .replace("{version}", env!("CARGO_PKG_VERSION"))
            })
    }

    pub fn replicas(&self, component: &stack::Component) -> u32 {
        self.settings(&component.name)
            .and_then(|s| s.replicas.as_ref())
            .and_then(|r| u32::try_from(*r.get_ref()).ok())
            .unwrap_or(component.replicas)
    }

    /// The gateway's rate limit on `component`'s route: its own, else `[gateway]`'s,
    /// else the default.
    pub fn rate_limit(&self, component: &str) -> RateLimit {
        self.settings(component)
            .and_then(|s| s.rate_limit.as_ref())
            .or(self.file.gateway.rate_limit.as_ref())
            .map_or_else(RateLimit::default, |r| *r.get_ref())
    }

    /// Host port for a named port: shop.toml's, else the stack default, else unpublished.
    pub fn host_port(&self, component: &stack::Component, port: &stack::Port) -> Option<u16> {
        match self
            .settings(&component.name)
            .and_then(|s| s.ports.get(&port.name))
        {
            Some(p) => u16::try_from(*p.get_ref()).ok().filter(|p| *p != 0),
            None => port.host,
        }
    }
}

/// Parses and checks shop.toml's text: syntax first, then meaning.
pub fn parse(text: &str, file: &str) -> Result<ShopFile, Vec<Diagnostic>> {
    let src = Source {
        file: file.to_owned(),
        text,
    };
    let parsed: ShopFile = toml::from_str(text).map_err(|e| {
        // toml's message repeats the location and a source excerpt; keep its first line.
        let message = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_owned();
        vec![src.at(e.span(), message)]
    })?;
    let stack = Stack::embedded().map_err(|e| vec![src.at(None, e.to_string())])?;
    let problems = check(&parsed, &stack, &src);
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

fn check(file: &ShopFile, stack: &Stack, src: &Source<'_>) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let name = file.shop.name.get_ref();
    let valid_name = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !valid_name {
        problems.push(src.at(
            Some(file.shop.name.span()),
            format!("shop name {name:?} must be 1-40 lower-case letters, digits or '-' (it names Docker objects)"),
        ));
    }
    for profile in file.shop.profiles.get_ref() {
        if let Err(e) = profile.parse::<Profile>() {
            problems.push(src.at(Some(file.shop.profiles.span()), e));
        }
    }
    let discovery = &file.shop.discovery;
    if *discovery.get_ref() == crate::discovery::Mode::Consul
        && !file
            .shop
            .profiles
            .get_ref()
            .iter()
            .any(|p| p == "discovery")
    {
        problems.push(src.at(
            Some(discovery.span()),
            "discovery = \"consul\" needs Consul: add \"discovery\" to [shop] profiles (or use discovery = \"docker\")".to_owned(),
        ));
    }
    let rate_limits = file
        .components
        .values()
        .filter_map(|s| s.rate_limit.as_ref())
        .chain(file.gateway.rate_limit.as_ref());
    for limit in rate_limits {
        let RateLimit { average, burst } = *limit.get_ref();
        if !(1..=1_000_000).contains(&average) || !(1..=1_000_000).contains(&burst) {
            problems.push(src.at(
                Some(limit.span()),
                format!("rate_limit average and burst must be 1 to 1000000 requests, not {average} and {burst}"),
            ));
        }
    }
    if let Some(email) = &file.gateway.acme_email
        && !email.contains('@')
    {
        problems.push(src.at(
            None,
            format!("[gateway] acme_email {email:?} is not an email address"),
        ));
    }
    let mut host_ports: BTreeMap<u16, String> = BTreeMap::new();
    let mut claim = |port: u16,
                     who: String,
                     span: Option<Range<usize>>,
                     problems: &mut Vec<Diagnostic>| {
        if let Some(other) = host_ports.get(&port) {
            problems.push(src.at(span, format!("host port {port} is used by both {other} and {who}; give one of them another port")));
        } else {
            host_ports.insert(port, who);
        }
    };
    for (key, settings) in &file.components {
        let Some(component) = stack.get(key.get_ref()) else {
            problems.push(src.at(
                Some(key.span()),
                format!(
                    "unknown component {:?}; components are {}",
                    key.get_ref(),
                    stack.names().join(", ")
                ),
            ));
            continue;
        };
        if let Some(limit) = &settings.rate_limit
            && component.route.is_none()
        {
            problems.push(src.at(
                Some(limit.span()),
                format!(
                    "{} has no route through the gateway; rate_limit applies to routed services only",
                    component.name
                ),
            ));
        }
        if let Some(replicas) = &settings.replicas {
            let n = *replicas.get_ref();
            if n < 0 {
                problems.push(src.at(
                    Some(replicas.span()),
                    format!("replicas must be 0 or more, not {n}"),
                ));
            } else if n > 1 && !component.scalable {
                problems.push(src.at(
                    Some(replicas.span()),
                    format!(
                        "{} keeps state and runs as one replica; replicas = {n} is not possible",
                        component.name
                    ),
                ));
            } else if n > 64 {
                problems.push(src.at(
                    Some(replicas.span()),
                    format!("replicas = {n} is more than 64 on one host"),
                ));
            }
        }
        if let Some(memory) = &settings.memory
            && parse_memory(memory.get_ref()).is_none()
        {
            problems.push(src.at(
                Some(memory.span()),
                format!(
                    "memory {:?} is not a size like \"512m\" or \"1g\"",
                    memory.get_ref()
                ),
            ));
        }
        if let Some(cpus) = &settings.cpus
            && !(*cpus.get_ref() > 0.0 && *cpus.get_ref() <= 1024.0)
        {
            problems.push(src.at(
                Some(cpus.span()),
                "cpus must be a positive number of cores, e.g. 0.5",
            ));
        }
        for (port_name, port) in &settings.ports {
            if !component.ports.iter().any(|p| &p.name == port_name) {
                let known: Vec<&str> = component.ports.iter().map(|p| p.name.as_str()).collect();
                problems.push(src.at(
                    Some(port.span()),
                    format!(
                        "{} has no port named {port_name:?}; its ports are {}",
                        component.name,
                        known.join(", ")
                    ),
                ));
                continue;
            }
            match u16::try_from(*port.get_ref()) {
                Ok(0) => {}
                Ok(p) => claim(
                    p,
                    format!("{}.{port_name}", component.name),
                    Some(port.span()),
                    &mut problems,
                ),
                Err(_) => problems.push(src.at(
                    Some(port.span()),
                    format!("port {} is not between 0 and 65535", port.get_ref()),
                )),
            }
        }
    }
    if let Some(payments) = &file.payments
        && !["test", "stripe", "paypal"].contains(&payments.provider.as_str())
    {
        problems.push(src.at(
            None,
            format!(
                "[payments] provider = {:?} is not one of \"test\", \"stripe\", \"paypal\"",
                payments.provider
            ),
        ));
    }
    // Default host ports of components not overridden in shop.toml also count.
    let profiles: Vec<Profile> = file
        .shop
        .profiles
        .get_ref()
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    for component in stack
        .components
        .iter()
        .filter(|c| c.profile == Profile::Core || profiles.contains(&c.profile))
    {
        let overrides = file
            .components
            .iter()
            .find(|(k, _)| k.get_ref() == &component.name)
            .map(|(_, v)| v);
        for port in &component.ports {
            if overrides.is_some_and(|o| o.ports.contains_key(&port.name)) {
                continue;
            }
            if let Some(p) = port.host {
                claim(
                    p,
                    format!("{}.{}", component.name, port.name),
                    None,
                    &mut problems,
                );
            }
        }
    }
    problems
}

/// "512m" → bytes. Accepts k, m, g (binary multiples) and plain bytes.
pub fn parse_memory(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let n: i64 = digits.parse().ok()?;
    let factor = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor).filter(|b| *b >= 6 << 20)
}

/// Every image the stack may name (upstream and local), for `init`'s presence check.
pub fn known_images() -> Vec<String> {
    let Ok(stack) = Stack::embedded() else {
        return Vec::new();
    };
    stack
        .components
        .iter()
        .flat_map(|c| {
            std::iter::once(c.image.replace("{version}", env!("CARGO_PKG_VERSION")))
                .chain(c.local_image.clone())
        })
        .collect()
}

/// How to get an image that is not on the engine.
pub fn image_remedy(image: &str) -> String {
    if image.starts_with("shopstack/") {
        "build it with `shopctl images build` (from the Shopstack source tree), or load an archive with \
         `shopctl images load FILE`"
            .into()
    } else {
        let local = Stack::embedded().ok().and_then(|s| {
            s.components
                .iter()
                .find(|c| c.image == image)
                .and_then(|c| c.local_image.clone())
        });
        match local {
            Some(local) => format!(
                "no registry is reachable: build the local replacement with `shopctl images build` and set \
                 image = \"{local}\" in shop.toml (or `docker load` an archive of {image})"
            ),
            None => format!(
                "it has no local source: on a machine with registry access run `docker save {image} -o image.tar`, \
                 copy the file here and run `shopctl images load image.tar`; or disable its profile in shop.toml"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse(text, "shop.toml")
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn consul_discovery_needs_the_discovery_profile() {
        let errs = errors("[shop]\nname = \"demo\"\ndiscovery = \"consul\"\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("shop.toml:3:13:"), "{errs:?}");
        assert!(
            errs[0].contains("add \"discovery\" to [shop] profiles"),
            "{errs:?}"
        );
        assert!(
            errors("[shop]\nname = \"demo\"\nprofiles = [\"core\", \"discovery\"]\ndiscovery = \"consul\"\n")
                .is_empty()
        );
        let errs = errors("[shop]\nname = \"demo\"\ndiscovery = \"etcd\"\n");
        assert!(
            errs[0].contains("docker") && errs[0].contains("consul"),
            "{errs:?}"
        );
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let errs = errors("[shop]\nname = \"demo\"\nprofiles = [\"core\"\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("shop.toml:3:"), "{errs:?}");
        let errs = errors("[shop]\nname = \"demo\"\ncolour = \"red\"\n");
        assert!(
            errs[0].starts_with("shop.toml:3:1: unknown field `colour`"),
            "{errs:?}"
        );
    }

    #[test]
    fn semantic_errors_are_located() {
        let text = "[shop]\nname = \"demo\"\n\n[components.catalogue]\nreplicas = 2\n\n[components.catalog]\nreplicas = -1\n\n[components.postgres]\nreplicas = 3\n";
        let errs = errors(text);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("shop.toml:4:13: unknown component \"catalogue\"")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("shop.toml:8:12: replicas must be 0 or more, not -1")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("postgres keeps state")),
            "{errs:?}"
        );
    }

    #[test]
    fn two_components_on_one_host_port_are_refused() {
        let text = "[shop]\nname = \"demo\"\nprofiles = [\"core\", \"observability\"]\n[components.prometheus]\nports = { http = 8080 }\n";
        let errs = errors(text);
        assert!(
            errs.iter()
                .any(|e| e.contains("host port 8080 is used by both")),
            "{errs:?}"
        );
    }

    #[test]
    fn rate_limits_come_from_the_component_then_the_gateway_then_the_default() {
        let text = "[shop]\nname = \"demo\"\n[gateway]\nrate_limit = { average = 7, burst = 9 }\n[components.catalog]\nrate_limit = { average = 1000, burst = 2000 }\n";
        let file = parse(text, "shop.toml").unwrap();
        let shop = Shop {
            dir: PathBuf::from("."),
            file,
            stack: Stack::embedded().unwrap(),
        };
        assert_eq!(
            shop.rate_limit("catalog"),
            RateLimit {
                average: 1000,
                burst: 2000
            }
        );
        assert_eq!(
            shop.rate_limit("cart"),
            RateLimit {
                average: 7,
                burst: 9
            }
        );
        let bare = parse("[shop]\nname = \"demo\"\n", "shop.toml").unwrap();
        assert!(bare.gateway.rate_limit.is_none());
        assert_eq!(RateLimit::default().average, 100);
    }

    #[test]
    fn bad_rate_limits_and_acme_emails_are_refused() {
        let errs = errors(
            "[shop]\nname = \"demo\"\n[components.catalog]\nrate_limit = { average = 0, burst = 5 }\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("shop.toml:4:14: rate_limit average and burst")),
            "{errs:?}"
        );
        let errs = errors(
            "[shop]\nname = \"demo\"\n[components.postgres]\nrate_limit = { average = 5, burst = 5 }\n",
        );
        assert!(
            errs.iter().any(|e| e.contains("postgres has no route")),
            "{errs:?}"
        );
        let errs = errors("[shop]\nname = \"demo\"\n[gateway]\nacme_email = \"nobody\"\n");
        assert!(errs.iter().any(|e| e.contains("not an email")), "{errs:?}");
    }

    #[test]
    fn memory_sizes_parse() {
        assert_eq!(parse_memory("512m"), Some(512 << 20));
        assert_eq!(parse_memory("1G"), Some(1 << 30));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(parse_memory("1k"), None, "below Docker's 6 MiB minimum");
    }
}
