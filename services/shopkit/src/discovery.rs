//! Consul registration (the `discovery = "consul"` mode of a shop): a replica registers
//! itself with the local agent, with an HTTP check on its readiness, when it starts
//! serving, and deregisters when it stops. Traefik and Prometheus then find the
//! replicas through Consul's catalog, which lists only instances whose check passes.
//!
//! The settings are Consul's own `CONSUL_HTTP_ADDR` / `CONSUL_HTTP_TOKEN`, plus what
//! `shopctl` sets per service: `CONSUL_SERVICE_NAME`, optionally `CONSUL_SERVICE_ID` and
//! `CONSUL_SERVICE_ADDRESS` (default: `<name>-<hostname>` and the hostname, which is the
//! container's short id, resolvable on the shop network),
//! `CONSUL_SERVICE_TAGS` (a JSON array: the same `traefik.*` routing labels the Docker
//! mode puts on the container) and `CONSUL_SERVICE_META` (a JSON object). Without
//! `CONSUL_HTTP_ADDR` nothing registers (the Docker mode).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Settings};

/// How often Consul probes a replica, and how long until a dead one is removed.
const CHECK_INTERVAL: &str = "2s";
const CHECK_TIMEOUT: &str = "1s";
const DEREGISTER_CRITICAL_AFTER: &str = "1m";

/// One replica as Consul's agent API takes it (`PUT /v1/agent/service/register`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Registration {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    pub check: Check,
}

/// The agent's HTTP check: a 2xx answer is passing, anything else critical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Check {
    #[serde(rename = "HTTP")]
    pub http: String,
    pub interval: String,
    pub timeout: String,
    pub deregister_critical_service_after: String,
}

/// A passing instance, from `GET /v1/health/service/<name>?passing=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
}

/// Where the agent is and who this replica is, read from the settings.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub agent: Agent,
    id: String,
    name: String,
    address: String,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
}

impl Discovery {
    /// `None` without `CONSUL_HTTP_ADDR`. A present but malformed setting is an error
    /// naming it.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, ConfigError> {
        let Some(addr) = settings.get("CONSUL_HTTP_ADDR") else {
            return Ok(None);
        };
        let hint = "shopctl sets it for every service when the shop's discovery is \"consul\"";
        let name = settings.required("CONSUL_SERVICE_NAME", hint)?;
        // A container's hostname is its short id, which Docker's DNS resolves on the
        // shop network: the default address of a replica, without per-replica settings.
        let address = match settings.get("CONSUL_SERVICE_ADDRESS") {
            Some(address) => address.to_owned(),
            None => settings.required(
                "HOSTNAME",
                "set CONSUL_SERVICE_ADDRESS to the address Consul's check should probe",
            )?,
        };
        let id = settings
            .get("CONSUL_SERVICE_ID")
            .map_or_else(|| format!("{name}-{address}"), str::to_owned);
        let tags = json_setting(settings, "CONSUL_SERVICE_TAGS", "a JSON array of strings")?;
        let meta = json_setting(settings, "CONSUL_SERVICE_META", "a JSON object of strings")?;
        let agent = Agent::new(addr, settings.secret("CONSUL_HTTP_TOKEN")?).map_err(|e| {
            invalid(
                "CONSUL_HTTP_ADDR",
                &format!("{e:#}; expected e.g. http://consul:8500"),
            )
        })?;
        Ok(Some(Self {
            agent,
            id,
            name,
            address,
            tags,
            meta,
        }))
    }

    /// What this replica registers once it listens on `port`: readiness is the check, so
    /// a draining replica leaves the catalog before it closes.
    pub fn registration(&self, port: u16) -> Registration {
        Registration {
            id: self.id.clone(),
            name: self.name.clone(),
            address: self.address.clone(),
            port,
            tags: self.tags.clone(),
            meta: self.meta.clone(),
            check: Check {
                http: format!("http://{}:{port}/health/ready", self.address),
                interval: CHECK_INTERVAL.into(),
                timeout: CHECK_TIMEOUT.into(),
                deregister_critical_service_after: DEREGISTER_CRITICAL_AFTER.into(),
            },
        }
    }

    /// Registers in the background, retrying until the agent takes it (Consul may start
    /// after the service). Dropping or aborting the handle stops the retries.
    pub fn spawn_register(&self, port: u16) -> tokio::task::JoinHandle<()> {
        let agent = self.agent.clone();
        let registration = self.registration(port);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            loop {
                match agent.register(&registration).await {
                    Ok(()) => {
                        tracing::info!(id = %registration.id, "registered with consul");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "consul registration failed; retrying"
                        );
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
    }

    pub async fn deregister(&self) -> anyhow::Result<()> {
        self.agent.deregister(&self.id).await
    }
}

fn json_setting<T: serde::de::DeserializeOwned + Default>(
    settings: &Settings,
    name: &str,
    expected: &str,
) -> Result<T, ConfigError> {
    settings.get(name).map_or(Ok(T::default()), |raw| {
        serde_json::from_str(raw).map_err(|e| invalid(name, &format!("expected {expected}: {e}")))
    })
}

fn invalid(name: &str, problem: &str) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        problem: format!("is malformed: {problem}"),
    }
}

/// A client of one Consul agent's HTTP API.
#[derive(Debug, Clone)]
pub struct Agent {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Agent {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let base = reqwest::Url::parse(base).with_context(|| format!("{base:?} is not a URL"))?;
        // reqwest is built without a TLS provider; `main` installs it, library callers
        // (tests, tools) may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { base, token, http })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let url = self
            .base
            .join(path)
            .with_context(|| format!("joining {path}"))?;
        let request = self.http.request(method, url);
        Ok(match &self.token {
            Some(token) => request.header("X-Consul-Token", token),
            None => request,
        })
    }

    pub async fn register(&self, registration: &Registration) -> anyhow::Result<()> {
        let response = self
            .request(reqwest::Method::PUT, "/v1/agent/service/register")?
            .json(registration)
            .send()
            .await
            .context("reaching the consul agent")?;
        expect_success(response, "registering").await
    }

    pub async fn deregister(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .request(
                reqwest::Method::PUT,
                &format!("/v1/agent/service/deregister/{id}"),
            )?
            .send()
            .await
            .context("reaching the consul agent")?;
        expect_success(response, "deregistering").await
    }

    /// The instances of `service` whose checks all pass.
    pub async fn passing(&self, service: &str) -> anyhow::Result<Vec<Instance>> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/health/service/{service}?passing=true"),
            )?
            .send()
            .await
            .context("reaching the consul agent")?;
        let response = response
            .error_for_status()
            .context("listing healthy instances")?;
        let entries: Vec<HealthEntry> = response
            .json()
            .await
            .context("reading consul's health listing")?;
        Ok(entries
            .into_iter()
            .map(|e| Instance {
                id: e.service.id,
                address: e.service.address,
                port: e.service.port,
                tags: e.service.tags,
            })
            .collect())
    }
}

async fn expect_success(response: reqwest::Response, doing: &str) -> anyhow::Result<()> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    anyhow::bail!("consul answered {status} {doing}: {}", body.trim())
}

/// One entry of `/v1/health/service/<name>`: node, service, checks.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    service: AgentService,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentService {
    #[serde(rename = "ID")]
    id: String,
    address: String,
    port: u16,
    #[serde(default)]
    tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_vars(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn no_agent_no_registration() {
        assert!(Discovery::from_settings(&settings(&[])).unwrap().is_none());
    }

    #[test]
    fn registration_checks_readiness_on_the_replica_address() {
        let d = Discovery::from_settings(&settings(&[
            ("CONSUL_HTTP_ADDR", "http://consul:8500"),
            ("CONSUL_SERVICE_NAME", "catalog"),
            ("CONSUL_SERVICE_ADDRESS", "shop-catalog-2"),
            ("CONSUL_SERVICE_TAGS", r#"["traefik.enable=true"]"#),
            ("CONSUL_SERVICE_META", r#"{"replica":"2"}"#),
        ]))
        .unwrap()
        .unwrap();
        let r = d.registration(8080);
        assert_eq!(r.id, "catalog-shop-catalog-2");
        assert_eq!(r.check.http, "http://shop-catalog-2:8080/health/ready");
        assert_eq!(r.tags, vec!["traefik.enable=true"]);
        assert_eq!(r.meta.get("replica").map(String::as_str), Some("2"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["Check"]["HTTP"],
            "http://shop-catalog-2:8080/health/ready"
        );
        assert_eq!(json["Check"]["DeregisterCriticalServiceAfter"], "1m");
        assert_eq!(json["ID"], "catalog-shop-catalog-2");
    }

    #[test]
    fn a_replica_defaults_to_its_hostname() {
        let d = Discovery::from_settings(&settings(&[
            ("CONSUL_HTTP_ADDR", "http://consul:8500"),
            ("CONSUL_SERVICE_NAME", "cart"),
            ("HOSTNAME", "3f2a9c1b7d4e"),
        ]))
        .unwrap()
        .unwrap();
        let r = d.registration(8080);
        assert_eq!(r.id, "cart-3f2a9c1b7d4e");
        assert_eq!(r.address, "3f2a9c1b7d4e");
    }

    #[test]
    fn malformed_tags_name_the_setting() {
        let err = Discovery::from_settings(&settings(&[
            ("CONSUL_HTTP_ADDR", "http://consul:8500"),
            ("CONSUL_SERVICE_NAME", "catalog"),
            ("CONSUL_SERVICE_ADDRESS", "a"),
            ("CONSUL_SERVICE_TAGS", "traefik.enable=true"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("CONSUL_SERVICE_TAGS"), "{err}");
    }

    #[test]
    fn a_missing_name_says_who_sets_it() {
        let err =
            Discovery::from_settings(&settings(&[("CONSUL_HTTP_ADDR", "http://consul:8500")]))
                .unwrap_err();
        assert!(err.to_string().contains("CONSUL_SERVICE_NAME"), "{err}");
    }
}
