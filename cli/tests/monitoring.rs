//! The monitoring files exactly as `shopctl init` writes them: promtool accepts
//! Prometheus's configuration and alert rules (and the alerts fire in promtool's unit
//! tests); Grafana's provisioning and dashboards parse, are all mounted, and name only
//! metrics that the stack exports.
//!
//! promtool is Debian's (`cargo xtask setup` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use shopctl::init::{ImageChoice, InitOptions, init};
use shopctl::output::Output;

#[path = "monitoring/promql.rs"]
mod promql;
use promql::{dashboards, metric_names, service_metric_names, yaml};

fn rendered() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        dir: tmp.path().to_path_buf(),
        name: Some("mon".into()),
        force: false,
        demo: false,
        images: ImageChoice::Local,
    };
    init(&opts, &|_| false, Output::new(true)).unwrap();
    tmp
}

fn promtool() -> PathBuf {
    let installed = PathBuf::from("/usr/bin/promtool");
    if installed.exists() {
        return installed;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("promtool"))
                .find(|p| p.exists())
        })
        .expect("promtool is needed (Debian package prometheus; `cargo xtask setup` installs it)")
}

fn run_promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_generated_configuration_and_rules() {
    let shop = rendered();
    let dir = shop.path().join("config/prometheus");
    let config = run_promtool(&["check", "config", "prometheus.yml"], &dir);
    // `check config` also checks the rule files it names: the relative path resolves.
    assert!(config.contains("alerts.yml"), "{config}");
    let rules = run_promtool(&["check", "rules", "alerts.yml"], &dir);
    assert!(rules.contains("SUCCESS: 7 rules found"), "{rules}");
    let text = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    for job in ["services", "gateway", "rabbitmq", "postgres"] {
        assert!(text.contains(&format!("job_name: {job}")), "{job}: {text}");
    }
    assert!(text.contains("shopstack.shop=mon"), "{text}");
    assert!(text.contains("regex: \"shopstack-mon\""), "{text}");
}

/// The same file for `discovery = "consul"` with the upstream Prometheus image (what `up`
/// writes after the switch). Debian's promtool is built without Consul discovery and
/// refuses exactly that section, which is why the local image keeps the engine's.
#[test]
fn the_consul_discovery_configuration_differs_only_in_the_services_job() {
    let shop = rendered();
    let dir = shop.path().join("config/prometheus");
    let consul = shopctl::discovery::prometheus_config("mon", true).unwrap();
    std::fs::write(dir.join("prometheus.yml"), &consul).unwrap();
    let out = Command::new(promtool())
        .args(["check", "config", "prometheus.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || text.contains("field consul_sd_configs not found"),
        "{text}"
    );
    let parsed: serde_yaml::Value = serde_yaml::from_str(&consul).unwrap();
    let docker: serde_yaml::Value =
        serde_yaml::from_str(&shopctl::discovery::prometheus_config("mon", false).unwrap())
            .unwrap();
    let jobs = |v: &serde_yaml::Value| -> Vec<serde_yaml::Value> {
        v["scrape_configs"].as_sequence().unwrap().clone()
    };
    let (consul_jobs, docker_jobs) = (jobs(&parsed), jobs(&docker));
    assert_eq!(consul_jobs.len(), docker_jobs.len());
    for (c, d) in consul_jobs.iter().zip(&docker_jobs) {
        assert_eq!(c["job_name"], d["job_name"]);
        if c["job_name"] == "services" {
            let sd = &c["consul_sd_configs"][0];
            assert_eq!(sd["server"], "consul:8500");
            let tags: Vec<&str> = sd["tags"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            assert_eq!(tags, ["shopstack.shop=mon", "shopstack.metrics=true"]);
        } else {
            assert_eq!(c, d);
        }
    }
    assert_eq!(parsed["rule_files"], docker["rule_files"]);
}

/// promtool's rule unit tests: each alert fires on the series that should trigger it,
/// after its `for`, with its labels and text; and stays quiet on healthy series.
const ALERT_TESTS: &str = r#"
rule_files:
  - alerts.yml
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'up{job="services",service="catalog",replica="2",instance="mon-catalog-2"}'
        values: '1 1 0 0 0 0 0 0'
      - series: 'up{job="services",service="catalog",replica="1",instance="mon-catalog-1"}'
        values: '1 1 1 1 1 1 1 1'
    alert_rule_test:
      # Down for 30 s: not yet (for: 1m).
      - eval_time: 1m30s
        alertname: ReplicaDown
        exp_alerts: []
      - eval_time: 3m
        alertname: ReplicaDown
        exp_alerts:
          - exp_labels:
              severity: critical
              job: services
              service: catalog
              replica: "2"
              instance: mon-catalog-2
            exp_annotations:
              summary: "catalog replica 2 (mon-catalog-2) is down"
  - interval: 30s
    input_series:
      - series: 'rabbitmq_queue_messages{vhost="/",queue="order.payments.parked"}'
        values: '0 0 1 1 1 1 1 1'
      - series: 'rabbitmq_queue_messages{vhost="/",queue="order.payments"}'
        values: '5 5 5 5 5 5 5 5'
    alert_rule_test:
      - eval_time: 3m
        alertname: MessagesParked
        exp_alerts:
          - exp_labels:
              severity: warning
              vhost: /
              queue: order.payments.parked
            exp_annotations:
              summary: "1 message(s) parked in order.payments.parked: see `shopctl events`"
  - interval: 30s
    input_series:
      # 10% of payment's requests fail; none of catalog's.
      - series: 'http_requests_total{service="payment",route="/payments",status="500"}'
        values: '0+3x40'
      - series: 'http_requests_total{service="payment",route="/payments",status="200"}'
        values: '0+27x40'
      - series: 'http_requests_total{service="catalog",route="/products",status="200"}'
        values: '0+50x40'
    alert_rule_test:
      - eval_time: 4m
        alertname: ServiceErrorRateHigh
        exp_alerts: []
      - eval_time: 15m
        alertname: ServiceErrorRateHigh
        exp_alerts:
          - exp_labels:
              severity: critical
              service: payment
            exp_annotations:
              summary: "payment: 10% of requests fail with 5xx"
"#;

#[test]
fn alerts_fire_in_promtool_rule_tests() {
    let shop = rendered();
    let dir = shop.path().join("config/prometheus");
    std::fs::write(dir.join("alerts_test.yml"), ALERT_TESTS).unwrap();
    let out = run_promtool(&["test", "rules", "alerts_test.yml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn grafana_provisioning_and_dashboards_parse_and_are_all_mounted() {
    let shop = rendered();
    let dir = shop.path();
    let datasources = yaml(&dir.join("config/grafana/provisioning/datasources/prometheus.yml"));
    let source = &datasources["datasources"][0];
    assert_eq!(source["type"].as_str(), Some("prometheus"));
    assert_eq!(source["url"].as_str(), Some("http://prometheus:9090"));
    let uid = source["uid"].as_str().unwrap();
    let providers = yaml(&dir.join("config/grafana/provisioning/dashboards/shopstack.yml"));
    let dashboards_path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap()
        .to_owned();

    let stack = stack::Stack::embedded().unwrap();
    let grafana = stack.get("grafana").unwrap();
    let mounted: BTreeSet<&str> = grafana.configs.iter().map(|c| c.source.as_str()).collect();
    for config in &grafana.configs {
        assert!(
            dir.join(&config.source).is_file(),
            "{} is mounted but init does not write it",
            config.source
        );
        let file = Path::new(&config.source).file_name().unwrap();
        if config.source.starts_with("config/grafana/dashboards/") {
            assert_eq!(
                Path::new(&config.target),
                Path::new(&dashboards_path).join(file)
            );
        }
    }
    let all = dashboards(dir);
    for (file, _) in &all {
        let source = format!("config/grafana/dashboards/{file}");
        assert!(
            mounted.contains(source.as_str()),
            "{source} is written but not mounted into grafana (stack.toml)"
        );
    }
    for service in stack
        .components
        .iter()
        .filter(|c| c.kind == stack::Kind::Service)
    {
        let (_, red) = all
            .iter()
            .find(|(f, _)| *f == format!("red-{}.json", service.name))
            .unwrap_or_else(|| panic!("no RED dashboard for {}", service.name));
        let text = red.to_string();
        assert!(text.contains(&format!("service=\\\"{}\\\"", service.name)));
        assert!(!text.contains("@SERVICE@"));
    }
    let mut uids = BTreeSet::new();
    for (file, dashboard) in &all {
        assert!(
            uids.insert(dashboard["uid"].as_str().unwrap().to_owned()),
            "{file}: uid used twice"
        );
        let panels = dashboard["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{file}");
        for panel in panels {
            assert_eq!(panel["datasource"]["uid"].as_str(), Some(uid), "{file}");
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {}", panel["title"]);
            for target in targets {
                assert_eq!(target["datasource"]["uid"].as_str(), Some(uid), "{file}");
            }
        }
    }
}

#[test]
fn metric_names_come_out_of_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, service) (rate(http_request_duration_seconds_bucket{route!~"/health/.*|x_total"}[5m]))) > 1e-9 and on(service) up == 0"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["http_request_duration_seconds_bucket".into(), "up".into()])
    );
    let names = metric_names(
        r#"sum(increase(orders_created_total[$__range])) / clamp_min(sum(rate(payments_total{status="succeeded"}[5m])), 1)"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["orders_created_total".into(), "payments_total".into()])
    );
}

/// The metric names a service's `/metrics` shows, scraped over HTTP from shopkit's
/// shared router (the request metrics every service has), plus the names the services'
/// and shopkit's sources register (business counters and the outbox gauges only appear
/// in a scrape once something happened; the end-to-end test compares the dashboards
/// with a real shop's scrapes after a checkout).
async fn exported_service_metrics() -> BTreeSet<String> {
    let routes = axum::Router::new().route("/thing", axum::routing::get(|| async { "hello" }));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = shopkit::http::Kit::new("monitoring-test").wrap(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    assert_eq!(
        client
            .get(format!("{base}/thing"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let scrape = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut names: BTreeSet<String> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    assert!(names.contains("http_requests_total"), "{scrape}");
    assert!(
        names.contains("http_request_duration_seconds_bucket"),
        "the request latency is a histogram: {scrape}"
    );

    let registered = regex::Regex::new(
        r#"(?:const [A-Z_]+: &str =|(?:counter|gauge|histogram)!\()\s*"([a-z_:][a-z0-9_:]*)""#,
    )
    .unwrap();
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("../services");
    let mut sources = Vec::new();
    collect_rs(&services, &mut sources);
    for path in sources {
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("metrics::") {
            continue;
        }
        names.extend(registered.captures_iter(&text).map(|c| c[1].to_owned()));
    }
    names
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && name != "tests" && name != "target" {
            collect_rs(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn dashboards_and_alerts_read_only_exported_metrics() {
    let shop = rendered();
    let used = service_metric_names(shop.path());
    let exported = exported_service_metrics().await;
    let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "dashboards or alerts read metrics nothing exports: {unknown:?}\nexported: {exported:?}"
    );
    // The funnel reads the checkout's own counters.
    for name in [
        "cart_changes_total",
        "orders_created_total",
        "order_transitions_total",
        "payments_total",
        "outbox_oldest_pending_seconds",
    ] {
        assert!(used.contains(name), "{name} is on a dashboard or alert");
    }
}
