use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = payment::cli::Cli::parse();
    shopkit::cli::start("payment");
    payment::cli::run(cli.command, shopkit::config::Settings::from_env()).await
}
