//! Desired state: what the shop's `shop.toml` and the stack definition say should run.
//!
//! This is where files are read (digests of mounted configs and secrets) and image ids
//! come in; the comparison with the engine is the pure `planner`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};
use stack::{Component, Kind};

use crate::planner::{
    ContainerSpec, Desired, DesiredComponent, HealthCheck, Job, Mount, component_labels,
};
use crate::shop::{Shop, parse_memory};

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

fn digest(path: &Path) -> anyhow::Result<String> {
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
    if let Some(s) = settings {
        env.extend(s.env.clone());
    }

    let mut mounts = Vec::new();
    let mut file_digests = BTreeMap::new();
    let provider_files = payment.map(|(_, files)| files).unwrap_or_default();
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

    let ports = component
        .ports
        .iter()
        .filter_map(|p| shop.host_port(component, p).map(|h| (p.container, h)))
        .collect();
    let image = placeholders(&shop.image(component), shop);
    let image_id = image_ids.get(&image).cloned().unwrap_or_default();
    let mut labels = component_labels(shop.name(), &component.name, "service");
    if let Some(route) = &component.route {
        labels.extend(gateway_labels(shop.name(), &component.name, route));
    }
    if component.kind == Kind::Service {
        labels.insert("shopstack.metrics".into(), "true".into());
    }
    Ok(ContainerSpec {
        image,
        image_id,
        cmd: component
            .command
            .iter()
            .map(|c| placeholders(c, shop))
            .collect(),
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

/// Traefik's Docker provider reads these: a path-prefix route per service, the prefix
/// stripped, retries on connection errors, and an active health check so a draining
/// replica stops getting traffic before it exits.
pub fn gateway_labels(shop: &str, component: &str, route: &str) -> BTreeMap<String, String> {
    let id = format!("{shop}-{component}");
    BTreeMap::from([
        ("traefik.enable".into(), "true".into()),
        (
            format!("traefik.http.routers.{id}.rule"),
            format!("PathPrefix(`{route}`)"),
        ),
        (
            format!("traefik.http.routers.{id}.entrypoints"),
            "web".into(),
        ),
        (
            format!("traefik.http.routers.{id}.middlewares"),
            format!("{id}-strip,{id}-retry"),
        ),
        (
            format!("traefik.http.middlewares.{id}-strip.stripprefix.prefixes"),
            route.to_owned(),
        ),
        (
            format!("traefik.http.middlewares.{id}-retry.retry.attempts"),
            "3".into(),
        ),
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
    ])
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
