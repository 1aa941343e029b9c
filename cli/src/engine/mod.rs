//! The Docker engine layer: connecting (with a remedy when there is no engine), and the
//! adapter that carries out the planner's actions through bollard.

use std::time::Duration;

use bollard::Docker;

/// Every object shopctl creates carries these labels; nothing without them is touched.
pub const LABEL_SHOP: &str = "shopstack.shop";
pub const LABEL_COMPONENT: &str = "shopstack.component";
pub const LABEL_REPLICA: &str = "shopstack.replica";
/// A hash of everything that defines a container; a changed hash means recreate.
pub const LABEL_CONFIG_HASH: &str = "shopstack.config-hash";
/// `service`, `migrate` or `seed`: what the container is for.
pub const LABEL_ROLE: &str = "shopstack.role";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the Docker engine at {socket}: {cause}\n\
         remedy: start it (`systemctl start docker`, or `dockerd &` as root), or point \
         DOCKER_HOST at a running engine; check with `docker info`"
    )]
    Unreachable { socket: String, cause: String },
}

/// The socket we talk to: `DOCKER_HOST` (unix:// or tcp://), else the default socket.
pub fn socket() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Connects, negotiates the API version (Engine API 1.41 and newer work) and pings.
pub async fn connect() -> Result<Docker, EngineError> {
    let socket = socket();
    let unreachable = |cause: String| EngineError::Unreachable {
        socket: socket.clone(),
        cause,
    };
    let docker = if let Some(path) = socket.strip_prefix("unix://") {
        Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(&socket, 120, bollard::API_DEFAULT_VERSION)
    }
    .map_err(|e| unreachable(e.to_string()))?;
    let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::time::timeout(Duration::from_secs(5), docker.ping())
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(docker)
}

pub mod docker;
pub mod pull;

use async_trait::async_trait;

use crate::planner::{ContainerSpec, Job, ObservedWorld};

/// A container's health as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Health check passing (or no check and running).
    Healthy,
    Starting,
    /// Failing its health check, still running.
    Unhealthy,
    /// Not running any more.
    Exited {
        code: i64,
    },
}

/// A finished one-shot container.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub exit_code: i64,
    pub logs: String,
}

/// What the reconciler needs from an engine. The Docker adapter implements it; a Swarm
/// adapter would implement it with services instead of containers.
#[async_trait]
pub trait Engine: Send + Sync {
    async fn observe(&self, shop: &str) -> anyhow::Result<ObservedWorld>;
    /// The image's id, or `None` when the engine does not have it.
    async fn image_id(&self, image: &str) -> anyhow::Result<Option<String>>;
    async fn create_network(&self, shop: &str, name: &str) -> anyhow::Result<()>;
    async fn create_volume(&self, shop: &str, name: &str) -> anyhow::Result<()>;
    /// Creates and starts replica `replica` under `name`, returning its id.
    async fn start(&self, name: &str, replica: u32, spec: &ContainerSpec)
    -> anyhow::Result<String>;
    /// Runs a one-shot container to completion and removes it.
    async fn run_job(&self, job: &Job) -> anyhow::Result<JobOutcome>;
    async fn health(&self, id: &str) -> anyhow::Result<Health>;
    /// SIGTERM, up to `grace_s` seconds to exit, then removal.
    async fn stop_and_remove(&self, id: &str, grace_s: i64) -> anyhow::Result<()>;
    async fn rename(&self, id: &str, new_name: &str) -> anyhow::Result<()>;
    async fn logs_tail(&self, id: &str, lines: usize) -> anyhow::Result<String>;
}
