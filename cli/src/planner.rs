//! The planner: desired state (from the shop and the stack) versus observed state (from
//! the engine) → the actions that make them equal.
//!
//! Architecture Invariant: this module is pure — no engine, no clock, no file system — so
//! every decision it makes is unit-tested, and a second target (Swarm services) needs a
//! second adapter, not a second planner.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use stack::Kind;

use crate::engine::{LABEL_COMPONENT, LABEL_ROLE, LABEL_SHOP};

/// A bind mount (shop file) or a named volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Mount {
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    Volume {
        name: String,
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

/// Everything that defines a container of a component, the same for each replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    pub image: String,
    /// The engine's id of `image` when planned: a rebuilt image changes the hash.
    pub image_id: String,
    pub cmd: Vec<String>,
    /// `KEY=value`, sorted.
    pub env: Vec<String>,
    pub mounts: Vec<Mount>,
    /// (container port, host port); published on replica 1 only.
    pub ports: Vec<(u16, u16)>,
    pub health: Option<HealthCheck>,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub network: String,
    /// DNS names on the shop network (the component's name).
    pub aliases: Vec<String>,
    /// Digests of the mounted files' contents: editing a config or rotating a secret
    /// changes the hash and so recreates the container.
    pub file_digests: BTreeMap<String, String>,
    /// Seconds between SIGTERM and SIGKILL when the container is stopped.
    pub stop_grace_s: i64,
    /// Who the process runs as, when not the image's own user. Left out of the hash when
    /// absent, so that specs without it keep their hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ContainerSpec {
    /// A short, stable hash of the spec, stored as a label on the container.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(json)[..8])
    }
}

/// A one-shot container (`migrate`, `seed-demo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub name: String,
    pub spec: ContainerSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredComponent {
    pub name: String,
    #[serde(skip)]
    pub kind: Kind,
    pub replicas: u32,
    pub scalable: bool,
    /// The components this one needs healthy first (levels are derived from these).
    pub depends_on: Vec<String>,
    pub spec: ContainerSpec,
    /// Creates the service's database and role (or updates its password) on the
    /// PostgreSQL server; runs before every migration.
    pub provision: Option<Job>,
    pub migrate: Option<Job>,
    pub seed: Option<Job>,
}

impl DesiredComponent {
    pub fn container_name(&self, shop: &str, replica: u32) -> String {
        format!("{shop}-{}-{replica}", self.name)
    }
}

/// The whole shop as it should run, in start-up levels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub shop: String,
    pub network: String,
    pub volumes: Vec<String>,
    pub levels: Vec<Vec<DesiredComponent>>,
}

/// A container of the shop as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub id: String,
    pub name: String,
    pub component: String,
    pub replica: u32,
    pub role: String,
    pub hash: String,
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A new replica.
    Create { replica: u32 },
    /// The replica exists with another spec (or stopped): replace it. Scalable
    /// components start the new one before stopping the old (no downtime).
    Replace {
        replica: u32,
        old_id: String,
        old_name: String,
    },
    /// A replica above the desired count: drain and remove.
    Remove { replica: u32, id: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentPlan {
    pub name: String,
    /// Provisions the service's database first (some replica is created or replaced).
    pub provision: bool,
    /// Then runs the migration job.
    pub migrate: bool,
    /// Loads the demo data after migrating (the component had no container yet).
    pub seed: bool,
    pub actions: Vec<Action>,
    /// Replicas left as they are.
    pub unchanged: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub create_network: bool,
    pub create_volumes: Vec<String>,
    pub levels: Vec<Vec<ComponentPlan>>,
    /// Containers of the shop whose component is no longer enabled.
    pub orphans: Vec<Observed>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        !self.create_network
            && self.create_volumes.is_empty()
            && self.orphans.is_empty()
            && self.levels.iter().flatten().all(|c| c.actions.is_empty())
    }

    pub fn changes(&self) -> usize {
        self.levels
            .iter()
            .flatten()
            .map(|c| c.actions.len())
            .sum::<usize>()
            + self.orphans.len()
    }
}

/// What exists on the engine besides containers.
#[derive(Debug, Clone, Default)]
pub struct ObservedWorld {
    pub containers: Vec<Observed>,
    pub network_exists: bool,
    pub volumes: Vec<String>,
}

/// Compares desired with observed. `only`: restrict to these components (their
/// dependencies are already in `desired`); orphans are then left alone.
pub fn plan(desired: &Desired, world: &ObservedWorld, only: Option<&[String]>) -> Plan {
    let mut levels = Vec::new();
    for level in &desired.levels {
        let mut plans = Vec::new();
        for component in level {
            let observed: Vec<&Observed> = world
                .containers
                .iter()
                .filter(|o| o.component == component.name && o.role == "service")
                .collect();
            plans.push(plan_component(component, &observed));
        }
        levels.push(plans);
    }
    let enabled: Vec<&str> = desired
        .levels
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    let orphans = if only.is_some() {
        Vec::new()
    } else {
        world
            .containers
            .iter()
            .filter(|o| o.role == "service" && !enabled.contains(&o.component.as_str()))
            .cloned()
            .collect()
    };
    Plan {
        create_network: !world.network_exists,
        create_volumes: desired
            .volumes
            .iter()
            .filter(|v| !world.volumes.contains(v))
            .cloned()
            .collect(),
        levels,
        orphans,
    }
}

fn plan_component(component: &DesiredComponent, observed: &[&Observed]) -> ComponentPlan {
    let hash = component.spec.hash();
    let mut actions = Vec::new();
    let mut unchanged = Vec::new();
    for replica in 1..=component.replicas {
        // Two containers may claim a replica after an interrupted rolling replace: keep
        // a running one with the right hash, replace the first otherwise.
        let candidates: Vec<&&Observed> =
            observed.iter().filter(|o| o.replica == replica).collect();
        if let Some(good) = candidates.iter().find(|o| o.hash == hash && o.running) {
            unchanged.push(replica);
            for extra in candidates.iter().filter(|o| o.id != good.id) {
                actions.push(Action::Remove {
                    replica,
                    id: extra.id.clone(),
                });
            }
        } else if let Some(first) = candidates.first() {
            actions.push(Action::Replace {
                replica,
                old_id: first.id.clone(),
                old_name: first.name.clone(),
            });
            for extra in candidates.iter().skip(1) {
                actions.push(Action::Remove {
                    replica,
                    id: extra.id.clone(),
                });
            }
        } else {
            actions.push(Action::Create { replica });
        }
    }
    for o in observed
        .iter()
        .filter(|o| o.replica > component.replicas || o.replica == 0)
    {
        actions.push(Action::Remove {
            replica: o.replica,
            id: o.id.clone(),
        });
    }
    let starts = actions
        .iter()
        .any(|a| matches!(a, Action::Create { .. } | Action::Replace { .. }));
    ComponentPlan {
        name: component.name.clone(),
        provision: starts && component.provision.is_some(),
        migrate: starts && component.migrate.is_some(),
        // The seed (idempotent itself) only when the component starts from nothing,
        // not on every scale-up.
        seed: observed.is_empty() && starts && component.seed.is_some(),
        actions,
        unchanged,
    }
}

/// Labels every container of a component carries (replica and hash are added per
/// container by the engine adapter).
pub fn component_labels(shop: &str, component: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_SHOP.to_owned(), shop.to_owned()),
        (LABEL_COMPONENT.to_owned(), component.to_owned()),
        (LABEL_ROLE.to_owned(), role.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            image_id: format!("sha256:{image}"),
            cmd: vec!["serve".into()],
            env: vec![],
            mounts: vec![],
            ports: vec![],
            health: None,
            memory_bytes: None,
            nano_cpus: None,
            labels: component_labels("s", "catalog", "service"),
            network: "shopstack-s".into(),
            aliases: vec!["catalog".into()],
            file_digests: BTreeMap::new(),
            stop_grace_s: 10,
            user: None,
        }
    }

    fn component(replicas: u32, image: &str) -> DesiredComponent {
        let s = spec(image);
        DesiredComponent {
            name: "catalog".into(),
            kind: Kind::Service,
            replicas,
            scalable: true,
            depends_on: vec!["postgres".into()],
            migrate: Some(Job {
                name: "s-catalog-migrate".into(),
                spec: s.clone(),
            }),
            provision: Some(Job {
                name: "s-catalog-provision".into(),
                spec: s.clone(),
            }),
            seed: None,
            spec: s,
        }
    }

    fn desired(c: DesiredComponent) -> Desired {
        Desired {
            shop: "s".into(),
            network: "shopstack-s".into(),
            volumes: vec!["s-pgdata".into()],
            levels: vec![vec![c]],
        }
    }

    fn running(replica: u32, hash: &str) -> Observed {
        Observed {
            id: format!("id{replica}{hash}"),
            name: format!("s-catalog-{replica}"),
            component: "catalog".into(),
            replica,
            role: "service".into(),
            hash: hash.into(),
            running: true,
        }
    }

    #[test]
    fn empty_engine_creates_everything_and_migrates_first() {
        let p = plan(&desired(component(2, "a")), &ObservedWorld::default(), None);
        assert!(p.create_network);
        assert_eq!(p.create_volumes, vec!["s-pgdata"]);
        let c = &p.levels[0][0];
        assert!(c.provision && c.migrate);
        assert_eq!(
            c.actions,
            vec![Action::Create { replica: 1 }, Action::Create { replica: 2 }]
        );
    }

    #[test]
    fn the_demo_seed_runs_on_the_first_start_only() {
        let mut c = component(1, "a");
        c.seed = c.migrate.clone();
        let p = plan(&desired(c.clone()), &ObservedWorld::default(), None);
        assert!(p.levels[0][0].seed);
        // Scaling up a running component migrates (new code may start) but never reseeds.
        let world = ObservedWorld {
            containers: vec![running(1, &c.spec.hash())],
            network_exists: true,
            volumes: vec!["s-pgdata".into()],
        };
        c.replicas = 3;
        let p = plan(&desired(c), &world, None);
        assert!(p.levels[0][0].migrate);
        assert!(!p.levels[0][0].seed);
    }

    #[test]
    fn unchanged_running_stack_is_a_noop() {
        let d = desired(component(2, "a"));
        let hash = d.levels[0][0].spec.hash();
        let world = ObservedWorld {
            containers: vec![running(1, &hash), running(2, &hash)],
            network_exists: true,
            volumes: vec!["s-pgdata".into()],
        };
        let p = plan(&d, &world, None);
        assert!(p.is_noop(), "{p:?}");
        assert!(!p.levels[0][0].migrate);
    }

    #[test]
    fn changed_spec_replaces_and_scaling_adds_or_removes() {
        let old = component(1, "a").spec.hash();
        let world = ObservedWorld {
            containers: vec![running(1, &old), running(2, &old), running(3, &old)],
            network_exists: true,
            volumes: vec!["s-pgdata".into()],
        };
        // Same image, scale 3 → 1: two removals, nothing else.
        let p = plan(&desired(component(1, "a")), &world, None);
        let actions = &p.levels[0][0].actions;
        assert_eq!(actions.len(), 2);
        assert!(
            actions
                .iter()
                .all(|a| matches!(a, Action::Remove { replica, .. } if *replica > 1))
        );
        assert!(!p.levels[0][0].migrate);
        // New image: every kept replica is replaced, and migrations run.
        let p = plan(&desired(component(3, "b")), &world, None);
        assert_eq!(
            p.levels[0][0]
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Replace { .. }))
                .count(),
            3
        );
        assert!(p.levels[0][0].migrate);
    }

    #[test]
    fn stopped_containers_are_replaced_and_orphans_found() {
        let hash = component(1, "a").spec.hash();
        let mut stopped = running(1, &hash);
        stopped.running = false;
        let mut orphan = running(1, "x");
        orphan.component = "oldsvc".into();
        let world = ObservedWorld {
            containers: vec![stopped, orphan],
            network_exists: true,
            volumes: vec!["s-pgdata".into()],
        };
        let p = plan(&desired(component(1, "a")), &world, None);
        assert!(matches!(
            p.levels[0][0].actions[0],
            Action::Replace { replica: 1, .. }
        ));
        assert_eq!(p.orphans.len(), 1);
        assert!(
            plan(
                &desired(component(1, "a")),
                &world,
                Some(&["catalog".into()])
            )
            .orphans
            .is_empty()
        );
    }

    #[test]
    fn the_hash_covers_file_contents() {
        let mut a = spec("a");
        let before = a.hash();
        a.file_digests.insert("/run/secrets/x".into(), "d1".into());
        assert_ne!(a.hash(), before);
    }
}
