//! How the gateway and Prometheus find the replicas: shop.toml's `discovery`.
//!
//! - `docker` (the default): Traefik's and Prometheus's Docker providers read the labels
//!   shopctl puts on each container.
//! - `consul` (needs the `discovery` profile): each replica registers itself with Consul
//!   (`shopkit::discovery`), carrying the same `traefik.*` routing labels as tags, and
//!   Traefik's Consul Catalog provider and Prometheus's `consul_sd` read the catalog,
//!   which lists only replicas whose readiness check passes.
//!
//! Both modes route the same paths through the same middlewares and scrape the same
//! targets with the same labels, so nothing else changes for the merchant.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Deserialize;

const PROMETHEUS_TEMPLATE: &str =
    include_str!("../../templates/config/prometheus/prometheus.yml.tera");

/// Where the services reach the Consul agent on the shop network.
pub const CONSUL_HTTP_ADDR: &str = "http://consul:8500";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Docker,
    Consul,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Consul => "consul",
        }
    }
}

/// The settings a service needs to register itself (consul mode): its name, and the
/// routing labels and shop as tags. The address and id default to the container's
/// hostname, so every replica shares one spec.
pub fn service_env(
    shop: &str,
    component: &str,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.starts_with("traefik."))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    tags.push(format!("shopstack.shop={shop}"));
    if labels.get("shopstack.metrics").is_some_and(|v| v == "true") {
        tags.push("shopstack.metrics=true".into());
    }
    let meta = BTreeMap::from([("shop", shop), ("component", component)]);
    BTreeMap::from([
        ("CONSUL_HTTP_ADDR".into(), CONSUL_HTTP_ADDR.into()),
        ("CONSUL_SERVICE_NAME".into(), component.into()),
        (
            "CONSUL_SERVICE_TAGS".into(),
            serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
        ),
        (
            "CONSUL_SERVICE_META".into(),
            serde_json::to_string(&meta).unwrap_or_else(|_| "{}".into()),
        ),
    ])
}

/// The gateway's command in consul mode: the Docker provider's flags replaced by the
/// Consul Catalog provider's, constrained to this shop's services.
pub fn gateway_command(shop: &str, command: &[String]) -> Vec<String> {
    let mut args: Vec<String> = command
        .iter()
        .filter(|a| !a.starts_with("--providers.docker"))
        .cloned()
        .collect();
    let address = CONSUL_HTTP_ADDR.trim_start_matches("http://");
    args.extend([
        "--providers.consulcatalog=true".to_owned(),
        format!("--providers.consulcatalog.endpoint.address={address}"),
        "--providers.consulcatalog.exposedbydefault=false".to_owned(),
        "--providers.consulcatalog.refreshinterval=2s".to_owned(),
        format!("--providers.consulcatalog.constraints=Tag(`shopstack.shop={shop}`)"),
    ]);
    args
}

/// `up` of a shop whose discovery changed after `init`: the generated prometheus.yml
/// follows the new mode, unless the merchant has edited it (then it is theirs to change;
/// the answer is false).
pub fn sync_prometheus_config(shop: &crate::shop::Shop) -> anyhow::Result<bool> {
    let path = shop.dir.join("config/prometheus/prometheus.yml");
    let Ok(on_disk) = std::fs::read_to_string(&path) else {
        return Ok(false);
    };
    let wanted = prometheus_reads_consul(shop);
    if on_disk != prometheus_config(shop.name(), !wanted)? {
        return Ok(false);
    }
    std::fs::write(&path, prometheus_config(shop.name(), wanted)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// Whether Prometheus discovers through Consul: in consul mode, unless it runs the
/// locally built image. Debian builds Prometheus without Consul discovery (its promtool
/// refuses `consul_sd_configs`), so that image scrapes through the engine instead: the
/// same targets with the same labels.
pub fn prometheus_reads_consul(shop: &crate::shop::Shop) -> bool {
    let Some(prometheus) = shop.stack.get("prometheus") else {
        return false;
    };
    *shop.file.shop.discovery.get_ref() == Mode::Consul
        && prometheus.local_image.as_deref() != Some(shop.image(prometheus).as_str())
}

/// prometheus.yml as `init` writes it, discovering services through Consul or the engine.
pub fn prometheus_config(shop: &str, consul: bool) -> anyhow::Result<String> {
    let mode = if consul { Mode::Consul } else { Mode::Docker };
    let mut ctx = tera::Context::new();
    ctx.insert("name", shop);
    ctx.insert("network", &format!("shopstack-{shop}"));
    ctx.insert("discovery", mode.name());
    tera::Tera::one_off(PROMETHEUS_TEMPLATE, &ctx, false).context("rendering prometheus.yml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_register_with_their_routing_labels_as_tags() {
        let labels = BTreeMap::from([
            ("traefik.enable".to_owned(), "true".to_owned()),
            (
                "traefik.http.routers.s-catalog.rule".to_owned(),
                "PathPrefix(`/api/catalog`)".to_owned(),
            ),
            ("shopstack.metrics".to_owned(), "true".to_owned()),
            ("shopstack.component".to_owned(), "catalog".to_owned()),
        ]);
        let env = service_env("s", "catalog", &labels);
        assert_eq!(env["CONSUL_HTTP_ADDR"], "http://consul:8500");
        assert_eq!(env["CONSUL_SERVICE_NAME"], "catalog");
        let tags: Vec<String> = serde_json::from_str(&env["CONSUL_SERVICE_TAGS"]).unwrap();
        assert_eq!(
            tags,
            vec![
                "traefik.enable=true",
                "traefik.http.routers.s-catalog.rule=PathPrefix(`/api/catalog`)",
                "shopstack.shop=s",
                "shopstack.metrics=true",
            ]
        );
        // What the service reads back is what shopctl wrote.
        let settings = shopkit::config::Settings::from_vars(
            env.into_iter()
                .chain([("HOSTNAME".to_owned(), "0123456789ab".to_owned())]),
        );
        let registration = shopkit::discovery::Discovery::from_settings(&settings)
            .unwrap()
            .unwrap()
            .registration(8080);
        assert_eq!(registration.tags, tags);
        assert_eq!(registration.meta["component"], "catalog");
    }

    #[test]
    fn prometheus_follows_a_changed_discovery_unless_edited() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shop");
        let opts = crate::init::InitOptions {
            dir: dir.clone(),
            name: Some("demo".into()),
            force: false,
            demo: false,
            images: crate::init::ImageChoice::Local,
        };
        crate::init::init(&opts, &|_| false, crate::output::Output::new(true)).unwrap();
        let path = dir.join("config/prometheus/prometheus.yml");
        let docker = std::fs::read_to_string(&path).unwrap();
        assert!(docker.contains("docker_sd_configs") && !docker.contains("consul_sd_configs"));
        assert_eq!(docker, prometheus_config("demo", false).unwrap());

        let toml = dir.join("shop.toml");
        let consul_mode = std::fs::read_to_string(&toml)
            .unwrap()
            .replace(
                "profiles = [\"core\"]",
                "profiles = [\"core\", \"discovery\"]",
            )
            .replace("discovery = \"docker\"", "discovery = \"consul\"");
        // With the locally built (Debian) Prometheus: still the engine's discovery.
        std::fs::write(&toml, &consul_mode).unwrap();
        let shop = crate::shop::Shop::load(&dir).unwrap();
        assert!(!prometheus_reads_consul(&shop));
        assert!(!sync_prometheus_config(&shop).unwrap());
        // With the upstream image: Consul's catalog.
        let upstream = consul_mode.replace(
            "image = \"shopstack/prometheus:2.42\"",
            "image = \"prom/prometheus:v2.42.0\"",
        );
        assert_ne!(upstream, consul_mode);
        std::fs::write(&toml, upstream).unwrap();
        let shop = crate::shop::Shop::load(&dir).unwrap();
        assert!(prometheus_reads_consul(&shop));
        assert!(sync_prometheus_config(&shop).unwrap());
        let consul = std::fs::read_to_string(&path).unwrap();
        assert!(consul.contains("consul_sd_configs") && !consul.contains("docker_sd_configs"));
        assert!(!sync_prometheus_config(&shop).unwrap(), "already in step");

        // An edited file is the merchant's: left alone.
        std::fs::write(&path, format!("{docker}# mine\n")).unwrap();
        assert!(!sync_prometheus_config(&shop).unwrap());
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("# mine\n")
        );
    }

    #[test]
    fn the_gateway_reads_consul_instead_of_the_engine() {
        let command = [
            "--entrypoints.web.address=:80",
            "--providers.docker=true",
            "--providers.docker.exposedbydefault=false",
            "--providers.docker.constraints=Label(`shopstack.shop`,`s`)",
        ]
        .map(String::from);
        let args = gateway_command("s", &command);
        assert!(!args.iter().any(|a| a.starts_with("--providers.docker")));
        assert!(args.contains(&"--entrypoints.web.address=:80".to_owned()));
        assert!(
            args.contains(&"--providers.consulcatalog.endpoint.address=consul:8500".to_owned())
        );
        assert!(
            args.contains(
                &"--providers.consulcatalog.constraints=Tag(`shopstack.shop=s`)".to_owned()
            )
        );
    }
}
