//! The benchmarks behind `cargo xtask bench <what>` (always a release build: xtask runs
//! `cargo run --release --package bench -- <what>`).
//!
//! - [`load`]: a reusable load generator — fixed-rate open loop with latency from the due
//!   time, or closed loop for maximum throughput — recording HDR histograms.
//! - [`catalog`]: the catalog service over HTTP against the SQL its handlers run.
//! - [`auth`]: argon2 hashes per second, log-in throughput of the user service, and what
//!   verifying a user-service token costs a catalog read.
//! - [`checkout`]: whole checkouts per second through the four checkout services.
//! - [`gateway`]: what Traefik adds to a request, on a shop on the real engine.
//! - [`storefront`]: the storefront's pages, time to first byte at a fixed rate and weight.
//! - [`service`]: services in-process over throw-away databases (loopback only).
//! - [`report`]: the machine description and JSON output every report shares.

pub mod auth;
pub mod catalog;
pub mod checkout;
pub mod gateway;
pub mod load;
pub mod report;
pub mod service;
pub mod storefront;

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
    /// Authentication: argon2id hashes per second with the user service's parameters,
    /// its log-in throughput, and a catalog read's p99 with a verified token ÷ without;
    /// writes target/bench/auth.json.
    Auth(auth::Args),
    /// Whole checkouts (cart → order → reservation → payment → paid) through catalog,
    /// cart, order and payment as processes; writes target/bench/checkout.json.
    Checkout(checkout::Args),
    /// The storefront: category and product pages' time to first byte at a fixed rate,
    /// and every page's weight; writes target/bench/storefront.json.
    Storefront(storefront::Args),
    /// The gateway: the same fixed rate through Traefik and straight to a catalog
    /// replica, on a shop on the real engine; writes target/bench/gateway.json.
    Gateway(gateway::Args),
}

pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    // Every benchmark's HTTP clients use rustls with ring (the workspace's one provider).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &cli.what {
        What::Catalog(args) => catalog::main(args).await.map(|_| ()),
        What::Auth(args) => auth::main(args).await.map(|_| ()),
        What::Checkout(args) => checkout::main(args).await.map(|_| ()),
        What::Storefront(args) => storefront::main(args).await.map(|_| ()),
        What::Gateway(args) => gateway::main(args).await.map(|_| ()),
    }
}
