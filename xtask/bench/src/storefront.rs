//! `bench storefront`: the storefront's pages through the real services.
//!
//! The testbed starts catalog, cart, order, payment, user and the storefront as release
//! processes over a throw-away PostgreSQL (the catalog loaded with the demo catalog:
//! 1,078 products) and RabbitMQ, loopback only. Two fixed-rate open-loop runs, one after
//! the other: a category listing (facets included) and a product page, each page one
//! storefront request that makes its own calls to the catalog. Then every page a visitor
//! sees on the way to the cart is fetched once and weighed: its HTML plus the CSS and
//! JavaScript it links (images excluded).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use testbed::{Options, Testbed};

use crate::load::{self, Load, Mode, Stats};
use crate::report::{self, Goal, Machine};

/// The issue's goals (informative, not a test).
pub const GOAL_TTFB_P99_MS: f64 = 50.0;
pub const GOAL_PAGE_KB: f64 = 100.0;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Where the JSON report goes (directories are created).
    #[arg(long, default_value = "target/bench/storefront.json")]
    pub out: PathBuf,
    /// Measured seconds of each page's run.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Unrecorded seconds before each run.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Requests per second of each run (open loop).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Concurrent connections available to the load generator.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
}

#[derive(Debug, Serialize)]
pub struct PageWeight {
    pub path: String,
    pub html_bytes: usize,
    pub css_bytes: usize,
    pub js_bytes: usize,
    pub total_kb: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// The worse of the two pages' p99 time to first byte.
    pub ttfb_p99_ms: f64,
    /// The heaviest page (HTML + CSS + JS, KiB).
    pub max_page_kb: f64,
    pub category_page: Stats,
    pub product_page: Stats,
    pub category_path: String,
    pub product_path: String,
    pub pages: Vec<PageWeight>,
    pub goals: Goals,
    pub machine: Machine,
    pub notes: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Goals {
    pub ttfb_p99_ms: Goal,
    pub max_page_kb: Goal,
}

const NOTES: &[&str] = &[
    "each run is open loop at a fixed rate; a request's time runs from when it was due to when its response headers arrived (time to first byte), so a stall shows in every request it delayed",
    "category page = GET /c/<slug> (the catalog's listing with facets, and the category tree); product page = GET /p/<slug> (the catalog's product with variants and stock); each is one storefront request making its calls to the catalog over HTTP",
    "the storefront and the services run as release processes on this machine's cores together with PostgreSQL, RabbitMQ and the load generator",
    "page weight: the HTML as served plus every stylesheet and script it links (/static/...), uncompressed, images excluded",
    "the storefront runs with its default catalog cache (CATALOG_CACHE_MS = 2000): the category page's tree and listing come from it, refreshed at most once per 2 s; the product page calls the catalog on every request",
];

pub async fn main(args: &Args) -> anyhow::Result<Report> {
    let report = run(args).await?;
    report::write_json(&args.out, &report)?;
    eprintln!(
        "bench storefront: TTFB p99 category {:.1} ms, product {:.1} ms at {} req/s; heaviest page {:.1} KB",
        report.category_page.p99_ms, report.product_page.p99_ms, args.rate, report.max_page_kb
    );
    eprintln!("bench: report written to {}", args.out.display());
    Ok(report)
}

/// The first leaf category with products, and its first product.
async fn targets(bed: &Testbed, http: &reqwest::Client) -> anyhow::Result<(String, String)> {
    let tree: serde_json::Value = http
        .get(format!("{}/categories", bed.url("catalog")))
        .send()
        .await?
        .json()
        .await?;
    let category = tree
        .as_array()
        .and_then(|top| top.iter().find_map(|c| c["children"].as_array()?.first()))
        .and_then(|c| c["slug"].as_str())
        .context("the demo catalog has no subcategory")?
        .to_owned();
    let listing: serde_json::Value = http
        .get(format!(
            "{}/categories/{category}/products?limit=1",
            bed.url("catalog")
        ))
        .send()
        .await?
        .json()
        .await?;
    let product = listing["items"][0]["slug"]
        .as_str()
        .context("the category lists no product")?
        .to_owned();
    Ok((format!("/c/{category}"), format!("/p/{product}")))
}

async fn page_run(args: &Args, http: &reqwest::Client, url: String) -> anyhow::Result<Stats> {
    let shape = Load {
        mode: Mode::FixedRate { rate: args.rate },
        workers: args.workers,
        warmup: Duration::from_secs_f64(args.warmup_secs),
        duration: Duration::from_secs_f64(args.duration_secs),
        request_timeout: Duration::from_secs(5),
    };
    let url = Arc::new(url);
    let http = http.clone();
    load::run(&shape, move |_| {
        let http = http.clone();
        let url = url.clone();
        async move {
            // The latency ends here, at the response's headers: time to first byte. The
            // body is drained in the background, so the connection goes back to the pool.
            let response = http
                .get(url.as_str())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            tokio::spawn(async move {
                let _ = response.bytes().await;
            });
            if !status.is_success() {
                return Err(format!("{status}"));
            }
            Ok::<(), String>(())
        }
    })
    .await
}

/// `href="/static/x.css"` and `src="/static/y.js"` of a page.
pub fn linked_assets(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for marker in ["href=\"/static/", "src=\"/static/"] {
        let mut rest = html;
        while let Some(i) = rest.find(marker) {
            let start = i + marker.len() - "/static/".len();
            let tail = &rest[start..];
            if let Some(end) = tail.find('"') {
                let path = &tail[..end];
                if path.ends_with(".css") || path.ends_with(".js") {
                    out.push(path.to_owned());
                }
            }
            rest = &rest[start..];
        }
    }
    out.sort();
    out.dedup();
    out
}

async fn weigh(http: &reqwest::Client, base: &str, path: &str) -> anyhow::Result<PageWeight> {
    let response = http.get(format!("{base}{path}")).send().await?;
    if !response.status().is_success() {
        bail!("GET {path}: {}", response.status());
    }
    let html = response.text().await?;
    let (mut css, mut js) = (0, 0);
    for asset in linked_assets(&html) {
        let bytes = http
            .get(format!("{base}{asset}"))
            .send()
            .await?
            .bytes()
            .await?
            .len();
        if asset.ends_with(".css") {
            css += bytes;
        } else {
            js += bytes;
        }
    }
    Ok(PageWeight {
        path: path.to_owned(),
        html_bytes: html.len(),
        css_bytes: css,
        js_bytes: js,
        total_kb: load::round3((html.len() + css + js) as f64 / 1024.0),
    })
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let load_before = report::load_average();
    let bed = Testbed::start(Options {
        storefront: true,
        ..Options::default()
    })
    .await?;
    catalog::demo::seed(bed.pool("catalog")?).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.workers)
        .build()?;
    let (category_path, product_path) = targets(&bed, &http).await?;
    let shop = bed.url("storefront");
    let category_page = page_run(args, &http, format!("{shop}{category_path}")).await?;
    let product_page = page_run(args, &http, format!("{shop}{product_path}")).await?;
    let mut pages = Vec::new();
    for path in [
        "/",
        category_path.as_str(),
        "/search?q=shirt",
        product_path.as_str(),
        "/cart",
        "/account/signin",
    ] {
        pages.push(weigh(&http, &shop, path).await?);
    }
    let max_page_kb = pages.iter().map(|p| p.total_kb).fold(0.0, f64::max);
    let ttfb_p99_ms = category_page.p99_ms.max(product_page.p99_ms);
    let machine = report::machine(&bed.databases["catalog"].url, load_before).await;
    Ok(Report {
        ttfb_p99_ms,
        max_page_kb,
        goals: Goals {
            ttfb_p99_ms: Goal {
                target: GOAL_TTFB_P99_MS,
                actual: ttfb_p99_ms,
                met: ttfb_p99_ms > 0.0
                    && ttfb_p99_ms < GOAL_TTFB_P99_MS
                    && category_page.errors + product_page.errors == 0,
            },
            max_page_kb: Goal {
                target: GOAL_PAGE_KB,
                actual: max_page_kb,
                met: max_page_kb < GOAL_PAGE_KB,
            },
        },
        category_page,
        product_page,
        category_path,
        product_path,
        pages,
        machine,
        notes: NOTES.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_styles_and_scripts_are_found_once() {
        let html = r#"<link rel="stylesheet" href="/static/theme.css"><link href="/static/style.css">
            <script src="/static/app.js" defer></script><img src="/static/img/a.jpg"><a href="/static/style.css">"#;
        assert_eq!(
            linked_assets(html),
            ["/static/app.js", "/static/style.css", "/static/theme.css"]
        );
    }
}
