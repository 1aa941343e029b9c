//! Carries out a plan on an engine: every component as soon as what it depends on is
//! healthy (all independent ones in parallel), each replica waited for until healthy.
//! Database provisioning, migrations (and the demo seed) run as one-shot jobs before a
//! service's replicas start.
//!
//! Scalable services are replaced and scaled down without downtime: the new replica is
//! healthy before the old one gets SIGTERM, and a stopping replica first fails its
//! readiness so the gateway drains it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared, try_join_all};
use serde::Serialize;

use crate::engine::{Engine, Health};
use crate::output::Output;
use crate::planner::{Action, ComponentPlan, Desired, DesiredComponent, Plan};

/// How often health is polled while waiting.
const POLL: Duration = Duration::from_millis(200);
/// Log lines shown when something fails.
const FAILURE_LOG_LINES: usize = 25;

#[derive(Debug, Serialize)]
pub struct ComponentReport {
    pub name: String,
    pub replicas: u32,
    pub changes: usize,
}

#[derive(Debug, Serialize)]
pub struct UpReport {
    pub shop: String,
    pub up_to_date: bool,
    pub changes: usize,
    pub components: Vec<ComponentReport>,
    pub elapsed_s: f64,
}

/// A component's work, awaitable by every component that depends on it.
type ComponentDone<'a> = Shared<BoxFuture<'a, Result<(), Arc<anyhow::Error>>>>;

pub async fn apply(
    engine: &dyn Engine,
    desired: &Desired,
    plan: &Plan,
    timeout: Duration,
    out: Output,
) -> anyhow::Result<UpReport> {
    let started = Instant::now();
    let deadline = started + timeout;
    if plan.create_network {
        out.step("network", &format!("creating {}", desired.network));
        engine
            .create_network(&desired.shop, &desired.network)
            .await?;
    }
    for volume in &plan.create_volumes {
        out.step("volume", &format!("creating {volume}"));
        engine.create_volume(&desired.shop, volume).await?;
    }
    // Each component starts as soon as the components it depends on are done (healthy),
    // not when its whole level is: a slow broker does not hold up the database's users.
    // Levels give a topological order, so dependencies are always built first.
    let mut done: BTreeMap<&str, ComponentDone<'_>> = BTreeMap::new();
    let mut components = Vec::new();
    for (level, plans) in desired.levels.iter().zip(&plan.levels) {
        for (component, component_plan) in level.iter().zip(plans) {
            let deps: Vec<_> = component
                .depends_on
                .iter()
                .filter_map(|d| done.get(d.as_str()).cloned())
                .collect();
            let work = async move {
                try_join_all(deps).await?;
                apply_component(engine, desired, component, component_plan, deadline, out)
                    .await
                    .map_err(Arc::new)
            };
            done.insert(component.name.as_str(), work.boxed().shared());
            components.push(ComponentReport {
                name: component.name.clone(),
                replicas: component.replicas,
                changes: component_plan.actions.len(),
            });
        }
    }
    try_join_all(done.into_values())
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    for orphan in &plan.orphans {
        out.step(
            &orphan.component,
            &format!("removing {} (no longer in the shop)", orphan.name),
        );
        engine.stop_and_remove(&orphan.id, 15).await?;
    }
    Ok(UpReport {
        shop: desired.shop.clone(),
        up_to_date: plan.is_noop(),
        changes: plan.changes(),
        components,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

async fn apply_component(
    engine: &dyn Engine,
    desired: &Desired,
    component: &DesiredComponent,
    plan: &ComponentPlan,
    deadline: Instant,
    out: Output,
) -> anyhow::Result<()> {
    let name = &component.name;
    for (run, job, what) in [
        (
            plan.provision,
            &component.provision,
            "database provisioning",
        ),
        (plan.migrate, &component.migrate, "migrations"),
        (plan.seed, &component.seed, "demo data"),
    ] {
        let Some(job) = job.as_ref().filter(|_| run) else {
            continue;
        };
        out.step(
            name,
            &format!("running {what} ({})", job.spec.cmd.join(" ")),
        );
        let outcome = engine.run_job(job).await?;
        if outcome.exit_code != 0 {
            bail!(
                "{name}: {what} failed (exit code {}). Its last log lines:\n{}\nnext step: fix what the log names \
                 (database reachable? settings in shop.toml and secrets/?), then run `shopctl up` again",
                outcome.exit_code,
                indent(&outcome.logs)
            );
        }
    }
    let mut started = Vec::new();
    let mut retire = Vec::new();
    for action in &plan.actions {
        match action {
            Action::Create { replica } => {
                let container = component.container_name(&desired.shop, *replica);
                out.step(name, &format!("starting {container}"));
                started.push((
                    container.clone(),
                    engine.start(&container, *replica, &component.spec).await?,
                ));
            }
            Action::Replace {
                replica,
                old_id,
                old_name,
            } => {
                let container = component.container_name(&desired.shop, *replica);
                if component.scalable {
                    // Start the new one beside the old; the old goes once the new is healthy.
                    let parked = format!("{old_name}-old-{}", &old_id[..old_id.len().min(8)]);
                    engine.rename(old_id, &parked).await?;
                    retire.push(old_id.clone());
                } else {
                    out.step(name, &format!("stopping {old_name} (its settings changed)"));
                    engine
                        .stop_and_remove(old_id, component.spec.stop_grace_s)
                        .await?;
                }
                out.step(name, &format!("starting {container}"));
                started.push((
                    container.clone(),
                    engine.start(&container, *replica, &component.spec).await?,
                ));
            }
            Action::Remove { id, replica } => retire.push({
                out.step(name, &format!("draining replica {replica}"));
                id.clone()
            }),
        }
    }
    let waits = started
        .iter()
        .map(|(container, id)| wait_healthy(engine, container, id, deadline));
    try_join_all(waits).await?;
    if !started.is_empty() {
        out.step(
            name,
            &format!(
                "healthy ({} of {} replicas new)",
                started.len(),
                component.replicas
            ),
        );
    }
    let stops = retire
        .iter()
        .map(|id| engine.stop_and_remove(id, component.spec.stop_grace_s));
    try_join_all(stops).await?;
    Ok(())
}

/// Polls until the container is healthy; on failure returns its last log lines.
pub async fn wait_healthy(
    engine: &dyn Engine,
    name: &str,
    id: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let health = engine.health(id).await?;
        let failure = match health {
            Health::Healthy => return Ok(()),
            Health::Starting if Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
                continue;
            }
            Health::Starting => {
                "did not become healthy before the timeout (raise it with --timeout)".to_owned()
            }
            Health::Unhealthy => "is failing its health check".to_owned(),
            Health::Exited { code } => format!("exited with code {code}"),
        };
        let logs = engine
            .logs_tail(id, FAILURE_LOG_LINES)
            .await
            .unwrap_or_default();
        bail!(
            "{name} {failure}. Its last log lines:\n{}\nnext step: fix what the log names, then `shopctl up` again; \
             `shopctl logs` shows more",
            indent(&logs)
        );
    }
}

fn indent(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(|l| format!("  | {l}")).collect();
    if lines.is_empty() {
        "  | (no output)".into()
    } else {
        lines.join("\n")
    }
}
