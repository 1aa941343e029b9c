//! The benchmarks behind `cargo xtask bench <what>` (always a release build: xtask runs
//! `cargo run --release --package bench -- <what>`).
//!
//! - [`load`]: a reusable load generator — fixed-rate open loop with latency from the due
//!   time, or closed loop for maximum throughput — recording HDR histograms.
//! - [`catalog`]: the catalog service over HTTP against the SQL its handlers run.
//! - [`report`]: the machine description and JSON output every report shares.

pub mod catalog;
pub mod load;
pub mod report;

#[derive(Debug, clap::Parser)]
#[command(
    name = "bench",
    about = "Shopstack benchmarks (run them through `cargo xtask bench`)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub what: What,
}

/// One subcommand per benchmark.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// The catalog: product by id, category listing and search, through the service and
    /// as raw SQL; writes target/bench/catalog.json.
    Catalog(catalog::Args),
}

pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.what {
        What::Catalog(args) => catalog::main(args).await.map(|_| ()),
    }
}
