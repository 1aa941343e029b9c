//! Desired state: what the shop's `shop.toml` and the stack definition say should run.
//!
//! This is where files are read (digests of mounted configs and secrets) and image ids
//! come in; the comparison with the engine is the pure `planner`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};
use stack::{Component, Kind};

use crate::gateway::Tls;
use crate::planner::{
    ContainerSpec, Desired, DesiredComponent, HealthCheck, Job, Mount, component_labels,
};
use crate::shop::{RateLimit, Shop, parse_memory};

/// The port every Shopstack service listens on inside its container.
pub const SERVICE_PORT: u16 = 8080;

/// Where the engine keeps each container's JSON log (the `json-file` driver's default).
const CONTAINER_LOGS: &str = "/var/lib/docker/containers";

/// `only`: these components and what they depend on; `None`: all enabled ones.
/// `image_ids`: the engine's id per image name (missing images are checked before).
pub fn desired(
    shop: &Shop,
    only: Option<&[String]>,
    image_ids: &BTreeMap<String, String>,
) -> anyhow::Result<Desired> {
    let enabled = shop.enabled();
    let selected: Vec<&Component> = match only {
        None => enabled.clone(),
        Some(names) => {
            let mut wanted: BTreeSet<&str> = BTreeSet::new();
            let mut stack: Vec<&str> = names.iter().map(String::as_str).collect();
            while let Some(name) = stack.pop() {
                let component = enabled.iter().find(|c| c.name == name).with_context(|| {
                    let names: Vec<&str> = enabled.iter().map(|c| c.name.as_str()).collect();
                    format!(
                        "{name:?} is not a component of this shop's profiles; components are {}",
                        names.join(", ")
                    )
                })?;
                if wanted.insert(component.name.as_str()) {
                    stack.extend(component.depends_on.iter().map(String::as_str));
                }
            }
            enabled
                .iter()
                .copied()
                .filter(|c| wanted.contains(c.name.as_str()))
                .collect()
        }
    };
    let levels = stack::levels(&selected)?;
    let mut volumes = Vec::new();
    let mut out_levels = Vec::new();
    for level in levels {
        let mut out = Vec::new();
        for component in level {
            let spec = container_spec(shop, component, image_ids)?;
            for m in &spec.mounts {
                if let Mount::Volume { name, .. } = m {
                    volumes.push(name.clone());
                }
            }
            let job = |cmd: &str, role: &str| Job {
                name: format!("{}-{}-{cmd}", shop.name(), component.name),
                spec: ContainerSpec {
                    cmd: vec![cmd.to_owned()],
                    health: None,
                    ports: Vec::new(),
                    labels: component_labels(shop.name(), &component.name, role),
                    aliases: Vec::new(),
                    ..spec.clone()
                },
            };
            let provision = component
                .database
                .as_deref()
                .map(|db| provision_job(shop, component, db, &spec))
                .transpose()?;
            out.push(DesiredComponent {
                name: component.name.clone(),
                kind: component.kind,
                replicas: shop.replicas(component),
                scalable: component.scalable,
                depends_on: component.depends_on.clone(),
                provision,
                migrate: component.migrate.then(|| job("migrate", "migrate")),
                seed: component
                    .seed
                    .as_deref()
                    .filter(|_| shop.file.shop.demo)
                    .map(|cmd| job(cmd, "seed")),
                spec,
            });
        }
        out_levels.push(out);
    }
    volumes.sort();
    volumes.dedup();
    Ok(Desired {
        shop: shop.name().to_owned(),
        network: shop.network(),
        volumes,
        levels: out_levels,
    })
}

fn placeholders(text: &str, shop: &Shop) -> String {
    text.replace("{shop}", shop.name())
        .replace("{network}", &shop.network())
        .replace("{version}", env!("CARGO_PKG_VERSION"))
}

/// A mounted file's digest; for a directory (the merchant's notification templates), one
/// over its files' names and contents, so that editing any of them recreates the container.
fn digest(path: &Path) -> anyhow::Result<String> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| e.path())
            .collect();
        entries.sort();
        let mut hasher = Sha256::new();
        for file in entries {
            hasher.update(file.file_name().unwrap_or_default().as_encoded_bytes());
            hasher.update([0]);
            hasher.update(
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
            );
            hasher.update([0]);
        }
        return Ok(hex::encode(&hasher.finalize()[..8]));
    }
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "{} is missing: it is part of the shop (re-create it with `shopctl init --force`)",
            path.display()
        )
    })?;
    Ok(hex::encode(&Sha256::digest(bytes)[..8]))
}

/// The one-shot container that creates `db` and its role on the shop's PostgreSQL: the
/// PostgreSQL image (for psql) with the superuser's and the role's password files.
fn provision_job(
    shop: &Shop,
    component: &Component,
    db: &str,
    service: &ContainerSpec,
) -> anyhow::Result<Job> {
    let postgres = shop.stack.get("postgres").with_context(|| {
        format!(
            "{}: its database needs the postgres component",
            component.name
        )
    })?;
    let shop_dir = std::fs::canonicalize(&shop.dir)
        .with_context(|| format!("resolving {}", shop.dir.display()))?;
    let mut mounts = Vec::new();
    let mut file_digests = BTreeMap::new();
    let files = [
        (
            "secrets/postgres_password",
            "/run/secrets/postgres_password",
        ),
        (
            &format!("secrets/{db}_db_password"),
            &format!("/run/secrets/{db}_db_password"),
        ),
        (
            "config/postgres/provision-database.sh",
            "/etc/shopstack/provision-database.sh",
        ),
    ];
    for (source, target) in files {
        let source = shop_dir.join(source);
        file_digests.insert(target.to_owned(), digest(&source)?);
        mounts.push(Mount::Bind {
            source: source.display().to_string(),
            target: target.to_owned(),
            read_only: true,
        });
    }
    Ok(Job {
        name: format!("{}-{}-provision", shop.name(), component.name),
        spec: ContainerSpec {
            image: placeholders(&shop.image(postgres), shop),
            image_id: String::new(),
            cmd: vec!["bash".into(), "/etc/shopstack/provision-database.sh".into()],
            env: vec![format!("SHOPSTACK_DATABASE={db}"), "PGHOST=postgres".into()],
            mounts,
            ports: Vec::new(),
            health: None,
            memory_bytes: None,
            nano_cpus: None,
            labels: component_labels(shop.name(), &component.name, "provision"),
            network: service.network.clone(),
            aliases: Vec::new(),
            file_digests,
            stop_grace_s: 10,
            user: None,
        },
    })
}

fn container_spec(
    shop: &Shop,
    component: &Component,
    image_ids: &BTreeMap<String, String>,
) -> anyhow::Result<ContainerSpec> {
    let settings = shop.settings(&component.name);
    let shop_dir = std::fs::canonicalize(&shop.dir)
        .with_context(|| format!("resolving {}", shop.dir.display()))?;
    let mut env: BTreeMap<String, String> = component
        .env
        .iter()
        .map(|(k, v)| (k.clone(), placeholders(v, shop)))
        .collect();
    if component.kind == Kind::Service {
        env.insert("SHOPSTACK_SHOP".into(), shop.name().to_owned());
        env.insert(
            "SHOPSTACK_MODE".into(),
            format!("{:?}", shop.file.shop.mode).to_lowercase(),
        );
        env.insert("PORT".into(), SERVICE_PORT.to_string());
    }
    let payment = payment_provider(shop, component, &shop_dir)?;
    if let Some((provider, _)) = &payment {
        env.insert("PAYMENT_PROVIDER".into(), provider.clone());
    }
    let notifying = notification_providers(shop, component, &shop_dir)?;
    if let Some((providers, _)) = &notifying {
        env.extend(providers.clone());
    }
    if let Some(s) = settings {
        env.extend(s.env.clone());
    }

    let mut mounts = Vec::new();
    let mut file_digests = BTreeMap::new();
    let provider_files: Vec<String> = payment
        .map(|(_, files)| files)
        .into_iter()
        .chain(notifying.map(|(_, files)| files))
        .flatten()
        .collect();
    for secret in component.secrets.iter().chain(&provider_files) {
        let source = shop_dir.join("secrets").join(secret);
        let target = format!("/run/secrets/{secret}");
        file_digests.insert(target.clone(), digest(&source)?);
        mounts.push(Mount::Bind {
            source: source.display().to_string(),
            target,
            read_only: true,
        });
    }
    for config in &component.configs {
        let source = shop_dir.join(&config.source);
        file_digests.insert(config.target.clone(), digest(&source)?);
        mounts.push(Mount::Bind {
            source: source.display().to_string(),
            target: config.target.clone(),
            read_only: true,
        });
    }
    for volume in &component.volumes {
        mounts.push(Mount::Volume {
            name: format!("{}-{}", shop.name(), volume.name),
            target: volume.path.clone(),
        });
    }
    if component.docker_socket {
        let socket = crate::engine::socket();
        let path = socket
            .strip_prefix("unix://")
            .unwrap_or("/var/run/docker.sock")
            .to_owned();
        mounts.push(Mount::Bind {
            source: path,
            target: "/var/run/docker.sock".into(),
            read_only: true,
        });
    }
    if component.container_logs {
        mounts.push(Mount::Bind {
            source: CONTAINER_LOGS.into(),
            target: CONTAINER_LOGS.into(),
            read_only: true,
        });
    }

    let mut cmd: Vec<String> = component
        .command
        .iter()
        .map(|c| placeholders(c, shop))
        .collect();
    let tls = Tls::of(shop);
    if component.kind == Kind::Gateway {
        cmd.extend(crate::gateway::command_args(&tls));
        match tls {
            Tls::Acme { .. } => mounts.push(Mount::Volume {
                name: format!("{}-{}", shop.name(), crate::gateway::ACME_VOLUME),
                target: crate::gateway::ACME_DIR.into(),
            }),
            Tls::SelfSigned => {
                let files = [
                    (
                        shop_dir.join("secrets").join(crate::gateway::CERT_FILE),
                        format!("/run/secrets/{}", crate::gateway::CERT_FILE),
                    ),
                    (
                        shop_dir.join("secrets").join(crate::gateway::KEY_FILE),
                        format!("/run/secrets/{}", crate::gateway::KEY_FILE),
                    ),
                    (
                        shop_dir.join(crate::gateway::TLS_CONFIG),
                        crate::gateway::TLS_CONFIG_TARGET.to_owned(),
                    ),
                ];
                for (source, target) in files {
                    file_digests.insert(target.clone(), digest(&source)?);
                    mounts.push(Mount::Bind {
                        source: source.display().to_string(),
                        target,
                        read_only: true,
                    });
                }
            }
        }
    }

    let ports = component
        .ports
        .iter()
        .filter_map(|p| shop.host_port(component, p).map(|h| (p.container, h)))
        .collect();
    let image = placeholders(&shop.image(component), shop);
    let image_id = image_ids.get(&image).cloned().unwrap_or_default();
    let mut labels = component_labels(shop.name(), &component.name, "service");
    if let Some(route) = &component.route {
        labels.extend(gateway_labels(
            shop.name(),
            &component.name,
            route,
            &tls,
            shop.rate_limit(&component.name),
        ));
    }
    if component.kind == Kind::Service {
        labels.insert("shopstack.metrics".into(), "true".into());
    }
    let consul = *shop.file.shop.discovery.get_ref() == crate::discovery::Mode::Consul;
    if consul && component.kind == Kind::Service {
        env.extend(crate::discovery::service_env(
            shop.name(),
            &component.name,
            &labels,
        ));
    }
    if consul && component.kind == Kind::Gateway {
        cmd = crate::discovery::gateway_command(shop.name(), &cmd);
    }
    Ok(ContainerSpec {
        image,
        image_id,
        cmd,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        mounts,
        ports,
        health: Some(HealthCheck {
            test: component.health.test.clone(),
            interval_ms: component.health.interval_ms,
            timeout_ms: component.health.timeout_ms,
            retries: component.health.retries,
        }),
        memory_bytes: settings
            .and_then(|s| s.memory.as_ref())
            .and_then(|m| parse_memory(m.get_ref())),
        nano_cpus: settings
            .and_then(|s| s.cpus.as_ref())
            .map(|c| (*c.get_ref() * 1e9) as i64),
        labels,
        network: shop.network(),
        aliases: vec![component.name.clone()],
        file_digests,
        stop_grace_s: if component.kind == Kind::Service {
            15
        } else {
            30
        },
        user: component.user.clone(),
    })
}

/// Each payment provider's secret files (shop.toml's `[payments] provider`), in the shop's
/// `secrets/`; mounted into the payment service besides its own.
pub fn provider_secrets(provider: &str) -> &'static [&'static str] {
    match provider {
        "stripe" => &[
            "stripe_secret_key",
            "stripe_webhook_secret",
            "stripe_publishable_key",
        ],
        "paypal" => &[
            "paypal_client_id",
            "paypal_client_secret",
            "paypal_webhook_id",
        ],
        _ => &[],
    }
}

/// For the payment service: `PAYMENT_PROVIDER` from shop.toml, and the provider's secret
/// files (each must exist: the message names the one to create).
fn payment_provider(
    shop: &Shop,
    component: &Component,
    shop_dir: &Path,
) -> anyhow::Result<Option<(String, Vec<String>)>> {
    if component.name != "payment" {
        return Ok(None);
    }
    let provider = shop
        .file
        .payments
        .as_ref()
        .map_or("test", |p| p.provider.as_str())
        .to_owned();
    let mut files = Vec::new();
    for file in provider_secrets(&provider) {
        if !shop_dir.join("secrets").join(file).is_file() {
            anyhow::bail!(
                "secrets/{file} is missing: shop.toml's [payments] provider = {provider:?} needs \
                 it (put the key from the provider's dashboard in it; see the payment \
                 service's README)"
            );
        }
        files.push((*file).to_owned());
    }
    Ok(Some((provider, files)))
}

/// For the notification service: `EMAIL_PROVIDER` / `SMS_PROVIDER` from shop.toml's
/// `[notifications] email` / `sms`, and their secret files (SendGrid's key and Twilio's
/// token must exist; an SMTP password is mounted when there is one). The providers'
/// other settings (`SMTP_HOST`, `TWILIO_ACCOUNT_SID`, `TWILIO_FROM` …) go in
/// `[components.notification] env`.
#[allow(clippy::type_complexity)]
fn notification_providers(
    shop: &Shop,
    component: &Component,
    shop_dir: &Path,
) -> anyhow::Result<Option<(Vec<(String, String)>, Vec<String>)>> {
    if component.name != "notification" {
        return Ok(None);
    }
    let Some(chosen) = shop.file.notifications.as_ref() else {
        return Ok(None);
    };
    let mut env = Vec::new();
    let mut files = Vec::new();
    let channels = [
        (
            "email",
            "EMAIL_PROVIDER",
            &chosen.email,
            &["sendgrid", "smtp", "outbox"][..],
        ),
        (
            "sms",
            "SMS_PROVIDER",
            &chosen.sms,
            &["twilio", "outbox", "none"][..],
        ),
    ];
    for (key, variable, provider, known) in channels {
        let Some(provider) = provider else { continue };
        if !known.contains(&provider.as_str()) {
            anyhow::bail!(
                "shop.toml's [notifications] {key} = {provider:?} is not a provider: use one of {}",
                known.join(", ")
            );
        }
        env.push((variable.to_owned(), provider.clone()));
        let (file, required) = match provider.as_str() {
            "sendgrid" => ("sendgrid_api_key", true),
            "twilio" => ("twilio_auth_token", true),
            "smtp" => ("smtp_password", false),
            _ => continue,
        };
        if shop_dir.join("secrets").join(file).is_file() {
            files.push(file.to_owned());
        } else if required {
            anyhow::bail!(
                "secrets/{file} is missing: shop.toml's [notifications] {key} = {provider:?} \
                 needs it (put the key from the provider's console in it; see the notification \
                 service's README)"
            );
        }
    }
    Ok(Some((env, files)))
}

/// Traefik's Docker provider reads these: a path-prefix route per service on plain HTTP
/// and on HTTPS (with ACME: HTTPS only, the certificate from Let's Encrypt for the
/// shop's domain; HTTP redirects at the entrypoint), and one middleware chain on both:
/// security headers (HSTS is sent on TLS only: Traefik leaves it out of plain-HTTP
/// answers), the per-client-IP rate limit, compression, the prefix stripped, retries on
/// connection errors. The load balancer's active health check takes a draining replica
/// out of rotation before it exits. Request ids need no middleware: the services echo
/// `X-Request-Id` or make one, and Traefik passes it through both ways.
pub fn gateway_labels(
    shop: &str,
    component: &str,
    route: &str,
    tls: &Tls,
    limit: RateLimit,
) -> BTreeMap<String, String> {
    let id = format!("{shop}-{component}");
    let router = |name: &str, key: &str| format!("traefik.http.routers.{name}.{key}");
    let middleware = |key: &str| format!("traefik.http.middlewares.{id}-{key}");
    let chain = ["headers", "ratelimit", "compress", "strip", "retry"]
        .map(|m| format!("{id}-{m}"))
        .join(",");
    let mut labels = BTreeMap::from([
        ("traefik.enable".into(), "true".into()),
        (middleware("headers.headers.framedeny"), "true".into()),
        (
            middleware("headers.headers.contenttypenosniff"),
            "true".into(),
        ),
        (
            middleware("headers.headers.referrerpolicy"),
            "strict-origin-when-cross-origin".into(),
        ),
        // One year, the preload lists' minimum; Traefik sends it on HTTPS only.
        (middleware("headers.headers.stsseconds"), "31536000".into()),
        (
            middleware("headers.headers.stsincludesubdomains"),
            "true".into(),
        ),
        (
            middleware("ratelimit.ratelimit.average"),
            limit.average.to_string(),
        ),
        (
            middleware("ratelimit.ratelimit.burst"),
            limit.burst.to_string(),
        ),
        (middleware("ratelimit.ratelimit.period"), "1s".into()),
        (middleware("compress.compress"), "true".into()),
        (middleware("strip.stripprefix.prefixes"), route.to_owned()),
        (middleware("retry.retry.attempts"), "3".into()),
        (
            format!("traefik.http.services.{id}.loadbalancer.server.port"),
            SERVICE_PORT.to_string(),
        ),
        (
            format!("traefik.http.services.{id}.loadbalancer.healthcheck.path"),
            "/health/ready".into(),
        ),
        (
            format!("traefik.http.services.{id}.loadbalancer.healthcheck.interval"),
            "500ms".into(),
        ),
        (
            format!("traefik.http.services.{id}.loadbalancer.healthcheck.timeout"),
            "2s".into(),
        ),
    ]);
    let secure = format!("{id}-tls");
    let routers: Vec<(&str, &str)> = match tls {
        Tls::Acme { .. } => vec![(id.as_str(), "websecure")],
        Tls::SelfSigned => vec![(id.as_str(), "web"), (secure.as_str(), "websecure")],
    };
    for (name, entrypoint) in routers {
        labels.insert(router(name, "rule"), format!("PathPrefix(`{route}`)"));
        labels.insert(router(name, "entrypoints"), entrypoint.into());
        labels.insert(router(name, "middlewares"), chain.clone());
        labels.insert(router(name, "service"), id.clone());
        if entrypoint == "websecure" {
            labels.insert(router(name, "tls"), "true".into());
        }
    }
    if let Tls::Acme { domain, .. } = tls {
        labels.insert(
            router(&id, "tls.certresolver"),
            crate::gateway::RESOLVER.into(),
        );
        labels.insert(router(&id, "tls.domains[0].main"), domain.clone());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{ImageChoice, InitOptions, init};
    use crate::output::Output;

    /// A shop made by `init` in a temporary directory, with `edit` applied to shop.toml.
    fn shop(edit: impl Fn(String) -> String) -> (tempfile::TempDir, Shop) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shop");
        let opts = InitOptions {
            dir: dir.clone(),
            name: Some("demo".into()),
            force: false,
            demo: false,
            images: ImageChoice::Local,
        };
        init(&opts, &|_| false, Output::new(true)).unwrap();
        let path = dir.join("shop.toml");
        let text = edit(std::fs::read_to_string(&path).unwrap());
        std::fs::write(&path, text).unwrap();
        let shop = Shop::load(&dir).unwrap();
        (tmp, shop)
    }

    fn component<'a>(d: &'a Desired, name: &str) -> &'a DesiredComponent {
        d.levels.iter().flatten().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn notification_providers_and_their_keys_reach_the_notification_service() {
        let (tmp, with_keys) = shop(|t| {
            let t = t.replace(
                "[components.notification]\n",
                "[components.notification]\nenv = { TWILIO_ACCOUNT_SID = \"AC123\", TWILIO_FROM = \"+15005550006\" }\n",
            );
            format!("{t}\n[notifications]\nemail = \"sendgrid\"\nsms = \"twilio\"\n")
        });
        let err = desired(&with_keys, None, &BTreeMap::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("secrets/sendgrid_api_key is missing"),
            "{err:#}"
        );
        let secrets = tmp.path().join("shop/secrets");
        std::fs::write(secrets.join("sendgrid_api_key"), "SG.key").unwrap();
        std::fs::write(secrets.join("twilio_auth_token"), "token").unwrap();
        let d = desired(&with_keys, None, &BTreeMap::new()).unwrap();
        let spec = &component(&d, "notification").spec;
        for env in [
            "EMAIL_PROVIDER=sendgrid",
            "SMS_PROVIDER=twilio",
            "TWILIO_ACCOUNT_SID=AC123",
        ] {
            assert!(spec.env.contains(&env.to_owned()), "{env}: {:?}", spec.env);
        }
        for file in ["sendgrid_api_key", "twilio_auth_token"] {
            assert!(spec.mounts.iter().any(|m| matches!(m, Mount::Bind { target, .. } if *target == format!("/run/secrets/{file}"))), "{file}");
        }
        // Not for other services.
        assert!(
            !component(&d, "catalog")
                .spec
                .env
                .iter()
                .any(|e| e.starts_with("EMAIL_PROVIDER"))
        );

        let (_tmp, wrong) = shop(|t| format!("{t}\n[notifications]\nemail = \"mailgun\"\n"));
        let err = desired(&wrong, None, &BTreeMap::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("sendgrid, smtp, outbox"),
            "{err:#}"
        );
    }

    #[test]
    fn consul_discovery_registers_services_and_points_the_gateway_at_the_catalog() {
        let (_tmp, consul_shop) = shop(|t| {
            t.replace(
                "profiles = [\"core\"]",
                "profiles = [\"core\", \"discovery\"]",
            )
            .replace("discovery = \"docker\"", "discovery = \"consul\"")
        });
        let d = desired(&consul_shop, None, &BTreeMap::new()).unwrap();
        let catalog = &component(&d, "catalog").spec;
        assert!(
            catalog
                .env
                .contains(&"CONSUL_SERVICE_NAME=catalog".to_owned())
        );
        let tags = catalog
            .env
            .iter()
            .find_map(|e| e.strip_prefix("CONSUL_SERVICE_TAGS="))
            .unwrap();
        let tags: Vec<String> = serde_json::from_str(tags).unwrap();
        // Every routing label of the Docker mode, as a tag.
        for (k, v) in catalog
            .labels
            .iter()
            .filter(|(k, _)| k.starts_with("traefik."))
        {
            assert!(
                tags.contains(&format!("{k}={v}")),
                "{k} missing from {tags:?}"
            );
        }
        let gateway = &component(&d, "gateway").spec;
        assert!(
            gateway
                .cmd
                .iter()
                .any(|a| a == "--providers.consulcatalog=true")
        );
        assert!(
            !gateway
                .cmd
                .iter()
                .any(|a| a.starts_with("--providers.docker"))
        );
        assert!(component(&d, "consul").spec.image.contains("consul"));

        // The default stays Docker: no registration settings, the Docker provider.
        let (_tmp2, docker_shop) = shop(|t| t);
        let d = desired(&docker_shop, None, &BTreeMap::new()).unwrap();
        assert!(
            !component(&d, "catalog")
                .spec
                .env
                .iter()
                .any(|e| e.starts_with("CONSUL_"))
        );
        assert!(
            component(&d, "gateway")
                .spec
                .cmd
                .iter()
                .any(|a| a == "--providers.docker=true")
        );
    }

    #[test]
    fn a_local_shop_serves_http_and_its_self_signed_certificate_on_https() {
        let (_tmp, shop) = shop(|t| {
            t.replace(
                "[components.catalog]\n",
                "[components.catalog]\nrate_limit = { average = 1000, burst = 2000 }\n",
            )
        });
        let d = desired(&shop, None, &BTreeMap::new()).unwrap();
        let gateway = &component(&d, "gateway").spec;
        assert!(
            gateway
                .cmd
                .contains(&"--providers.file.filename=/etc/traefik/dynamic/tls.yml".to_owned()),
            "{:?}",
            gateway.cmd
        );
        assert!(
            gateway
                .cmd
                .contains(&"--entrypoints.websecure.address=:443".to_owned())
        );
        assert!(!gateway.cmd.iter().any(|a| a.contains("redirections")));
        for target in [
            "/run/secrets/gateway_tls.crt",
            "/run/secrets/gateway_tls.key",
            "/etc/traefik/dynamic/tls.yml",
        ] {
            assert!(
                gateway.mounts.iter().any(
                    |m| matches!(m, Mount::Bind { target: t, read_only: true, .. } if t == target)
                ),
                "{target} not mounted: {:?}",
                gateway.mounts
            );
            assert!(gateway.file_digests.contains_key(target));
        }
        // Both entrypoints are published: 80 and 443.
        let published: Vec<u16> = gateway.ports.iter().map(|(c, _)| *c).collect();
        assert_eq!(published, [80, 443]);

        let catalog = &component(&d, "catalog").spec.labels;
        let l = |k: &str| catalog.get(k).map(String::as_str);
        assert_eq!(
            l("traefik.http.routers.demo-catalog.entrypoints"),
            Some("web")
        );
        assert_eq!(l("traefik.http.routers.demo-catalog.tls"), None);
        assert_eq!(
            l("traefik.http.routers.demo-catalog-tls.entrypoints"),
            Some("websecure")
        );
        assert_eq!(l("traefik.http.routers.demo-catalog-tls.tls"), Some("true"));
        assert_eq!(
            l("traefik.http.routers.demo-catalog-tls.tls.certresolver"),
            None
        );
        let chain = "demo-catalog-headers,demo-catalog-ratelimit,demo-catalog-compress,demo-catalog-strip,demo-catalog-retry";
        assert_eq!(
            l("traefik.http.routers.demo-catalog.middlewares"),
            Some(chain)
        );
        assert_eq!(
            l("traefik.http.routers.demo-catalog-tls.middlewares"),
            Some(chain)
        );
        // The component's own limit; cart has the default.
        assert_eq!(
            l("traefik.http.middlewares.demo-catalog-ratelimit.ratelimit.average"),
            Some("1000")
        );
        assert_eq!(
            l("traefik.http.middlewares.demo-catalog-ratelimit.ratelimit.burst"),
            Some("2000")
        );
        let cart = &component(&d, "cart").spec.labels;
        assert_eq!(
            cart.get("traefik.http.middlewares.demo-cart-ratelimit.ratelimit.average")
                .map(String::as_str),
            Some("100")
        );
        for (key, value) in [
            ("headers.headers.framedeny", "true"),
            ("headers.headers.contenttypenosniff", "true"),
            (
                "headers.headers.referrerpolicy",
                "strict-origin-when-cross-origin",
            ),
            ("headers.headers.stsseconds", "31536000"),
            ("compress.compress", "true"),
            ("strip.stripprefix.prefixes", "/api/catalog"),
            ("retry.retry.attempts", "3"),
        ] {
            assert_eq!(
                l(&format!("traefik.http.middlewares.demo-catalog-{key}")),
                Some(value),
                "{key}"
            );
        }
        assert_eq!(
            l("traefik.http.services.demo-catalog.loadbalancer.healthcheck.path"),
            Some("/health/ready")
        );
        // Services publish nothing: the gateway's ports are the shop's only ones.
        for c in d.levels.iter().flatten() {
            if c.name != "gateway" {
                assert!(
                    c.spec.ports.is_empty(),
                    "{} publishes {:?}",
                    c.name,
                    c.spec.ports
                );
            }
        }
    }

    #[test]
    fn a_public_domain_with_an_acme_email_gets_lets_encrypt_and_https_only() {
        let (_tmp, shop) = shop(|t| {
            t.replace("domain = \"localhost\"", "domain = \"shop.example.com\"")
                .replace(
                    "[gateway]\n",
                    "[gateway]\nacme_email = \"ops@example.com\"\nrate_limit = { average = 50, burst = 80 }\n",
                )
        });
        let d = desired(&shop, None, &BTreeMap::new()).unwrap();
        let gateway = &component(&d, "gateway").spec;
        assert!(gateway.cmd.contains(
            &"--certificatesresolvers.letsencrypt.acme.email=ops@example.com".to_owned()
        ));
        assert!(
            gateway.cmd.contains(
                &"--entrypoints.web.http.redirections.entrypoint.scheme=https".to_owned()
            )
        );
        assert!(
            !gateway
                .cmd
                .iter()
                .any(|a| a.starts_with("--providers.file"))
        );
        assert!(gateway.mounts.contains(&Mount::Volume {
            name: "demo-letsencrypt".into(),
            target: "/letsencrypt".into(),
        }));
        assert!(d.volumes.contains(&"demo-letsencrypt".to_owned()));
        let cart = &component(&d, "cart").spec.labels;
        let l = |k: &str| cart.get(k).map(String::as_str);
        assert_eq!(
            l("traefik.http.routers.demo-cart.entrypoints"),
            Some("websecure")
        );
        assert_eq!(
            l("traefik.http.routers.demo-cart.tls.certresolver"),
            Some("letsencrypt")
        );
        assert_eq!(
            l("traefik.http.routers.demo-cart.tls.domains[0].main"),
            Some("shop.example.com")
        );
        assert!(
            !cart
                .keys()
                .any(|k| k.starts_with("traefik.http.routers.demo-cart-tls."))
        );
        assert_eq!(
            l("traefik.http.middlewares.demo-cart-ratelimit.ratelimit.average"),
            Some("50")
        );
    }

    #[test]
    fn an_email_without_a_public_domain_stays_self_signed() {
        let (_tmp, shop) = shop(|t| {
            t.replace("domain = \"localhost\"", "domain = \"192.168.1.20\"")
                .replace(
                    "[gateway]\n",
                    "[gateway]\nacme_email = \"ops@example.com\"\n",
                )
        });
        assert_eq!(Tls::of(&shop), Tls::SelfSigned);
        let d = desired(&shop, None, &BTreeMap::new()).unwrap();
        let gateway = &component(&d, "gateway").spec;
        assert!(
            !gateway
                .cmd
                .iter()
                .any(|a| a.contains("certificatesresolvers"))
        );
    }
}

#[cfg(test)]
mod payment_provider_tests {
    use super::*;
    use crate::init::{ImageChoice, InitOptions, init};
    use crate::output::Output;

    #[test]
    fn the_payment_provider_and_its_key_files_reach_the_payment_service() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shop");
        let opts = InitOptions {
            dir: dir.clone(),
            name: Some("demo".into()),
            force: false,
            demo: false,
            images: ImageChoice::Local,
        };
        init(&opts, &|_| false, Output::new(true)).unwrap();
        let path = dir.join("shop.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("provider = \"test\""), "{text}");
        std::fs::write(
            &path,
            text.replace("provider = \"test\"", "provider = \"stripe\""),
        )
        .unwrap();
        let shop = Shop::load(&dir).unwrap();
        let err = desired(&shop, None, &BTreeMap::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("secrets/stripe_secret_key is missing"),
            "{err:#}"
        );
        for file in provider_secrets("stripe") {
            std::fs::write(dir.join("secrets").join(file), "x").unwrap();
        }
        let d = desired(&shop, None, &BTreeMap::new()).unwrap();
        let spec = |name: &str| {
            d.levels
                .iter()
                .flatten()
                .find(|c| c.name == name)
                .map(|c| c.spec.clone())
                .unwrap()
        };
        let payment = spec("payment");
        assert!(
            payment.env.contains(&"PAYMENT_PROVIDER=stripe".to_owned()),
            "{:?}",
            payment.env
        );
        for file in provider_secrets("stripe") {
            let target = format!("/run/secrets/{file}");
            assert!(payment.file_digests.contains_key(&target), "{target}");
        }
        // Other services get neither.
        let order = spec("order");
        assert!(!order.file_digests.keys().any(|k| k.contains("stripe")));
        assert!(!order.env.iter().any(|e| e.starts_with("PAYMENT_PROVIDER")));
    }
}
