//! `shopctl notifications`: the messages the notification service made (with the outbox
//! provider, the shop's mailbox: what would have been emailed or texted). The work runs
//! as a one-shot container of the notification image (`notification messages …`, which
//! reads its own database), as `shopctl events` does with the catalog's.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::planner::{ContainerSpec, Job, component_labels};
use crate::shop::Shop;

/// The service that owns the messages.
const SERVICE: &str = "notification";

/// One message, as the tool prints it (a subset of the service's `GET /messages`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub channel: String,
    pub kind: String,
    pub recipient: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub status: String,
    pub attempts: i64,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub body_text: String,
}

#[derive(Debug, Deserialize)]
struct ToolOutput {
    messages: Vec<Message>,
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub to: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub limit: Option<u32>,
}

/// The arguments of `notification messages …`.
pub fn args(query: &Query) -> Vec<String> {
    let mut args = vec!["messages".to_owned()];
    for (flag, value) in [
        ("--to", &query.to),
        ("--kind", &query.kind),
        ("--status", &query.status),
    ] {
        if let Some(value) = value {
            args.push(flag.to_owned());
            args.push(value.clone());
        }
    }
    if let Some(limit) = query.limit {
        args.push("--limit".into());
        args.push(limit.to_string());
    }
    args
}

/// The job: the notification service's migration job with the messages command instead.
pub fn job(shop: &Shop, args: Vec<String>) -> anyhow::Result<Job> {
    let desired = crate::desired::desired(shop, Some(&[SERVICE.into()]), &BTreeMap::new())?;
    let service = desired
        .levels
        .iter()
        .flatten()
        .find(|c| c.name == SERVICE)
        .context("the stack has no notification service")?;
    let template = service
        .migrate
        .as_ref()
        .context("the notification service has no migration job to start from")?;
    Ok(Job {
        name: format!("{}-{SERVICE}-messages", shop.name()),
        spec: ContainerSpec {
            cmd: args,
            labels: component_labels(shop.name(), SERVICE, "messages"),
            ..template.spec.clone()
        },
    })
}

fn parse_output(logs: &str) -> Option<Vec<Message>> {
    logs.lines()
        .map(|l| crate::logs::split_timestamp(l).1)
        .filter(|l| l.starts_with("{\"messages\""))
        .find_map(|l| serde_json::from_str::<ToolOutput>(l).ok())
        .map(|o| o.messages)
}

pub async fn list(
    engine: &DockerEngine,
    shop: &Shop,
    query: &Query,
) -> anyhow::Result<Vec<Message>> {
    let world = engine.observe(shop.name()).await?;
    if !world
        .containers
        .iter()
        .any(|c| c.component == "postgres" && c.role == "service" && c.running)
    {
        bail!(
            "shop {} is not running its database; start it with `shopctl up`",
            shop.name()
        );
    }
    let outcome = engine.run_job(&job(shop, args(query))?).await?;
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
            "the notification tool failed (exit code {}):\n{}",
            outcome.exit_code,
            logs.join("\n")
        );
    }
    parse_output(&outcome.logs).context("the notification tool printed no result")
}

/// The human listing: one line per message, newest first.
pub fn render(messages: &[Message]) -> String {
    if messages.is_empty() {
        return "no messages".to_owned();
    }
    let mut out = format!(
        "{:<26} {:<6} {:<24} {:<30} {:<8} {:>3}  subject / error\n",
        "CREATED", "VIA", "KIND", "TO", "STATUS", "TRY"
    );
    for m in messages {
        let detail = match (&m.last_error, &m.subject) {
            (Some(error), _) if m.status != "sent" => error.clone(),
            (_, Some(subject)) => subject.clone(),
            _ => m.body_text.lines().next().unwrap_or_default().to_owned(),
        };
        out.push_str(&format!(
            "{:<26} {:<6} {:<24} {:<30} {:<8} {:>3}  {}\n",
            m.created_at.get(..26).unwrap_or(&m.created_at),
            m.channel,
            m.kind,
            m.recipient,
            m.status,
            m.attempts,
            detail
        ));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_arguments_carry_the_filters() {
        assert_eq!(args(&Query::default()), ["messages"]);
        let q = Query {
            to: Some("a@example.com".into()),
            kind: Some("order_confirmation".into()),
            status: None,
            limit: Some(5),
        };
        assert_eq!(
            args(&q),
            [
                "messages",
                "--to",
                "a@example.com",
                "--kind",
                "order_confirmation",
                "--limit",
                "5"
            ]
        );
    }

    #[test]
    fn the_result_line_is_found_among_the_logs_and_rendered() {
        let logs = "2026-12-02T01:00:00.000000000Z {\"@timestamp\":\"x\",\"message\":\"connected\"}\n\
                    2026-12-02T01:00:00.100000000Z {\"messages\":[{\"id\":\"0190\",\"event_id\":\"0191\",\"channel\":\"email\",\"kind\":\"order_confirmation\",\"recipient\":\"buyer@example.com\",\"subject\":\"Your order is confirmed\",\"body_text\":\"Hello\",\"status\":\"sent\",\"attempts\":1,\"provider\":\"outbox\",\"last_error\":null,\"created_at\":\"2026-12-02T01:00:00.000000Z\"}]}\n";
        let messages = parse_output(logs).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].recipient, "buyer@example.com");
        let text = render(&messages);
        assert!(text.contains("order_confirmation"), "{text}");
        assert!(text.contains("Your order is confirmed"), "{text}");
        assert_eq!(render(&[]), "no messages");
    }
}
