use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = notification::cli::Cli::parse();
    shopkit::cli::start("notification");
    notification::cli::run(cli.command, shopkit::config::Settings::from_env()).await
}
