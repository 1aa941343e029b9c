//! The binary's commands: shopkit's `serve | migrate | healthcheck` plus `seed-demo`.
//! Everything comes from environment variables, so the one-shot containers that
//! `shopctl up` runs (`catalog migrate`, `catalog seed-demo`) need no arguments.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use shopkit::cli::{Common, EventsCommand};
use shopkit::config::Settings;

use crate::config::Config;
use crate::startup::Application;

/// How long `migrate` and `seed-demo` wait for PostgreSQL to accept connections (the
/// one-shot containers may start a moment before it does).
const DATABASE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Parser)]
#[command(
    name = "catalog",
    version,
    about = "Shopstack's product catalog service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    #[command(flatten)]
    Common(Common),
    /// Load the demo catalog (about 1,000 products) into an empty catalog, once; a second
    /// run does nothing and says so.
    SeedDemo,
    /// Parked event messages: list them, replay them (`shopctl events` runs this).
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
        Command::SeedDemo => shopkit::cli::exit_code(seed_demo(&settings).await),
        Command::Events { command } => shopkit::cli::events(&settings, command).await,
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let config = Config::from_settings(settings)?;
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), "catalog listening");
    app.run_until_stopped(shopkit::shutdown::os_signal()).await
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = shopkit::db::pool_from_settings(settings)?;
    let version = shopkit::db::migrate(&pool, &crate::MIGRATOR, DATABASE_WAIT).await?;
    tracing::info!(version, "catalog schema is up to date");
    Ok(())
}

async fn seed_demo(settings: &Settings) -> anyhow::Result<()> {
    let pool = shopkit::db::pool_from_settings(settings)?;
    let deadline = tokio::time::Instant::now() + DATABASE_WAIT;
    loop {
        match pool.acquire().await {
            Ok(_) => break,
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %err, "waiting for the database");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err).context("cannot reach the database to seed it"),
        }
    }
    let report = crate::demo::seed(&pool).await?;
    tracing::info!(
        seeded = report.seeded(),
        categories = report.categories,
        products = report.products,
        variants = report.variants,
        "{report}"
    );
    Ok(())
}
