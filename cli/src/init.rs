//! `shopctl init`: renders `templates/` into a shop directory, with generated secrets.
//!
//! Secrets are written with mode 0600 into `secrets/` (mode 0700) and never printed; the
//! report names them, not their values.

use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Serialize;
use shopkit::auth::keys::{Signer, jwks};
use stack::{Kind, Stack};

use crate::output::Output;
use crate::shop::SHOP_FILE;

const SHOP_TEMPLATE: &str = include_str!("../../templates/shop.toml.tera");
const NOTIFICATION_TEMPLATES_README: &str = include_str!("../../templates/notifications/README.md");
const PROVISION_DATABASE: &str =
    include_str!("../../templates/config/postgres/provision-database.sh");
/// Prometheus's alert rules: copied as they are (their `{{ $labels }}` are Prometheus's).
const PROMETHEUS_ALERTS: &str = include_str!("../../templates/config/prometheus/alerts.yml");
/// Grafana's provisioning and dashboards, copied as they are; the RED dashboard is
/// written once per service with `@SERVICE@` filled in.
const GRAFANA_FILES: [(&str, &str); 4] = [
    (
        "config/grafana/provisioning/datasources/prometheus.yml",
        include_str!("../../templates/config/grafana/provisioning/datasources/prometheus.yml"),
    ),
    (
        "config/grafana/provisioning/dashboards/shopstack.yml",
        include_str!("../../templates/config/grafana/provisioning/dashboards/shopstack.yml"),
    ),
    (
        "config/grafana/dashboards/checkout-funnel.json",
        include_str!("../../templates/config/grafana/dashboards/checkout-funnel.json"),
    ),
    (
        "config/grafana/dashboards/infrastructure.json",
        include_str!("../../templates/config/grafana/dashboards/infrastructure.json"),
    ),
];
const GRAFANA_RED_TEMPLATE: &str =
    include_str!("../../templates/config/grafana/dashboards/red.json.in");
const FILEBEAT_TEMPLATE: &str = include_str!("../../templates/config/filebeat/filebeat.yml.tera");

/// How many ports above a taken default to try before giving up.
const PORT_SEARCH: u16 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ImageChoice {
    /// Locally built images where they exist on the engine, upstream names otherwise.
    #[default]
    Auto,
    /// Always the locally built replacements (`shopctl images build`).
    Local,
    /// Always the upstream images (a host with registry access).
    Upstream,
}

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub dir: PathBuf,
    pub name: Option<String>,
    pub force: bool,
    pub demo: bool,
    pub images: ImageChoice,
}

#[derive(Debug, Serialize)]
pub struct InitReport {
    pub dir: String,
    pub name: String,
    pub images: Vec<(String, String)>,
    pub ports: Vec<(String, u16)>,
    /// Names of the generated secret files (never their contents).
    pub secrets: Vec<String>,
}

#[derive(Serialize)]
struct PortView {
    name: String,
    host: u16,
    default: u16,
    moved: bool,
}

#[derive(Serialize)]
struct ComponentView {
    name: String,
    image: String,
    upstream: String,
    scalable: bool,
    replicas: u32,
    memory: &'static str,
    ports: Vec<PortView>,
}

/// Writes a new shop directory. `image_present` answers whether the engine already has
/// an image (for [`ImageChoice::Auto`]).
pub fn init(
    opts: &InitOptions,
    image_present: &dyn Fn(&str) -> bool,
    out: Output,
) -> anyhow::Result<InitReport> {
    let stack = Stack::embedded()?;
    let shop_file = opts.dir.join(SHOP_FILE);
    if shop_file.exists() && !opts.force {
        bail!(
            "{} already exists; pass --force to overwrite it (its secrets are regenerated)",
            shop_file.display()
        );
    }
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => default_name(&opts.dir),
    };
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("creating {}", opts.dir.display()))?;

    let mut components = Vec::new();
    let mut images = Vec::new();
    let mut ports = Vec::new();
    for c in stack.components.iter().filter(|c| {
        matches!(
            c.profile,
            stack::Profile::Core | stack::Profile::Observability | stack::Profile::Dashboards
        )
    }) {
        let upstream = c.image.replace("{version}", env!("CARGO_PKG_VERSION"));
        let image = choose_image(
            &upstream,
            c.local_image.as_deref(),
            opts.images,
            image_present,
        );
        images.push((c.name.clone(), image.clone()));
        let mut port_views = Vec::new();
        for p in &c.ports {
            let Some(default) = p.host else { continue };
            let host = free_port_from(default).with_context(|| {
                format!(
                    "no free port in {default}..{} for {}.{}",
                    default + PORT_SEARCH,
                    c.name,
                    p.name
                )
            })?;
            if host != default {
                out.warn(&format!(
                    "port {default} ({}.{}) is taken; using {host} instead",
                    c.name, p.name
                ));
            }
            ports.push((format!("{}.{}", c.name, p.name), host));
            port_views.push(PortView {
                name: p.name.clone(),
                host,
                default,
                moved: host != default,
            });
        }
        components.push(ComponentView {
            name: c.name.clone(),
            image,
            upstream,
            scalable: c.scalable,
            replicas: c.replicas,
            memory: if c.kind == Kind::Service {
                "256m"
            } else {
                "1g"
            },
            ports: port_views,
        });
    }

    let mut ctx = tera::Context::new();
    ctx.insert("name", &name);
    ctx.insert("demo", &opts.demo);
    ctx.insert("components", &components);
    ctx.insert("network", &format!("shopstack-{name}"));
    let shop_toml =
        tera::Tera::one_off(SHOP_TEMPLATE, &ctx, false).context("rendering shop.toml")?;
    // What we write must be what we accept.
    crate::shop::parse(&shop_toml, SHOP_FILE)
        .map_err(|d| anyhow::anyhow!("rendered shop.toml is invalid: {d:?}"))?;
    std::fs::write(&shop_file, shop_toml)?;

    write_file(
        &opts.dir.join("config/postgres/provision-database.sh"),
        PROVISION_DATABASE,
        0o755,
    )?;
    write_monitoring(&opts.dir, &stack, &name)?;

    let filebeat =
        tera::Tera::one_off(FILEBEAT_TEMPLATE, &ctx, false).context("rendering filebeat.yml")?;
    write_file(
        &opts.dir.join("config/filebeat/filebeat.yml"),
        &filebeat,
        0o644,
    )?;

    // The merchant's notification templates: a file here replaces the built-in one of
    // its name (mounted into the notification service).
    write_file(
        &opts.dir.join("templates/notifications/README.md"),
        NOTIFICATION_TEMPLATES_README,
        0o644,
    )?;

    // The storefront's default theme, to edit: a file here replaces the built-in one.
    storefront::theme::write_default(&opts.dir.join("theme")).context("writing theme/")?;

    let mut secrets = write_secrets(&opts.dir, &stack)?;
    // The gateway's self-signed certificate: a new one with the other secrets.
    for file in [crate::gateway::CERT_FILE, crate::gateway::KEY_FILE] {
        let _ = std::fs::remove_file(opts.dir.join("secrets").join(file));
        secrets.push(file.to_owned());
    }
    crate::gateway::ensure_files(&opts.dir, &name, "localhost")?;
    Ok(InitReport {
        dir: opts.dir.display().to_string(),
        name,
        images,
        ports,
        secrets,
    })
}

/// Prometheus's configuration and alert rules, Grafana's provisioning and dashboards
/// (one RED dashboard per service of the stack).
pub fn write_monitoring(dir: &Path, stack: &Stack, name: &str) -> anyhow::Result<()> {
    // A new shop discovers through the engine; `up` follows a later change of mode.
    let prometheus = crate::discovery::prometheus_config(name, false)?;
    write_file(
        &dir.join("config/prometheus/prometheus.yml"),
        &prometheus,
        0o644,
    )?;
    write_file(
        &dir.join("config/prometheus/alerts.yml"),
        PROMETHEUS_ALERTS,
        0o644,
    )?;
    for (path, contents) in GRAFANA_FILES {
        write_file(&dir.join(path), contents, 0o644)?;
    }
    for service in stack.components.iter().filter(|c| c.kind == Kind::Service) {
        write_file(
            &dir.join(format!(
                "config/grafana/dashboards/red-{}.json",
                service.name
            )),
            &GRAFANA_RED_TEMPLATE.replace("@SERVICE@", &service.name),
            0o644,
        )?;
    }
    Ok(())
}

fn choose_image(
    upstream: &str,
    local: Option<&str>,
    choice: ImageChoice,
    present: &dyn Fn(&str) -> bool,
) -> String {
    match (choice, local) {
        (ImageChoice::Upstream, _) | (_, None) => upstream.to_owned(),
        (ImageChoice::Local, Some(local)) => local.to_owned(),
        (ImageChoice::Auto, Some(local)) if present(local) && !present(upstream) => {
            local.to_owned()
        }
        (ImageChoice::Auto, Some(_)) => upstream.to_owned(),
    }
}

/// The directory's name, made a valid shop name.
fn default_name(dir: &Path) -> String {
    let raw = std::fs::canonicalize(dir)
        .ok()
        .or_else(|| Some(dir.to_path_buf()))
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let cleaned: String = raw
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(40)
        .collect();
    if cleaned.is_empty() {
        "shop".into()
    } else {
        cleaned
    }
}

/// The first port at or above `start` that nothing listens on.
pub fn free_port_from(start: u16) -> Option<u16> {
    (start..start.saturating_add(PORT_SEARCH)).find(|p| TcpListener::bind(("0.0.0.0", *p)).is_ok())
}

fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub(crate) fn write_secret(dir: &Path, name: &str, value: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, value.as_bytes())?;
    Ok(())
}

fn random_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The user service's token keys: the signing key, its id, and the retired public keys
/// that still verify (none yet). Every other secret is a random password.
const TOKEN_KEY_SECRETS: [&str; 3] = ["jwt_signing_key.pem", "jwt_key_id", "jwt_previous_keys"];

/// Generates every secret the stack names: random passwords, and the token signing key.
fn write_secrets(shop_dir: &Path, stack: &Stack) -> anyhow::Result<Vec<String>> {
    let dir = shop_dir.join("secrets");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let mut names: Vec<String> = stack
        .components
        .iter()
        .flat_map(|c| c.secrets.iter().cloned())
        .collect();
    names.extend(
        stack
            .components
            .iter()
            .filter_map(|c| c.database.as_ref().map(|db| format!("{db}_db_password"))),
    );
    names.extend(TOKEN_KEY_SECRETS.map(String::from));
    names.sort();
    names.dedup();
    for name in names
        .iter()
        .filter(|n| !TOKEN_KEY_SECRETS.contains(&n.as_str()))
    {
        // A session key seals cookies (ChaCha20-Poly1305): 32 random bytes, in hex.
        let value = if name.ends_with("_session_key") {
            hex::encode(rand::thread_rng().r#gen::<[u8; 32]>())
        } else {
            random_password()
        };
        write_secret(&dir, name, &value)?;
    }
    let kid = format!("shop-{}", &uuid_like());
    let pem = shopkit::auth::keys::generate_pem()?;
    // What we write must be a key the services accept.
    Signer::from_pem(&kid, &pem)?;
    write_secret(&dir, "jwt_signing_key.pem", &pem)?;
    write_secret(&dir, "jwt_key_id", &kid)?;
    write_secret(
        &dir,
        "jwt_previous_keys",
        &serde_json::to_string_pretty(&jwks(&[]))?,
    )?;
    Ok(names)
}

fn uuid_like() -> String {
    let bytes: [u8; 8] = rand::thread_rng().r#gen();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Output;

    fn opts(dir: &Path) -> InitOptions {
        InitOptions {
            dir: dir.to_path_buf(),
            name: Some("t1".into()),
            force: false,
            demo: true,
            images: ImageChoice::Local,
        }
    }

    #[test]
    fn init_writes_a_valid_shop_with_private_secrets_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let report = init(&opts(tmp.path()), &|_| false, Output::new(true)).unwrap();
        let shop = crate::shop::Shop::load(tmp.path()).unwrap();
        assert_eq!(shop.name(), "t1");
        assert!(report.secrets.contains(&"catalog_db_password".to_owned()));
        let secrets = tmp.path().join("secrets");
        assert_eq!(
            std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for name in &report.secrets {
            let meta = std::fs::metadata(secrets.join(name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
            assert!(meta.len() >= 16, "{name} is too short");
        }
        // Nothing secret is in the report.
        let report_text = serde_json::to_string(&report).unwrap();
        let password = std::fs::read_to_string(secrets.join("postgres_password")).unwrap();
        assert!(!report_text.contains(&password));
        // Local images were chosen and are written down.
        let text = std::fs::read_to_string(tmp.path().join(SHOP_FILE)).unwrap();
        assert!(text.contains("image = \"shopstack/postgres:15\""), "{text}");
        // A second init without --force refuses.
        let err = init(&opts(tmp.path()), &|_| false, Output::new(true)).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
    }

    #[test]
    fn a_taken_port_moves_to_the_next_free_one() {
        let tmp = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let taken = listener.local_addr().unwrap().port();
        assert_ne!(free_port_from(taken), Some(taken));
        assert!(free_port_from(taken).unwrap() > taken);
        drop(tmp);
    }

    #[test]
    fn auto_prefers_local_images_only_when_upstream_is_absent() {
        let present = |img: &str| img == "shopstack/postgres:15";
        assert_eq!(
            choose_image(
                "postgres:15",
                Some("shopstack/postgres:15"),
                ImageChoice::Auto,
                &present
            ),
            "shopstack/postgres:15"
        );
        assert_eq!(
            choose_image(
                "redis:7",
                Some("shopstack/redis:7"),
                ImageChoice::Auto,
                &present
            ),
            "redis:7"
        );
        assert_eq!(
            choose_image(
                "postgres:15",
                Some("shopstack/postgres:15"),
                ImageChoice::Upstream,
                &present
            ),
            "postgres:15"
        );
    }
}
