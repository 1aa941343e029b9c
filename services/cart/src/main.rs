use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cart::cli::Cli::parse();
    shopkit::cli::start("cart");
    cart::cli::run(cli.command, shopkit::config::Settings::from_env()).await
}
