use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = catalog::cli::Cli::parse();
    shopkit::cli::start("catalog");
    catalog::cli::run(cli.command, shopkit::config::Settings::from_env()).await
}
