//! Shared by the monitoring and end-to-end tests: the expressions of a shop's
//! dashboards and alert rules, and the metric names they read.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

/// Names the infrastructure exporters expose (with where they come from).
pub const INFRASTRUCTURE_METRICS: &str = include_str!("infrastructure-metrics.txt");

pub fn yaml(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn dashboards(dir: &Path) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("config/grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            json,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every PromQL expression of the dashboards.
pub fn dashboard_exprs(dir: &Path) -> Vec<String> {
    let mut exprs = Vec::new();
    for (_, dashboard) in dashboards(dir) {
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                exprs.push(target["expr"].as_str().unwrap().to_owned());
            }
        }
    }
    exprs
}

pub fn alert_exprs(dir: &Path) -> Vec<String> {
    let rules = yaml(&dir.join("config/prometheus/alerts.yml"));
    let mut exprs = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs
}

/// The metric names an expression reads: identifiers that are not functions,
/// keywords, label names (inside `{…}` and grouping clauses), strings or durations.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let strings = regex::Regex::new(r#""(?:[^"\\]|\\.)*""#).unwrap();
    let matchers = regex::Regex::new(r"\{[^}]*\}").unwrap();
    let ranges = regex::Regex::new(r"\[[^\]]*\]").unwrap();
    let grouping =
        regex::Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
            .unwrap();
    let tokens = regex::Regex::new(
        r"(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?",
    )
    .unwrap();
    const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
    let text = strings.replace_all(expr, "\"\"");
    let text = matchers.replace_all(&text, " ");
    let text = ranges.replace_all(&text, " ");
    let text = grouping.replace_all(&text, " ");
    tokens
        .captures_iter(&text)
        .filter(|c| c.name("call").is_none())
        .filter_map(|c| c.name("ident").map(|m| m.as_str().to_owned()))
        .filter(|name| !KEYWORDS.contains(&name.to_lowercase().as_str()))
        .collect()
}

/// Every metric name a dashboard or alert reads, outside the infrastructure list.
pub fn service_metric_names(dir: &Path) -> BTreeSet<String> {
    let infrastructure = infrastructure_metrics();
    dashboard_exprs(dir)
        .iter()
        .chain(alert_exprs(dir).iter())
        .flat_map(|e| metric_names(e))
        .filter(|n| !infrastructure.contains(n))
        .collect()
}

pub fn infrastructure_metrics() -> BTreeSet<String> {
    INFRASTRUCTURE_METRICS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}
