//! `shopctl admin create`: the shop's first administrator, made by the user service's own
//! `create-admin` command in a one-shot container. The password goes to that container's
//! standard input only: never a command line, an environment variable or a file.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::planner::{ContainerSpec, Job, component_labels};
use crate::shop::Shop;

/// The service that owns accounts.
const USER_SERVICE: &str = "user";

#[derive(Debug, Serialize)]
pub struct AdminCreated {
    pub shop: String,
    pub email: String,
}

/// The password: one line from standard input (`--password-stdin`), or asked for twice
/// on the terminal without echo.
pub fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password (12 to 128 characters): ").context(
        "cannot ask for a password here (no terminal); pipe it in with --password-stdin",
    )?;
    let second = rpassword::prompt_password("Again: ")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// The `create-admin` job: the user service's migration job with another command.
pub fn create_admin_job(shop: &Shop, email: &str) -> anyhow::Result<Job> {
    let desired = crate::desired::desired(shop, Some(&[USER_SERVICE.into()]), &BTreeMap::new())?;
    let user = desired
        .levels
        .iter()
        .flatten()
        .find(|c| c.name == USER_SERVICE)
        .context("the stack has no user service")?;
    let template = user
        .migrate
        .as_ref()
        .context("the user service has no migration job to start from")?;
    Ok(Job {
        name: format!("{}-{USER_SERVICE}-create-admin", shop.name()),
        spec: ContainerSpec {
            cmd: vec!["create-admin".into(), "--email".into(), email.to_owned()],
            labels: component_labels(shop.name(), USER_SERVICE, "admin"),
            ..template.spec.clone()
        },
    })
}

pub async fn create(
    engine: &DockerEngine,
    shop: &Shop,
    email: &str,
    password: &str,
) -> anyhow::Result<AdminCreated> {
    let world = engine.observe(shop.name()).await?;
    let running = |name: &str| {
        world
            .containers
            .iter()
            .any(|c| c.component == name && c.role == "service" && c.running)
    };
    if !running("postgres") || !running(USER_SERVICE) {
        bail!(
            "shop {} is not running its database and user service; start them with \
             `shopctl up`, then create the administrator",
            shop.name()
        );
    }
    let job = create_admin_job(shop, email)?;
    let outcome = engine
        .run_job_with_stdin(&job, format!("{password}\n").as_bytes())
        .await?;
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
            "creating the administrator failed (exit code {}):\n{}",
            outcome.exit_code,
            logs.join("\n")
        );
    }
    Ok(AdminCreated {
        shop: shop.name().to_owned(),
        email: email.to_owned(),
    })
}
