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
