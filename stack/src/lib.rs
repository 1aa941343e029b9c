//! The Shopstack stack definition, as data (`stack.toml`, embedded at build time).
//!
//! Architecture Invariant: this crate only describes components; it never talks to an
//! engine. `shopctl`'s planner combines it with a shop's `shop.toml` into desired state.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The embedded definition.
pub const STACK_TOML: &str = include_str!("../stack.toml");

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// PostgreSQL, RabbitMQ, the services and the gateway.
    Core,
    /// Consul.
    Discovery,
    /// Prometheus and the PostgreSQL exporter.
    Observability,
    /// Elasticsearch, Logstash, Kibana.
    Logging,
    /// Grafana (no local image: needs a loaded upstream image), with observability.
    Dashboards,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::Core,
        Profile::Discovery,
        Profile::Observability,
        Profile::Logging,
        Profile::Dashboards,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Core => "core",
            Profile::Discovery => "discovery",
            Profile::Observability => "observability",
            Profile::Logging => "logging",
            Profile::Dashboards => "dashboards",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown profile {s:?}; profiles are core, discovery, observability, logging, dashboards"
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Third-party software (PostgreSQL, RabbitMQ, Prometheus …).
    Infrastructure,
    /// A Shopstack service: runs `migrate` as a one-shot job before it starts.
    Service,
    /// The front door; its ports are the shop's public ports.
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub name: String,
    pub container: u16,
    /// Published on the host at this port by default; unpublished when absent.
    pub host: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Named volume, prefixed with the shop's name on the engine.
    pub name: String,
    pub path: String,
}

/// A file of the shop directory, bind-mounted read-only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    pub profile: Profile,
    pub kind: Kind,
    /// The default image (upstream name, or Shopstack's own).
    pub image: String,
    /// The locally buildable replacement of `image` (same interface), if any.
    pub local_image: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files of the shop's `secrets/`, mounted at `/run/secrets/<name>`.
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub configs: Vec<ConfigFile>,
    #[serde(default)]
    pub ports: Vec<Port>,
    pub health: Health,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Whether more than one replica may run (stateless services only).
    #[serde(default)]
    pub scalable: bool,
    /// Runs `<image> migrate` as a one-shot job before the service starts.
    #[serde(default)]
    pub migrate: bool,
    /// The subcommand that loads demo data, run once after migrate in demo shops.
    pub seed: Option<String>,
    /// The database (and role) PostgreSQL creates for this service.
    pub database: Option<String>,
    /// The gateway path prefix routed to this service.
    pub route: Option<String>,
    /// Mounts the engine socket (the gateway's and Prometheus's Docker discovery).
    #[serde(default)]
    pub docker_socket: bool,
    /// The user the process runs as, when not the image's own.
    pub user: Option<String>,
    /// Mounts the engine's container log directory read-only (Filebeat ships the shop's
    /// logs from there).
    #[serde(default)]
    pub container_logs: bool,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stack {
    #[serde(rename = "component")]
    pub components: Vec<Component>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StackError {
    #[error("stack definition does not parse: {0}")]
    Parse(String),
    #[error("component {0:?} is defined twice")]
    Duplicate(String),
    #[error("component {component:?} depends on unknown component {dependency:?}")]
    UnknownDependency {
        component: String,
        dependency: String,
    },
    #[error("the dependencies form a cycle through {0}")]
    Cycle(String),
}

impl Stack {
    /// The embedded definition, validated.
    pub fn embedded() -> Result<Self, StackError> {
        Self::parse(STACK_TOML)
    }

    pub fn parse(text: &str) -> Result<Self, StackError> {
        let stack: Stack = toml::from_str(text).map_err(|e| StackError::Parse(e.to_string()))?;
        stack.validate()?;
        Ok(stack)
    }

    fn validate(&self) -> Result<(), StackError> {
        let mut seen = BTreeSet::new();
        for c in &self.components {
            if !seen.insert(c.name.as_str()) {
                return Err(StackError::Duplicate(c.name.clone()));
            }
        }
        for c in &self.components {
            if let Some(dep) = c.depends_on.iter().find(|d| !seen.contains(d.as_str())) {
                return Err(StackError::UnknownDependency {
                    component: c.name.clone(),
                    dependency: dep.clone(),
                });
            }
        }
        levels(&self.components.iter().collect::<Vec<_>>()).map(|_| ())
    }

    pub fn get(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.components.iter().map(|c| c.name.as_str()).collect()
    }
}

/// Groups components into start-up levels: each level depends only on earlier ones, so a
/// level's components can start in parallel. Dependencies outside `components` (disabled
/// by profile) are ignored.
pub fn levels<'a>(components: &[&'a Component]) -> Result<Vec<Vec<&'a Component>>, StackError> {
    let names: BTreeSet<&str> = components.iter().map(|c| c.name.as_str()).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut levels = Vec::new();
    while placed.len() < components.len() {
        let level: Vec<&Component> = components
            .iter()
            .copied()
            .filter(|c| !placed.contains(c.name.as_str()))
            .filter(|c| {
                c.depends_on
                    .iter()
                    .all(|d| placed.contains(d.as_str()) || !names.contains(d.as_str()))
            })
            .collect();
        if level.is_empty() {
            let rest: Vec<&str> = components
                .iter()
                .map(|c| c.name.as_str())
                .filter(|n| !placed.contains(n))
                .collect();
            return Err(StackError::Cycle(rest.join(", ")));
        }
        placed.extend(level.iter().map(|c| c.name.as_str()));
        levels.push(level);
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_stack_is_valid_and_ordered() {
        let stack = Stack::embedded().unwrap();
        let core: Vec<&Component> = stack
            .components
            .iter()
            .filter(|c| c.profile == Profile::Core)
            .collect();
        let levels = levels(&core).unwrap();
        let names: Vec<Vec<&str>> = levels
            .iter()
            .map(|l| l.iter().map(|c| c.name.as_str()).collect())
            .collect();
        assert_eq!(names[0], vec!["postgres", "rabbitmq"]);
        let position = |n: &str| names.iter().position(|l| l.contains(&n)).unwrap();
        assert!(position("catalog") > position("postgres"));
        assert!(position("gateway") > position("catalog"));
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_refused() {
        let base = "profile = \"core\"\nkind = \"service\"\nimage = \"x\"\nhealth = { test = [], interval_ms = 1, timeout_ms = 1, retries = 1 }\n";
        let text = format!(
            "[[component]]\nname = \"a\"\ndepends_on = [\"b\"]\n{base}[[component]]\nname = \"b\"\ndepends_on = [\"a\"]\n{base}"
        );
        assert!(matches!(Stack::parse(&text), Err(StackError::Cycle(_))));
        let text = format!("[[component]]\nname = \"a\"\ndepends_on = [\"zz\"]\n{base}");
        assert_eq!(
            Stack::parse(&text).unwrap_err(),
            StackError::UnknownDependency {
                component: "a".into(),
                dependency: "zz".into()
            }
        );
    }
}
