//! The `logging` profile: Filebeat ships the ECS JSON lines that the engine keeps for the
//! shop's containers to Elasticsearch, into the data stream `logs-shopstack-<shop>`.
//! After `up`, shopctl installs the stream's index template (its mapping is the services'
//! log schema, `shopkit::telemetry::ecs_mappings`) and a Kibana data view over it. Both
//! calls are idempotent: every `up` sends them again.
//!
//! `shopctl logs` reads the engine's own log copy, so it works with or without this.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

/// The data stream (Elastic's `<type>-<dataset>-<namespace>` naming, so that Kibana's
/// log views find it).
pub fn data_stream(shop: &str) -> String {
    format!("logs-shopstack-{shop}")
}

/// The composable index template of the shop's data stream. Priority 200 beats the
/// built-in `logs-*-*` template (100), whose mappings would not know our fields.
pub fn index_template(shop: &str) -> Value {
    json!({
        "index_patterns": [format!("{}*", data_stream(shop))],
        "data_stream": {},
        "priority": 200,
        "template": {
            "settings": { "number_of_shards": 1, "number_of_replicas": 0 },
            "mappings": shopkit::telemetry::ecs_mappings(),
        },
        "_meta": { "managed_by": "shopctl", "shop": shop },
    })
}

/// Kibana's data view over the stream (`POST /api/data_views/data_view`), replacing
/// the one of an earlier `up`.
pub fn data_view(shop: &str) -> Value {
    json!({
        "data_view": {
            "id": format!("shopstack-{shop}-logs"),
            "title": format!("{}*", data_stream(shop)),
            "name": format!("Shopstack {shop} logs"),
            "timeFieldName": "@timestamp",
        },
        "override": true,
    })
}

/// Installs the index template in Elasticsearch and the data view in Kibana.
pub async fn install(elasticsearch: &str, kibana: &str, shop: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let response = client
        .put(format!(
            "{elasticsearch}/_index_template/{}",
            data_stream(shop)
        ))
        .json(&index_template(shop))
        .send()
        .await
        .context("reaching Elasticsearch")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() || body["acknowledged"] != true {
        anyhow::bail!(
            "Elasticsearch refused the index template ({status}): {}",
            body["error"]["reason"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    let response = client
        .post(format!("{kibana}/api/data_views/data_view"))
        // Kibana refuses API writes without it (its CSRF protection).
        .header("kbn-xsrf", "true")
        .json(&data_view(shop))
        .send()
        .await
        .context("reaching Kibana")?;
    let status = response.status();
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::bail!(
            "Kibana refused the data view ({status}): {}",
            body["message"].as_str().unwrap_or("no message given")
        );
    }
    Ok(())
}

/// After `up` of a shop with the logging profile: installs the template and data view
/// through the containers' addresses on the shop network (neither publishes a host port).
pub async fn after_up(docker: &bollard::Docker, shop: &crate::shop::Shop) -> anyhow::Result<()> {
    let address = |component: &'static str| async move {
        let name = format!("{}-{component}-1", shop.name());
        let inspect = docker
            .inspect_container(&name, None)
            .await
            .with_context(|| format!("inspecting {name}"))?;
        inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(&shop.network()))
            .and_then(|n| n.ip_address)
            .filter(|ip| !ip.is_empty())
            .with_context(|| format!("{name} has no address on {}", shop.network()))
    };
    let elasticsearch = address("elasticsearch").await?;
    let kibana = address("kibana").await?;
    install(
        &format!("http://{elasticsearch}:9200"),
        &format!("http://{kibana}:5601"),
        shop.name(),
    )
    .await
    .context("setting up the logs' index template and Kibana data view")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_matches_the_stream_filebeat_writes() {
        let template = index_template("demo");
        let pattern = template["index_patterns"][0].as_str().unwrap();
        let filebeat = include_str!("../../templates/config/filebeat/filebeat.yml.tera");
        let rendered = filebeat.replace("{{ name }}", "demo");
        let index_line = rendered
            .lines()
            .find(|l| l.trim_start().starts_with("index:"))
            .unwrap();
        let index = index_line.split('"').nth(1).unwrap();
        assert!(
            index.starts_with(pattern.trim_end_matches('*')),
            "{index} / {pattern}"
        );
        assert_eq!(
            template["template"]["mappings"]["properties"]["@timestamp"]["type"],
            "date"
        );
        assert_eq!(data_view("demo")["data_view"]["title"], pattern);
    }
}
