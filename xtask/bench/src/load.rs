//! A small load generator, independent of what it loads: give it an async operation
//! (`Fn(request number) -> Future<Output = Result<(), E>>`) and a [`Load`], get [`Stats`].
//!
//! Two modes:
//! - [`Mode::FixedRate`] is open-loop: request `i` is due at `start + i / rate` whether or
//!   not earlier ones have been answered, and its latency is measured from that due time,
//!   not from when a worker got round to sending it. A stall therefore shows in the
//!   latencies of every request it delayed (no coordinated omission).
//! - [`Mode::ClosedLoop`] sends as fast as the workers get answers: its request rate is the
//!   maximum throughput at that concurrency.
//!
//! Either way a fixed number of workers (the concurrency) does the sending, requests of the
//! warm-up are not recorded, and the run is bounded in time: nothing is sent after the
//! deadline and each request is given at most `request_timeout`.
//!
//! [`run_recorded`] keeps the run's histogram, so that runs of the same load taken in
//! rounds (alternating with another load, to share any drift) [`combine`] into one.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

/// Latencies are recorded in microseconds up to a minute (longer ones saturate there);
/// a request timeout is far below that.
const MAX_RECORDED_MICROS: u64 = 60_000_000;
/// Three significant digits: 0.1 % resolution at every magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Open loop: `rate` requests per second, each due at `start + i / rate`.
    FixedRate { rate: f64 },
    /// Each worker sends its next request as soon as the previous one is answered.
    ClosedLoop,
}

/// One run's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub mode: Mode,
    /// Concurrent workers: at most this many requests are in flight.
    pub workers: usize,
    /// Requests due (fixed rate) or sent (closed loop) during the warm-up are not recorded:
    /// connection pools fill and caches warm.
    pub warmup: Duration,
    /// The measured part, after the warm-up.
    pub duration: Duration,
    /// Longer requests are abandoned and counted as errors; no request is started later
    /// than this after the end either, so a run takes at most warm-up + duration + twice
    /// this.
    pub request_timeout: Duration,
}

/// What a run measured. Latencies are in milliseconds and include failed requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// `fixed_rate` or `closed_loop`.
    pub mode: &'static str,
    /// The requested rate (fixed rate only).
    pub target_rps: Option<f64>,
    pub workers: usize,
    /// Requests recorded (answered, failed or timed out), warm-up excluded.
    pub requests: u64,
    /// Recorded requests that failed: transport errors, non-2xx answers, timeouts.
    pub errors: u64,
    /// Fixed rate only: requests due in the measured window that were never sent because
    /// the workers were still busy at the deadline.
    pub missed: u64,
    /// Recorded requests per second of the measured window.
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The first failure, to say what went wrong when `errors > 0`.
    pub first_error: Option<String>,
}

/// When request `i` is due, after the start of a fixed-rate run.
pub fn due_offset(i: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// How many requests of a fixed-rate run are due before `t` (the `i` with
/// `due_offset(i) < t`).
pub fn slots_before(t: Duration, rate: f64) -> u64 {
    (t.as_secs_f64() * rate).ceil() as u64
}

/// What one worker saw.
struct Tally {
    histogram: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_RECORDED_MICROS, SIGNIFICANT_DIGITS)
        .context("creating a latency histogram")
}

/// A run's figures together with its latency histogram, so that several runs of the
/// same load (rounds alternating with another load) can be [`combine`]d into one.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub stats: Stats,
    histogram: Histogram<u64>,
    /// Seconds of the measured window (what `stats.rps` divides by).
    window_secs: f64,
}

/// Runs `op` under `load` and returns what was measured. Fails only when the load is
/// malformed (no workers, a rate that is not positive) or a worker task panicked; failed
/// requests are counted, not returned.
pub async fn run<F, Fut, E>(load: &Load, op: F) -> anyhow::Result<Stats>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    Ok(run_recorded(load, op).await?.stats)
}

/// [`run`], keeping the histogram for [`combine`].
pub async fn run_recorded<F, Fut, E>(load: &Load, op: F) -> anyhow::Result<Recorded>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    if load.workers == 0 {
        bail!("a load needs at least one worker");
    }
    if let Mode::FixedRate { rate } = load.mode
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("the request rate must be a positive number, not {rate}");
    }
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let deadline = end + load.request_timeout;
    let mut tasks = Vec::with_capacity(load.workers);
    for _ in 0..load.workers {
        let op = op.clone();
        let next = next.clone();
        let mut tally = Tally {
            histogram: histogram()?,
            errors: 0,
            first_error: None,
            last_done: None,
        };
        let load = *load;
        tasks.push(tokio::spawn(async move {
            loop {
                // The moment latency counts from: the due time in an open loop, the send
                // time in a closed one.
                let (i, from) = match load.mode {
                    Mode::FixedRate { rate } => {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let due = start + due_offset(i, rate);
                        if due >= end || Instant::now() >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due).await;
                        (i, due)
                    }
                    Mode::ClosedLoop => {
                        let now = Instant::now();
                        if now >= end {
                            break;
                        }
                        (next.fetch_add(1, Ordering::Relaxed), now)
                    }
                };
                let outcome = tokio::time::timeout(load.request_timeout, op(i)).await;
                let done = Instant::now();
                if from < measure_from {
                    continue;
                }
                let micros = u64::try_from(done.duration_since(from).as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                tally.histogram.saturating_record(micros);
                tally.last_done = Some(done);
                let failure = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(err.to_string()),
                    Err(_) => Some(format!(
                        "no answer within {} ms",
                        load.request_timeout.as_millis()
                    )),
                };
                if let Some(message) = failure {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(message);
                }
            }
            tally
        }));
    }
    let mut all = histogram()?;
    let mut errors = 0;
    let mut first_error = None;
    let mut last_done = end;
    for task in tasks {
        let tally = task.await.context("a load worker panicked")?;
        all.add(&tally.histogram)
            .context("merging latency histograms")?;
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
        if let Some(done) = tally.last_done {
            last_done = last_done.max(done);
        }
    }
    let requests = all.len();
    let window_secs = last_done.duration_since(measure_from).as_secs_f64();
    let (mode, target_rps, missed) = match load.mode {
        Mode::FixedRate { rate } => {
            let due =
                slots_before(load.warmup + load.duration, rate) - slots_before(load.warmup, rate);
            ("fixed_rate", Some(rate), due.saturating_sub(requests))
        }
        Mode::ClosedLoop => ("closed_loop", None, 0),
    };
    let stats = Stats {
        mode,
        target_rps,
        workers: load.workers,
        errors,
        missed,
        first_error,
        ..summary(&all, window_secs)
    };
    Ok(Recorded {
        stats,
        histogram: all,
        window_secs,
    })
}

/// The runs as if they were one: their requests pooled in one histogram (so its p99 is
/// the p99 of every request of every run, not an average of p99s), errors and misses
/// added up, the rate over the sum of the measured windows. Mode, target rate and
/// workers are the first run's (combine runs of the same load). Fails on no runs.
pub fn combine(runs: &[Recorded]) -> anyhow::Result<Stats> {
    let first = runs.first().context("no runs to combine")?;
    let mut all = histogram()?;
    let (mut errors, mut missed, mut window_secs) = (0, 0, 0.0);
    for run in runs {
        all.add(&run.histogram)
            .context("merging latency histograms")?;
        errors += run.stats.errors;
        missed += run.stats.missed;
        window_secs += run.window_secs;
    }
    Ok(Stats {
        mode: first.stats.mode,
        target_rps: first.stats.target_rps,
        workers: first.stats.workers,
        errors,
        missed,
        first_error: runs.iter().find_map(|r| r.stats.first_error.clone()),
        ..summary(&all, window_secs)
    })
}

/// Requests, rate and latencies of a histogram over a window (the rest left empty).
fn summary(all: &Histogram<u64>, window_secs: f64) -> Stats {
    let requests = all.len();
    let ms = |micros: u64| round3(micros as f64 / 1000.0);
    Stats {
        mode: "",
        target_rps: None,
        workers: 0,
        requests,
        errors: 0,
        missed: 0,
        rps: if window_secs > 0.0 {
            round3(requests as f64 / window_secs)
        } else {
            0.0
        },
        mean_ms: if requests > 0 {
            round3(all.mean() / 1000.0)
        } else {
            0.0
        },
        p50_ms: ms(all.value_at_quantile(0.50)),
        p90_ms: ms(all.value_at_quantile(0.90)),
        p99_ms: ms(all.value_at_quantile(0.99)),
        max_ms: ms(all.max()),
        first_error: None,
    }
}

/// Three decimals: microseconds in a millisecond figure, enough for a report.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    //! On Tokio's paused clock: time only moves when every task waits, so the operations'
    //! sleeps are their exact latencies and the tests take no real time.

    use std::sync::Mutex;

    use super::*;

    fn load(mode: Mode, workers: usize, warmup_ms: u64, duration_ms: u64) -> Load {
        Load {
            mode,
            workers,
            warmup: Duration::from_millis(warmup_ms),
            duration: Duration::from_millis(duration_ms),
            request_timeout: Duration::from_secs(1),
        }
    }

    async fn sleep_ms(ms: u64) -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    #[test]
    fn the_schedule_is_start_plus_i_over_rate() {
        assert_eq!(due_offset(0, 500.0), Duration::ZERO);
        assert_eq!(due_offset(1, 500.0), Duration::from_millis(2));
        assert_eq!(due_offset(750, 500.0), Duration::from_millis(1500));
        assert_eq!(slots_before(Duration::from_secs(12), 500.0), 6000);
        assert_eq!(slots_before(Duration::from_millis(1), 500.0), 1);
        assert_eq!(slots_before(Duration::ZERO, 500.0), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_rate_run_sends_every_due_request_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let stats = run(
            &load(Mode::FixedRate { rate: 100.0 }, 4, 0, 1000),
            move |i| {
                log.lock().unwrap().push(i);
                sleep_ms(5)
            },
        )
        .await
        .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<u64>>());
        assert_eq!(stats.requests, 100);
        assert_eq!((stats.errors, stats.missed), (0, 0));
        assert_eq!(stats.mode, "fixed_rate");
        assert!((stats.p50_ms - 5.0).abs() < 0.1, "{stats:?}");
        assert!((stats.max_ms - 5.0).abs() < 0.1, "{stats:?}");
        // 100 requests over the second (plus the last one's 5 ms).
        assert!((stats.rps - 100.0).abs() < 1.0, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_counts_from_the_due_time_so_a_backlog_shows() {
        // One worker, a request due every 10 ms, each taking 50 ms: request i is sent at
        // 50·i, 40·i late, and answered 50 + 40·i after it was due. A closed-loop measure
        // would say 50 ms throughout.
        let stats = run(&load(Mode::FixedRate { rate: 100.0 }, 1, 0, 500), |_| {
            sleep_ms(50)
        })
        .await
        .unwrap();
        // Requests 0..30 are sent before the deadline (end + 1 s timeout = 1.5 s); the
        // other 20 of the 50 due are reported as missed.
        assert_eq!((stats.requests, stats.missed), (30, 20), "{stats:?}");
        // The median of 50 + 40·i over i < 30 is the 15th value, i = 14.
        assert!((stats.p50_ms - 610.0).abs() < 1.0, "{stats:?}");
        assert!((stats.max_ms - 1210.0).abs() < 2.0, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn warm_up_requests_are_not_recorded() {
        // Four workers keep up with 100 a second of 30 ms requests, so the slow warm-up
        // leaves no backlog behind.
        let stats = run(&load(Mode::FixedRate { rate: 100.0 }, 4, 500, 1000), |i| {
            // Slow during the warm-up only.
            sleep_ms(if i < 50 { 30 } else { 2 })
        })
        .await
        .unwrap();
        assert_eq!(stats.requests, 100);
        assert!((stats.max_ms - 2.0).abs() < 0.1, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_and_timeouts_are_counted_not_fatal() {
        let stats = run(
            &load(Mode::FixedRate { rate: 100.0 }, 4, 0, 1000),
            |i| async move {
                match i % 4 {
                    0 => Err(format!("HTTP 503 for request {i}")),
                    // Never answers: abandoned after the request timeout.
                    1 if i == 1 => std::future::pending().await,
                    _ => Ok(()),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(stats.requests, 100);
        assert_eq!(stats.errors, 26, "{stats:?}");
        assert_eq!(stats.first_error.as_deref(), Some("HTTP 503 for request 0"));
        assert!(stats.max_ms >= 1000.0, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_run_measures_throughput_at_its_concurrency() {
        let stats = run(&load(Mode::ClosedLoop, 4, 100, 1000), |_| sleep_ms(10))
            .await
            .unwrap();
        assert_eq!(stats.mode, "closed_loop");
        assert_eq!(stats.target_rps, None);
        // Four workers, 10 ms each: 400 a second.
        assert!((stats.rps - 400.0).abs() < 5.0, "{stats:?}");
        assert!((stats.p99_ms - 10.0).abs() < 0.1, "{stats:?}");
        assert_eq!(stats.errors, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_is_bounded_even_when_nothing_answers() {
        let started = Instant::now();
        let stats = run(&load(Mode::ClosedLoop, 3, 0, 200), |_| {
            std::future::pending::<Result<(), String>>()
        })
        .await
        .unwrap();
        assert!(started.elapsed() <= Duration::from_millis(1200));
        assert_eq!((stats.requests, stats.errors), (3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn combined_runs_pool_their_requests() {
        // 100 requests of 2 ms, then 100 of 20 ms (with errors): pooled, the median is
        // at the boundary and the p99 is the slow run's, not an average of the two.
        let fixed = |ms: u64, fail: bool| {
            let load = load(Mode::FixedRate { rate: 100.0 }, 4, 0, 1000);
            async move {
                run_recorded(&load, move |i| async move {
                    sleep_ms(ms).await?;
                    if fail && i % 10 == 0 {
                        return Err(format!("HTTP 500 for request {i}"));
                    }
                    Ok(())
                })
                .await
                .unwrap()
            }
        };
        let fast = fixed(2, false).await;
        let slow = fixed(20, true).await;
        assert_eq!(fast.stats.requests, 100);
        let both = combine(&[fast.clone(), slow]).unwrap();
        assert_eq!(both.requests, 200);
        assert_eq!((both.errors, both.missed), (10, 0));
        assert_eq!(both.first_error.as_deref(), Some("HTTP 500 for request 0"));
        assert_eq!(
            (both.mode, both.target_rps, both.workers),
            ("fixed_rate", Some(100.0), 4)
        );
        assert!((both.p99_ms - 20.0).abs() < 0.1, "{both:?}");
        assert!((both.max_ms - 20.0).abs() < 0.1, "{both:?}");
        assert!((both.mean_ms - 11.0).abs() < 0.1, "{both:?}");
        // 200 requests over two windows of about a second.
        assert!((both.rps - 100.0).abs() < 2.0, "{both:?}");
        // One run combined is that run.
        let alone = combine(std::slice::from_ref(&fast)).unwrap();
        assert_eq!(alone, fast.stats);
        assert!(combine(&[]).is_err());
    }

    #[tokio::test]
    async fn malformed_loads_are_refused() {
        let op = |_| sleep_ms(1);
        assert!(run(&load(Mode::ClosedLoop, 0, 0, 10), op).await.is_err());
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                run(&load(Mode::FixedRate { rate }, 1, 0, 10), op)
                    .await
                    .is_err()
            );
        }
    }
}
