//! The tasks behind `cargo xtask`: `ci` (what CI runs), `setup` (system packages the
//! tests need), `demo` (the README's main job), `e2e` and `bench <what>`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod bench_up;

/// Debian packages the test suite needs on a brand-new machine: a PostgreSQL server and
/// RabbitMQ (the services' tests start throw-away servers with their binaries),
/// debootstrap (the base of the locally built infrastructure images), promtool (checks
/// the generated Prometheus configuration and rules) and Chromium with its WebDriver (the
/// storefront's browser tests).
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("postgresql", "/usr/lib/postgresql"),
    ("rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server"),
    ("debootstrap", "/usr/sbin/debootstrap"),
    ("prometheus", "/usr/bin/promtool"),
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
];

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Shopstack development tasks")]
pub struct Cli {
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Debug, Subcommand)]
pub enum Task {
    /// Everything CI checks: setup, fmt, clippy -D warnings, the whole test suite.
    Ci,
    /// Install the system packages the tests need (as root, from Debian's archive).
    Setup,
    /// The end-to-end test on the real Docker engine (builds every image first).
    E2e,
    /// The README's main job: build the images, create a demo shop in ./shop (kept if it
    /// exists), bring it up and print where to open it.
    Demo {
        /// Where the demo shop lives.
        #[arg(long, default_value = "shop")]
        dir: PathBuf,
    },
    /// A benchmark, always on a release build; writes target/bench/<what>.json and prints
    /// a summary.
    Bench {
        what: BenchTarget,
        /// Where the JSON report goes (default target/bench/<what>.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Measured seconds of each run (default: the benchmark's own).
        #[arg(long)]
        duration_secs: Option<f64>,
        /// Rounds of `bench up` (each: shopctl once, Compose once; default 3) or of
        /// `bench auth`'s token comparison (each: with and without token once; default 6).
        #[arg(long)]
        rounds: Option<usize>,
        /// Further options, passed to the benchmark as they are (`-- --help` lists them).
        #[arg(last = true)]
        extra: Vec<String>,
    },
}

/// What `cargo xtask bench` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchTarget {
    /// The catalog service over HTTP against the raw SQL of its handlers (`xtask/bench`).
    Catalog,
    /// argon2id hashes/s with the user service's parameters, its log-in throughput, and a
    /// catalog read's p99 with a verified user-service token ÷ without (`xtask/bench`).
    Auth,
    /// `shopctl up` against `docker-compose up -d` + waiting for health, same images.
    Up,
    /// Whole checkouts per second (cart → order → reservation → payment → paid) through
    /// catalog, cart, order and payment as release processes (`xtask/bench`).
    Checkout,
    /// The storefront's category and product pages: time to first byte at a fixed rate,
    /// and page weight (HTML + CSS + JS), through the services as release processes.
    Storefront,
    /// The same fixed request rate through Traefik and straight to a catalog replica, on
    /// a shop on the real engine: what the gateway adds at p50 and p99 (`xtask/bench`).
    Gateway,
}

impl BenchTarget {
    fn name(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Auth => "auth",
            Self::Up => "up",
            Self::Checkout => "checkout",
            Self::Storefront => "storefront",
            Self::Gateway => "gateway",
        }
    }
}

pub fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.task {
        Task::Ci => ci(),
        Task::Setup => setup(),
        Task::Demo { dir } => demo(dir),
        Task::E2e => e2e(),
        Task::Bench {
            what,
            out,
            duration_secs,
            rounds,
            extra,
        } => bench(*what, out.as_deref(), *duration_secs, *rounds, extra),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_cmd(Command::new(cargo).args(args).current_dir(workspace_root()))
}

fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn setup() -> anyhow::Result<()> {
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .filter(|(_, marker)| !Path::new(marker).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !is_root {
        bail!(
            "the tests need these Debian packages: {}; install them with `sudo apt-get install {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    run_cmd(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn ci() -> anyhow::Result<()> {
    setup()?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])
}

/// The end-to-end test on the real engine alone (it is also part of `ci`).
fn e2e() -> anyhow::Result<()> {
    setup()?;
    cargo(&["test", "--package", "shopctl", "--test", "e2e"])
}

/// Runs the workspace's shopctl.
fn shopctl(args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["run", "--quiet", "--package", "shopctl", "--"];
    all.extend_from_slice(args);
    cargo(&all)
}

fn demo(dir: &Path) -> anyhow::Result<()> {
    let dir_s = dir.to_string_lossy().into_owned();
    shopctl(&["images", "build"])?;
    if !dir.join("shop.toml").exists() {
        shopctl(&[
            "init", &dir_s, "--name", "demo", "--demo", "--images", "local",
        ])?;
    }
    shopctl(&["--shop", &dir_s, "up"])?;
    shopctl(&["--shop", &dir_s, "status"])
}

fn bench(
    what: BenchTarget,
    out: Option<&Path>,
    duration_secs: Option<f64>,
    rounds: Option<usize>,
    extra: &[String],
) -> anyhow::Result<()> {
    let out = out.map_or_else(
        || {
            workspace_root()
                .join("target/bench")
                .join(format!("{}.json", what.name()))
        },
        Path::to_path_buf,
    );
    if what == BenchTarget::Up {
        // Whole commands are timed: the images and a release shopctl are built first.
        shopctl(&["images", "build"])?;
        cargo(&["build", "--release", "--quiet", "--package", "shopctl"])?;
        let root = workspace_root();
        let shopctl = root.join("target/release/shopctl");
        let rounds = rounds.unwrap_or(3);
        return bench_up::run(&root, &shopctl, &bench_up::Options { rounds, out });
    }
    if what == BenchTarget::Gateway {
        // The benchmark brings a shop up with shopctl, on the images of this tree.
        shopctl(&["images", "build"])?;
        cargo(&["build", "--release", "--quiet", "--package", "shopctl"])?;
    }
    if what == BenchTarget::Storefront {
        // The testbed starts these release binaries from target/release.
        let mut args = vec!["build", "--release", "--quiet"];
        for package in ["catalog", "cart", "order", "payment", "user", "storefront"] {
            args.extend(["-p", package]);
        }
        if workspace_root()
            .join("services/notification/Cargo.toml")
            .exists()
        {
            args.extend(["-p", "notification"]);
        }
        cargo(&args)?;
    }
    if what == BenchTarget::Checkout {
        // The testbed starts the services' release binaries from target/release.
        cargo(&[
            "build",
            "--release",
            "--quiet",
            "-p",
            "catalog",
            "-p",
            "cart",
            "-p",
            "order",
            "-p",
            "payment",
        ])?;
    }
    let out = out.to_string_lossy();
    // The benchmarks live in the `bench` crate, which depends on the services (xtask
    // itself does not). Release build: a debug build's figures mean nothing.
    let package = "bench";
    let duration = duration_secs.map(|secs| secs.to_string());
    let mut args = vec![
        "run",
        "--release",
        "--quiet",
        "--package",
        package,
        "--",
        what.name(),
        "--out",
        &out,
    ];
    if let Some(secs) = &duration {
        args.extend(["--duration-secs", secs]);
    }
    let rounds = rounds.map(|n| n.to_string());
    if let Some(n) = &rounds {
        if what != BenchTarget::Auth {
            bail!("--rounds applies to `bench up` and `bench auth` only");
        }
        args.extend(["--rounds", n]);
    }
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}
