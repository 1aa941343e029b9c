//! End to end on the real Docker engine: init → images build → up (with the
//! observability profile) → status → a request through the gateway → scale to 3 under
//! load (Prometheus scrapes three catalog replicas; the dashboards read only metrics it
//! scraped) → logs → up is a no-op → scale to 1 under load (two targets gone) → down
//! leaves nothing. Then a failing migration shows its logs.
//!
//! Needs a Docker engine; builds the images it uses (cached after the first run).
//! `SHOPSTACK_SKIP_IMAGE_TESTS=1` skips the file, like the image tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use shopctl::commands::{set_replicas, up};
use shopctl::init::{ImageChoice, InitOptions, init};
use shopctl::output::Output;
use shopctl::shop::Shop;
use tokio::sync::Mutex;

#[path = "monitoring/promql.rs"]
mod promql;

const SHOPCTL: &str = env!("CARGO_BIN_EXE_shopctl");
const TIMEOUT: Duration = Duration::from_secs(240);

/// Removes everything of the shop even when the test fails half-way.
struct Teardown(PathBuf);

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = Command::new(SHOPCTL)
            .args(["--shop"])
            .arg(&self.0)
            .args(["down", "--volumes", "--yes"])
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn new_shop(dir: &Path, name: &str) -> Shop {
    let opts = InitOptions {
        dir: dir.to_path_buf(),
        name: Some(name.into()),
        force: false,
        demo: true,
        images: ImageChoice::Local,
    };
    init(&opts, &|_| false, Output::new(true)).unwrap();
    // Random gateway and Prometheus ports: tests never rely on fixed ports. The shop
    // runs with the observability profile (Prometheus, the PostgreSQL exporter).
    let path = dir.join("shop.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(
            "ports.http = 8080",
            &format!("ports.http = {}", free_port()),
        )
        .replace(
            "ports.https = 8443",
            &format!("ports.https = {}", free_port()),
        )
        // The load loop of the scaling steps stays far below catalog's limit; user's is
        // low, so that a short burst shows the 429.
        .replace(
            "[components.catalog]\n",
            "[components.catalog]\nrate_limit = { average = 2000, burst = 4000 }\n",
        )
        .replace(
            "[components.user]\n",
            "[components.user]\nrate_limit = { average = 5, burst = 10 }\n",
        )
        .replace(
            "ports.http = 9090",
            &format!("ports.http = {}", free_port()),
        )
        .replace(
            "profiles = [\"core\"]",
            "profiles = [\"core\", \"observability\"]",
        );
    std::fs::write(&path, text).unwrap();
    Shop::load(dir).unwrap()
}

fn gateway_port(shop: &Shop) -> u16 {
    let gateway = shop.stack.get("gateway").unwrap();
    shop.host_port(gateway, &gateway.ports[0]).unwrap()
}

fn gateway_tls_port(shop: &Shop) -> u16 {
    let gateway = shop.stack.get("gateway").unwrap();
    let https = gateway.ports.iter().find(|p| p.name == "https").unwrap();
    shop.host_port(gateway, https).unwrap()
}

/// What the gateway adds to every route: security headers (HSTS on HTTPS only), gzip
/// when asked, request ids passed through (the service echoes one or makes one), HTTPS
/// with the shop's self-signed certificate, and 429 beyond a route's rate limit.
async fn the_gateway_secures_compresses_and_limits(dir: &Path, shop: &Shop) {
    let http = format!("http://127.0.0.1:{}", gateway_port(shop));
    let client = reqwest::Client::new();
    let page = client
        .get(format!("{http}/api/catalog/products?limit=20"))
        .header("accept-encoding", "gzip")
        .header("x-request-id", "e2e-request-42")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    let header = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-encoding").as_deref(), Some("gzip"), "{h:?}");
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(
        header("referrer-policy").as_deref(),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(
        header("strict-transport-security"),
        None,
        "no HSTS on plain HTTP"
    );
    assert_eq!(header("x-request-id").as_deref(), Some("e2e-request-42"));
    let body = page.bytes().await.unwrap();
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    // No id sent: the service makes one, and the gateway passes it back.
    let plain = client
        .get(format!("{http}/api/catalog/products?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.headers().get("content-encoding"),
        None,
        "not asked for gzip"
    );
    let generated = plain
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(generated.len() >= 16, "{generated}");

    // HTTPS, verified against the certificate shopctl generated (nothing else trusted).
    let pem = std::fs::read(dir.join("secrets/gateway_tls.crt")).unwrap();
    let port = gateway_tls_port(shop);
    let tls = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let secure = tls
        .get(format!(
            "https://localhost:{port}/api/catalog/products?limit=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(secure.status(), 200);
    assert_eq!(
        secure
            .headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(
        secure
            .headers()
            .get("x-frame-options")
            .map(|v| v.to_str().unwrap()),
        Some("DENY")
    );
    // A client that trusts only the public roots refuses it: it is self-signed.
    let public = reqwest::Client::builder()
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    assert!(
        public
            .get(format!("https://localhost:{port}/api/catalog/health/live"))
            .send()
            .await
            .is_err()
    );

    // user's route allows 5/s with bursts of 10: 40 requests at once meet the limit.
    let statuses = futures::future::join_all((0..40).map(|_| {
        let client = client.clone();
        let url = format!("{http}/api/user/health/live");
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    }))
    .await;
    let limited = statuses.iter().filter(|s| **s == 429).count();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        limited >= 20 && ok >= 5 && limited + ok == 40,
        "{statuses:?}"
    );
    // Catalog's own limit is high: the same burst there is all 200.
    let statuses = futures::future::join_all((0..40).map(|_| {
        let client = client.clone();
        let url = format!("{http}/api/catalog/health/live");
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The user route's bucket refills before anyone logs in again.
    tokio::time::sleep(Duration::from_secs(3)).await;
}

fn prometheus_url(shop: &Shop) -> String {
    let prometheus = shop.stack.get("prometheus").unwrap();
    let port = shop.host_port(prometheus, &prometheus.ports[0]).unwrap();
    format!("http://127.0.0.1:{port}")
}

/// Prometheus's active scrape targets of `service`: (healthy, all).
async fn scrape_targets(prometheus: &str, service: &str) -> (usize, usize) {
    let Ok(response) = reqwest::get(format!("{prometheus}/api/v1/targets?state=active")).await
    else {
        return (0, 0);
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let targets: Vec<&serde_json::Value> = body["data"]["activeTargets"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|t| t["labels"]["service"] == service)
                .collect()
        })
        .unwrap_or_default();
    let healthy = targets.iter().filter(|t| t["health"] == "up").count();
    (healthy, targets.len())
}

/// Polls (bounded) until Prometheus lists exactly `want` catalog targets, all healthy.
async fn wait_for_catalog_targets(prometheus: &str, want: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (healthy, all) = scrape_targets(prometheus, "catalog").await;
        if healthy == want && all == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus lists {all} catalog targets ({healthy} healthy), not {want}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every metric a dashboard or alert rule of the shop reads is one Prometheus has
/// scraped from the running shop (services after a checkout, gateway, broker,
/// PostgreSQL exporter); and so is every name of the checked-in infrastructure list.
async fn dashboards_read_scraped_metrics(prometheus: &str, dir: &Path) {
    let mut wanted: BTreeSet<String> = promql::dashboard_exprs(dir)
        .iter()
        .chain(promql::alert_exprs(dir).iter())
        .flat_map(|e| promql::metric_names(e))
        .collect();
    wanted.extend(promql::infrastructure_metrics());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let names: BTreeSet<String> =
            match reqwest::get(format!("{prometheus}/api/v1/label/__name__/values")).await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| {
                        v["data"].as_array().map(|a| {
                            a.iter()
                                .filter_map(|n| n.as_str().map(str::to_owned))
                                .collect()
                        })
                    })
                    .unwrap_or_default(),
                Err(_) => BTreeSet::new(),
            };
        let missing: Vec<&String> = wanted.iter().filter(|n| !names.contains(*n)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dashboards or alerts read metrics the shop does not expose: {missing:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn shopctl(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(SHOPCTL)
        .arg("--shop")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn skipped() -> bool {
    let skip = std::env::var_os("SHOPSTACK_SKIP_IMAGE_TESTS").is_some_and(|v| v == "1");
    if skip {
        eprintln!("SHOPSTACK_SKIP_IMAGE_TESTS=1: end-to-end tests skipped");
    }
    skip
}

async fn build_images() {
    let docker = shopctl::engine::connect()
        .await
        .expect("a Docker engine is needed for the end-to-end test");
    let opts = shopctl::images::BuildOptions {
        only: vec![
            "postgres".into(),
            "rabbitmq".into(),
            "gateway".into(),
            "prometheus".into(),
            "postgres-exporter".into(),
            "catalog".into(),
            "cart".into(),
            "order".into(),
            "payment".into(),
            "user".into(),
            "notification".into(),
            "storefront".into(),
        ],
        ..Default::default()
    };
    shopctl::images::build(&docker, &opts, Output::new(true))
        .await
        .unwrap();
}

/// Requests a product through the gateway until stopped, counting failures and the
/// replicas that answered.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    replicas: Arc<Mutex<BTreeSet<String>>>,
}

impl Load {
    fn start(url: &str) -> Self {
        let load = Self {
            stop: Arc::new(AtomicBool::new(false)),
            ok: Arc::new(AtomicUsize::new(0)),
            failures: Arc::new(Mutex::new(Vec::new())),
            replicas: Arc::new(Mutex::new(BTreeSet::new())),
        };
        for _ in 0..4 {
            let (stop, ok, failures, replicas, url) = (
                load.stop.clone(),
                load.ok.clone(),
                load.failures.clone(),
                load.replicas.clone(),
                url.to_owned(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).send().await {
                        Ok(res) if res.status() == 200 => {
                            if let Some(r) = res.headers().get("x-shopstack-replica") {
                                replicas.lock().await.insert(r.to_str().unwrap().to_owned());
                            }
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(res) => failures
                            .lock()
                            .await
                            .push(format!("status {}", res.status())),
                        Err(e) => failures.lock().await.push(e.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        load
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shop_lifecycle_on_the_real_engine() {
    if skipped() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    build_images().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let name = format!("e2e{}", std::process::id());
    let shop = new_shop(&dir, &name);
    let _teardown = Teardown(dir.clone());

    let report = up(&shop, None, TIMEOUT, Output::new(true))
        .await
        .map_err(|f| f.error)
        .unwrap();
    assert!(!report.up_to_date);

    let (code, stdout, stderr) = shopctl(&dir, &["status", "--json"]);
    assert_eq!(code, 0, "status: {stdout}{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["healthy"], true);
    let catalog = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["component"] == "catalog")
        .unwrap();
    assert!(catalog["migration"].as_i64().unwrap() > 0, "{catalog}");
    // The shop's and Prometheus's URLs (Grafana's profile is off).
    let urls: Vec<(String, String)> = status["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let port_of = |name: &str| {
        urls.iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| panic!("no {name} URL in {urls:?}"))
    };
    assert_eq!(
        port_of("shop"),
        format!("http://localhost:{}/", gateway_port(&shop))
    );
    assert!(port_of("prometheus").ends_with(&format!(
        ":{}/",
        prometheus_url(&shop).rsplit(':').next().unwrap()
    )));
    assert!(!urls.iter().any(|(n, _)| n == "grafana"), "{urls:?}");

    // A demo product through the gateway.
    let base = format!("http://127.0.0.1:{}/api/catalog", gateway_port(&shop));
    let list: serde_json::Value = reqwest::get(format!("{base}/products?limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().expect("a product list");
    assert_eq!(items.len(), 1, "{list}");
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let product = reqwest::get(format!("{base}/products/{id}")).await.unwrap();
    assert_eq!(product.status(), 200);

    // The storefront at `/`, behind the same gateway: a server-rendered page with the
    // demo catalog, under the shop's name.
    let home = reqwest::get(format!("http://127.0.0.1:{}/", gateway_port(&shop)))
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    assert!(
        home.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = home.text().await.unwrap();
    assert!(page.contains(&name), "the shop's name on its home page");

    admins_write_the_catalog_and_customers_cannot(&dir, gateway_port(&shop)).await;
    the_gateway_secures_compresses_and_limits(&dir, &shop).await;

    // The checkout parked nothing; `shopctl events` reaches the broker to say so.
    let (code, stdout, stderr) = shopctl(&dir, &["--json", "events"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let parked: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(parked, serde_json::json!([]), "{stdout}");

    // Scale up under load: three healthy replicas, all answering, no failed request.
    let load = Load::start(&format!("{base}/products/{id}"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    set_replicas(&dir, &[("catalog".to_owned(), 3)].into()).unwrap();
    let shop = Shop::load(&dir).unwrap();
    up(
        &shop,
        Some(&["catalog".to_owned()]),
        TIMEOUT,
        Output::new(true),
    )
    .await
    .map_err(|f| f.error)
    .unwrap();
    let (code, stdout, _) = shopctl(&dir, &["status", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let healthy_catalogs = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["component"] == "catalog" && r["health"] == "healthy")
        .count();
    assert_eq!(healthy_catalogs, 3, "{status}");
    for _ in 0..100 {
        if load.replicas.lock().await.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        load.replicas.lock().await.len(),
        3,
        "every replica gets traffic"
    );
    // Prometheus found the new replicas through the engine and scrapes all three.
    let prometheus = prometheus_url(&shop);
    wait_for_catalog_targets(&prometheus, 3).await;
    dashboards_read_scraped_metrics(&prometheus, &dir).await;

    // Logs of each replica.
    let (code, stdout, stderr) = shopctl(&dir, &["logs", "catalog", "--tail", "5"]);
    assert_eq!(code, 0, "{stderr}");
    for replica in 1..=3 {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("catalog-{replica} "))),
            "no line of catalog-{replica}:\n{stdout}"
        );
    }

    // Nothing changed: up is a no-op.
    let report = up(&shop, None, TIMEOUT, Output::new(true))
        .await
        .map_err(|f| f.error)
        .unwrap();
    assert!(report.up_to_date, "{report:?}");

    // Scale down under load.
    set_replicas(&dir, &[("catalog".to_owned(), 1)].into()).unwrap();
    let shop = Shop::load(&dir).unwrap();
    up(
        &shop,
        Some(&["catalog".to_owned()]),
        TIMEOUT,
        Output::new(true),
    )
    .await
    .map_err(|f| f.error)
    .unwrap();
    // The two removed replicas are no longer scrape targets.
    wait_for_catalog_targets(&prometheus, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failures = load.failures.lock().await.clone();
    let ok = load.ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during scaling: {failures:?}",
        failures.len(),
        ok + failures.len()
    );
    assert!(ok > 50, "the load loop ran ({ok} requests)");

    // Down leaves nothing with the shop's label.
    let (code, _, stderr) = shopctl(&dir, &["down", "--volumes", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    let docker = shopctl::engine::connect().await.unwrap();
    let filter = shopctl::engine::docker::shop_filter(&name);
    let containers = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await
        .unwrap();
    let networks = docker
        .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
            filters: Some(filter.clone()),
        }))
        .await
        .unwrap();
    let volumes = docker
        .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
            filters: Some(filter),
        }))
        .await
        .unwrap();
    assert!(
        containers.is_empty()
            && networks.is_empty()
            && volumes.volumes.unwrap_or_default().is_empty()
    );
}

/// `shopctl admin create` makes an administrator whose token can create a product in
/// catalog; a customer's token cannot.
async fn admins_write_the_catalog_and_customers_cannot(dir: &Path, port: u16) {
    let users = format!("http://127.0.0.1:{port}/api/user");
    let catalog = format!("http://127.0.0.1:{port}/api/catalog");
    let password = "correct horse battery staple 42";
    let mut child = Command::new(SHOPCTL)
        .arg("--shop")
        .arg(dir)
        .args([
            "admin",
            "create",
            "--email",
            "owner@example.com",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{password}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "admin create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let client = reqwest::Client::new();
    let login = |email: &'static str| {
        let client = client.clone();
        let users = users.clone();
        async move {
            let response = client
                .post(format!("{users}/login"))
                .json(&serde_json::json!({ "email": email, "password": password }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "log-in of {email}");
            let body: serde_json::Value = response.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let product = |sku: &str| {
        serde_json::json!({
            "name": format!("E2E Linen Shirt {sku}"),
            "category": "shirts",
            "description": "Made by the end-to-end test.",
            "status": "published",
            "image_urls": [],
            "variants": [{ "sku": sku, "attributes": { "size": "M" }, "price_minor": 4200,
                           "currency": "USD", "on_hand": 3 }],
        })
    };

    let admin = login("owner@example.com").await;
    let created = client
        .post(format!("{catalog}/admin/products"))
        .bearer_auth(&admin)
        .json(&product("E2E-ADMIN-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());

    let registered = client
        .post(format!("{users}/register"))
        .json(&serde_json::json!({ "email": "shopper@example.com", "password": password }))
        .send()
        .await
        .unwrap();
    assert!(registered.status().is_success(), "{}", registered.status());
    let customer = login("shopper@example.com").await;
    let refused = client
        .post(format!("{catalog}/admin/products"))
        .bearer_auth(&customer)
        .json(&product("E2E-CUSTOMER-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let nobody = client
        .post(format!("{catalog}/admin/products"))
        .json(&product("E2E-ANON-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), 401);

    buys_through_the_gateway(&client, port, &customer, "E2E-ADMIN-1").await;
}

/// A customer's checkout through the gateway, with the token the user service issued:
/// cart, order, test-card payment, paid — events between the containers over RabbitMQ.
async fn buys_through_the_gateway(client: &reqwest::Client, port: u16, token: &str, sku: &str) {
    let api = |service: &str| format!("http://127.0.0.1:{port}/api/{service}");
    let json = |r: reqwest::Response| async move {
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert!(status.is_success(), "{status}: {body}");
        body
    };
    let cart = json(
        client
            .get(format!("{}/carts/mine", api("cart")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let cart_id = cart["id"].as_str().unwrap().to_owned();
    json(
        client
            .post(format!("{}/carts/{cart_id}/items", api("cart")))
            .bearer_auth(token)
            .json(&serde_json::json!({"sku": sku, "quantity": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let order = json(
        client
            .post(format!("{}/orders", api("order")))
            .bearer_auth(token)
            .header("Idempotency-Key", "e2e-order-1")
            .json(&serde_json::json!({"cart_id": cart_id}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let payment = loop {
        let page = json(
            client
                .get(format!("{}/payments?order_id={order_id}", api("payment")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if let Some(p) = page["items"].as_array().and_then(|i| i.first()) {
            break p.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no payment intent for {order_id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let paid = json(
        client
            .post(format!(
                "{}/payments/{}/confirm",
                api("payment"),
                payment["id"].as_str().unwrap()
            ))
            .bearer_auth(token)
            .header("Idempotency-Key", "e2e-pay-1")
            .json(
                &serde_json::json!({"payment_method": {"type": "card", "number": "4242424242424242",
                "exp_month": 12, "exp_year": 2034, "cvc": "123"}}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    loop {
        let order = json(
            client
                .get(format!("{}/orders/{order_id}", api("order")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if order["status"] == "paid" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "order is {}",
            order["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_shows_its_logs() {
    if skipped() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    build_images().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let name = format!("mig{}", std::process::id());
    let shop = new_shop(&dir, &name);
    let _teardown = Teardown(dir.clone());
    // Point the catalog at a database that does not exist.
    let path = dir.join("shop.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "[components.catalog]\n",
        "[components.catalog]\nenv = { DATABASE_URL = \"postgres://catalog@postgres:5432/no_such_db\" }\n",
    );
    std::fs::write(&path, text).unwrap();
    let shop2 = Shop::load(&dir).unwrap();
    drop(shop);
    let failure = up(
        &shop2,
        Some(&["catalog".to_owned()]),
        TIMEOUT,
        Output::new(true),
    )
    .await
    .unwrap_err();
    let message = format!("{:#}", failure.error);
    assert!(message.contains("migrations failed"), "{message}");
    assert!(
        message.contains("no_such_db"),
        "the migration's own log is shown: {message}"
    );
    assert!(message.contains("next step"), "{message}");
}
