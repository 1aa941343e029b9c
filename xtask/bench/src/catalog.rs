//! `bench catalog`: the catalog service over HTTP against the SQL its handlers run.
//!
//! A throw-away PostgreSQL (shopkit's test server, loopback only) gets a fresh database
//! with the demo catalog. The service runs in-process on a runtime and threads of its own,
//! configured as in production (`Config::from_settings`, the same pool settings); the load
//! generator runs on the caller's runtime. Each scenario — product by id, category listing,
//! search — is measured four ways, one after the other with the same concurrency:
//! the service and the raw SQL (the very `catalog::queries` functions the handlers call,
//! over a pool of the same size), each at maximum throughput (closed loop) and at a fixed
//! rate (open loop, latency from the due time).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use catalog::model::{ProductDetail, SearchResults};
use catalog::queries::{self, Visibility};
use catalog::search::SearchRequest;
use reqwest::Url;
use serde::Serialize;
use sqlx::PgPool;

use crate::load::{self, Load, Mode, Stats};
use crate::report::{self, Goal, Machine};
use crate::service::{self, Service};

/// The goals of the issue that asked for this benchmark (informative: not a test).
pub const GOAL_BY_ID_RATIO: f64 = 0.7;
pub const GOAL_SEARCH_P99_MS: f64 = 20.0;
/// The rate the search latency goal is stated at.
pub const GOAL_SEARCH_RPS: f64 = 500.0;

/// Searches a shopper of the demo catalog would type, typos included (corrected by the
/// service: "shrit" → "shirt", "jakcet" → "jacket", "sweter" → "sweater").
pub const SEARCHES: &[&str] = &[
    "blue shirt",
    "shrit",
    "leather boots",
    "merino wool sweater",
    "running shoes",
    "linen dress",
    "organic cotton t-shirt",
    "ceramic mug",
    "black jeans",
    "suede sneakers",
    "blue shrit",
    "wool jakcet",
    "chelsea boots",
    "cashmere sweter",
    "duvet cover",
];

/// Distinct requests in each scenario's rotation (products and categories are drawn
/// from the demo catalog with repetition; searches cycle through [`SEARCHES`]).
pub(crate) const ROTATION: usize = 4096;
/// Fixed seed of the draws, so that every run asks for the same things in the same order.
const DRAW_SEED: u64 = 0xBE7C_4CA7_A106;
/// Products whose HTTP answer is compared with the raw query's before measuring.
const CHECKED_PRODUCTS: usize = 5;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Where the JSON report goes (directories are created).
    #[arg(long, default_value = "target/bench/catalog.json")]
    pub out: PathBuf,
    /// Measured seconds of each run (there are 12: 3 scenarios × service/raw SQL × max
    /// throughput/fixed rate).
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Unrecorded seconds before each run's measurement (pools fill, caches warm).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Concurrent requests (load workers), the same for the service and the raw SQL.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Connections of the service's pool and of the raw-SQL pool (the service's default
    /// `DATABASE_MAX_CONNECTIONS`).
    #[arg(long, default_value_t = 10)]
    pub pool_size: u32,
    /// Requests per second of the fixed-rate product-by-id runs.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Requests per second of the fixed-rate category-listing runs: a listing counts facets
    /// over whole subtrees, and two cores serve a few hundred a second at most.
    #[arg(long, default_value_t = 150.0)]
    pub listing_rate: f64,
    /// Requests per second of the fixed-rate search runs (the p99 goal is stated at 500).
    #[arg(long, default_value_t = GOAL_SEARCH_RPS)]
    pub search_rate: f64,
    /// Requests slower than this count as errors.
    #[arg(long, default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// Worker threads of the service's runtime (default: one per core, as in production).
    #[arg(long)]
    pub service_threads: Option<usize>,
}

impl Args {
    fn seconds(name: &str, secs: f64) -> anyhow::Result<Duration> {
        Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|_| secs.is_finite())
            .with_context(|| format!("--{name} must be a non-negative number of seconds"))
    }

    fn check(&self) -> anyhow::Result<(Duration, Duration)> {
        let duration = Self::seconds("duration-secs", self.duration_secs)?;
        let warmup = Self::seconds("warmup-secs", self.warmup_secs)?;
        if duration.is_zero() {
            bail!("--duration-secs must be above 0");
        }
        if self.concurrency == 0 || self.pool_size == 0 {
            bail!("--concurrency and --pool-size must be at least 1");
        }
        for (name, rate) in [
            ("rate", self.rate),
            ("listing-rate", self.listing_rate),
            ("search-rate", self.search_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                bail!("--{name} must be a positive number of requests per second");
            }
        }
        Ok((duration, warmup))
    }
}

/// What the report records of the run's settings.
#[derive(Debug, Clone, Serialize)]
pub struct Parameters {
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub concurrency: usize,
    pub pool_size: u32,
    pub rate: f64,
    pub listing_rate: f64,
    pub search_rate: f64,
    pub request_timeout_ms: u64,
    pub service_threads: usize,
    pub demo_products: usize,
    pub demo_categories: usize,
}

/// The service and the raw SQL under the same load.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub service: Stats,
    pub raw_sql: Stats,
    /// Max throughput: service rps ÷ raw-SQL rps (1 would mean HTTP costs nothing).
    /// Fixed rate: service p99 ÷ raw-SQL p99.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// What the service is asked.
    pub request: &'static str,
    /// What the raw-SQL side calls: the function the handler calls.
    pub raw_sql: &'static str,
    pub max_throughput: Comparison,
    pub fixed_rate: Comparison,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenarios {
    pub product_by_id: ScenarioReport,
    pub category_listing: ScenarioReport,
    pub search: ScenarioReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct Goals {
    /// `by_id_ratio` ≥ 0.7.
    pub by_id_ratio: Goal,
    /// `search_p99_ms` < 20 at 500 req/s (at `search_rate` when that was changed).
    pub search_p99_ms: Goal,
}

/// The whole report, as written to `target/bench/catalog.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub machine: Machine,
    pub parameters: Parameters,
    pub scenarios: Scenarios,
    /// Product by id: service max rps ÷ raw-SQL max rps.
    pub by_id_ratio: f64,
    /// Search through the service at `search_rate` req/s: p99 in ms.
    pub search_p99_ms: f64,
    pub goals: Goals,
    /// Failed requests over all runs (reported, not fatal).
    pub errors: u64,
    /// Fixed-rate requests never sent before a run's deadline, over all runs.
    pub missed: u64,
    pub notes: Vec<&'static str>,
}

const NOTES: &[&str] = &[
    "latencies are in ms and include failed requests; fixed-rate latency counts from each request's due time (start + i / rate), so queueing behind a stall is included",
    "max_throughput: closed loop, each worker sends its next request when the previous one is answered; ratio = service rps / raw_sql rps",
    "fixed_rate: open loop at the given rate; ratio = service p99 / raw_sql p99; tokio's 1 ms timer adds up to 1 ms to every fixed-rate latency, on both sides",
    "the service runs in-process on its own runtime, without a log subscriber (production writes one JSON line per request to stdout); load generator, service and PostgreSQL share the machine's cores, and so does anything else running (see machine.load_average_*)",
];

/// Runs the benchmark, writes the report to `args.out` and prints a summary to stderr.
pub async fn main(args: &Args) -> anyhow::Result<Report> {
    let report = run(args).await?;
    report::write_json(&args.out, &report)?;
    eprint!("{}", table(&report));
    eprintln!("bench: report written to {}", args.out.display());
    if report.errors > 0 || report.missed > 0 {
        eprintln!(
            "bench: WARNING: {} requests failed and {} were never sent; see first_error in the report",
            report.errors, report.missed
        );
    }
    Ok(report)
}

/// Runs the benchmark and returns its report.
pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let (duration, warmup) = args.check()?;
    let load_before = report::load_average();
    // reqwest and sqlx are built without a default TLS provider (no TLS is used here).
    let _ = rustls::crypto::ring::default_provider().install_default();

    eprintln!("bench: starting the throw-away PostgreSQL and loading the demo catalog");
    let db = service::database(&catalog::MIGRATOR).await?;
    let outcome = async {
        seed(&db.pool).await?;
        db.pool.close().await;
        measure(args, duration, warmup, &db.url, load_before).await
    }
    .await;
    service::drop_database(&db).await;
    outcome
}

/// Loads the demo catalog into an empty database and analyses it.
pub(crate) async fn seed(pool: &PgPool) -> anyhow::Result<()> {
    let seeded = catalog::demo::seed(pool)
        .await
        .context("loading the demo catalog")?;
    if !seeded.seeded() {
        bail!("the benchmark database was not empty: {seeded}");
    }
    // Fresh statistics and visibility map, as autovacuum would leave a live shop.
    sqlx::query("VACUUM ANALYZE")
        .execute(pool)
        .await
        .context("analysing the demo catalog")?;
    eprintln!("bench: {seeded}");
    Ok(())
}

/// One request of a scenario, as the service is asked it and as the raw SQL runs it.
#[derive(Debug, Clone)]
enum Work {
    Product(String),
    Category(String),
    Search(SearchRequest),
}

/// What the raw SQL returned, for the check against the HTTP answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Answer {
    Product(ProductDetail),
    Results(SearchResults),
}

impl Work {
    fn url(&self, base: &Url) -> anyhow::Result<Url> {
        let url = match self {
            Self::Product(id) => base.join(&format!("products/{id}"))?,
            Self::Category(slug) => base.join(&format!("categories/{slug}/products"))?,
            Self::Search(request) => {
                let mut url = base.join("products")?;
                if let Some(q) = &request.q {
                    url.query_pairs_mut().append_pair("q", q);
                }
                url
            }
        };
        Ok(url)
    }

    /// Exactly what the handler runs (after parsing the request, before serialising).
    async fn query(&self, pool: &PgPool) -> anyhow::Result<Answer> {
        Ok(match self {
            Self::Product(id) => Answer::Product(
                queries::product(pool, id, Visibility::Published)
                    .await?
                    .with_context(|| format!("no published product {id}"))?,
            ),
            Self::Category(slug) => Answer::Results(
                queries::category_listing(pool, slug, &SearchRequest::default())
                    .await?
                    .with_context(|| format!("no category {slug}"))?,
            ),
            Self::Search(request) => Answer::Results(queries::search(pool, request).await?),
        })
    }
}

/// A scenario's rotation of requests, each with its URL.
type Rotation = Arc<Vec<(Url, Work)>>;

fn rotation(base: &Url, works: Vec<Work>) -> anyhow::Result<Rotation> {
    let pairs = works
        .into_iter()
        .map(|w| Ok((w.url(base)?, w)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Arc::new(pairs))
}

/// `n` draws from `items` with repetition, the same every run.
pub(crate) fn draw<T: Clone>(items: &[T], n: usize, salt: u64) -> Vec<T> {
    let mut rng = catalog::demo::Rng::new(DRAW_SEED ^ salt);
    (0..n)
        .filter_map(|_| items.get(rng.below(items.len())).cloned())
        .collect()
}

async fn measure(
    args: &Args,
    duration: Duration,
    warmup: Duration,
    database_url: &str,
    load_before: Option<[f64; 3]>,
) -> anyhow::Result<Report> {
    let settings = service::settings(database_url, args.pool_size, &[]);
    let service = {
        let settings = settings.clone();
        Service::start("catalog", args.service_threads, move || async move {
            let config = catalog::Config::from_settings(&settings)?;
            catalog::Application::build(config).await
        })
        .await?
    };
    // The raw-SQL side's pool: built by the same function from the same settings.
    let pool = shopkit::db::pool_from_settings(&settings)?;
    let outcome = scenarios(args, duration, warmup, &service, &pool).await;
    pool.close().await;
    let stopped = service.stop().await;
    let (scenarios, parameters) = outcome?;
    stopped?;

    let machine = report::machine(database_url, load_before).await;
    let by_id_ratio = scenarios.product_by_id.max_throughput.ratio;
    let search_p99_ms = scenarios.search.fixed_rate.service.p99_ms;
    let all = [
        &scenarios.product_by_id,
        &scenarios.category_listing,
        &scenarios.search,
    ];
    let stats = all.iter().flat_map(|s| {
        [
            &s.max_throughput.service,
            &s.max_throughput.raw_sql,
            &s.fixed_rate.service,
            &s.fixed_rate.raw_sql,
        ]
    });
    let (errors, missed) = stats.fold((0, 0), |(e, m), s| (e + s.errors, m + s.missed));
    Ok(Report {
        benchmark: "catalog",
        machine,
        parameters,
        goals: Goals {
            by_id_ratio: Goal {
                target: GOAL_BY_ID_RATIO,
                actual: by_id_ratio,
                met: by_id_ratio >= GOAL_BY_ID_RATIO,
            },
            search_p99_ms: Goal {
                target: GOAL_SEARCH_P99_MS,
                actual: search_p99_ms,
                met: search_p99_ms < GOAL_SEARCH_P99_MS,
            },
        },
        scenarios,
        by_id_ratio,
        search_p99_ms,
        errors,
        missed,
        notes: NOTES.to_vec(),
    })
}

async fn scenarios(
    args: &Args,
    duration: Duration,
    warmup: Duration,
    service: &Service,
    pool: &PgPool,
) -> anyhow::Result<(Scenarios, Parameters)> {
    let demo = catalog::demo::catalog();
    let products: Vec<Work> = demo
        .products
        .iter()
        .filter(|p| p.published)
        .map(|p| Work::Product(p.id.to_string()))
        .collect();
    let categories: Vec<Work> = demo
        .categories
        .iter()
        .map(|c| Work::Category(c.slug.clone()))
        .collect();
    let searches = SEARCHES
        .iter()
        .map(|q| {
            let pairs = [("q".to_owned(), (*q).to_owned())];
            Ok(Work::Search(SearchRequest::from_pairs(&pairs)?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let checks: Vec<&Work> = products
        .iter()
        .take(CHECKED_PRODUCTS)
        .chain(&categories)
        .chain(&searches)
        .collect();
    same_answers(&client, &service.base, pool, &checks).await?;

    let parameters = Parameters {
        duration_secs: args.duration_secs,
        warmup_secs: args.warmup_secs,
        concurrency: args.concurrency,
        pool_size: args.pool_size,
        rate: args.rate,
        listing_rate: args.listing_rate,
        search_rate: args.search_rate,
        request_timeout_ms: args.request_timeout_ms,
        service_threads: service.threads,
        demo_products: products.len(),
        demo_categories: categories.len(),
    };
    let bench = Bench {
        client,
        pool: pool.clone(),
        base: service.base.clone(),
        load: Load {
            mode: Mode::ClosedLoop,
            workers: args.concurrency,
            warmup,
            duration,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
        },
    };
    let searches: Vec<Work> = (0..ROTATION)
        .filter_map(|i| searches.get(i % searches.len()).cloned())
        .collect();
    let scenarios = Scenarios {
        product_by_id: bench
            .scenario(
                "product_by_id",
                "GET /products/{id}",
                "catalog::queries::product",
                draw(&products, ROTATION, 1),
                args.rate,
            )
            .await?,
        category_listing: bench
            .scenario(
                "category_listing",
                "GET /categories/{slug}/products",
                "catalog::queries::category_listing",
                draw(&categories, ROTATION, 2),
                args.listing_rate,
            )
            .await?,
        search: bench
            .scenario(
                "search",
                "GET /products?q=…",
                "catalog::queries::search",
                searches,
                args.search_rate,
            )
            .await?,
    };
    Ok((scenarios, parameters))
}

/// Fails unless the service answers exactly what the raw SQL returns, so that both sides
/// of the comparison do the same work.
async fn same_answers(
    client: &reqwest::Client,
    base: &Url,
    pool: &PgPool,
    works: &[&Work],
) -> anyhow::Result<()> {
    for work in works {
        let url = work.url(base)?;
        let response = client
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "GET {url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let http: serde_json::Value =
            serde_json::from_slice(&body).with_context(|| format!("GET {url}: not JSON"))?;
        let raw = serde_json::to_value(work.query(pool).await?)?;
        if http != raw {
            bail!("GET {url} and the raw SQL disagree: {http} vs {raw}");
        }
    }
    Ok(())
}

/// What every run of the scenarios shares.
struct Bench {
    client: reqwest::Client,
    pool: PgPool,
    base: Url,
    load: Load,
}

impl Bench {
    async fn scenario(
        &self,
        name: &str,
        request: &'static str,
        raw_sql: &'static str,
        works: Vec<Work>,
        rate: f64,
    ) -> anyhow::Result<ScenarioReport> {
        let rotation = rotation(&self.base, works)?;
        let fixed = Load {
            mode: Mode::FixedRate { rate },
            ..self.load
        };
        let max_service = self.http(name, &self.load, &rotation).await?;
        let max_raw = self.raw(name, &self.load, &rotation).await?;
        let fixed_service = self.http(name, &fixed, &rotation).await?;
        let fixed_raw = self.raw(name, &fixed, &rotation).await?;
        Ok(ScenarioReport {
            request,
            raw_sql,
            max_throughput: Comparison {
                ratio: ratio(max_service.rps, max_raw.rps),
                service: max_service,
                raw_sql: max_raw,
            },
            fixed_rate: Comparison {
                ratio: ratio(fixed_service.p99_ms, fixed_raw.p99_ms),
                service: fixed_service,
                raw_sql: fixed_raw,
            },
        })
    }

    async fn http(&self, name: &str, load: &Load, rotation: &Rotation) -> anyhow::Result<Stats> {
        progress(name, "service", load);
        let client = self.client.clone();
        let rotation = rotation.clone();
        load::run(load, move |i| {
            let client = client.clone();
            let url = pick(&rotation, i).map(|(url, _)| url.clone());
            async move {
                let url = url.context("empty rotation")?;
                let response = client.get(url).send().await?;
                let status = response.status();
                // The whole body, as a browser would read it.
                response.bytes().await?;
                if !status.is_success() {
                    bail!("HTTP {status}");
                }
                Ok(())
            }
        })
        .await
    }

    async fn raw(&self, name: &str, load: &Load, rotation: &Rotation) -> anyhow::Result<Stats> {
        progress(name, "raw SQL", load);
        let pool = self.pool.clone();
        let rotation = rotation.clone();
        load::run(load, move |i| {
            let pool = pool.clone();
            let work = pick(&rotation, i).map(|(_, work)| work.clone());
            async move {
                work.context("empty rotation")?.query(&pool).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .await
    }
}

fn pick(rotation: &[(Url, Work)], i: u64) -> Option<&(Url, Work)> {
    let len = rotation.len().max(1) as u64;
    rotation.get(usize::try_from(i % len).unwrap_or(0))
}

fn progress(name: &str, side: &str, load: &Load) {
    let mode = match load.mode {
        Mode::ClosedLoop => "max throughput".to_owned(),
        Mode::FixedRate { rate } => format!("{rate} req/s"),
    };
    eprintln!(
        "bench: {name}, {side}, {mode}, {} workers, {:.0} s",
        load.workers,
        (load.warmup + load.duration).as_secs_f64()
    );
}

pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { load::round3(a / b) } else { 0.0 }
}

/// The human summary.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<17} {:<15} {:<8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}\n",
        "scenario", "load", "side", "rps", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    ));
    let s = &report.scenarios;
    for (name, scenario) in [
        ("product_by_id", &s.product_by_id),
        ("category_listing", &s.category_listing),
        ("search", &s.search),
    ] {
        for (load, comparison) in [
            ("max throughput", &scenario.max_throughput),
            ("fixed rate", &scenario.fixed_rate),
        ] {
            for (side, stats) in [
                ("service", &comparison.service),
                ("raw SQL", &comparison.raw_sql),
            ] {
                out.push_str(&format!(
                    "{name:<17} {load:<15} {side:<8} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}\n",
                    stats.rps,
                    stats.p50_ms,
                    stats.p90_ms,
                    stats.p99_ms,
                    stats.max_ms,
                    stats.errors + stats.missed
                ));
            }
        }
    }
    let mark = |met: bool| if met { "met" } else { "MISSED" };
    out.push_str(&format!(
        "\nby_id_ratio   {:.3} (goal ≥ {}: {})\nsearch_p99_ms {:.2} at {} req/s (goal < {}: {})\n",
        report.by_id_ratio,
        GOAL_BY_ID_RATIO,
        mark(report.goals.by_id_ratio.met),
        report.search_p99_ms,
        report.parameters.search_rate,
        GOAL_SEARCH_P99_MS,
        mark(report.goals.search_p99_ms.met),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_repeat_across_runs_and_cover_the_items() {
        let items: Vec<u32> = (0..27).collect();
        let a = draw(&items, 4096, 2);
        assert_eq!(a, draw(&items, 4096, 2));
        assert_eq!(a.len(), 4096);
        assert!(items.iter().all(|i| a.contains(i)));
        assert_ne!(a, draw(&items, 4096, 3));
    }

    #[test]
    fn urls_are_the_public_routes() {
        let base = Url::parse("http://127.0.0.1:1234/").unwrap();
        let search = SearchRequest::from_pairs(&[("q".into(), "blue shrit".into())]).unwrap();
        assert_eq!(
            Work::Search(search).url(&base).unwrap().as_str(),
            "http://127.0.0.1:1234/products?q=blue+shrit"
        );
        assert_eq!(
            Work::Category("t-shirts".into())
                .url(&base)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1234/categories/t-shirts/products"
        );
        assert_eq!(
            Work::Product("abc".into()).url(&base).unwrap().as_str(),
            "http://127.0.0.1:1234/products/abc"
        );
    }

    #[test]
    fn settings_are_checked() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["bench"];
            argv.extend_from_slice(extra);
            Cli::parse_from(argv).args
        };
        let defaults = parse(&[]);
        assert_eq!(
            defaults.check().unwrap(),
            (Duration::from_secs(10), Duration::from_secs(2))
        );
        assert_eq!(defaults.out, PathBuf::from("target/bench/catalog.json"));
        for bad in [
            &["--duration-secs", "0"][..],
            &["--duration-secs=-1"],
            &["--warmup-secs", "inf"],
            &["--concurrency", "0"],
            &["--rate", "0"],
            &["--listing-rate=-1"],
            &["--search-rate=-5"],
        ] {
            assert!(parse(bad).check().is_err(), "{bad:?}");
        }
    }
}
