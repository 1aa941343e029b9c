//! `shopctl down`: removes the shop's containers and network, and its volumes on request.
//! Only objects labelled with the shop are touched.

use anyhow::Context;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveVolumeOptions,
};
use futures::future::try_join_all;
use serde::Serialize;

use crate::engine::Engine;
use crate::engine::docker::{DockerEngine, shop_filter};
use crate::output::Output;

#[derive(Debug, Serialize)]
pub struct DownReport {
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
}

pub async fn down(
    docker: &Docker,
    shop: &str,
    volumes: bool,
    out: Output,
) -> anyhow::Result<DownReport> {
    let engine = DockerEngine::new(docker.clone());
    let options = ListContainersOptions {
        all: true,
        filters: Some(shop_filter(shop)),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .context("listing containers")?;
    let ids: Vec<(String, String)> = containers
        .into_iter()
        .filter_map(|c| {
            Some((
                c.id?,
                c.names.and_then(|n| n.first().cloned()).unwrap_or_default(),
            ))
        })
        .collect();
    let removals = ids.iter().map(|(id, name)| {
        out.step(
            "down",
            &format!("removing {}", name.trim_start_matches('/')),
        );
        engine.stop_and_remove(id, 15)
    });
    try_join_all(removals).await?;
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(shop_filter(shop)),
        }))
        .await?;
    for n in &networks {
        if let Some(id) = &n.id {
            docker
                .remove_network(id)
                .await
                .with_context(|| format!("removing network {id}"))?;
        }
    }
    let mut removed_volumes = 0;
    if volumes {
        let list = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(shop_filter(shop)),
            }))
            .await?;
        for v in list.volumes.unwrap_or_default() {
            out.step("down", &format!("removing volume {}", v.name));
            docker
                .remove_volume(&v.name, Some(RemoveVolumeOptions { force: false }))
                .await
                .with_context(|| format!("removing volume {}", v.name))?;
            removed_volumes += 1;
        }
    }
    Ok(DownReport {
        containers: ids.len(),
        networks: networks.len(),
        volumes: removed_volumes,
    })
}
