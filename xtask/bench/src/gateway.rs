//! `bench gateway`: what Traefik adds to a request. A shop (the core profile) comes up on
//! the real engine through `shopctl up`; then the same open-loop rate of product reads goes
//! through the gateway (`/api/catalog/products/{id}`, with its whole middleware chain:
//! headers, rate limit, compression, prefix strip, retry) and straight to the one catalog
//! replica (`/products/{id}`), in rounds that alternate which goes first. Both targets
//! are addressed by their container IPs on the shop's network, so that the two paths
//! differ by Traefik only (not by Docker's userland proxy on a published port). The shop
//! is torn down at the end, whatever happened.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::load::{self, Load, Mode, Recorded, Stats};
use crate::report::{self, Goal, Machine};

/// The goal (informative, not a test): Traefik adds at most this at p99.
pub const GOAL_ADDED_P99_MS: f64 = 1.0;
/// The shop's name, and so the prefix of every object the benchmark creates.
const SHOP: &str = "benchgw";
/// How long `shopctl up` may take.
const UP_TIMEOUT_S: &str = "300";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Where the JSON report goes (directories are created).
    #[arg(long, default_value = "target/bench/gateway.json")]
    pub out: PathBuf,
    /// Measured seconds per target, split over the rounds.
    #[arg(long, default_value_t = 20.0)]
    pub duration_secs: f64,
    /// Requests per second, the same for both targets (open loop).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Rounds; each measures both targets once, alternating which goes first.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Unrecorded seconds at the start of every run (connections open, caches warm).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_secs: f64,
    /// The shopctl binary that brings the shop up and down.
    #[arg(long, default_value = "target/release/shopctl")]
    pub shopctl: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// p99 through the gateway minus p99 direct, milliseconds.
    pub added_p99_ms: f64,
    pub added_p50_ms: f64,
    pub gateway: Stats,
    pub direct: Stats,
    pub rate: f64,
    pub rounds: usize,
    pub goals: Goals,
    pub machine: Machine,
    pub notes: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Goals {
    pub added_p99_ms: Goal,
}

const NOTES: &[&str] = &[
    "one request = GET of one demo product by id: through Traefik at http://<gateway container IP>:80/api/catalog/products/{id} (router, security headers, rate limit set far above the rate, compress, strip prefix, retry), or straight to http://<catalog container IP>:8080/products/{id}",
    "open loop at a fixed rate: each request's latency counts from when it was due, so stalls are not hidden; keep-alive connections on both paths",
    "both targets are container IPs on the shop's bridge network, reached from the host: the published port (Docker's userland proxy) is not part of either figure",
    "the client asks for no compression, so the gateway's compress middleware passes the answer through",
    "the load generator, Traefik, the catalog replica and PostgreSQL share this machine's cores",
];

/// Takes the shop down when dropped, also after an error or a panic.
struct Teardown {
    shopctl: PathBuf,
    dir: PathBuf,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        eprintln!("bench gateway: taking the shop down");
        let _ = Command::new(&self.shopctl)
            .arg("--shop")
            .arg(&self.dir)
            .args(["down", "--volumes", "--yes"])
            .output();
    }
}

pub async fn main(args: &Args) -> anyhow::Result<Report> {
    let report = run(args).await?;
    report::write_json(&args.out, &report)?;
    eprintln!(
        "bench gateway: {} req/s, p50 {} ms via Traefik vs {} ms direct (+{}), p99 {} vs {} ms (+{}); goal +{GOAL_ADDED_P99_MS} ms at p99: {}",
        args.rate,
        report.gateway.p50_ms,
        report.direct.p50_ms,
        report.added_p50_ms,
        report.gateway.p99_ms,
        report.direct.p99_ms,
        report.added_p99_ms,
        if report.goals.added_p99_ms.met {
            "met"
        } else {
            "not met"
        },
    );
    eprintln!("report: {}", args.out.display());
    Ok(report)
}

pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if args.rounds == 0 || !positive(args.rate) || !positive(args.duration_secs) {
        bail!("--rounds, --rate and --duration-secs must be positive");
    }
    let load_before = report::load_average();
    let shopctl = std::fs::canonicalize(&args.shopctl).with_context(|| {
        format!(
            "{} is missing: build it with `cargo build --release -p shopctl` (cargo xtask bench gateway does)",
            args.shopctl.display()
        )
    })?;
    let work = std::env::temp_dir().join(format!("shopstack-bench-gateway-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let dir = work.join("shop");
    ok(Command::new(&shopctl)
        .arg("init")
        .arg(&dir)
        .args(["--name", SHOP, "--images", "local", "--demo"]))?;
    prepare_shop_file(&dir)?;
    let _teardown = Teardown {
        shopctl: shopctl.clone(),
        dir: dir.clone(),
    };
    // Nothing of an interrupted earlier run may stay around.
    ok(Command::new(&shopctl)
        .arg("--shop")
        .arg(&dir)
        .args(["down", "--volumes", "--yes"]))?;
    eprintln!("bench gateway: shopctl up (core profile)");
    ok(Command::new(&shopctl)
        .arg("--shop")
        .arg(&dir)
        .args(["up", "--timeout", UP_TIMEOUT_S]))?;

    let network = format!("shopstack-{SHOP}");
    let gateway_ip = container_ip("gateway", &network)?;
    let catalog_ip = container_ip("catalog", &network)?;
    let direct_base = format!("http://{catalog_ip}:8080");
    let gateway_base = format!("http://{gateway_ip}:80/api/catalog");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .build()
        .context("building the HTTP client")?;
    let list: serde_json::Value = client
        .get(format!("{direct_base}/products?limit=1"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .context("listing the demo products")?
        .json()
        .await?;
    let id = list["items"][0]["id"]
        .as_str()
        .context("the demo catalog has no product")?
        .to_owned();
    let direct_url: Arc<str> = format!("{direct_base}/products/{id}").into();
    let gateway_url: Arc<str> = format!("{gateway_base}/products/{id}").into();
    // The gateway routes the replica already (shopctl up waited for it); say so plainly
    // if it does not.
    client
        .get(&*gateway_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {gateway_url}"))?;

    let load = Load {
        mode: Mode::FixedRate { rate: args.rate },
        // Enough that the open loop never waits for a worker at this rate.
        workers: 64,
        warmup: Duration::from_secs_f64(args.warmup_secs),
        duration: Duration::from_secs_f64(args.duration_secs / args.rounds as f64),
        request_timeout: Duration::from_secs(5),
    };
    let mut via_gateway: Vec<Recorded> = Vec::new();
    let mut direct: Vec<Recorded> = Vec::new();
    for round in 0..args.rounds {
        let gateway_first = round % 2 == 0;
        for through_gateway in [gateway_first, !gateway_first] {
            let url = if through_gateway {
                gateway_url.clone()
            } else {
                direct_url.clone()
            };
            let recorded = load::run_recorded(&load, get(client.clone(), url)).await?;
            eprintln!(
                "  round {}: {:<8} p50 {} ms, p99 {} ms, errors {}",
                round + 1,
                if through_gateway { "gateway" } else { "direct" },
                recorded.stats.p50_ms,
                recorded.stats.p99_ms,
                recorded.stats.errors
            );
            if through_gateway {
                via_gateway.push(recorded);
            } else {
                direct.push(recorded);
            }
        }
    }
    let gateway = load::combine(&via_gateway)?;
    let direct = load::combine(&direct)?;
    if gateway.errors > 0 || direct.errors > 0 {
        bail!(
            "requests failed (gateway {}, direct {}): {}",
            gateway.errors,
            direct.errors,
            gateway
                .first_error
                .as_deref()
                .or(direct.first_error.as_deref())
                .unwrap_or("?")
        );
    }
    let added_p99_ms = load::round3(gateway.p99_ms - direct.p99_ms);
    let added_p50_ms = load::round3(gateway.p50_ms - direct.p50_ms);
    let database_url = postgres_url(&dir, &network).unwrap_or_default();
    let machine = report::machine(&database_url, load_before).await;
    Ok(Report {
        added_p99_ms,
        added_p50_ms,
        gateway,
        direct,
        rate: args.rate,
        rounds: args.rounds,
        goals: Goals {
            added_p99_ms: Goal {
                target: GOAL_ADDED_P99_MS,
                actual: added_p99_ms,
                met: added_p99_ms <= GOAL_ADDED_P99_MS,
            },
        },
        machine,
        notes: NOTES.to_vec(),
    })
}

/// One GET of `url` per call, failing on a non-2xx answer; the body is read to the end.
fn get(
    client: reqwest::Client,
    url: Arc<str>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
+ Send
+ Sync
+ 'static {
    move |_| {
        let client = client.clone();
        let url = url.clone();
        Box::pin(async move {
            let response = client.get(&*url).send().await?.error_for_status()?;
            response.bytes().await?;
            Ok(())
        })
    }
}

/// Random free host ports (the defaults may be taken by a shop already running here),
/// and a rate limit on catalog's route far above the benchmark's rate: the limiter still
/// runs on every request, it just never says no.
fn prepare_shop_file(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("shop.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let text = text
        .replace(
            "ports.http = 8080",
            &format!("ports.http = {}", free_port()?),
        )
        .replace(
            "ports.https = 8443",
            &format!("ports.https = {}", free_port()?),
        )
        .replace(
            "[components.catalog]\n",
            "[components.catalog]\nrate_limit = { average = 100000, burst = 100000 }\n",
        );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The IP on `network` of the component's first replica.
fn container_ip(component: &str, network: &str) -> anyhow::Result<String> {
    let names = capture(Command::new("docker").args([
        "ps",
        "--filter",
        &format!("label=shopstack.shop={SHOP}"),
        "--filter",
        &format!("label=shopstack.component={component}"),
        "--filter",
        "label=shopstack.role=service",
        "--format",
        "{{.Names}}",
    ]))?;
    let name = names
        .lines()
        .min()
        .with_context(|| format!("no running {component} container of shop {SHOP}"))?;
    let ip = capture(Command::new("docker").args([
        "inspect",
        "--format",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        name,
    ]))?;
    let ip = ip.trim().to_owned();
    if ip.is_empty() {
        bail!("{name} has no address on {network}");
    }
    Ok(ip)
}

/// The shop's PostgreSQL as its superuser, for the report's server version.
fn postgres_url(dir: &Path, network: &str) -> anyhow::Result<String> {
    let password = std::fs::read_to_string(dir.join("secrets/postgres_password"))?;
    let ip = container_ip("postgres", network)?;
    Ok(format!(
        "postgres://postgres:{}@{ip}:5432/postgres",
        password.trim()
    ))
}

fn capture(cmd: &mut Command) -> anyhow::Result<String> {
    let out = ok(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ok(cmd: &mut Command) -> anyhow::Result<std::process::Output> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} {:?} failed: {}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}
