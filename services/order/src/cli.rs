//! The binary's commands: shopkit's `serve | migrate | healthcheck`. Everything comes
//! from environment variables, so the one-shot `order migrate` container needs no
//! arguments.

use std::process::ExitCode;
use std::time::Duration;

use shopkit::cli::Common;
use shopkit::config::Settings;

use crate::config::Config;
use crate::startup::Application;

/// How long `migrate` waits for PostgreSQL to accept connections (the one-shot container
/// may start a moment before it does).
const DATABASE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Parser)]
#[command(name = "order", version, about = "Shopstack's order service")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Common>,
}

/// Runs a command (`serve` when none is given) and turns its outcome into an exit code.
pub async fn run(command: Option<Common>, settings: Settings) -> ExitCode {
    match command.unwrap_or(Common::Serve) {
        Common::Healthcheck => shopkit::cli::healthcheck(&settings).await,
        Common::Serve => shopkit::cli::exit_code(serve(&settings).await),
        Common::Migrate => shopkit::cli::exit_code(migrate(&settings).await),
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let config = Config::from_settings(settings)?;
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), "order listening");
    app.run_until_stopped(shopkit::shutdown::os_signal()).await
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = shopkit::db::pool_from_settings(settings)?;
    let version = shopkit::db::migrate(&pool, &crate::MIGRATOR, DATABASE_WAIT).await?;
    tracing::info!(version, "order schema is up to date");
    Ok(())
}
