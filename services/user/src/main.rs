use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = user::cli::Cli::parse();
    shopkit::cli::start("user");
    user::cli::run(cli.command, shopkit::config::Settings::from_env()).await
}
