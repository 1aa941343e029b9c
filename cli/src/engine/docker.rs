//! The Docker Engine adapter (bollard). Every object it creates carries the shop's labels
//! and it only ever lists, changes or removes objects that carry them.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
    Mount as DockerMount, MountType, NetworkCreateRequest, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, ListContainersOptions, ListNetworksOptions,
    ListVolumesOptions, LogsOptions, RemoveContainerOptions, RenameContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{
    Engine, Health, JobOutcome, LABEL_COMPONENT, LABEL_CONFIG_HASH, LABEL_REPLICA, LABEL_ROLE,
    LABEL_SHOP,
};
use crate::planner::{ContainerSpec, Job, Mount, Observed, ObservedWorld};

#[derive(Debug, Clone)]
pub struct DockerEngine {
    pub docker: Docker,
}

pub fn shop_filter(shop: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{LABEL_SHOP}={shop}")])])
}

pub fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

const MS: i64 = 1_000_000;

fn create_body(spec: &ContainerSpec, replica: u32, hash: &str) -> ContainerCreateBody {
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(LABEL_REPLICA.into(), replica.to_string());
    labels.insert(LABEL_CONFIG_HASH.into(), hash.to_owned());
    let mounts = spec
        .mounts
        .iter()
        .map(|m| match m {
            Mount::Bind {
                source,
                target,
                read_only,
            } => DockerMount {
                typ: Some(MountType::BIND),
                source: Some(source.clone()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            },
            Mount::Volume { name, target } => DockerMount {
                typ: Some(MountType::VOLUME),
                source: Some(name.clone()),
                target: Some(target.clone()),
                ..Default::default()
            },
        })
        .collect();
    // Host ports belong to the first replica only: two containers cannot share one.
    let publish = replica == 1;
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .filter(|_| publish)
        .map(|(container, host)| {
            (
                format!("{container}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("0.0.0.0".into()),
                    host_port: Some(host.to_string()),
                }]),
            )
        })
        .collect();
    let exposed: Vec<String> = spec.ports.iter().map(|(c, _)| format!("{c}/tcp")).collect();
    let endpoint = EndpointSettings {
        aliases: Some(spec.aliases.clone()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
        env: Some(spec.env.clone()),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        stop_timeout: Some(spec.stop_grace_s),
        user: spec.user.clone(),
        healthcheck: spec.health.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(h.interval_ms as i64 * MS),
            timeout: Some(h.timeout_ms as i64 * MS),
            retries: Some(i64::from(h.retries)),
            start_period: Some(0),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            port_bindings: Some(port_bindings),
            memory: spec.memory_bytes,
            nano_cpus: spec.nano_cpus,
            // Replicas come back after a crash or a reboot of the host; one-shot jobs
            // (replica 0) never rerun by themselves.
            restart_policy: (replica > 0).then_some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            init: None,
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
        }),
        ..Default::default()
    }
}

impl DockerEngine {
    pub fn new(docker: Docker) -> Self {
        Self { docker }
    }

    /// Runs a one-shot container with `input` on its standard input (then closed), so
    /// that a secret such as a password never shows in its command line, environment or
    /// a file.
    pub async fn run_job_with_stdin(&self, job: &Job, input: &[u8]) -> anyhow::Result<JobOutcome> {
        self.remove_if_exists(&job.name).await?;
        let mut body = create_body(&job.spec, 0, &job.spec.hash());
        body.open_stdin = Some(true);
        body.stdin_once = Some(true);
        body.attach_stdin = Some(true);
        let options = CreateContainerOptions {
            name: Some(job.name.clone()),
            ..Default::default()
        };
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .with_context(|| format!("creating container {}", job.name))?
            .id;
        let attach = AttachContainerOptions {
            stdin: true,
            stream: true,
            ..Default::default()
        };
        let mut attached = self
            .docker
            .attach_container(&id, Some(attach))
            .await
            .with_context(|| format!("attaching to {}", job.name))?;
        self.docker
            .start_container(&id, None)
            .await
            .map_err(|e| start_error(&job.name, &e))?;
        attached
            .input
            .write_all(input)
            .await
            .with_context(|| format!("writing to the standard input of {}", job.name))?;
        attached.input.shutdown().await.ok();
        let outcome = self.wait_job(&id, &job.name).await;
        self.remove_if_exists(&job.name).await?;
        outcome
    }

    async fn wait_job(&self, id: &str, name: &str) -> anyhow::Result<JobOutcome> {
        let mut wait = self.docker.wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        let exit_code = match wait.next().await {
            Some(Ok(response)) => response.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(e).with_context(|| format!("waiting for {name}")),
            None => -1,
        };
        let logs = self.logs_tail(id, 50).await.unwrap_or_default();
        Ok(JobOutcome { exit_code, logs })
    }

    async fn remove_if_exists(&self, name: &str) -> anyhow::Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing stale container {name}")),
        }
    }

    async fn create_and_start(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> anyhow::Result<String> {
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .with_context(|| format!("creating container {name}"))?;
        self.docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| start_error(name, &e))?;
        Ok(created.id)
    }
}

/// Turns the engine's "port is already allocated" into advice.
fn start_error(name: &str, err: &bollard::errors::Error) -> anyhow::Error {
    let text = err.to_string();
    if text.contains("port is already allocated") || text.contains("address already in use") {
        anyhow::anyhow!(
            "starting {name}: a host port it publishes is taken ({text}); run `shopctl doctor` to see who holds it, \
             and change the port in shop.toml (`ports.http = …`) or stop that process"
        )
    } else {
        anyhow::anyhow!("starting {name}: {text}")
    }
}

#[async_trait]
impl Engine for DockerEngine {
    async fn observe(&self, shop: &str) -> anyhow::Result<ObservedWorld> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(shop_filter(shop)),
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .context("listing containers")?;
        let containers = summaries
            .into_iter()
            .filter_map(|s| {
                let labels = s.labels.unwrap_or_default();
                Some(Observed {
                    id: s.id?,
                    name: s
                        .names
                        .and_then(|n| n.first().cloned())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_owned(),
                    component: labels.get(LABEL_COMPONENT)?.clone(),
                    replica: labels
                        .get(LABEL_REPLICA)
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0),
                    role: labels.get(LABEL_ROLE).cloned().unwrap_or_default(),
                    hash: labels.get(LABEL_CONFIG_HASH).cloned().unwrap_or_default(),
                    running: matches!(
                        s.state,
                        Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                    ),
                })
            })
            .collect();
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(shop_filter(shop)),
            }))
            .await
            .context("listing networks")?;
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(shop_filter(shop)),
            }))
            .await
            .context("listing volumes")?;
        Ok(ObservedWorld {
            containers,
            network_exists: !networks.is_empty(),
            volumes: volumes
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.name)
                .collect(),
        })
    }

    async fn image_id(&self, image: &str) -> anyhow::Result<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("inspecting image {image}")),
        }
    }

    async fn create_network(&self, shop: &str, name: &str) -> anyhow::Result<()> {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(LABEL_SHOP.to_owned(), shop.to_owned())])),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .with_context(|| format!("creating network {name}"))?;
        Ok(())
    }

    async fn create_volume(&self, shop: &str, name: &str) -> anyhow::Result<()> {
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(HashMap::from([(LABEL_SHOP.to_owned(), shop.to_owned())])),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .with_context(|| format!("creating volume {name}"))?;
        Ok(())
    }

    async fn start(
        &self,
        name: &str,
        replica: u32,
        spec: &ContainerSpec,
    ) -> anyhow::Result<String> {
        self.remove_if_exists(name).await?;
        self.create_and_start(name, create_body(spec, replica, &spec.hash()))
            .await
    }

    async fn run_job(&self, job: &Job) -> anyhow::Result<JobOutcome> {
        self.remove_if_exists(&job.name).await?;
        let id = self
            .create_and_start(&job.name, create_body(&job.spec, 0, &job.spec.hash()))
            .await?;
        let outcome = self.wait_job(&id, &job.name).await;
        self.remove_if_exists(&job.name).await?;
        outcome
    }

    async fn health(&self, id: &str) -> anyhow::Result<Health> {
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .with_context(|| format!("inspecting {id}"))?;
        let state = inspect.state.unwrap_or_default();
        if !state.running.unwrap_or(false) {
            return Ok(Health::Exited {
                code: state.exit_code.unwrap_or(-1),
            });
        }
        Ok(match state.health.and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY)
            | None
            | Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) => Health::Healthy,
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        })
    }

    async fn stop_and_remove(&self, id: &str, grace_s: i64) -> anyhow::Result<()> {
        let t = i32::try_from(grace_s).unwrap_or(10);
        match self
            .docker
            .stop_container(
                id,
                Some(StopContainerOptions {
                    t: Some(t),
                    signal: None,
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => return Err(e).with_context(|| format!("stopping {id}")),
        }
        self.remove_if_exists(id).await
    }

    async fn rename(&self, id: &str, new_name: &str) -> anyhow::Result<()> {
        self.docker
            .rename_container(
                id,
                RenameContainerOptions {
                    name: new_name.to_owned(),
                },
            )
            .await
            .with_context(|| format!("renaming {id} to {new_name}"))
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> anyhow::Result<String> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(out) => text.push_str(&String::from_utf8_lossy(&out.into_bytes())),
                Err(_) => break,
            }
        }
        Ok(text)
    }
}
