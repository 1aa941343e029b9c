//! Test support: a real PostgreSQL server started on demand and shared by every test
//! process of a run, with a fresh database per test; and a token issuer.
//!
//! Set `SHOPSTACK_TEST_PG_URL` (a superuser URL) to use an existing server instead. Else
//! the first test initialises a throw-away cluster under the temp dir (fsync off, trust
//! auth on loopback) with the Debian binaries in `/usr/lib/postgresql/<v>/bin`, and later
//! tests and runs reuse it while it answers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::auth::keys::{Signer, jwks};
use crate::auth::{Claims, KeySource, Verifier};

static SERVER: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A superuser URL of the shared test server (without a database name).
pub async fn server_url() -> anyhow::Result<String> {
    SERVER
        .get_or_try_init(|| async {
            let url = match std::env::var("SHOPSTACK_TEST_PG_URL") {
                Ok(url) => url,
                Err(_) => tokio::task::spawn_blocking(ensure_local_server).await??,
            };
            drop_leftover_databases(&url).await?;
            Ok::<_, anyhow::Error>(url)
        })
        .await
        .cloned()
}

/// A database of its own for one test, with the service's migrations applied.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new(migrator: &Migrator) -> anyhow::Result<Self> {
        let server = server_url().await?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "test_{}_{n}_{}",
            std::process::id(),
            &Uuid::now_v7().simple().to_string()[20..]
        );
        let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await?;
        let url = format!("{server}/{name}");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(20)
            .connect(&url)
            .await?;
        migrator
            .run(&pool)
            .await
            .context("migrating the test database")?;
        Ok(Self { name, url, pool })
    }
}

/// Test databases are named `test_<pid>_…`; those of processes that have ended are dropped.
async fn drop_leftover_databases(server: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")
            .fetch_all(&mut admin)
            .await?;
    for name in names {
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn pg_bin(tool: &str) -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Ok(Path::new(&dir).join(tool));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|dir| dir.join(tool))
        .filter(|p| p.exists())
        .with_context(|| format!("PostgreSQL's {tool} not found: `apt-get install postgresql` (or set PG_BIN or SHOPSTACK_TEST_PG_URL)"))
}

/// Runs a PostgreSQL tool, as user `postgres` when we are root (initdb refuses root).
fn run_pg(tool: &str, args: &[&str]) -> anyhow::Result<()> {
    let bin = pg_bin(tool)?;
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn ensure_local_server() -> anyhow::Result<String> {
    let base = std::env::temp_dir().join("shopstack-test-pg");
    std::fs::create_dir_all(&base)?;
    let lock = File::create(base.join("lock"))?;
    lock.lock().context("locking the test server directory")?;
    let port_file = base.join("port");
    if let Ok(port) = std::fs::read_to_string(&port_file)
        && let Ok(port) = port.trim().parse::<u16>()
        && std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_secs(1),
        )
        .is_ok()
    {
        return Ok(format!("postgres://postgres@127.0.0.1:{port}"));
    }
    let data = base.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&base)
            .status()?;
        if !status.success() {
            bail!(
                "chown of {} to postgres failed (is PostgreSQL installed?)",
                base.display()
            );
        }
    }
    let data_s = data.to_string_lossy().into_owned();
    run_pg(
        "initdb",
        &[
            "-D",
            &data_s,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C.UTF-8",
        ],
    )?;
    let port = free_port()?;
    let opts = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=256MB",
        base.display()
    );
    let log = base.join("server.log").to_string_lossy().into_owned();
    run_pg(
        "pg_ctl",
        &[
            "-D", &data_s, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
        ],
    )?;
    std::fs::write(&port_file, port.to_string())?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}"))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Issues tokens the way the user service will, with a key of its own.
#[derive(Debug)]
pub struct TestIssuer {
    pub signer: Signer,
}

impl TestIssuer {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            signer: Signer::generate(&format!("test-{}", Uuid::now_v7().simple()))?,
        })
    }

    pub fn jwks(&self) -> serde_json::Value {
        jwks(&[&self.signer])
    }

    /// A verifier that trusts exactly this issuer's key.
    pub fn verifier(&self) -> anyhow::Result<Verifier> {
        let set = serde_json::from_value(self.jwks())?;
        Verifier::new(KeySource::Static(set), "shopstack", "shopstack")
    }

    pub fn claims(&self, roles: &[&str], ttl: Duration) -> Claims {
        let now = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        )
        .unwrap_or(0);
        Claims {
            sub: Uuid::now_v7(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            iss: "shopstack".into(),
            aud: "shopstack".into(),
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        }
    }

    pub fn token(&self, roles: &[&str]) -> String {
        self.signer
            .sign(&self.claims(roles, Duration::from_secs(600)))
            .unwrap_or_default()
    }
}

/// A router's whole answer, as the services' integration tests inspect it. Its accessors
/// panic with the body in the message: they are assertions.
#[derive(Debug)]
pub struct TestResponse {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

/// Answers the `oneshot` call through `router`, body read whole: no network.
pub async fn send(
    router: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> anyhow::Result<TestResponse> {
    use tower::ServiceExt;
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .context("reading the response body")?
        .to_vec();
    Ok(TestResponse {
        status,
        headers,
        body,
    })
}

#[allow(clippy::panic)]
impl TestResponse {
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem+json answer with this status and returns its body.
    #[track_caller]
    pub fn problem(&self, status: axum::http::StatusCode) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.headers[axum::http::header::CONTENT_TYPE],
            "application/problem+json",
            "{}",
            self.text()
        );
        let body = self.json();
        assert_eq!(body["status"], status.as_u16());
        body
    }

    /// Asserts a 2xx answer and returns its JSON body.
    #[track_caller]
    pub fn ok(&self) -> serde_json::Value {
        assert!(self.status.is_success(), "{}: {}", self.status, self.text());
        self.json()
    }

    /// Asserts a 422 and returns the names of its invalid fields.
    #[track_caller]
    pub fn invalid_fields(&self) -> Vec<String> {
        let body = self.problem(axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let errors = body["errors"].as_array().cloned().unwrap_or_default();
        errors
            .iter()
            .map(|e| {
                e["field"]
                    .as_str()
                    .unwrap_or_else(|| panic!("an error without a field: {body}"))
                    .to_owned()
            })
            .collect()
    }
}

/// Every event in a service's outbox, oldest first: what the service has said.
pub async fn outbox_events(pool: &PgPool) -> anyhow::Result<Vec<crate::events::Envelope>> {
    let rows: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT envelope FROM outbox ORDER BY id")
            .fetch_all(pool)
            .await?;
    rows.into_iter()
        .map(|v| serde_json::from_value(v).context("an outbox row is not an envelope"))
        .collect()
}

static BROKER: OnceCell<BrokerServer> = OnceCell::const_new();

/// The shared RabbitMQ of the test run.
#[derive(Debug, Clone)]
struct BrokerServer {
    amqp_port: u16,
    management_port: u16,
}

/// A real RabbitMQ with a virtual host of its own for one test, so tests never see each
/// other's queues.
///
/// Set `SHOPSTACK_TEST_AMQP` (`host:amqp_port:management_port`, user guest) to use an
/// existing server. Else the first test starts a node from Debian's `rabbitmq-server`
/// package under the temp dir (loopback only; ~10 s) and later tests and runs reuse it
/// while it answers.
#[derive(Debug, Clone)]
pub struct TestBroker {
    /// `amqp://guest:guest@127.0.0.1:<port>/<vhost>`.
    pub url: String,
    pub vhost: String,
}

impl TestBroker {
    pub async fn new() -> anyhow::Result<TestBroker> {
        let server = BROKER
            .get_or_try_init(|| async {
                match std::env::var("SHOPSTACK_TEST_AMQP") {
                    Ok(spec) => {
                        let mut parts = spec.split(':').skip(1);
                        let amqp_port = parts.next().unwrap_or("5672").parse()?;
                        let management_port = parts.next().unwrap_or("15672").parse()?;
                        Ok::<_, anyhow::Error>(BrokerServer {
                            amqp_port,
                            management_port,
                        })
                    }
                    Err(_) => tokio::task::spawn_blocking(ensure_local_broker).await?,
                }
            })
            .await?
            .clone();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let vhost = format!(
            "test_{}_{n}_{}",
            std::process::id(),
            &Uuid::now_v7().simple().to_string()[20..]
        );
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let api = format!("http://127.0.0.1:{}/api", server.management_port);
        client
            .put(format!("{api}/vhosts/{vhost}"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await?
            .error_for_status()
            .context("creating the test vhost")?;
        client
            .put(format!("{api}/permissions/{vhost}/guest"))
            .basic_auth("guest", Some("guest"))
            .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
            .send()
            .await?
            .error_for_status()
            .context("granting the test vhost")?;
        Ok(TestBroker {
            url: format!("amqp://guest:guest@127.0.0.1:{}/{vhost}", server.amqp_port),
            vhost,
        })
    }

    /// A connection of the test's own (to look at queues).
    pub async fn connect(&self) -> anyhow::Result<lapin::Connection> {
        crate::events::topology::connect(&self.url).await
    }
}

fn ensure_local_broker() -> anyhow::Result<BrokerServer> {
    let base = std::env::temp_dir().join("shopstack-test-rabbitmq");
    std::fs::create_dir_all(&base)?;
    let lock = File::create(base.join("lock"))?;
    lock.lock().context("locking the test broker directory")?;
    let ports_file = base.join("ports");
    if let Ok(ports) = std::fs::read_to_string(&ports_file)
        && let Some((a, m)) = ports.trim().split_once(',')
        && let (Ok(amqp_port), Ok(management_port)) = (a.parse::<u16>(), m.parse::<u16>())
        && management_answers(management_port)
    {
        return Ok(BrokerServer {
            amqp_port,
            management_port,
        });
    }
    let server = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
    if !server.exists() {
        bail!(
            "RabbitMQ not found at {}: `apt-get install rabbitmq-server` (cargo xtask setup does), \
             or set SHOPSTACK_TEST_AMQP",
            server.display()
        );
    }
    let (amqp_port, management_port, dist_port) = (free_port()?, free_port()?, free_port()?);
    let node = base.join("node");
    let _ = std::fs::remove_dir_all(&node);
    std::fs::create_dir_all(&node)?;
    std::fs::write(
        node.join("rabbitmq.conf"),
        format!(
            "listeners.tcp.default = 127.0.0.1:{amqp_port}\nloopback_users = none\n\
             management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management_port}\n"
        ),
    )?;
    std::fs::write(node.join("enabled_plugins"), "[rabbitmq_management].\n")?;
    let log = File::create(base.join("server.log"))?;
    let mut cmd = Command::new(server);
    cmd.current_dir(&node)
        .env("HOME", &node)
        .env(
            "RABBITMQ_NODENAME",
            format!("shopstack-test-{amqp_port}@localhost"),
        )
        .env("RABBITMQ_CONFIG_FILE", node.join("rabbitmq.conf"))
        .env(
            "RABBITMQ_ENABLED_PLUGINS_FILE",
            node.join("enabled_plugins"),
        )
        .env("RABBITMQ_MNESIA_BASE", node.join("mnesia"))
        .env("RABBITMQ_LOG_BASE", node.join("log"))
        .env("RABBITMQ_DIST_PORT", dist_port.to_string())
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(std::process::Stdio::null());
    // Its own session, so that it outlives this test process for the rest of the run.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting rabbitmq-server")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !management_answers(management_port) {
        if let Some(status) = child.try_wait()? {
            bail!(
                "rabbitmq-server exited ({status}); see {}",
                base.join("server.log").display()
            );
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "rabbitmq-server did not answer within 90 s; see {}",
                base.join("server.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    std::fs::write(&ports_file, format!("{amqp_port},{management_port}"))?;
    Ok(BrokerServer {
        amqp_port,
        management_port,
    })
}

/// Whether the management API answers (it starts after the AMQP listener, last).
fn management_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(1),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /api/overview HTTP/1.0\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
