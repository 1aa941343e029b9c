//! The clap commands. Each is thin: load the shop, call the module that does the work,
//! report through `Output`. Exit codes are part of the interface (see `exit`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, EngineError};
use crate::init::{ImageChoice, InitOptions};
use crate::output::Output;
use crate::shop::{SHOP_FILE, Shop, ShopError};

/// Exit codes, stable for scripts and CI.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything else that failed (the message says what).
    pub const FAILURE: u8 = 1;
    /// Bad command line or invalid shop.toml.
    pub const USAGE: u8 = 2;
    /// No Docker engine reachable.
    pub const ENGINE: u8 = 3;
    /// Something is unhealthy (`status`), or did not become healthy (`up`, `scale`).
    pub const UNHEALTHY: u8 = 4;
    /// Images are missing and cannot be pulled.
    pub const IMAGES: u8 = 5;
}

const EXIT_CODES: &str = "Exit codes: 0 ok; 1 failure; 2 bad usage or invalid shop.toml; 3 no Docker engine; \
4 unhealthy (status) or not healthy in time (up, scale); 5 images missing.";

#[derive(Debug, Parser)]
#[command(name = "shopctl", version, about = "Run a Shopstack shop on a Docker engine", after_help = EXIT_CODES)]
pub struct Cli {
    /// The shop directory (holds shop.toml).
    #[arg(long, global = true, default_value = ".", env = "SHOPSTACK_SHOP_DIR")]
    pub shop: PathBuf,
    /// NDJSON progress on stderr and a JSON result on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a shop directory: shop.toml, secrets/, rendered configs.
    Init {
        /// Where to create the shop (default: --shop).
        dir: Option<PathBuf>,
        /// The shop's name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
        /// Overwrite an existing shop (regenerates its secrets).
        #[arg(long)]
        force: bool,
        /// Load the demo catalog on first start.
        #[arg(long)]
        demo: bool,
        /// Which images shop.toml names.
        #[arg(long, value_enum, default_value_t = ImageChoice::Auto)]
        images: ImageChoice,
    },
    /// Validate shop.toml.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Make the running stack match shop.toml.
    Up {
        /// Only these components (and what they depend on).
        components: Vec<String>,
        /// Enable a profile for this run besides shop.toml's.
        #[arg(long)]
        profile: Vec<String>,
        /// Seconds to wait for everything to become healthy.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Show every replica: state, health, ports, uptime, image, migration.
    Status,
    /// Show the replicas' logs, merged.
    Logs {
        components: Vec<String>,
        #[arg(short, long)]
        follow: bool,
        /// Only lines newer than this: seconds (`90`), or `5m`, `2h`.
        #[arg(long)]
        since: Option<String>,
        /// Lines per replica from the end.
        #[arg(long)]
        tail: Option<usize>,
        /// Only lines matching this regular expression.
        #[arg(long)]
        grep: Option<String>,
    },
    /// Set replica counts, e.g. `scale catalog=3`; no request fails meanwhile.
    Scale {
        #[arg(required = true)]
        counts: Vec<String>,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Remove the shop's containers and network (volumes with --volumes).
    Down {
        #[arg(long)]
        volumes: bool,
        /// Do not ask before deleting volumes.
        #[arg(long)]
        yes: bool,
    },
    /// Check the engine, disk, ports and images.
    Doctor,
    /// Build, list, save and load the stack's images (no registry needed).
    Images {
        #[command(subcommand)]
        action: ImagesAction,
    },
    /// The shop's administrators (accounts of the user service).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Event messages that consumers parked after their last retry: list (default) or
    /// replay them once the cause is fixed.
    Events {
        #[command(subcommand)]
        action: Option<EventsAction>,
    },
    /// The messages the notification service made, newest first (with the outbox
    /// provider: the shop's mailbox, what would have been emailed or texted).
    Notifications {
        /// Only those to this email address or phone number.
        #[arg(long)]
        to: Option<String>,
        /// Only this kind (order_confirmation, password_reset, order_shipped, ...).
        #[arg(long)]
        kind: Option<String>,
        /// Only this status (pending, sent, failed, parked).
        #[arg(long)]
        status: Option<String>,
        /// At most this many (default 50).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// The user service's token signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Write the shop in another tool's format.
    Export {
        #[command(subcommand)]
        format: ExportFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create an administrator. Asks for the password twice (no echo), or reads one line
    /// from standard input with --password-stdin. There is never a default password.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// The parked messages, with the error that parked each (default).
    List {
        /// Only these consumers (catalog, cart, order, payment, notification).
        #[arg(long = "consumer")]
        consumers: Vec<String>,
    },
    /// Put parked messages back into their consumer's queue: one (`--id`) or all.
    Replay {
        #[arg(long)]
        consumer: String,
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// A new signing key; the old one keeps verifying until its tokens expire. Apply
    /// with `shopctl up` (the user service rolls over without downtime).
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum ExportFormat {
    /// A Compose file with the same containers, health checks and migration jobs as
    /// `shopctl up` (for `docker-compose -f FILE up -d`).
    Compose {
        /// Where to write it (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImagesAction {
    /// Build every image that can be built here (or only those named).
    Build {
        only: Vec<String>,
        /// Rebuild even when up to date, without the layer cache.
        #[arg(long)]
        force: bool,
        /// Prebuilt static service binaries (DIR/<service>) instead of running cargo.
        #[arg(long)]
        binaries: Option<PathBuf>,
    },
    /// Every image the stack can use, present or missing, with the remedy.
    List,
    /// Write an image archive for an air-gapped host.
    Save { path: PathBuf, names: Vec<String> },
    /// Load an image archive.
    Load { path: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Parse and check shop.toml; errors carry line and column.
    Check,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(err: E) -> Self {
        let error: anyhow::Error = err.into();
        let code = if error.downcast_ref::<EngineError>().is_some() {
            exit::ENGINE
        } else if matches!(
            error.downcast_ref::<ShopError>(),
            Some(ShopError::Invalid(_) | ShopError::Missing(_))
        ) {
            exit::USAGE
        } else if error.downcast_ref::<MissingImages>().is_some() {
            exit::IMAGES
        } else if error.downcast_ref::<NotHealthy>().is_some() {
            exit::UNHEALTHY
        } else {
            exit::FAILURE
        };
        Self { code, error }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MissingImages(pub String);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotHealthy(pub String);

pub async fn run(cli: Cli) -> Result<u8, Failure> {
    let out = Output::new(cli.json);
    match cli.command {
        Command::Init {
            dir,
            name,
            force,
            demo,
            images,
        } => {
            let dir = dir.unwrap_or(cli.shop);
            let docker = crate::engine::connect().await.ok();
            let mut present = BTreeMap::new();
            if let Some(docker) = &docker {
                for image in crate::shop::known_images() {
                    present.insert(image.clone(), docker.inspect_image(&image).await.is_ok());
                }
            }
            let opts = InitOptions {
                dir,
                name,
                force,
                demo,
                images,
            };
            let report = crate::init::init(
                &opts,
                &|img| present.get(img).copied().unwrap_or(false),
                out,
            )?;
            let human = format!(
                "created shop {} in {}\nsecrets: {} files in {}/secrets (mode 0600)\nnext: `shopctl --shop {} up`",
                report.name,
                report.dir,
                report.secrets.len(),
                report.dir,
                report.dir
            );
            out.result(&report, &human);
            Ok(exit::OK)
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let shop = Shop::load(&cli.shop)?;
            let components: Vec<&str> = shop.enabled().iter().map(|c| c.name.as_str()).collect();
            out.result(
                &serde_json::json!({ "valid": true, "shop": shop.name(), "components": components }),
                &format!("{} is valid: shop {}, components {}", cli.shop.join(SHOP_FILE).display(), shop.name(), components.join(", ")),
            );
            Ok(exit::OK)
        }
        Command::Up {
            components,
            profile,
            timeout,
        } => {
            let mut shop = Shop::load(&cli.shop)?;
            for p in profile {
                p.parse::<stack::Profile>()
                    .map_err(|e| anyhow::anyhow!(e))?;
                shop.file.shop.profiles.get_mut().push(p);
            }
            let only = (!components.is_empty()).then_some(components);
            let report = up(&shop, only.as_deref(), Duration::from_secs(timeout), out).await?;
            let human = if report.up_to_date {
                format!("shop {} is up to date", report.shop)
            } else {
                format!(
                    "shop {} is up: {} changes in {:.1}s{}",
                    report.shop,
                    report.changes,
                    report.elapsed_s,
                    gateway_hint(&shop)
                )
            };
            out.result(&report, &human);
            Ok(exit::OK)
        }
        Command::Status => {
            let shop = Shop::load(&cli.shop)?;
            let docker = crate::engine::connect().await?;
            let status = crate::status::collect(&docker, shop.name()).await?;
            out.result(&status, &crate::status::render(&status));
            Ok(if status.healthy {
                exit::OK
            } else {
                exit::UNHEALTHY
            })
        }
        Command::Logs {
            components,
            follow,
            since,
            tail,
            grep,
        } => {
            let shop = Shop::load(&cli.shop)?;
            let docker = crate::engine::connect().await?;
            let grep = grep
                .map(|g| regex::Regex::new(&g))
                .transpose()
                .context("--grep is not a valid regular expression")?;
            let since = since.map(|s| parse_since(&s)).transpose()?;
            let opts = crate::logs::LogsOptionsCli {
                components,
                follow,
                since,
                tail,
                grep,
                json: cli.json,
                color: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            };
            crate::logs::run(&docker, shop.name(), &opts).await?;
            Ok(exit::OK)
        }
        Command::Scale { counts, timeout } => {
            let shop = Shop::load(&cli.shop)?;
            let targets = parse_counts(&shop, &counts)?;
            set_replicas(&cli.shop, &targets)?;
            let shop = Shop::load(&cli.shop)?;
            let names: Vec<String> = targets.keys().cloned().collect();
            let report = up(&shop, Some(&names), Duration::from_secs(timeout), out).await?;
            let summary: Vec<String> = targets.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.result(
                &report,
                &format!("scaled {} in {:.1}s", summary.join(" "), report.elapsed_s),
            );
            Ok(exit::OK)
        }
        Command::Down { volumes, yes } => {
            let shop = Shop::load(&cli.shop)?;
            let docker = crate::engine::connect().await?;
            if volumes
                && !yes
                && !confirm(&format!(
                    "delete every volume (all data) of shop {}?",
                    shop.name()
                ))?
            {
                return Err(anyhow::anyhow!(
                    "not deleting volumes; pass --yes to skip the question"
                )
                .into());
            }
            let report = crate::down::down(&docker, shop.name(), volumes, out).await?;
            out.result(
                &report,
                &format!(
                    "shop {} is down ({} containers removed)",
                    shop.name(),
                    report.containers
                ),
            );
            Ok(exit::OK)
        }
        Command::Images { action } => images(action, &cli.shop, out).await,
        Command::Admin {
            action:
                AdminAction::Create {
                    email,
                    password_stdin,
                },
        } => {
            let shop = Shop::load(&cli.shop)?;
            let password = crate::admin::read_password(password_stdin)?;
            let engine = DockerEngine::new(crate::engine::connect().await?);
            let created = crate::admin::create(&engine, &shop, &email, &password).await?;
            out.result(
                &created,
                &format!(
                    "administrator {} created in shop {}; sign in at /api/user/login",
                    created.email, created.shop
                ),
            );
            Ok(exit::OK)
        }
        Command::Events { action } => {
            let shop = Shop::load(&cli.shop)?;
            let engine = DockerEngine::new(crate::engine::connect().await?);
            match action.unwrap_or(EventsAction::List {
                consumers: Vec::new(),
            }) {
                EventsAction::List { consumers } => {
                    let parked = crate::events::list(&engine, &shop, &consumers).await?;
                    out.result(&parked, &crate::events::render(&parked));
                }
                EventsAction::Replay { consumer, id, .. } => {
                    let what = id.map_or(crate::events::Replay::All, crate::events::Replay::One);
                    let replayed = crate::events::replay(&engine, &shop, &consumer, &what).await?;
                    out.result(
                        &replayed,
                        &format!("{} message(s) back in the {consumer} queue", replayed.len()),
                    );
                }
            }
            Ok(exit::OK)
        }
        Command::Notifications {
            to,
            kind,
            status,
            limit,
        } => {
            let shop = Shop::load(&cli.shop)?;
            let engine = DockerEngine::new(crate::engine::connect().await?);
            let query = crate::notifications::Query {
                to,
                kind,
                status,
                limit,
            };
            let messages = crate::notifications::list(&engine, &shop, &query).await?;
            out.result(&messages, &crate::notifications::render(&messages));
            Ok(exit::OK)
        }
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let rotation = crate::keys::rotate(&cli.shop, chrono::Utc::now())?;
            out.result(
                &rotation,
                &format!(
                    "new signing key {}; {} is retired but still verifies until its tokens expire\n                     next: `shopctl --shop {} up` rolls the user service onto the new key",
                    rotation.new_kid,
                    rotation.retired_kid,
                    cli.shop.display()
                ),
            );
            Ok(exit::OK)
        }
        Command::Export {
            format: ExportFormat::Compose { output },
        } => {
            let shop = Shop::load(&cli.shop)?;
            let desired = crate::desired::desired(&shop, None, &BTreeMap::new())?;
            let text = serde_json::to_string_pretty(&crate::compose::compose_file(&desired))
                .context("rendering the Compose file")?;
            match output {
                Some(path) => std::fs::write(&path, text + "\n")
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{text}"),
            }
            Ok(exit::OK)
        }
        Command::Doctor => {
            let report = crate::doctor::run(&cli.shop).await;
            out.result(&report, &crate::doctor::render(&report));
            Ok(if report.ok { exit::OK } else { exit::FAILURE })
        }
    }
}

async fn images(action: ImagesAction, shop_dir: &Path, out: Output) -> Result<u8, Failure> {
    let docker = crate::engine::connect().await?;
    match action {
        ImagesAction::Build {
            only,
            force,
            binaries,
        } => {
            let opts = crate::images::BuildOptions {
                only,
                force,
                binaries,
                service_tag: None,
            };
            let built = crate::images::build(&docker, &opts, out).await?;
            // A shop here names upstream images that no registry will give us: point
            // it at the local replacements that now exist.
            let repointed = if shop_dir.join(SHOP_FILE).exists() {
                use_local_images(&docker, shop_dir).await?
            } else {
                Vec::new()
            };
            let mut human: Vec<String> = built
                .iter()
                .map(|b| {
                    format!(
                        "{:<12} {:<30} {:?} {:.1}s",
                        b.component, b.image, b.outcome, b.seconds
                    )
                })
                .collect();
            human.extend(
                repointed
                    .iter()
                    .map(|(c, i)| format!("shop.toml: {c} now uses {i}")),
            );
            out.result(
                &serde_json::json!({ "images": built, "repointed": repointed }),
                &human.join("\n"),
            );
        }
        ImagesAction::List => {
            let list = crate::images::list(&docker).await?;
            let human: Vec<String> = list
                .iter()
                .map(|i| {
                    let state = if i.present {
                        "present".to_owned()
                    } else {
                        format!("missing: {}", i.remedy.clone().unwrap_or_default())
                    };
                    format!("{:<14} {:<34} {}", i.component, i.image, state)
                })
                .collect();
            out.result(&list, &human.join("\n"));
        }
        ImagesAction::Save { path, names } => {
            let saved = crate::images::save(&docker, &path, &names, out).await?;
            out.result(
                &saved,
                &format!("saved {} images to {}", saved.len(), path.display()),
            );
        }
        ImagesAction::Load { path } => {
            let loaded = crate::images::load(&docker, &path, out).await?;
            out.result(&loaded, &format!("loaded {}", loaded.join(", ")));
        }
    }
    Ok(exit::OK)
}

/// Rewrites shop.toml's images: a component whose image is missing on the engine but
/// whose local replacement is present gets the replacement. Returns what changed.
pub async fn use_local_images(
    docker: &bollard::Docker,
    shop_dir: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    let shop = Shop::load(shop_dir)?;
    let mut changes = Vec::new();
    for component in &shop.stack.components {
        let (current, Some(local)) = (shop.image(component), component.local_image.clone()) else {
            continue;
        };
        if current == local
            || docker.inspect_image(&current).await.is_ok()
            || docker.inspect_image(&local).await.is_err()
        {
            continue;
        }
        changes.push((component.name.clone(), local));
    }
    if changes.is_empty() {
        return Ok(changes);
    }
    let path = shop_dir.join(SHOP_FILE);
    let text = std::fs::read_to_string(&path)?;
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    for (name, image) in &changes {
        let components = doc.entry("components").or_insert(toml_edit::table());
        let table = components
            .as_table_like_mut()
            .context("[components] is not a table")?;
        let component = table.entry(name).or_insert(toml_edit::table());
        component
            .as_table_like_mut()
            .with_context(|| format!("[components.{name}] is not a table"))?
            .insert("image", toml_edit::value(image.as_str()));
    }
    std::fs::write(&path, doc.to_string())?;
    Ok(changes)
}

fn gateway_hint(shop: &Shop) -> String {
    shop.stack
        .get("gateway")
        .and_then(|g| g.ports.first().and_then(|p| shop.host_port(g, p)))
        .map(|port| format!("\nopen http://localhost:{port}/  (catalog API: http://localhost:{port}/api/catalog/products)"))
        .unwrap_or_default()
}

/// Plans and applies: images first (present, else a clear way to get them), host ports
/// next, then the reconciler.
pub async fn up(
    shop: &Shop,
    only: Option<&[String]>,
    timeout: Duration,
    out: Output,
) -> Result<crate::reconcile::UpReport, Failure> {
    let started = Instant::now();
    // A shop made before the gateway had TLS gets its certificate now.
    if crate::gateway::ensure_files(&shop.dir, shop.name(), &shop.file.shop.domain)? {
        out.step(
            "",
            "generated the gateway's self-signed certificate (secrets/gateway_tls.crt)",
        );
    }
    // A shop made before the storefront gets its default theme now.
    if !shop.dir.join("theme").exists() {
        storefront::theme::write_default(&shop.dir.join("theme"))?;
        out.step("", "wrote the storefront's default theme (theme/)");
    }
    if crate::discovery::sync_prometheus_config(shop)? {
        out.step(
            "",
            &format!(
                "config/prometheus/prometheus.yml now discovers through {}",
                shop.file.shop.discovery.get_ref().name()
            ),
        );
    }
    let docker = crate::engine::connect().await?;
    let engine = DockerEngine::new(docker);
    let probe = crate::desired::desired(shop, only, &BTreeMap::new())?;
    // Ports first: a taken port is reported before anything starts.
    let world = engine.observe(shop.name()).await?;
    check_ports(&probe, &crate::planner::plan(&probe, &world, only), &world)?;
    let mut image_ids = BTreeMap::new();
    let mut missing = Vec::new();
    let images: std::collections::BTreeSet<String> = probe
        .levels
        .iter()
        .flatten()
        .map(|c| c.spec.image.clone())
        .collect();
    for image in images {
        match engine.image_id(&image).await? {
            Some(id) => {
                image_ids.insert(image, id);
            }
            None => match crate::engine::pull::pull(&engine.docker, &image, out).await {
                Ok(()) => {
                    if let Some(id) = engine.image_id(&image).await? {
                        image_ids.insert(image, id);
                    }
                }
                Err(e) => missing.push((image, format!("{e:#}"))),
            },
        }
    }
    if !missing.is_empty() {
        let lines: Vec<String> = missing
            .iter()
            .map(|(i, why)| {
                format!(
                    "  {i}: not on the engine, and the pull failed ({why})\n    remedy: {}",
                    crate::shop::image_remedy(i)
                )
            })
            .collect();
        return Err(MissingImages(format!(
            "these images are missing and cannot be pulled:\n{}",
            lines.join("\n")
        ))
        .into());
    }
    let desired = crate::desired::desired(shop, only, &image_ids)?;
    let plan = crate::planner::plan(&desired, &world, only);
    if plan.is_noop() {
        out.step(
            "",
            &format!("shop {} is up to date; checking health", shop.name()),
        );
    }
    let remaining = timeout.saturating_sub(started.elapsed());
    let mut report = crate::reconcile::apply(&engine, &desired, &plan, remaining, out)
        .await
        .map_err(|e| Failure {
            code: exit::UNHEALTHY,
            error: e,
        })?;
    // A no-op plan still proves health: every kept replica must be healthy now.
    let world = engine.observe(shop.name()).await?;
    for c in world.containers.iter().filter(|c| c.role == "service") {
        let deadline = Instant::now() + timeout.saturating_sub(started.elapsed());
        crate::reconcile::wait_healthy(&engine, &c.name, &c.id, deadline)
            .await
            .map_err(|e| Failure {
                code: exit::UNHEALTHY,
                error: e,
            })?;
    }
    // Healthy is not yet reachable: the gateway picks new containers up a moment later.
    let running: Vec<String> = world
        .containers
        .iter()
        .filter(|c| c.role == "service" && c.running)
        .map(|c| c.component.clone())
        .collect();
    let probes = crate::gateway::probes(shop, &running);
    let deadline = Instant::now() + timeout.saturating_sub(started.elapsed());
    let unrouted = crate::gateway::wait_routed(&probes, deadline).await;
    if !unrouted.is_empty() {
        return Err(Failure {
            code: exit::UNHEALTHY,
            error: anyhow::anyhow!(
                "healthy, but the gateway does not route {} yet; see `shopctl logs gateway`",
                unrouted.join(", ")
            ),
        });
    }
    if running.iter().any(|c| c == "elasticsearch") && running.iter().any(|c| c == "kibana") {
        crate::logging::after_up(&engine.docker, shop)
            .await
            .map_err(|e| Failure {
                code: exit::UNHEALTHY,
                error: e,
            })?;
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Host ports that new containers publish must be free, or held by the container being
/// replaced; otherwise name the holder.
fn check_ports(
    desired: &crate::planner::Desired,
    plan: &crate::planner::Plan,
    world: &crate::planner::ObservedWorld,
) -> anyhow::Result<()> {
    for (level, plans) in desired.levels.iter().zip(&plan.levels) {
        for (component, p) in level.iter().zip(plans) {
            let creates_first = p
                .actions
                .iter()
                .any(|a| matches!(a, crate::planner::Action::Create { replica: 1 }));
            let ours = world
                .containers
                .iter()
                .any(|c| c.component == component.name && c.replica == 1);
            if !creates_first || ours {
                continue;
            }
            for (_, host) in &component.spec.ports {
                if !crate::ports::is_free(*host) {
                    let holder = crate::ports::process_holding(*host)
                        .unwrap_or_else(|| "another process or container".into());
                    bail!(
                        "{}: host port {host} is taken by {holder}; change `ports` of [components.{}] in shop.toml \
                         or stop that process (`shopctl doctor` lists conflicts)",
                        component.name,
                        component.name
                    );
                }
            }
        }
    }
    Ok(())
}

fn parse_counts(shop: &Shop, counts: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut targets = BTreeMap::new();
    for item in counts {
        let (name, n) = item
            .split_once('=')
            .with_context(|| format!("{item:?} is not SERVICE=N, e.g. catalog=3"))?;
        let n: u32 = n
            .parse()
            .with_context(|| format!("{item:?}: the replica count must be a number 0 or more"))?;
        let component = shop.stack.get(name).with_context(|| {
            format!(
                "unknown component {name:?}; components are {}",
                shop.stack.names().join(", ")
            )
        })?;
        if !component.scalable && n != 1 {
            bail!("{name} keeps state and runs as one replica; only stateless services scale");
        }
        if !shop.enabled().iter().any(|c| c.name == name) {
            bail!("{name} is not enabled in this shop's profiles");
        }
        targets.insert(name.to_owned(), n);
    }
    Ok(targets)
}

/// Writes the new replica counts into shop.toml, keeping its comments and layout, so the
/// next `up` keeps them.
pub fn set_replicas(dir: &Path, targets: &BTreeMap<String, u32>) -> anyhow::Result<()> {
    let path = dir.join(SHOP_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    for (name, n) in targets {
        let components = doc.entry("components").or_insert(toml_edit::table());
        let component = components
            .as_table_like_mut()
            .context("[components] is not a table")?
            .entry(name)
            .or_insert(toml_edit::table());
        let item = component
            .as_table_like_mut()
            .with_context(|| format!("[components.{name}] is not a table"))?
            .entry("replicas")
            .or_insert(toml_edit::value(0));
        // Replace the value in place: the key (and the comments above it) stay.
        let value = item
            .as_value_mut()
            .with_context(|| format!("components.{name}.replicas is not a value"))?;
        let decor = value.decor().clone();
        *value = toml_edit::Value::from(i64::from(*n));
        *value.decor_mut() = decor;
    }
    std::fs::write(&path, doc.to_string()).with_context(|| format!("writing {}", path.display()))
}

fn parse_since(text: &str) -> anyhow::Result<i64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = digits
        .parse()
        .with_context(|| format!("--since {text:?}: expected e.g. 90, 5m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--since {text:?}: units are s, m, h, d"),
    };
    Ok(chrono::Utc::now().timestamp() - secs)
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub error: String,
    pub exit_code: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_writes_replicas_into_shop_toml_keeping_comments() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(SHOP_FILE);
        std::fs::write(
            &path,
            "# my shop\n[shop]\nname = \"s\"\n\n[components.catalog]\n# keep me\nreplicas = 1\n",
        )
        .unwrap();
        set_replicas(tmp.path(), &BTreeMap::from([("catalog".to_owned(), 3)])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("replicas = 3"), "{text}");
        assert!(
            text.contains("# keep me") && text.contains("# my shop"),
            "{text}"
        );
        let shop = Shop::load(tmp.path()).unwrap();
        assert_eq!(shop.replicas(shop.stack.get("catalog").unwrap()), 3);
    }

    #[test]
    fn scale_refuses_stateful_and_unknown_components() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(SHOP_FILE), "[shop]\nname = \"s\"\n").unwrap();
        let shop = Shop::load(tmp.path()).unwrap();
        assert!(
            parse_counts(&shop, &["postgres=2".into()])
                .unwrap_err()
                .to_string()
                .contains("keeps state")
        );
        assert!(
            parse_counts(&shop, &["catalogue=2".into()])
                .unwrap_err()
                .to_string()
                .contains("unknown component")
        );
        assert!(
            parse_counts(&shop, &["catalog".into()])
                .unwrap_err()
                .to_string()
                .contains("SERVICE=N")
        );
        assert_eq!(
            parse_counts(&shop, &["catalog=3".into()]).unwrap()["catalog"],
            3
        );
    }
}
