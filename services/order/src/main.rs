use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = order::cli::Cli::parse();
    shopkit::cli::start("order");
    order::cli::run(cli.command, shopkit::config::Settings::from_env()).await
}
