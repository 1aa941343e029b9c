//! `bench checkout`: sustained end-to-end checkouts through the real services.
//!
//! The testbed starts catalog, cart, order and payment as release processes over a
//! throw-away PostgreSQL and a RabbitMQ of their own (loopback only). Each operation is
//! one buyer's whole checkout — cart, add a line, `POST /orders`, wait for the stock
//! reservation, the payment intent, pay with the test card, wait for `paid` — so its
//! latency is what a buyer waits from "add to cart" to "paid", events included. A closed
//! loop of buyers keeps it busy; the report gives orders per second and p50/p99.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use testbed::flows::CARD_OK;
use testbed::{Options, Testbed};

use crate::load::{self, Load, Mode, Stats};
use crate::report::{self, Goal, Machine};

/// The goals (informative, not a test).
pub const GOAL_ORDERS_PER_S: f64 = 200.0;
pub const GOAL_P99_MS: f64 = 250.0;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Where the JSON report goes (directories are created).
    #[arg(long, default_value = "target/bench/checkout.json")]
    pub out: PathBuf,
    /// Measured seconds.
    #[arg(long, default_value_t = 20.0)]
    pub duration_secs: f64,
    /// Unrecorded seconds first (pools fill, queues and caches warm).
    #[arg(long, default_value_t = 3.0)]
    pub warmup_secs: f64,
    /// Buyers checking out at once (closed loop).
    #[arg(long, default_value_t = 32)]
    pub buyers: usize,
    /// Products the buyers spread over (one SKU each; fewer means hotter stock rows).
    #[arg(long, default_value_t = 8)]
    pub skus: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Paid orders per second of the measured window.
    pub orders_per_s: f64,
    /// Latency of a whole checkout, add-to-cart to paid.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub checkouts: Stats,
    /// Where an event's time goes, over every event of the run: committed → published
    /// by the relay, and committed → applied by each consumer (its inbox row).
    pub event_lag: EventLag,
    pub buyers: usize,
    pub skus: usize,
    pub goals: Goals,
    pub machine: Machine,
    pub notes: Vec<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct EventLag {
    pub events: usize,
    pub relay_p50_ms: f64,
    pub relay_p99_ms: f64,
    pub deliveries: usize,
    pub applied_p50_ms: f64,
    pub applied_p99_ms: f64,
}

/// The p-th percentile (0..=100) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    load::round3(sorted[rank.min(sorted.len() - 1)])
}

/// Reads the lags off the services' outboxes and inboxes.
async fn event_lag(bed: &Testbed) -> anyhow::Result<EventLag> {
    use std::collections::HashMap;
    let mut committed: HashMap<uuid::Uuid, chrono::DateTime<chrono::Utc>> = HashMap::new();
    let mut relay = Vec::new();
    for service in testbed::SERVICES {
        let rows: Vec<(
            uuid::Uuid,
            chrono::DateTime<chrono::Utc>,
            Option<chrono::DateTime<chrono::Utc>>,
        )> = sqlx::query_as("SELECT id, occurred_at, published_at FROM outbox")
            .fetch_all(bed.pool(service)?)
            .await?;
        for (id, occurred, published) in rows {
            committed.insert(id, occurred);
            if let Some(published) = published {
                relay.push((published - occurred).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
    }
    let mut applied = Vec::new();
    for service in testbed::SERVICES {
        let rows: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT message_id, handled_at FROM inbox")
                .fetch_all(bed.pool(service)?)
                .await?;
        for (id, handled) in rows {
            if let Some(occurred) = committed.get(&id) {
                applied.push((handled - *occurred).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
    }
    relay.sort_by(f64::total_cmp);
    applied.sort_by(f64::total_cmp);
    Ok(EventLag {
        events: relay.len(),
        relay_p50_ms: percentile(&relay, 50.0),
        relay_p99_ms: percentile(&relay, 99.0),
        deliveries: applied.len(),
        applied_p50_ms: percentile(&applied, 50.0),
        applied_p99_ms: percentile(&applied, 99.0),
    })
}

#[derive(Debug, Serialize)]
pub struct Goals {
    pub orders_per_s: Goal,
    pub p99_ms: Goal,
}

const NOTES: &[&str] = &[
    "one operation = one buyer's whole checkout over HTTP: cart, add line, POST /orders (Idempotency-Key), poll the order until the reservation answered, poll for the payment intent, confirm with the test card, poll until paid; polls every 25 ms",
    "catalog, cart, order and payment run as release processes, each with a pool of 20 connections, on one PostgreSQL (fsync off) and one RabbitMQ node, all on this machine's cores together with the load generator",
    "a failed checkout (any non-2xx, or an order that ends cancelled) counts as an error",
    "event_lag: occurred_at is the producer's clock at record time (before its commit), handled_at the start of the consumer's transaction; warm-up events included",
];

pub async fn main(args: &Args) -> anyhow::Result<Report> {
    let report = run(args).await?;
    report::write_json(&args.out, &report)?;
    eprintln!(
        "bench checkout: {:.1} orders/s, p50 {:.1} ms, p99 {:.1} ms ({} errors) with {} buyers",
        report.orders_per_s, report.p50_ms, report.p99_ms, report.checkouts.errors, report.buyers
    );
    let lag = &report.event_lag;
    eprintln!(
        "bench checkout: events relayed p50 {:.1} / p99 {:.1} ms after recording, applied p50 {:.1} / p99 {:.1} ms after",
        lag.relay_p50_ms, lag.relay_p99_ms, lag.applied_p50_ms, lag.applied_p99_ms
    );
    eprintln!("bench: report written to {}", args.out.display());
    Ok(report)
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let load_before = report::load_average();
    let bed = Arc::new(Testbed::start(Options::default()).await?);
    let skus: Vec<String> = (0..args.skus.max(1))
        .map(|i| format!("BENCH-{i}"))
        .collect();
    for sku in &skus {
        bed.product(sku, 1999, 100_000_000).await?;
    }
    let skus = Arc::new(skus);
    let shape = Load {
        mode: Mode::ClosedLoop,
        workers: args.buyers,
        warmup: Duration::from_secs_f64(args.warmup_secs),
        duration: Duration::from_secs_f64(args.duration_secs),
        request_timeout: Duration::from_secs(30),
    };
    let op_bed = bed.clone();
    let checkouts = load::run(&shape, move |i| {
        let bed = op_bed.clone();
        let skus = skus.clone();
        async move {
            let buyer = bed.buyer();
            let sku = &skus[usize::try_from(i).unwrap_or(0) % skus.len()];
            match bed
                .checkout(&buyer, sku, CARD_OK, Duration::from_secs(30))
                .await
            {
                Ok(Ok(order)) if order["status"] == "paid" => Ok(()),
                Ok(Ok(order)) => Err(format!("order ended {}", order["status"])),
                Ok(Err(refused)) => Err(format!("refused: {} {}", refused.status, refused.body)),
                Err(err) => Err(format!("{err:#}")),
            }
        }
    })
    .await?;
    let event_lag = event_lag(&bed).await?;
    let machine = report::machine(&bed.databases["order"].url, load_before).await;
    let orders_per_s = load::round3(
        checkouts.rps * (1.0 - checkouts.errors as f64 / checkouts.requests.max(1) as f64),
    );
    Ok(Report {
        orders_per_s,
        p50_ms: checkouts.p50_ms,
        p99_ms: checkouts.p99_ms,
        goals: Goals {
            orders_per_s: Goal {
                target: GOAL_ORDERS_PER_S,
                actual: orders_per_s,
                met: orders_per_s >= GOAL_ORDERS_PER_S,
            },
            p99_ms: Goal {
                target: GOAL_P99_MS,
                actual: checkouts.p99_ms,
                met: checkouts.p99_ms > 0.0 && checkouts.p99_ms < GOAL_P99_MS,
            },
        },
        checkouts,
        event_lag,
        buyers: args.buyers,
        skus: args.skus,
        machine,
        notes: NOTES.to_vec(),
    })
}
