use std::process::ExitCode;

use clap::Parser;
use shopctl::commands::{self, Cli, ErrorReport};

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let json = cli.json;
    match commands::run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            let message = format!("{:#}", failure.error);
            if json {
                let report = ErrorReport {
                    error: message,
                    exit_code: failure.code,
                };
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::from(failure.code)
        }
    }
}
