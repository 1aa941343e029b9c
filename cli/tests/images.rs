//! The locally built images on the real Docker engine: built (or reused) through
//! `shopctl::images::build`, then each is checked for the interface of the upstream
//! image it replaces — PostgreSQL with a password and init scripts over TCP, RabbitMQ's
//! health command and management API, Prometheus' readiness and promtool, Traefik's
//! subcommands and ping health check — and a service image `FROM scratch`.
//!
//! Needs a Docker engine, root and debootstrap (for the base, once), the Debian archive
//! and PyPI. Every container and network made here is labelled `shopstack.test=images`
//! and removed at the end, also when a check fails. `SHOPSTACK_SKIP_IMAGE_TESTS=1`
//! skips the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bollard::Docker;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, NetworkCreateRequest,
    NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions, UploadToContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use shopctl::images::{self, BuildOptions, Outcome};
use shopctl::output::Output;
use tokio::sync::Mutex;

const TEST_LABEL: &str = "shopstack.test";
const TEST_LABEL_VALUE: &str = "images";
/// Service images built here get this tag, never the real version's.
const SERVICE_TEST_TAG: &str = "images-test";
const INFRA: &[&str] = &["postgres", "rabbitmq", "prometheus", "traefik"];

fn skipped() -> bool {
    let skip = std::env::var_os("SHOPSTACK_SKIP_IMAGE_TESTS").is_some_and(|v| v == "1");
    if skip {
        eprintln!("SHOPSTACK_SKIP_IMAGE_TESTS=1: image tests skipped");
    }
    skip
}

/// Containers and a network of one test, removed by `cleanup`.
struct Fixture {
    docker: Docker,
    run: String,
    network: String,
    containers: Mutex<Vec<String>>,
}

impl Fixture {
    async fn new(docker: Docker, name: &str) -> anyhow::Result<Self> {
        let run = format!("{name}-{}-{}", std::process::id(), rand_suffix());
        let network = format!("shopstack-test-{run}");
        docker
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                labels: Some(labels()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating network {network}"))?;
        Ok(Self {
            docker,
            run,
            network,
            containers: Mutex::new(Vec::new()),
        })
    }

    /// Creates a container on the test network (files uploaded before start), starts it.
    async fn start(
        &self,
        alias: &str,
        mut body: ContainerCreateBody,
        files: &[(&str, &[u8])],
    ) -> anyhow::Result<String> {
        let name = format!("shopstack-test-{}-{alias}", self.run);
        body.labels = Some(labels());
        let host = body.host_config.get_or_insert_with(HostConfig::default);
        host.network_mode = Some(self.network.clone());
        body.networking_config = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                self.network.clone(),
                EndpointSettings {
                    aliases: Some(vec![alias.to_owned()]),
                    ..Default::default()
                },
            )])),
        });
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .with_context(|| format!("creating container {name}"))?;
        self.containers.lock().await.push(created.id.clone());
        if !files.is_empty() {
            self.docker
                .upload_to_container(
                    &created.id,
                    Some(UploadToContainerOptions {
                        path: "/".into(),
                        ..Default::default()
                    }),
                    bollard::body_full(tar_of(files)?.into()),
                )
                .await
                .with_context(|| format!("uploading files into {name}"))?;
        }
        self.docker
            .start_container(&created.id, None)
            .await
            .with_context(|| format!("starting {name}"))?;
        Ok(created.id)
    }

    /// Runs `cmd` in the container; returns its exit code and output.
    async fn exec(&self, id: &str, cmd: &[&str]) -> anyhow::Result<(i64, String)> {
        let exec = self
            .docker
            .create_exec(
                id,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("creating exec {cmd:?}"))?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await?
        {
            while let Some(chunk) = output.next().await {
                text.push_str(&chunk?.to_string());
            }
        }
        let code = self
            .docker
            .inspect_exec(&exec.id)
            .await?
            .exit_code
            .unwrap_or(-1);
        Ok((code, text))
    }

    /// Runs `cmd` until it exits 0, or fails after `timeout` with the container's logs.
    async fn wait_for(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let (code, output) = self.exec(id, cmd).await?;
            if code == 0 {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "{cmd:?} still fails after {timeout:?} (exit {code}: {output})\nlogs:\n{}",
                    self.logs(id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for a one-shot container; returns its exit code and logs.
    async fn wait_exit(&self, id: &str) -> anyhow::Result<(i64, String)> {
        let mut wait = self.docker.wait_container(id, None::<WaitContainerOptions>);
        let code = match tokio::time::timeout(Duration::from_secs(60), wait.next()).await {
            Ok(Some(Ok(response))) => response.status_code,
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => code,
            Ok(Some(Err(e))) => return Err(e).context("waiting for a container"),
            Ok(None) => bail!("the wait stream ended early"),
            Err(_) => bail!("container {id} did not exit within 60 s"),
        };
        Ok((code, self.logs(id).await))
    }

    async fn logs(&self, id: &str) -> String {
        let mut stream = self.docker.logs(
            id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        text
    }

    /// The loopback host port published for `container_port` ("15672/tcp").
    async fn host_port(&self, id: &str, container_port: &str) -> anyhow::Result<u16> {
        let inspect = self.docker.inspect_container(id, None).await?;
        let port = inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(container_port).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port))
            .with_context(|| format!("{container_port} is not published"))?;
        Ok(port.parse()?)
    }

    async fn cleanup(&self) {
        for id in self.containers.lock().await.drain(..) {
            let _ = self
                .docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
        let _ = self.docker.remove_network(&self.network).await;
    }
}

fn labels() -> HashMap<String, String> {
    HashMap::from([(TEST_LABEL.to_owned(), TEST_LABEL_VALUE.to_owned())])
}

fn rand_suffix() -> u32 {
    rand::random::<u32>() % 1_000_000
}

/// Publishes `ports` on 127.0.0.1, each on a port the engine picks.
fn published(ports: &[&str]) -> HostConfig {
    HostConfig {
        port_bindings: Some(
            ports
                .iter()
                .map(|p| {
                    (
                        (*p).to_owned(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(String::new()),
                        }]),
                    )
                })
                .collect(),
        ),
        ..Default::default()
    }
}

fn tar_of(files: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, *contents)?;
    }
    Ok(builder.into_inner()?)
}

fn env(pairs: &[(&str, &str)]) -> Option<Vec<String>> {
    Some(pairs.iter().map(|(k, v)| format!("{k}={v}")).collect())
}

async fn http_get(url: &str, auth: Option<(&str, &str)>) -> anyhow::Result<(u16, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut request = client.get(url);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

async fn retry_http(
    url: &str,
    auth: Option<(&str, &str)>,
    timeout: Duration,
) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        match http_get(url, auth).await {
            Ok((200, body)) => return Ok(body),
            other if start.elapsed() > timeout => bail!("GET {url}: {other:?} after {timeout:?}"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Builds `only` through shopctl and returns the results.
async fn build(docker: &Docker, opts: BuildOptions) -> Vec<images::BuiltImage> {
    match images::build(docker, &opts, Output::new(false)).await {
        Ok(built) => built,
        Err(error) => panic!("building {:?} failed: {error:#}", opts.only),
    }
}

#[tokio::test]
async fn infrastructure_images_build_and_behave_like_upstream() {
    if skipped() {
        return;
    }
    let docker = shopctl::engine::connect().await.expect("a Docker engine");
    let only: Vec<String> = INFRA.iter().map(|s| (*s).to_owned()).collect();
    let started = Instant::now();
    let first = build(
        &docker,
        BuildOptions {
            only: only.clone(),
            ..Default::default()
        },
    )
    .await;
    eprintln!("first build: {:.1} s", started.elapsed().as_secs_f64());
    for name in ["debian-base"].iter().chain(INFRA) {
        let image = first.iter().find(|b| b.component == *name);
        assert!(
            image.is_some_and(|b| b.id.is_some()),
            "{name} was built or reused: {first:#?}"
        );
    }

    // Nothing changed: the second build only compares source hashes.
    let started = Instant::now();
    let second = build(
        &docker,
        BuildOptions {
            only,
            ..Default::default()
        },
    )
    .await;
    let no_op = started.elapsed();
    eprintln!("second build: {:.1} s", no_op.as_secs_f64());
    for image in &second {
        assert!(
            matches!(image.outcome, Outcome::UpToDate | Outcome::Present),
            "{} rebuilt without a change: {second:#?}",
            image.component
        );
    }
    assert!(
        no_op < Duration::from_secs(20),
        "no-op build took {no_op:?}"
    );

    let fixture = Fixture::new(docker, "infra").await.unwrap();
    let (postgres, rabbitmq, prometheus, traefik) = tokio::join!(
        check_postgres(&fixture),
        check_rabbitmq(&fixture),
        check_prometheus(&fixture),
        check_traefik(&fixture),
    );
    fixture.cleanup().await;
    postgres.context("shopstack/postgres:15").unwrap();
    rabbitmq.context("shopstack/rabbitmq:3.10").unwrap();
    prometheus.context("shopstack/prometheus:2.42").unwrap();
    traefik.context("shopstack/traefik:3.7").unwrap();
}

async fn check_postgres(fixture: &Fixture) -> anyhow::Result<()> {
    let password = format!("pw-{}", rand_suffix());
    let init_sql = b"CREATE TABLE init_check (id serial PRIMARY KEY, note text NOT NULL);\n\
                     INSERT INTO init_check (note) VALUES ('from sql');\n";
    // Not executable: sourced, as upstream does; runs psql as the superuser.
    let init_sh =
        b"psql -v ON_ERROR_STOP=1 --username \"$POSTGRES_USER\" --dbname \"$POSTGRES_DB\" \
                    -c \"INSERT INTO init_check (note) VALUES ('from sh')\"\n";
    let started = Instant::now();
    let server = fixture
        .start(
            "postgres",
            ContainerCreateBody {
                image: Some("shopstack/postgres:15".into()),
                env: env(&[
                    ("POSTGRES_PASSWORD", &password),
                    ("POSTGRES_USER", "shopadmin"),
                    ("POSTGRES_DB", "shop"),
                ]),
                ..Default::default()
            },
            &[
                ("docker-entrypoint-initdb.d/01-schema.sql", init_sql),
                ("docker-entrypoint-initdb.d/02-more.sh", init_sh),
            ],
        )
        .await?;
    // Over TCP: the temporary init server listens on the socket only, so this passes
    // only once the real server is up.
    let ready = fixture
        .wait_for(
            &server,
            &[
                "pg_isready",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "shopadmin",
                "-d",
                "shop",
            ],
            Duration::from_secs(60),
        )
        .await?;
    eprintln!(
        "postgres ready {:.1} s after start",
        started
            .elapsed()
            .as_secs_f64()
            .min(ready.as_secs_f64() + 1.0)
    );
    // The entrypoint dropped root and exec'd: PID 1 is the server, as user postgres.
    let (_, pid1) = fixture.exec(&server, &["cat", "/proc/1/comm"]).await?;
    let (_, user) = fixture
        .exec(&server, &["stat", "-c", "%U", "/proc/1"])
        .await?;
    ensure!(
        pid1.trim() == "postgres" && user.trim() == "postgres",
        "PID 1 is {pid1:?} as {user:?}"
    );

    // psql from another container, over the network, with the password.
    let query = [
        "-h",
        "postgres",
        "-U",
        "shopadmin",
        "-d",
        "shop",
        "-tAc",
        "SELECT string_agg(note, ',' ORDER BY id) FROM init_check",
    ];
    let client = |password: &str| ContainerCreateBody {
        image: Some("shopstack/postgres:15".into()),
        entrypoint: Some(vec!["psql".into()]),
        cmd: Some(query.iter().map(|s| (*s).to_owned()).collect()),
        env: env(&[("PGPASSWORD", password), ("PGCONNECT_TIMEOUT", "5")]),
        ..Default::default()
    };
    let good = fixture.start("psql-good", client(&password), &[]).await?;
    let (code, output) = fixture.wait_exit(&good).await?;
    ensure!(
        code == 0 && output.trim().ends_with("from sql,from sh"),
        "psql with the password: exit {code}: {output}\nserver logs:\n{}",
        fixture.logs(&server).await
    );
    let bad = fixture.start("psql-bad", client("wrong"), &[]).await?;
    let (code, output) = fixture.wait_exit(&bad).await?;
    ensure!(
        code != 0 && output.contains("password authentication failed"),
        "psql with a wrong password must fail: exit {code}: {output}"
    );

    // SIGINT (the image's stop signal) stops the server cleanly.
    fixture
        .docker
        .stop_container(
            &server,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await?;
    let logs = fixture.logs(&server).await;
    ensure!(
        logs.contains("database system is shut down"),
        "no clean shutdown in the logs:\n{logs}"
    );
    Ok(())
}

async fn check_rabbitmq(fixture: &Fixture) -> anyhow::Result<()> {
    let password = format!("rabbit-{}", rand_suffix());
    let started = Instant::now();
    let broker = fixture
        .start(
            "rabbitmq",
            ContainerCreateBody {
                image: Some("shopstack/rabbitmq:3.10".into()),
                env: env(&[
                    ("RABBITMQ_DEFAULT_USER", "shopstack"),
                    (
                        "RABBITMQ_DEFAULT_PASS_FILE",
                        "/run/secrets/rabbitmq_password",
                    ),
                ]),
                host_config: Some(published(&["15672/tcp", "15692/tcp"])),
                ..Default::default()
            },
            &[("run/secrets/rabbitmq_password", password.as_bytes())],
        )
        .await?;
    // The stack's health check.
    fixture
        .wait_for(
            &broker,
            &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5672"],
            Duration::from_secs(90),
        )
        .await?;
    eprintln!(
        "rabbitmq ready {:.1} s after start",
        started.elapsed().as_secs_f64()
    );
    // The CLI tools share the server's cookie and node name.
    let (code, output) = fixture
        .exec(&broker, &["rabbitmq-diagnostics", "-q", "check_running"])
        .await?;
    ensure!(
        code == 0,
        "rabbitmq-diagnostics check_running: exit {code}: {output}"
    );

    let management = fixture.host_port(&broker, "15672/tcp").await?;
    let overview = retry_http(
        &format!("http://127.0.0.1:{management}/api/overview"),
        Some(("shopstack", &password)),
        Duration::from_secs(30),
    )
    .await?;
    ensure!(
        overview.contains("\"rabbitmq_version\":\"3.10"),
        "management overview: {overview}"
    );
    let (status, _) = http_get(
        &format!("http://127.0.0.1:{management}/api/overview"),
        Some(("shopstack", "wrong")),
    )
    .await?;
    ensure!(status == 401, "a wrong password gets {status}");

    let metrics = fixture.host_port(&broker, "15692/tcp").await?;
    let text = retry_http(
        &format!("http://127.0.0.1:{metrics}/metrics"),
        None,
        Duration::from_secs(30),
    )
    .await?;
    ensure!(text.contains("rabbitmq_"), "no rabbitmq metrics on 15692");

    let (_, pid1) = fixture
        .exec(&broker, &["stat", "-c", "%U", "/proc/1"])
        .await?;
    ensure!(pid1.trim() == "rabbitmq", "PID 1 runs as {pid1:?}");
    Ok(())
}

async fn check_prometheus(fixture: &Fixture) -> anyhow::Result<()> {
    let started = Instant::now();
    let server = fixture
        .start(
            "prometheus",
            ContainerCreateBody {
                image: Some("shopstack/prometheus:2.42".into()),
                host_config: Some(published(&["9090/tcp"])),
                ..Default::default()
            },
            &[],
        )
        .await?;
    let port = fixture.host_port(&server, "9090/tcp").await?;
    retry_http(
        &format!("http://127.0.0.1:{port}/-/ready"),
        None,
        Duration::from_secs(30),
    )
    .await?;
    eprintln!(
        "prometheus ready {:.1} s after start",
        started.elapsed().as_secs_f64()
    );
    // A health check that works in this image and in upstream's (busybox wget).
    let (code, output) = fixture
        .exec(
            &server,
            &[
                "wget",
                "-q",
                "-O",
                "/dev/null",
                "http://127.0.0.1:9090/-/ready",
            ],
        )
        .await?;
    ensure!(code == 0, "wget /-/ready: exit {code}: {output}");
    let (code, output) = fixture
        .exec(
            &server,
            &[
                "promtool",
                "check",
                "config",
                "/etc/prometheus/prometheus.yml",
            ],
        )
        .await?;
    ensure!(code == 0, "promtool check config: exit {code}: {output}");
    let (_, version) = fixture.exec(&server, &["prometheus", "--version"]).await?;
    ensure!(version.contains("version 2.42"), "{version}");
    // The default configuration scrapes Prometheus itself (the target appears once
    // discovery has run).
    let url = format!("http://127.0.0.1:{port}/api/v1/targets");
    let start = Instant::now();
    loop {
        let targets = retry_http(&url, None, Duration::from_secs(10)).await?;
        if targets.contains("\"job\":\"prometheus\"") {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no self-scrape target: {targets}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

async fn check_traefik(fixture: &Fixture) -> anyhow::Result<()> {
    // `docker run IMAGE version` runs `traefik version`, as upstream.
    let version = fixture
        .start(
            "traefik-version",
            ContainerCreateBody {
                image: Some("shopstack/traefik:3.7".into()),
                cmd: Some(vec!["version".into()]),
                ..Default::default()
            },
            &[],
        )
        .await?;
    let (code, output) = fixture.wait_exit(&version).await?;
    ensure!(
        code == 0 && output.contains("Version:") && output.contains("3.7"),
        "traefik version: exit {code}: {output}"
    );

    // The stack's command and health check (flags straight after the image name).
    let gateway = fixture
        .start(
            "traefik",
            ContainerCreateBody {
                image: Some("shopstack/traefik:3.7".into()),
                cmd: Some(vec![
                    "--entrypoints.web.address=:80".into(),
                    "--ping=true".into(),
                    "--ping.entrypoint=web".into(),
                ]),
                ..Default::default()
            },
            &[],
        )
        .await?;
    fixture
        .wait_for(
            &gateway,
            &[
                "traefik",
                "healthcheck",
                "--ping",
                "--entrypoints.web.address=:80",
                "--ping.entrypoint=web",
            ],
            Duration::from_secs(30),
        )
        .await?;
    Ok(())
}

/// A tiny static program standing in for a service binary: prints its arguments and
/// whether the CA bundle is where the services expect it.
const FAKE_SERVICE: &str = r#"
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ca = std::fs::metadata("/etc/ssl/certs/ca-certificates.crt").map(|m| m.len()).unwrap_or(0);
    println!("args={} ca_bytes={ca}", args.join(" "));
}
"#;

fn compile_fake_service(dir: &Path, name: &str) -> anyhow::Result<()> {
    let source = dir.join("main.rs");
    std::fs::write(&source, FAKE_SERVICE)?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = std::process::Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "--target",
        ])
        .arg(format!("{}-unknown-linux-gnu", std::env::consts::ARCH))
        .arg("-o")
        .arg(dir.join(name))
        .arg(&source)
        .output()?;
    ensure!(
        output.status.success(),
        "rustc: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn service_images_are_static_binaries_from_scratch() {
    if skipped() {
        return;
    }
    let docker = shopctl::engine::connect().await.expect("a Docker engine");
    let dir = tempfile::tempdir().unwrap();
    compile_fake_service(dir.path(), "catalog").unwrap();
    let opts = BuildOptions {
        only: vec!["catalog".into()],
        binaries: Some(dir.path().to_path_buf()),
        service_tag: Some(SERVICE_TEST_TAG.into()),
        force: false,
    };
    let image = format!("shopstack/catalog:{SERVICE_TEST_TAG}");
    let built = build(&docker, opts.clone()).await;
    assert_eq!(built.len(), 1, "{built:#?}");
    assert_eq!(built[0].image, image);
    let again = build(&docker, opts.clone()).await;
    assert_eq!(again[0].outcome, Outcome::UpToDate, "{again:#?}");
    let forced = build(
        &docker,
        BuildOptions {
            force: true,
            ..opts.clone()
        },
    )
    .await;
    assert_eq!(forced[0].outcome, Outcome::Built, "{forced:#?}");

    let inspect = docker.inspect_image(&image).await.unwrap();
    let config = inspect.config.unwrap();
    let labels = config.labels.unwrap_or_default();
    assert_eq!(config.entrypoint, Some(vec!["/catalog".to_owned()]));
    assert_eq!(config.cmd, Some(vec!["serve".to_owned()]));
    assert!(
        config
            .exposed_ports
            .unwrap_or_default()
            .contains(&"8080/tcp".to_owned())
    );
    assert_eq!(
        labels
            .get("org.opencontainers.image.version")
            .map(String::as_str),
        Some(SERVICE_TEST_TAG)
    );
    assert!(labels.contains_key("org.opencontainers.image.revision"));
    assert!(labels.contains_key(images::LABEL_SOURCE_HASH));

    let fixture = Fixture::new(docker.clone(), "service").await.unwrap();
    let result = async {
        let id = fixture
            .start(
                "catalog",
                ContainerCreateBody {
                    image: Some(image.clone()),
                    ..Default::default()
                },
                &[],
            )
            .await?;
        let (code, output) = fixture.wait_exit(&id).await?;
        ensure!(code == 0, "exit {code}: {output}");
        ensure!(output.contains("args=/catalog serve"), "{output}");
        ensure!(!output.contains("ca_bytes=0"), "no CA bundle: {output}");
        anyhow::Ok(())
    }
    .await;
    fixture.cleanup().await;
    let _ = docker
        .remove_image(&image, None::<RemoveImageOptions>, None)
        .await;
    result.unwrap();

    // A dynamically linked binary is refused with the remedy.
    let dynamic = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::env::current_exe().unwrap(),
        dynamic.path().join("catalog"),
    )
    .unwrap();
    let error = images::build(
        &fixture.docker,
        &BuildOptions {
            binaries: Some(dynamic.path().to_path_buf()),
            ..opts
        },
        Output::new(false),
    )
    .await
    .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("dynamically linked") && text.contains("crt-static"),
        "{text}"
    );
}

#[tokio::test]
async fn list_reports_every_stack_image_and_how_to_get_missing_ones() {
    if skipped() {
        return;
    }
    let docker = shopctl::engine::connect().await.expect("a Docker engine");
    let list = images::list(&docker).await.unwrap();
    for component in [
        "debian-base",
        "postgres",
        "rabbitmq",
        "prometheus",
        "traefik",
        "catalog",
        "consul",
        "grafana",
    ] {
        let entry = list.iter().find(|i| i.component == component);
        let Some(entry) = entry else {
            panic!("{component} missing from the list: {list:#?}");
        };
        assert_eq!(entry.present, entry.present_as.is_some());
        assert_eq!(entry.present, entry.remedy.is_none(), "{entry:#?}");
    }
    let consul = list.iter().find(|i| i.component == "consul").unwrap();
    assert_eq!(consul.source, "archive-only");
    if !consul.present {
        assert!(
            consul
                .remedy
                .as_deref()
                .unwrap()
                .contains("shopctl images load")
        );
    }
    // Serialisable for --json.
    let json = serde_json::to_value(&list).unwrap();
    assert!(json.as_array().is_some_and(|a| a.len() == list.len()));
}

#[tokio::test]
async fn save_and_load_round_trip_through_an_archive() {
    if skipped() {
        return;
    }
    let docker = shopctl::engine::connect().await.expect("a Docker engine");
    // A tiny image of our own, so that the test does not depend on the others.
    let dir = tempfile::tempdir().unwrap();
    compile_fake_service(dir.path(), "cart").unwrap();
    let tag = format!("{SERVICE_TEST_TAG}-save");
    let image = format!("shopstack/cart:{tag}");
    build(
        &docker,
        BuildOptions {
            only: vec!["cart".into()],
            binaries: Some(dir.path().to_path_buf()),
            service_tag: Some(tag),
            force: false,
        },
    )
    .await;
    let archive = dir.path().join("images.tar");
    let saved = images::save(
        &docker,
        &archive,
        std::slice::from_ref(&image),
        Output::new(false),
    )
    .await
    .unwrap();
    assert_eq!(saved, vec![image.clone()]);
    assert!(std::fs::metadata(&archive).unwrap().len() > 100_000);
    docker
        .remove_image(&image, None::<RemoveImageOptions>, None)
        .await
        .unwrap();
    let loaded = images::load(&docker, &archive, Output::new(false))
        .await
        .unwrap();
    assert_eq!(loaded, vec![image.clone()]);
    assert!(docker.inspect_image(&image).await.is_ok());
    let _ = docker
        .remove_image(&image, None::<RemoveImageOptions>, None)
        .await;

    let missing = images::load(&docker, &dir.path().join("nope.tar"), Output::new(false)).await;
    assert!(format!("{:#}", missing.unwrap_err()).contains("remedy"));
}

/// Leftovers of an interrupted run (labelled, older than an hour) are removed so that
/// they do not pile up; current runs of other processes are left alone.
#[tokio::test]
async fn no_old_test_objects_are_left_behind() {
    if skipped() {
        return;
    }
    let docker = shopctl::engine::connect().await.expect("a Docker engine");
    let filter = HashMap::from([(
        "label".to_owned(),
        vec![format!("{TEST_LABEL}={TEST_LABEL_VALUE}")],
    )]);
    let hour_ago = chrono::Utc::now().timestamp() - 3600;
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await
        .unwrap();
    for container in containers
        .into_iter()
        .filter(|c| c.created.unwrap_or(0) < hour_ago)
    {
        if let Some(id) = container.id {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filter),
        }))
        .await
        .unwrap();
    for network in networks {
        let old = network
            .created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .is_some_and(|c| c.timestamp() < hour_ago);
        if old && let Some(id) = network.id {
            let _ = docker.remove_network(&id).await;
        }
    }
}
