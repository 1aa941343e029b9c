//! The binary's commands: shopkit's `serve | migrate | healthcheck`, `events` (parked
//! messages) and `messages` (the messages, as `shopctl notifications` shows them).

use std::process::ExitCode;
use std::time::Duration;

use shopkit::cli::{Common, EventsCommand};
use shopkit::config::Settings;

use crate::config::Config;
use crate::startup::Application;

/// How long `migrate` waits for PostgreSQL to accept connections.
const DATABASE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Parser)]
#[command(
    name = "notification",
    version,
    about = "Shopstack's notification service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    #[command(flatten)]
    Common(Common),
    /// Parked event messages: list them, replay them (as `shopctl events` does).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// The messages, newest first, as one JSON line `{"messages": [...]}`.
    Messages {
        /// Only those to this email address or phone number.
        #[arg(long)]
        to: Option<String>,
        /// Only this kind (order_confirmation, password_reset, ...).
        #[arg(long)]
        kind: Option<String>,
        /// Only this status (pending, sent, failed, parked).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// Runs a command (`serve` when none is given) and turns its outcome into an exit code.
pub async fn run(command: Option<Command>, settings: Settings) -> ExitCode {
    match command.unwrap_or(Command::Common(Common::Serve)) {
        Command::Common(Common::Healthcheck) => shopkit::cli::healthcheck(&settings).await,
        Command::Common(Common::Serve) => shopkit::cli::exit_code(serve(&settings).await),
        Command::Common(Common::Migrate) => shopkit::cli::exit_code(migrate(&settings).await),
        Command::Events { command } => shopkit::cli::events(&settings, command).await,
        Command::Messages {
            to,
            kind,
            status,
            limit,
        } => shopkit::cli::exit_code(messages(&settings, to, kind, status, limit).await),
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let config = Config::from_settings(settings)?;
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), "notification listening");
    app.run_until_stopped(shopkit::shutdown::os_signal()).await
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = shopkit::db::pool_from_settings(settings)?;
    let version = shopkit::db::migrate(&pool, &crate::MIGRATOR, DATABASE_WAIT).await?;
    tracing::info!(version, "notification schema is up to date");
    Ok(())
}

async fn messages(
    settings: &Settings,
    to: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    limit: i64,
) -> anyhow::Result<()> {
    let filter =
        crate::api::filter(to, kind, status, None, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = shopkit::db::pool_from_settings(settings)?;
    let mut conn = pool.acquire().await?;
    let rows = crate::store::list_messages(&mut conn, &filter, None, limit.clamp(1, 1000)).await?;
    println!("{}", serde_json::json!({ "messages": rows }));
    Ok(())
}
