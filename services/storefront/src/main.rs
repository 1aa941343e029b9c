use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = storefront::cli::Cli::parse();
    shopkit::cli::start("storefront");
    storefront::cli::run(cli.command, shopkit::config::Settings::from_env()).await
}
