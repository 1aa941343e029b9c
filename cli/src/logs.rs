//! `shopctl logs`: one merged stream of every replica's output, prefixed per replica, with
//! the services' ECS JSON lines shown as level + message (raw with `--json`).

use std::collections::HashMap;

use anyhow::Context;
use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, LogsOptions};
use futures::StreamExt;
use futures::stream::select_all;
use owo_colors::OwoColorize;
use regex::Regex;

use crate::engine::docker::shop_filter;
use crate::engine::{LABEL_COMPONENT, LABEL_REPLICA, LABEL_ROLE};

#[derive(Debug, Clone)]
pub struct LogsOptionsCli {
    pub components: Vec<String>,
    pub follow: bool,
    /// Unix seconds.
    pub since: Option<i64>,
    pub tail: Option<usize>,
    pub grep: Option<Regex>,
    pub json: bool,
    pub color: bool,
}

/// One line of a replica's output.
#[derive(Debug, Clone)]
pub struct Line {
    pub prefix: String,
    pub colour: usize,
    pub timestamp: String,
    pub text: String,
}

/// Human form of a service's ECS JSON line: `INFO  message  key=value …`; other lines as
/// they are.
pub fn humanize(text: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.to_owned();
    };
    let level = map
        .get("log.level")
        .and_then(|v| v.as_str())
        .unwrap_or("info")
        .to_uppercase();
    let message = map
        .get("message")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let skip = [
        "@timestamp",
        "log.level",
        "message",
        "service.name",
        "log.logger",
        "ecs.version",
        "trace.id",
        "http.request.id",
    ];
    let extras: Vec<String> = map
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    if extras.is_empty() {
        format!("{level:<5} {message}")
    } else {
        format!("{level:<5} {message}  {}", extras.join(" "))
    }
}

/// Splits Docker's `timestamps=true` prefix off a line.
pub fn split_timestamp(line: &str) -> (&str, &str) {
    line.split_once(' ')
        .filter(|(t, _)| t.len() >= 20 && t.as_bytes()[4] == b'-')
        .unwrap_or(("", line))
}

pub fn render(line: &Line, json: bool, color: bool) -> String {
    if json {
        let message = serde_json::from_str::<serde_json::Value>(&line.text)
            .unwrap_or(serde_json::Value::String(line.text.clone()));
        return serde_json::json!({ "replica": line.prefix, "timestamp": line.timestamp, "line": message }).to_string();
    }
    let prefix = format!("{:<16}|", line.prefix);
    let prefix = if color {
        match line.colour % 6 {
            0 => prefix.cyan().to_string(),
            1 => prefix.yellow().to_string(),
            2 => prefix.green().to_string(),
            3 => prefix.magenta().to_string(),
            4 => prefix.blue().to_string(),
            _ => prefix.red().to_string(),
        }
    } else {
        prefix
    };
    format!("{prefix} {}", humanize(&line.text))
}

pub async fn run(docker: &Docker, shop: &str, opts: &LogsOptionsCli) -> anyhow::Result<()> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(shop_filter(shop)),
        ..Default::default()
    };
    let mut containers: Vec<(String, String, u32, String)> = docker
        .list_containers(Some(options))
        .await
        .context("listing containers")?
        .into_iter()
        .filter_map(|s| {
            let labels: HashMap<String, String> = s.labels.unwrap_or_default();
            let component = labels.get(LABEL_COMPONENT)?.clone();
            if labels.get(LABEL_ROLE).map(String::as_str) != Some("service") {
                return None;
            }
            if !opts.components.is_empty() && !opts.components.contains(&component) {
                return None;
            }
            let replica = labels
                .get(LABEL_REPLICA)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            Some((
                component.clone(),
                format!("{component}-{replica}"),
                replica,
                s.id?,
            ))
        })
        .collect();
    containers.sort();
    if containers.is_empty() {
        anyhow::bail!("no containers of shop {shop} match; `shopctl status` shows what runs");
    }
    let streams = containers
        .iter()
        .enumerate()
        .map(|(i, (_, prefix, _, id))| {
            let options = LogsOptions {
                follow: opts.follow,
                stdout: true,
                stderr: true,
                timestamps: true,
                since: opts.since.and_then(|s| i32::try_from(s).ok()).unwrap_or(0),
                tail: opts
                    .tail
                    .map_or_else(|| "all".to_owned(), |n| n.to_string()),
                ..Default::default()
            };
            let prefix = prefix.clone();
            docker
                .logs(id, Some(options))
                .map(move |chunk| (i, prefix.clone(), chunk))
        });
    let mut merged = select_all(streams.map(Box::pin));
    let mut buffered = Vec::new();
    let keep = |text: &str| opts.grep.as_ref().is_none_or(|re| re.is_match(text));
    while let Some((colour, prefix, chunk)) = merged.next().await {
        let Ok(chunk) = chunk else { continue };
        let bytes = chunk.into_bytes();
        for raw in String::from_utf8_lossy(&bytes).lines() {
            let (timestamp, text) = split_timestamp(raw);
            if !keep(text) {
                continue;
            }
            let line = Line {
                prefix: prefix.clone(),
                colour,
                timestamp: timestamp.to_owned(),
                text: text.to_owned(),
            };
            if opts.follow {
                println!("{}", render(&line, opts.json, opts.color));
            } else {
                buffered.push(line);
            }
        }
    }
    // Without -f, show every replica's lines in time order.
    buffered.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    for line in &buffered {
        println!("{}", render(line, opts.json, opts.color));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_lines_become_level_and_message() {
        let line = r#"{"@timestamp":"2026-12-01T10:00:00.000Z","log.level":"info","message":"request completed","service.name":"catalog","http.response.status_code":200,"url.path":"/products"}"#;
        assert_eq!(
            humanize(line),
            "INFO  request completed  http.response.status_code=200 url.path=/products"
        );
        assert_eq!(humanize("plain text"), "plain text");
    }

    #[test]
    fn docker_timestamps_are_split_off() {
        let (t, rest) = split_timestamp("2026-12-01T10:00:00.123456789Z hello world");
        assert_eq!(t, "2026-12-01T10:00:00.123456789Z");
        assert_eq!(rest, "hello world");
        assert_eq!(split_timestamp("no stamp here"), ("", "no stamp here"));
    }

    #[test]
    fn json_mode_keeps_the_raw_line() {
        let line = Line {
            prefix: "catalog-1".into(),
            colour: 0,
            timestamp: "t".into(),
            text: r#"{"message":"x"}"#.into(),
        };
        let v: serde_json::Value = serde_json::from_str(&render(&line, true, false)).unwrap();
        assert_eq!(v["line"]["message"], "x");
        assert_eq!(v["replica"], "catalog-1");
    }
}
