//! `shopctl doctor`: is this host ready to run the shop? Engine, disk, ports, images —
//! each finding with its remedy.

use std::path::Path;

use serde::Serialize;

use crate::shop::Shop;

/// Below this much free space on the engine's disk, images and volumes will not fit.
const MIN_FREE_BYTES: u64 = 5 << 30;

#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub findings: Vec<Finding>,
}

fn finding(check: &str, ok: bool, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.to_owned(),
        ok,
        detail: detail.into(),
    }
}

pub async fn run(shop_dir: &Path) -> Report {
    let mut findings = Vec::new();
    let docker = match crate::engine::connect().await {
        Ok(docker) => {
            let version = docker.version().await.ok();
            let detail = version.map_or_else(
                || "reachable".to_owned(),
                |v| {
                    format!(
                        "Docker {} (Engine API {})",
                        v.version.unwrap_or_default(),
                        v.api_version.unwrap_or_default()
                    )
                },
            );
            findings.push(finding("engine", true, detail));
            Some(docker)
        }
        Err(e) => {
            findings.push(finding("engine", false, e.to_string()));
            None
        }
    };
    let root = match &docker {
        Some(d) => d
            .info()
            .await
            .ok()
            .and_then(|i| i.docker_root_dir)
            .unwrap_or_else(|| "/var/lib/docker".into()),
        None => "/var/lib/docker".into(),
    };
    match free_bytes(&root) {
        Some(free) => findings.push(finding(
            "disk",
            free >= MIN_FREE_BYTES,
            format!(
                "{:.1} GiB free under {root}{}",
                free as f64 / f64::from(1 << 30),
                if free >= MIN_FREE_BYTES {
                    ""
                } else {
                    "; free space (docker system prune) before building images"
                }
            ),
        )),
        None => findings.push(finding(
            "disk",
            true,
            format!("could not measure free space under {root}"),
        )),
    }
    match Shop::load(shop_dir) {
        Ok(shop) => {
            let running: Vec<String> = match &docker {
                Some(d) => crate::status::collect(d, shop.name())
                    .await
                    .map(|s| s.replicas.into_iter().flat_map(|r| r.ports).collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            for component in shop.enabled() {
                for port in &component.ports {
                    let Some(host) = shop.host_port(component, port) else {
                        continue;
                    };
                    let ours = running.iter().any(|p| p.starts_with(&format!("{host}->")));
                    if ours || crate::ports::is_free(host) {
                        findings.push(finding(
                            "port",
                            true,
                            format!("{host} ({}.{}) is available", component.name, port.name),
                        ));
                    } else {
                        let holder = crate::ports::process_holding(host)
                            .unwrap_or_else(|| "another process or container".into());
                        findings.push(finding(
                            "port",
                            false,
                            format!("{host} ({}.{}) is taken by {holder}; change it in shop.toml or stop that process", component.name, port.name),
                        ));
                    }
                }
                let image = shop.image(component);
                if let Some(d) = &docker {
                    let present = d.inspect_image(&image).await.is_ok();
                    let detail = if present {
                        format!("{image} is present")
                    } else {
                        format!("{image} is missing: {}", crate::shop::image_remedy(&image))
                    };
                    findings.push(finding("image", present, detail));
                }
            }
        }
        Err(e) => findings.push(finding("shop", false, e.to_string())),
    }
    Report {
        ok: findings.iter().all(|f| f.ok),
        findings,
    }
}

fn free_bytes(path: &str) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-Pk", path])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

pub fn render(report: &Report) -> String {
    report
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {:<7} {}",
                if f.ok { "ok  " } else { "FAIL" },
                f.check,
                f.detail
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
