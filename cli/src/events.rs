//! `shopctl events`: the event messages that consumers gave up on (parked after their
//! last retry), listed and replayed. The broker is only reachable on the shop's network,
//! so the work runs as a one-shot container of the catalog image (`catalog events …`,
//! shopkit's parking-queue tools, which know every consumer's queues by convention).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::planner::{ContainerSpec, Job, component_labels};
use crate::shop::Shop;

/// The service whose image runs the tools (present in every stack).
const TOOL_SERVICE: &str = "catalog";

/// One parked message, as the tool prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedMessage {
    pub consumer: String,
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub attempts: u32,
    pub error: Option<String>,
    pub body: serde_json::Value,
}

/// The tool's one line of output.
#[derive(Debug, Default, Deserialize)]
struct ToolOutput {
    #[serde(default)]
    parked: Vec<ParkedMessage>,
    #[serde(default)]
    replayed: Vec<ParkedMessage>,
}

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    One(String),
    All,
}

/// The job: the catalog's migration job with the events command instead.
pub fn events_job(shop: &Shop, args: Vec<String>) -> anyhow::Result<Job> {
    let desired = crate::desired::desired(shop, Some(&[TOOL_SERVICE.into()]), &BTreeMap::new())?;
    let service = desired
        .levels
        .iter()
        .flatten()
        .find(|c| c.name == TOOL_SERVICE)
        .context("the stack has no catalog service")?;
    let template = service
        .migrate
        .as_ref()
        .context("the catalog service has no migration job to start from")?;
    let mut cmd = vec!["events".to_owned()];
    cmd.extend(args);
    Ok(Job {
        name: format!("{}-{TOOL_SERVICE}-events", shop.name()),
        spec: ContainerSpec {
            cmd,
            labels: component_labels(shop.name(), TOOL_SERVICE, "events"),
            ..template.spec.clone()
        },
    })
}

/// The arguments of `catalog events …` for a listing or a replay.
pub fn list_args(consumers: &[String]) -> Vec<String> {
    let mut args = vec!["parked".to_owned()];
    for c in consumers {
        args.push("--consumer".into());
        args.push(c.clone());
    }
    args
}

pub fn replay_args(consumer: &str, what: &Replay) -> Vec<String> {
    let mut args = vec![
        "replay".to_owned(),
        "--consumer".into(),
        consumer.to_owned(),
    ];
    match what {
        Replay::One(id) => {
            args.push("--id".into());
            args.push(id.clone());
        }
        Replay::All => args.push("--all".into()),
    }
    args
}

/// Finds the tool's JSON document among the job's log lines (the rest are its logs).
fn parse_output(logs: &str) -> Option<ToolOutput> {
    logs.lines()
        .map(|l| crate::logs::split_timestamp(l).1)
        .filter(|l| l.contains("\"parked\"") || l.contains("\"replayed\""))
        .find_map(|l| serde_json::from_str::<ToolOutput>(l).ok())
}

async fn run_tool(
    engine: &DockerEngine,
    shop: &Shop,
    args: Vec<String>,
) -> anyhow::Result<ToolOutput> {
    let world = engine.observe(shop.name()).await?;
    let running = |name: &str| {
        world
            .containers
            .iter()
            .any(|c| c.component == name && c.role == "service" && c.running)
    };
    if !running("rabbitmq") {
        bail!(
            "shop {} is not running its event broker; start it with `shopctl up`",
            shop.name()
        );
    }
    let job = events_job(shop, args)?;
    let outcome = engine.run_job(&job).await?;
    if outcome.exit_code != 0 {
        let logs: Vec<String> = outcome
            .logs
            .lines()
            .map(|l| {
                format!(
                    "  | {}",
                    crate::logs::humanize(crate::logs::split_timestamp(l).1)
                )
            })
            .collect();
        bail!(
            "the events tool failed (exit code {}):\n{}",
            outcome.exit_code,
            logs.join("\n")
        );
    }
    parse_output(&outcome.logs).context("the events tool printed no result")
}

pub async fn list(
    engine: &DockerEngine,
    shop: &Shop,
    consumers: &[String],
) -> anyhow::Result<Vec<ParkedMessage>> {
    Ok(run_tool(engine, shop, list_args(consumers)).await?.parked)
}

pub async fn replay(
    engine: &DockerEngine,
    shop: &Shop,
    consumer: &str,
    what: &Replay,
) -> anyhow::Result<Vec<ParkedMessage>> {
    Ok(run_tool(engine, shop, replay_args(consumer, what))
        .await?
        .replayed)
}

/// The human listing: one line per message, the error last (it is the long part).
pub fn render(messages: &[ParkedMessage]) -> String {
    if messages.is_empty() {
        return "no parked messages".to_owned();
    }
    let mut out = format!(
        "{:<14} {:<38} {:<24} {:>8}  error\n",
        "CONSUMER", "ID", "TYPE", "ATTEMPTS"
    );
    for m in messages {
        out.push_str(&format!(
            "{:<14} {:<38} {:<24} {:>8}  {}\n",
            m.consumer,
            m.id.as_deref().unwrap_or("-"),
            m.event_type.as_deref().unwrap_or("(not an event)"),
            m.attempts,
            m.error.as_deref().unwrap_or("-")
        ));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_arguments_name_consumer_and_selection() {
        assert_eq!(list_args(&[]), ["parked"]);
        assert_eq!(
            list_args(&["order".into()]),
            ["parked", "--consumer", "order"]
        );
        assert_eq!(
            replay_args("order", &Replay::One("0190".into())),
            ["replay", "--consumer", "order", "--id", "0190"]
        );
        assert_eq!(
            replay_args("cart", &Replay::All),
            ["replay", "--consumer", "cart", "--all"]
        );
    }

    #[test]
    fn the_result_is_found_among_log_lines() {
        let logs = "2026-12-02T01:00:00.000000000Z {\"@timestamp\":\"x\",\"message\":\"connected\"}\n\
                    2026-12-02T01:00:00.100000000Z {\"parked\":[{\"consumer\":\"order\",\"id\":\"0190\",\"event_type\":\"payment.succeeded\",\"attempts\":4,\"error\":\"peer down\",\"body\":{}}]}\n";
        let out = parse_output(logs).unwrap();
        assert_eq!(out.parked.len(), 1);
        assert_eq!(out.parked[0].attempts, 4);
        let text = render(&out.parked);
        assert!(
            text.contains("payment.succeeded") && text.contains("peer down"),
            "{text}"
        );
        assert_eq!(render(&[]), "no parked messages");
        assert!(parse_output("nothing here").is_none());
    }
}
