//! The binary's commands: `serve` (the default) and `healthcheck`. There is no
//! `migrate`: the storefront has no database.

use std::process::ExitCode;

use shopkit::config::Settings;

use crate::config::Config;
use crate::startup::Application;

#[derive(Debug, clap::Parser)]
#[command(
    name = "storefront",
    version,
    about = "Shopstack's storefront and merchant admin"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum Command {
    /// Serve HTTP until SIGTERM (the default in containers).
    Serve,
    /// Exit 0 if this container's storefront answers ready (the Docker health check).
    Healthcheck,
}

/// Runs a command (`serve` when none is given) and turns its outcome into an exit code.
pub async fn run(command: Option<Command>, settings: Settings) -> ExitCode {
    match command.unwrap_or(Command::Serve) {
        Command::Healthcheck => shopkit::cli::healthcheck(&settings).await,
        Command::Serve => shopkit::cli::exit_code(serve(&settings).await),
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let config = Config::from_settings(settings)?;
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), "storefront listening");
    app.run_until_stopped(shopkit::shutdown::os_signal()).await
}
