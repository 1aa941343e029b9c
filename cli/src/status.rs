//! `shopctl status`: what runs, per component and replica, from the engine.

use std::collections::HashMap;

use anyhow::Context;
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, HealthStatusEnum};
use bollard::query_parameters::ListContainersOptions;
use serde::Serialize;

use crate::engine::docker::shop_filter;
use crate::engine::{LABEL_COMPONENT, LABEL_REPLICA, LABEL_ROLE};

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub component: String,
    pub replica: u32,
    pub container: String,
    pub state: String,
    /// healthy, starting, unhealthy, none.
    pub health: String,
    pub ports: Vec<String>,
    pub uptime_s: Option<i64>,
    pub image: String,
    /// The service's newest applied migration, from its readiness answer.
    pub migration: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub shop: String,
    pub healthy: bool,
    pub replicas: Vec<ReplicaStatus>,
    /// Where to reach the shop and its dashboards from this host.
    pub urls: Vec<Url>,
}

/// A published entry point: the gateway (the shop itself), Prometheus, Grafana.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Url {
    /// `shop`, `prometheus` or `grafana`.
    pub name: String,
    pub url: String,
}

/// The components whose published HTTP ports `status` shows as URLs, under the name
/// it shows them by.
const URL_COMPONENTS: [(&str, &str); 3] = [
    ("gateway", "shop"),
    ("prometheus", "prometheus"),
    ("grafana", "grafana"),
];

pub async fn collect(docker: &Docker, shop: &str) -> anyhow::Result<Status> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(shop_filter(shop)),
        ..Default::default()
    };
    let summaries = docker
        .list_containers(Some(options))
        .await
        .context("listing containers")?;
    let mut replicas = Vec::new();
    for summary in summaries {
        let labels = summary.labels.clone().unwrap_or_default();
        if labels.get(LABEL_ROLE).map(String::as_str) != Some("service") {
            continue;
        }
        let Some(id) = summary.id else { continue };
        let inspect = docker
            .inspect_container(&id, None)
            .await
            .with_context(|| format!("inspecting {id}"))?;
        replicas.push(replica_status(&labels, &inspect, chrono::Utc::now()));
    }
    replicas
        .sort_by(|a, b| (a.component.as_str(), a.replica).cmp(&(b.component.as_str(), b.replica)));
    let healthy = !replicas.is_empty()
        && replicas
            .iter()
            .all(|r| r.state == "running" && matches!(r.health.as_str(), "healthy" | "none"));
    let urls = urls(&replicas);
    Ok(Status {
        shop: shop.to_owned(),
        healthy,
        replicas,
        urls,
    })
}

/// The URLs of the running gateway, Prometheus and Grafana, from their published ports
/// (`8080->80/tcp`); one per port, however many replicas publish it.
pub fn urls(replicas: &[ReplicaStatus]) -> Vec<Url> {
    let mut urls: Vec<Url> = Vec::new();
    for (component, name) in URL_COMPONENTS {
        for replica in replicas
            .iter()
            .filter(|r| r.component == component && r.state == "running")
        {
            for port in &replica.ports {
                let Some((host, container)) = port.split_once("->") else {
                    continue;
                };
                // The gateway's TLS entrypoint (container port 443) is the HTTPS address.
                let tls = container.starts_with("443/");
                let url = Url {
                    name: if tls {
                        format!("{name}-https")
                    } else {
                        name.to_owned()
                    },
                    url: format!(
                        "{}://localhost:{}/",
                        if tls { "https" } else { "http" },
                        host.rsplit(':').next().unwrap_or(host)
                    ),
                };
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
    }
    urls
}

/// One replica's line, from its labels and `docker inspect`.
pub fn replica_status(
    labels: &HashMap<String, String>,
    inspect: &ContainerInspectResponse,
    now: chrono::DateTime<chrono::Utc>,
) -> ReplicaStatus {
    let state = inspect.state.clone().unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let health = state.health.as_ref();
    let health_text = match health.and_then(|h| h.status) {
        Some(HealthStatusEnum::HEALTHY) => "healthy",
        Some(HealthStatusEnum::STARTING) => "starting",
        Some(HealthStatusEnum::UNHEALTHY) => "unhealthy",
        _ => "none",
    };
    // The health check prints the readiness JSON; its "migration" is the schema version.
    let migration = health
        .and_then(|h| h.log.as_ref())
        .and_then(|log| log.iter().rev().find_map(|r| r.output.clone()))
        .and_then(|out| serde_json::from_str::<serde_json::Value>(out.trim()).ok())
        .and_then(|v| v.get("migration").and_then(serde_json::Value::as_i64));
    let uptime_s = state
        .started_at
        .as_deref()
        .filter(|_| running)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds());
    let mut ports: Vec<String> = inspect
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .map(|map| {
            map.iter()
                .filter_map(|(container, bindings)| {
                    let host = bindings.as_ref()?.first()?.host_port.clone()?;
                    Some(format!("{host}->{container}"))
                })
                .collect()
        })
        .unwrap_or_default();
    ports.sort();
    ReplicaStatus {
        component: labels.get(LABEL_COMPONENT).cloned().unwrap_or_default(),
        replica: labels
            .get(LABEL_REPLICA)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        container: inspect
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        state: state
            .status
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
        health: health_text.to_owned(),
        ports,
        uptime_s,
        image: inspect
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        migration,
    }
}

/// The human table.
pub fn render(status: &Status) -> String {
    let mut lines = vec![format!(
        "{:<14} {:>3}  {:<9} {:<10} {:<16} {:>8}  {:<9} {}",
        "COMPONENT", "#", "STATE", "HEALTH", "PORTS", "UPTIME", "MIGRATION", "IMAGE"
    )];
    for r in &status.replicas {
        lines.push(format!(
            "{:<14} {:>3}  {:<9} {:<10} {:<16} {:>8}  {:<9} {}",
            r.component,
            r.replica,
            r.state,
            r.health,
            if r.ports.is_empty() {
                "-".to_owned()
            } else {
                r.ports.join(",")
            },
            r.uptime_s.map_or_else(|| "-".to_owned(), human_duration),
            r.migration
                .map_or_else(|| "-".to_owned(), |m| m.to_string()),
            r.image
        ));
    }
    if status.replicas.is_empty() {
        lines.push(format!(
            "(nothing runs for shop {}; start it with `shopctl up`)",
            status.shop
        ));
    }
    if !status.urls.is_empty() {
        lines.push(String::new());
    }
    for url in &status.urls {
        lines.push(format!("{:<11} {}", format!("{}:", url.name), url.url));
    }
    lines.join("\n")
}

pub fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerState, Health, HealthcheckResult};

    #[test]
    fn migration_version_comes_from_the_health_log() {
        let inspect = ContainerInspectResponse {
            name: Some("/s-catalog-2".into()),
            state: Some(ContainerState {
                running: Some(true),
                started_at: Some("2026-12-01T10:00:00Z".into()),
                health: Some(Health {
                    status: Some(HealthStatusEnum::HEALTHY),
                    log: Some(vec![HealthcheckResult {
                        output: Some(
                            "{\"status\":\"ready\",\"migration\":20261201000001}\n".into(),
                        ),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let labels = HashMap::from([
            (LABEL_COMPONENT.to_owned(), "catalog".to_owned()),
            (LABEL_REPLICA.to_owned(), "2".to_owned()),
        ]);
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:01:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let r = replica_status(&labels, &inspect, now);
        assert_eq!(r.migration, Some(20_261_201_000_001));
        assert_eq!(r.uptime_s, Some(90));
        assert_eq!(r.replica, 2);
        assert_eq!(r.health, "healthy");
        assert_eq!(human_duration(90), "1m30s");
    }

    fn running(component: &str, replica: u32, ports: &[&str]) -> ReplicaStatus {
        ReplicaStatus {
            component: component.into(),
            replica,
            container: format!("s-{component}-{replica}"),
            state: "running".into(),
            health: "healthy".into(),
            ports: ports.iter().map(|p| (*p).to_owned()).collect(),
            uptime_s: Some(1),
            image: "x".into(),
            migration: None,
        }
    }

    #[test]
    fn urls_name_the_shop_prometheus_and_grafana_when_they_run() {
        let mut replicas = vec![
            running("catalog", 1, &[]),
            running("gateway", 1, &["8081->80/tcp"]),
            running("prometheus", 1, &["9091->9090/tcp"]),
        ];
        let expected = |name: &str, port: u16| Url {
            name: name.into(),
            url: format!("http://localhost:{port}/"),
        };
        assert_eq!(
            urls(&replicas),
            [expected("shop", 8081), expected("prometheus", 9091)]
        );
        replicas.push(running("grafana", 1, &["3001->3000/tcp"]));
        replicas[2].state = "exited".into();
        assert_eq!(
            urls(&replicas),
            [expected("shop", 8081), expected("grafana", 3001)]
        );
        let status = Status {
            shop: "s".into(),
            healthy: true,
            replicas,
            urls: urls(&[running("gateway", 1, &["8081->80/tcp"])]),
        };
        assert!(render(&status).ends_with("\nshop:       http://localhost:8081/"));
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["urls"][0]["name"], "shop");
        assert_eq!(json["urls"][0]["url"], "http://localhost:8081/");
    }

    #[test]
    fn the_gateway_tls_port_is_the_https_url() {
        let replicas = [running("gateway", 1, &["8443->443/tcp", "8081->80/tcp"])];
        let urls = urls(&replicas);
        assert_eq!(urls.len(), 2);
        let shop = urls.iter().find(|u| u.name == "shop").unwrap();
        assert_eq!(shop.url, "http://localhost:8081/");
        let https = urls.iter().find(|u| u.name == "shop-https").unwrap();
        assert_eq!(https.url, "https://localhost:8443/");
    }
}
