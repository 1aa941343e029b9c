//! The checkout services — catalog, cart, order, payment, notification — as separate processes of
//! their release or debug binaries, each over its own database on a real PostgreSQL,
//! all on one real RabbitMQ virtual host, with tokens from a test issuer. A process can
//! be killed (SIGKILL) and started again on the same port, as a crashed container is.
//!
//! The binaries come from the workspace's target directory, next to the test's own
//! (`cargo test --workspace` builds them).
//!
//! With [`Options::storefront`] the user service (issuing real tokens that every other
//! service trusts, beside the test issuer's) and the storefront run too: the browser
//! tests and `cargo xtask bench storefront` drive the shop through its pages.

pub mod flows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use shopkit::testing::{TestBroker, TestDb, TestIssuer};
use tokio::process::{Child, Command};

/// The services of the checkout, in start order (dependencies first).
pub const SERVICES: [&str; 5] = ["catalog", "cart", "order", "payment", "notification"];

/// What [`Options::storefront`] adds: accounts (with a database) and the pages (without).
pub const STOREFRONT_SERVICES: [&str; 2] = ["user", "storefront"];

/// The user service's key id in the testbed's JWKS (beside the test issuer's).
const USER_KEY_ID: &str = "testbed-user";

/// One service process and how to start it again.
#[derive(Debug)]
pub struct Process {
    pub name: &'static str,
    pub port: u16,
    env: BTreeMap<String, String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The service's log so far (its JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The whole checkout, running.
#[derive(Debug)]
pub struct Testbed {
    pub issuer: TestIssuer,
    pub broker: TestBroker,
    pub databases: BTreeMap<&'static str, TestDb>,
    processes: BTreeMap<&'static str, Process>,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
}

/// Settings that tests tune.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the catalog holds stock for an unpaid order.
    pub reservation_ttl_secs: u64,
    /// Retry delays of every consumer (short: tests wait for them).
    pub retry_delays_ms: &'static str,
    /// Extra environment for every service.
    pub env: Vec<(String, String)>,
    /// Also run the user service and the storefront (see the module's docs).
    pub storefront: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reservation_ttl_secs: 900,
            retry_delays_ms: "200,500,1000",
            env: Vec::new(),
            storefront: false,
        }
    }
}

fn migrator(service: &str) -> anyhow::Result<&'static sqlx::migrate::Migrator> {
    Ok(match service {
        "catalog" => &catalog::MIGRATOR,
        "cart" => &cart::MIGRATOR,
        "order" => &order::MIGRATOR,
        "payment" => &payment::MIGRATOR,
        "notification" => &notification::MIGRATOR,
        "user" => &user::MIGRATOR,
        other => bail!("no such service: {other}"),
    })
}

/// Where the service binaries are: the directory of the running executable, or its
/// parent for a test (`target/<profile>/deps/<test>`).
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("locating the target directory")?;
    Ok(if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

fn binary(service: &str) -> anyhow::Result<PathBuf> {
    let path = target_dir()?.join(service);
    if !path.exists() {
        bail!(
            "{} is missing: build the services first (`cargo build -p catalog -p cart -p order \
             -p payment -p notification`; `cargo test --workspace` does)",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Testbed {
    pub async fn start(options: Options) -> anyhow::Result<Testbed> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let issuer = TestIssuer::new()?;
        let broker = TestBroker::new().await?;
        let dir = tempfile::tempdir()?;
        let jwks = dir.path().join("jwks.json");
        // The user service signs with a key of its own; every service trusts it and the
        // test issuer's.
        let user_key = shopkit::auth::keys::generate_pem()?;
        let user_signer = shopkit::auth::keys::Signer::from_pem(USER_KEY_ID, &user_key)?;
        let keys = shopkit::auth::keys::jwks(&[&issuer.signer, &user_signer]);
        std::fs::write(&jwks, serde_json::to_vec(&keys)?)?;

        let mut names: Vec<&'static str> = SERVICES.to_vec();
        if options.storefront {
            names.extend(STOREFRONT_SERVICES);
        }
        let mut databases = BTreeMap::new();
        let mut ports = BTreeMap::new();
        for service in names.iter().copied() {
            if service != "storefront" {
                databases.insert(service, TestDb::new(migrator(service)?).await?);
            }
            ports.insert(service, free_port()?);
        }
        let url = |s: &str| format!("http://127.0.0.1:{}", ports[s]);
        let mut processes = BTreeMap::new();
        for service in names.iter().copied() {
            let mut env: BTreeMap<String, String> = [
                ("BIND_ADDR", "127.0.0.1".to_owned()),
                ("PORT", ports[service].to_string()),
                (
                    "DATABASE_URL",
                    databases
                        .get(service)
                        .map(|d| d.url.clone())
                        .unwrap_or_default(),
                ),
                ("DATABASE_MAX_CONNECTIONS", "20".to_owned()),
                ("AMQP_URL", broker.url.clone()),
                ("AUTH_JWKS_FILE", jwks.display().to_string()),
                ("CATALOG_URL", url("catalog")),
                ("CART_URL", url("cart")),
                ("EVENTS_RETRY_DELAYS_MS", options.retry_delays_ms.to_owned()),
                (
                    "RESERVATION_TTL_SECS",
                    options.reservation_ttl_secs.to_string(),
                ),
                ("RESERVATION_SWEEP_MS", "200".to_owned()),
                // The delivery worker looks for due messages this often (outbox provider).
                ("NOTIFICATION_POLL_MS", "100".to_owned()),
                ("SHUTDOWN_DRAIN_MS", "0".to_owned()),
                ("RUST_LOG", "info".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            if service == "user" {
                env.extend(user_env(&user_key, dir.path()));
            }
            if service == "storefront" {
                env.remove("DATABASE_URL");
                env.extend(storefront_env(&url));
                if ports.contains_key("notification") {
                    env.insert("NOTIFICATION_URL".into(), url("notification"));
                }
            }
            env.extend(options.env.iter().cloned());
            processes.insert(
                service,
                Process {
                    name: service,
                    port: ports[service],
                    env,
                    child: None,
                    log: dir.path().join(format!("{service}.log")),
                },
            );
        }
        let mut bed = Testbed {
            issuer,
            broker,
            databases,
            processes,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            dir,
        };
        for service in names {
            bed.start_service(service).await?;
        }
        Ok(bed)
    }

    /// An administrator account in the user service, made as shopctl makes one
    /// (`user create-admin --email E`, the password on standard input).
    pub async fn create_admin(&self, email: &str, password: &str) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        let process = self.process("user")?;
        let mut child = Command::new(binary("user")?)
            .args(["create-admin", "--email", email])
            .env_clear()
            .envs(&process.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting user create-admin")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(format!("{password}\n").as_bytes()).await?;
        }
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .context("user create-admin took over 30 s")??;
        if !out.status.success() {
            bail!(
                "user create-admin failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    pub fn process(&self, service: &str) -> anyhow::Result<&Process> {
        self.processes
            .get(service)
            .with_context(|| format!("no such service: {service}"))
    }

    pub fn url(&self, service: &str) -> String {
        self.process(service).map(Process::url).unwrap_or_default()
    }

    pub fn pool(&self, service: &str) -> anyhow::Result<&sqlx::PgPool> {
        self.databases
            .get(service)
            .map(|db| &db.pool)
            .with_context(|| format!("no database for {service}"))
    }

    /// Starts (or restarts) a service and waits until it answers ready.
    pub async fn start_service(&mut self, service: &str) -> anyhow::Result<()> {
        let bin = binary(service)?;
        let process = self
            .processes
            .get_mut(service)
            .with_context(|| format!("no such service: {service}"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&process.log)?;
        let child = Command::new(&bin)
            .arg("serve")
            .env_clear()
            .envs(&process.env)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        process.child = Some(child);
        let ready = format!("{}/health/ready", process.url());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(&ready).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            let process = &mut self.processes.get_mut(service).context("gone")?;
            if let Some(child) = process.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("{service} exited ({status}):\n{}", process.log());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{service} not ready within 30 s:\n{}", process.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no drain, no flush — what a crash or an OOM kill does.
    pub async fn kill(&mut self, service: &str) -> anyhow::Result<()> {
        let process = self
            .processes
            .get_mut(service)
            .with_context(|| format!("no such service: {service}"))?;
        if let Some(mut child) = process.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Every service's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.processes
            .values()
            .map(|p| format!("==== {} ====\n{}", p.name, tail(&p.log(), 60)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The user service's own settings: its signing key, and argon2 parameters far below
/// production's (a test's sign-ups should not take a second each).
fn user_env(key: &str, dir: &Path) -> Vec<(String, String)> {
    [
        ("JWT_SIGNING_KEY", key.to_owned()),
        ("JWT_KEY_ID", USER_KEY_ID.to_owned()),
        ("SECRETS_DIR", dir.join("no-secrets").display().to_string()),
        ("ARGON2_MEMORY_KIB", "1024".to_owned()),
        ("ARGON2_ITERATIONS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The storefront's: the services' URLs, a fixed session key, and no `Secure` cookie (the
/// tests speak plain HTTP).
fn storefront_env(url: &dyn Fn(&str) -> String) -> Vec<(String, String)> {
    [
        ("CATALOG_URL", url("catalog")),
        ("USER_URL", url("user")),
        ("CART_URL", url("cart")),
        ("ORDER_URL", url("order")),
        ("PAYMENT_URL", url("payment")),
        ("STOREFRONT_SESSION_KEY", "5e".repeat(32)),
        ("STOREFRONT_COOKIE_SECURE", "false".to_owned()),
        ("SHOP_NAME", "Testbed Shop".to_owned()),
        ("SECRETS_DIR", "/nonexistent".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Testbed {
    /// Every event in a service's outbox, oldest first.
    pub async fn outbox(&self, service: &str) -> anyhow::Result<Vec<shopkit::events::Envelope>> {
        shopkit::testing::outbox_events(self.pool(service)?).await
    }

    /// Publishes envelopes again, straight to the exchange, in the order given: what a
    /// relay that crashed before marking them, or a broker redelivering, would do.
    pub async fn republish(&self, envelopes: &[shopkit::events::Envelope]) -> anyhow::Result<()> {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        let connection = self.broker.connect().await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        for envelope in envelopes {
            let properties = lapin::BasicProperties::default()
                .with_message_id(envelope.id.to_string().into())
                .with_type(envelope.event_type.as_str().into())
                .with_delivery_mode(2);
            channel
                .basic_publish(
                    shopkit::events::EXCHANGE.into(),
                    envelope.event_type.as_str().into(),
                    BasicPublishOptions::default(),
                    &serde_json::to_vec(envelope)?,
                    properties,
                )
                .await?
                .await?;
        }
        connection.close(200, "done".into()).await?;
        Ok(())
    }

    /// How many deliveries a service's consumers found already handled (its metrics).
    pub async fn duplicates_seen(&self, service: &str) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.url(service)))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| {
                l.starts_with("events_handled_total{") && l.contains("outcome=\"duplicate\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum())
    }

    /// How many consumers have handled the message `id` (rows in every service's inbox).
    pub async fn handled_by(&self, id: uuid::Uuid) -> anyhow::Result<u64> {
        let mut n = 0;
        for service in SERVICES {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
                .bind(id)
                .fetch_one(self.pool(service)?)
                .await?;
            n += u64::try_from(count).unwrap_or(0);
        }
        Ok(n)
    }
}
