//! What each service binary shares: the `serve | migrate | healthcheck` subcommands, the
//! start-up sequence, and the HTTP server with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::config::{ConfigError, Settings};
use crate::discovery::Discovery;

/// The subcommands every service has. A service adds its own with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Common {
    /// Serve HTTP until SIGTERM (the default in containers).
    Serve,
    /// Apply the embedded database migrations and exit.
    Migrate,
    /// Exit 0 if this container's service answers ready (the Docker health check: service
    /// images are FROM scratch and have no curl).
    Healthcheck,
}

/// Call first in every `main`: the TLS provider (reqwest is built without one) and logs.
pub fn start(service: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::telemetry::init(service);
}

/// Where to listen: `BIND_ADDR` (default `0.0.0.0`) and `PORT` (default 8080).
pub fn bind_addr(settings: &Settings) -> Result<SocketAddr, ConfigError> {
    let host: std::net::IpAddr =
        settings.parse_or("BIND_ADDR", std::net::IpAddr::from([0, 0, 0, 0]))?;
    let port: u16 = settings.parse_or("PORT", 8080)?;
    Ok(SocketAddr::new(host, port))
}

/// Time between SIGTERM and closing the listener, during which readiness fails so the
/// gateway stops routing here (`SHUTDOWN_DRAIN_MS`, default 3000).
pub fn drain_period(settings: &Settings) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(
        settings.parse_or("SHUTDOWN_DRAIN_MS", 3000)?,
    ))
}

/// Serves `app` until `shutdown` resolves, then lets in-flight requests finish. With
/// `CONSUL_HTTP_ADDR` set, the replica is registered with Consul while it serves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let discovery = Discovery::from_settings(&Settings::from_env())?;
    serve_registered(listener, app, shutdown, discovery).await
}

/// [`serve`] with the Consul registration given: registered once listening (retrying
/// until the agent answers), deregistered as soon as `shutdown` resolves, before the
/// requests in flight finish.
pub async fn serve_registered(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    discovery: Option<Discovery>,
) -> anyhow::Result<()> {
    let port = listener
        .local_addr()
        .context("reading the bound port")?
        .port();
    let registering = discovery.as_ref().map(|d| d.spawn_register(port));
    let shutdown = async move {
        shutdown.await;
        if let Some(registering) = registering {
            registering.abort();
        }
        if let Some(discovery) = discovery {
            match discovery.deregister().await {
                Ok(()) => tracing::info!("deregistered from consul"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "consul deregistration failed"),
            }
        }
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("HTTP server failed")
}

/// The health check: `GET /health/ready` on this container's port, over plain HTTP/1.0
/// so that it needs no client library. Prints the body (Docker keeps it in the health log,
/// where `shopctl status` reads the migration version).
pub async fn healthcheck(settings: &Settings) -> ExitCode {
    let port: u16 = settings.parse_or("PORT", 8080).unwrap_or(8080);
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(
                b"GET /health/ready HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(response)) => {
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            println!("{body}");
            if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(Err(e)) => {
            println!("{{\"status\":\"down\",\"error\":\"{e}\"}}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("{{\"status\":\"down\",\"error\":\"timed out\"}}");
            ExitCode::FAILURE
        }
    }
}

/// Turns a failed run into a logged error (with its cause chain) and exit code 1.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}

/// `<service> events …`: the parking queues, for `shopctl events` (which runs this in a
/// one-shot container on the shop's network, where the broker is).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum EventsCommand {
    /// Print the parked messages of the named consumers (default: every known one) as
    /// one JSON document on stdout.
    Parked {
        #[arg(long = "consumer")]
        consumers: Vec<String>,
    },
    /// Move parked messages of a consumer back to its queue: one (`--id`) or all.
    Replay {
        #[arg(long)]
        consumer: String,
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<uuid::Uuid>,
        #[arg(long)]
        all: bool,
    },
}

/// Runs an [`EventsCommand`] against the broker of `AMQP_URL`.
pub async fn events(settings: &Settings, command: EventsCommand) -> ExitCode {
    exit_code(run_events(settings, command).await)
}

async fn run_events(settings: &Settings, command: EventsCommand) -> anyhow::Result<()> {
    use crate::events::parked;
    let config = crate::events::EventsConfig::from_settings(settings)?
        .context("AMQP_URL is not set: this service is not connected to an event broker")?;
    let connection = crate::events::topology::connect(&config.amqp_url).await?;
    let document = match command {
        EventsCommand::Parked { consumers } => {
            let consumers = if consumers.is_empty() {
                crate::events::CONSUMERS
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect()
            } else {
                consumers
            };
            let mut all = Vec::new();
            for consumer in &consumers {
                all.extend(parked::list(&connection, consumer).await?);
            }
            serde_json::json!({ "parked": all })
        }
        EventsCommand::Replay { consumer, id, .. } => {
            let select = id.map_or(parked::Select::All, parked::Select::One);
            let replayed = parked::replay(&connection, &consumer, select).await?;
            serde_json::json!({ "replayed": replayed })
        }
    };
    let _ = connection.close(200, "done".into()).await;
    // The one line on stdout that shopctl reads; logs go through tracing.
    println!("{document}");
    Ok(())
}
