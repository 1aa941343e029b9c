//! The shop's desired state as a Compose file: the same images, commands, environment,
//! mounts, health checks, labels and migration jobs that `shopctl up` creates, for
//! `docker-compose`. Used by `shopctl export compose` (a way out, and the baseline that
//! `cargo xtask bench up` measures `shopctl up` against).
//!
//! Pure: desired state in, a JSON document out (JSON is YAML, so Compose reads it).

use serde_json::{Map, Value, json};

use crate::planner::{ContainerSpec, Desired, DesiredComponent, Job, Mount};

/// The Compose document (compose-spec format, understood by docker-compose ≥ 1.27).
pub fn compose_file(desired: &Desired) -> Value {
    let mut services = Map::new();
    for component in desired.levels.iter().flatten() {
        // The service waits for what it depends on, then for its migration and seed jobs.
        let mut needs: Map<String, Value> = component
            .depends_on
            .iter()
            .map(|dep| (dep.clone(), json!({ "condition": "service_healthy" })))
            .collect();
        let mut job_needs = needs.clone();
        let jobs = [&component.provision, &component.migrate, &component.seed];
        for job in jobs.into_iter().flatten() {
            let name = job_service_name(component, job);
            services.insert(name.clone(), job_service(&job.spec, &job_needs));
            // Each job runs after the one before it.
            job_needs.insert(
                name.clone(),
                json!({ "condition": "service_completed_successfully" }),
            );
            needs.insert(
                name,
                json!({ "condition": "service_completed_successfully" }),
            );
        }
        let mut service = service(&component.spec, &needs);
        service.insert("scale".into(), json!(component.replicas));
        service.insert("restart".into(), json!("unless-stopped"));
        services.insert(component.name.clone(), Value::Object(service));
    }
    let volumes: Map<String, Value> = desired
        .volumes
        .iter()
        .map(|v| (v.clone(), json!({ "name": v })))
        .collect();
    json!({ "services": services, "volumes": volumes })
}

/// `catalog-provision`, `catalog-migrate`, `catalog-seed-demo`: what follows the
/// component in the job's container name.
fn job_service_name(component: &DesiredComponent, job: &Job) -> String {
    let suffix = job.name.rsplit_once(&format!("-{}-", component.name));
    suffix.map_or_else(
        || job.name.clone(),
        |(_, s)| format!("{}-{s}", component.name),
    )
}

fn job_service(spec: &ContainerSpec, needs: &Map<String, Value>) -> Value {
    let mut service = service(spec, needs);
    service.insert("restart".into(), json!("no"));
    Value::Object(service)
}

fn service(spec: &ContainerSpec, needs: &Map<String, Value>) -> Map<String, Value> {
    let mut service = Map::new();
    service.insert("image".into(), json!(spec.image));
    if !spec.cmd.is_empty() {
        service.insert("command".into(), json!(spec.cmd));
    }
    service.insert("environment".into(), json!(spec.env));
    service.insert("labels".into(), json!(spec.labels));
    if !spec.mounts.is_empty() {
        let mounts: Vec<Value> = spec.mounts.iter().map(mount).collect();
        service.insert("volumes".into(), Value::Array(mounts));
    }
    if !spec.ports.is_empty() {
        let ports: Vec<String> = spec
            .ports
            .iter()
            .map(|(container, host)| format!("{host}:{container}"))
            .collect();
        service.insert("ports".into(), json!(ports));
    }
    if let Some(health) = &spec.health {
        service.insert(
            "healthcheck".into(),
            json!({
                "test": health.test,
                "interval": format!("{}ms", health.interval_ms),
                "timeout": format!("{}ms", health.timeout_ms),
                "retries": health.retries,
            }),
        );
    }
    if let Some(user) = &spec.user {
        service.insert("user".into(), json!(user));
    }
    if let Some(bytes) = spec.memory_bytes {
        service.insert("mem_limit".into(), json!(bytes));
    }
    if let Some(nano) = spec.nano_cpus {
        service.insert("cpus".into(), json!(nano as f64 / 1e9));
    }
    service.insert(
        "stop_grace_period".into(),
        json!(format!("{}s", spec.stop_grace_s)),
    );
    if !needs.is_empty() {
        service.insert("depends_on".into(), Value::Object(needs.clone()));
    }
    service
}

fn mount(mount: &Mount) -> Value {
    match mount {
        Mount::Bind {
            source,
            target,
            read_only,
        } => json!({ "type": "bind", "source": source, "target": target, "read_only": read_only }),
        Mount::Volume { name, target } => {
            json!({ "type": "volume", "source": name, "target": target })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use stack::Kind;

    use super::*;
    use crate::planner::HealthCheck;

    fn spec(image: &str, cmd: &[&str]) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            image_id: String::new(),
            cmd: cmd.iter().map(|c| (*c).to_owned()).collect(),
            env: vec!["A=1".into()],
            mounts: vec![Mount::Volume {
                name: "s-pgdata".into(),
                target: "/var/lib/postgresql".into(),
            }],
            ports: vec![(5432, 15432)],
            health: Some(HealthCheck {
                test: vec!["CMD".into(), "true".into()],
                interval_ms: 500,
                timeout_ms: 2000,
                retries: 3,
            }),
            memory_bytes: Some(1 << 30),
            nano_cpus: Some(500_000_000),
            labels: BTreeMap::from([("shopstack.shop".into(), "s".into())]),
            network: "shopstack-s".into(),
            aliases: vec![],
            file_digests: BTreeMap::new(),
            stop_grace_s: 15,
            user: None,
        }
    }

    fn component(name: &str, deps: &[&str], migrate: bool, replicas: u32) -> DesiredComponent {
        let s = spec(&format!("img/{name}"), &[]);
        let job = |cmd: &str| Job {
            name: format!("s-{name}-{cmd}"),
            spec: ContainerSpec {
                cmd: vec![cmd.into()],
                health: None,
                ..s.clone()
            },
        };
        DesiredComponent {
            name: name.into(),
            kind: Kind::Service,
            replicas,
            scalable: true,
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            provision: None,
            migrate: migrate.then(|| job("migrate")),
            seed: migrate.then(|| job("seed-demo")),
            spec: s,
        }
    }

    #[test]
    fn services_wait_for_dependencies_then_their_jobs_in_order() {
        let desired = Desired {
            shop: "s".into(),
            network: "shopstack-s".into(),
            volumes: vec!["s-pgdata".into()],
            levels: vec![
                vec![component("postgres", &[], false, 1)],
                vec![component("catalog", &["postgres"], true, 3)],
            ],
        };
        let file = compose_file(&desired);
        let catalog = &file["services"]["catalog"];
        assert_eq!(catalog["scale"], 3);
        assert_eq!(catalog["restart"], "unless-stopped");
        assert_eq!(
            catalog["depends_on"]["postgres"]["condition"],
            "service_healthy"
        );
        assert_eq!(
            catalog["depends_on"]["catalog-migrate"]["condition"],
            "service_completed_successfully"
        );
        let seed = &file["services"]["catalog-seed-demo"];
        assert_eq!(
            seed["depends_on"]["catalog-migrate"]["condition"],
            "service_completed_successfully"
        );
        assert_eq!(seed["restart"], "no");
        assert!(seed.get("healthcheck").is_none());
        let migrate = &file["services"]["catalog-migrate"];
        assert!(migrate["depends_on"].get("catalog-seed-demo").is_none());
        assert_eq!(migrate["command"], json!(["migrate"]));
        assert!(file["services"]["postgres"].get("depends_on").is_none());
        assert_eq!(file["volumes"]["s-pgdata"]["name"], "s-pgdata");
    }

    #[test]
    fn container_settings_carry_over() {
        let desired = Desired {
            shop: "s".into(),
            network: "shopstack-s".into(),
            volumes: vec![],
            levels: vec![vec![component("postgres", &[], false, 1)]],
        };
        let pg = &compose_file(&desired)["services"]["postgres"];
        assert_eq!(pg["ports"], json!(["15432:5432"]));
        assert_eq!(pg["healthcheck"]["interval"], "500ms");
        assert_eq!(pg["healthcheck"]["test"], json!(["CMD", "true"]));
        assert_eq!(pg["volumes"][0]["type"], "volume");
        assert_eq!(pg["mem_limit"], 1 << 30);
        assert_eq!(pg["cpus"], 0.5);
        assert_eq!(pg["stop_grace_period"], "15s");
        assert_eq!(pg["labels"]["shopstack.shop"], "s");
        assert_eq!(pg["environment"], json!(["A=1"]));
    }
}
