//! The binary's commands: shopkit's `serve | migrate | healthcheck` plus `events`
//! (parked messages). Everything comes from environment variables, so the one-shot
//! `payment migrate` container needs no arguments.

use std::process::ExitCode;
use std::time::Duration;

use shopkit::cli::{Common, EventsCommand};
use shopkit::config::Settings;

use crate::config::Config;
use crate::startup::Application;

/// How long `migrate` waits for PostgreSQL to accept connections (the one-shot container
/// may start a moment before it does).
const DATABASE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Parser)]
#[command(name = "payment", version, about = "Shopstack's payment service")]
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
}

/// Runs a command (`serve` when none is given) and turns its outcome into an exit code.
pub async fn run(command: Option<Command>, settings: Settings) -> ExitCode {
    match command.unwrap_or(Command::Common(Common::Serve)) {
        Command::Common(Common::Healthcheck) => shopkit::cli::healthcheck(&settings).await,
        Command::Common(Common::Serve) => shopkit::cli::exit_code(serve(&settings).await),
        Command::Common(Common::Migrate) => shopkit::cli::exit_code(migrate(&settings).await),
        Command::Events { command } => shopkit::cli::events(&settings, command).await,
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let config = Config::from_settings(settings)?;
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), "payment listening");
    app.run_until_stopped(shopkit::shutdown::os_signal()).await
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = shopkit::db::pool_from_settings(settings)?;
    let version = shopkit::db::migrate(&pool, &crate::MIGRATOR, DATABASE_WAIT).await?;
    tracing::info!(version, "payment schema is up to date");
    Ok(())
}
