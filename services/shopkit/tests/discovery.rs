//! The Consul registration client against a local server speaking Consul's agent API:
//! `PUT /v1/agent/service/register` (with an HTTP check the fake really runs),
//! `PUT /v1/agent/service/deregister/<id>`, `GET /v1/health/service/<name>[?passing]`,
//! ACL tokens in `X-Consul-Token`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};
use shopkit::config::Settings;
use shopkit::discovery::{Agent, Discovery};
use shopkit::http::Kit;

const TOKEN: &str = "acl-token-for-tests";

/// What the fake agent holds per service id: the registration as sent, and the status
/// of its check (`critical` until the first probe passes, as in Consul).
#[derive(Default)]
struct FakeAgent {
    services: BTreeMap<String, (Value, &'static str)>,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<FakeAgent>>;

fn denied(headers: &HeaderMap) -> Option<Response> {
    (headers.get("x-consul-token").and_then(|v| v.to_str().ok()) != Some(TOKEN)).then(|| {
        (
            StatusCode::FORBIDDEN,
            "Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' lacks permission 'service:write'",
        )
            .into_response()
    })
}

/// Go duration strings as Consul takes them ("2s", "500ms", "1m").
fn go_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(secs) = s.strip_suffix('s') {
        return secs.parse().ok().map(Duration::from_secs);
    }
    s.strip_suffix('m')?
        .parse::<u64>()
        .ok()
        .map(|m| Duration::from_secs(m * 60))
}

async fn register(State(agent): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if let Some(denied) = denied(&headers) {
        return denied;
    }
    let Ok(registration) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "Request decode failed: invalid JSON",
        )
            .into_response();
    };
    let Some(name) = registration["Name"].as_str().filter(|n| !n.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "Missing service name").into_response();
    };
    let id = registration["ID"].as_str().unwrap_or(name).to_owned();
    let check = &registration["Check"];
    let (Some(url), Some(interval)) = (
        check["HTTP"].as_str().map(str::to_owned),
        check["Interval"].as_str().and_then(go_duration),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "Invalid check: TTL must be > 0 for TTL checks; HTTP checks need HTTP and Interval",
        )
            .into_response();
    };
    if check["DeregisterCriticalServiceAfter"]
        .as_str()
        .and_then(go_duration)
        .is_none()
    {
        return (
            StatusCode::BAD_REQUEST,
            "Invalid DeregisterCriticalServiceAfter",
        )
            .into_response();
    }
    {
        let mut state = agent.lock().unwrap();
        state.requests.push(format!("register {id}"));
        state
            .services
            .insert(id.clone(), (registration, "critical"));
    }
    // The agent runs the check: 2xx passing, anything else (or no answer) critical.
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let passing = client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            {
                let mut state = agent.lock().unwrap();
                let Some(entry) = state.services.get_mut(&id) else {
                    return;
                };
                entry.1 = if passing { "passing" } else { "critical" };
            }
            tokio::time::sleep(interval).await;
        }
    });
    StatusCode::OK.into_response()
}

async fn deregister(
    State(agent): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(denied) = denied(&headers) {
        return denied;
    }
    let mut state = agent.lock().unwrap();
    state.requests.push(format!("deregister {id}"));
    match state.services.remove(&id) {
        Some(_) => StatusCode::OK.into_response(),
        None => (StatusCode::NOT_FOUND, format!("Unknown service ID {id:?}")).into_response(),
    }
}

async fn health(
    State(agent): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(denied) = denied(&headers) {
        return denied;
    }
    // `?passing` alone or with any value but "false" filters, as in Consul.
    let passing_only = query.get("passing").is_some_and(|v| v != "false");
    let state = agent.lock().unwrap();
    let entries: Vec<Value> = state
        .services
        .iter()
        .filter(|(_, (r, status))| r["Name"] == name && (!passing_only || *status == "passing"))
        .map(|(id, (r, status))| {
            json!({
                "Node": { "Node": "fake-agent", "Address": "127.0.0.1", "Datacenter": "dc1" },
                "Service": {
                    "ID": id, "Service": r["Name"], "Tags": r["Tags"], "Address": r["Address"],
                    "Port": r["Port"], "Meta": r["Meta"],
                },
                "Checks": [{
                    "Node": "fake-agent", "CheckID": format!("service:{id}"), "Name": "Service check",
                    "Status": status, "ServiceID": id, "ServiceName": r["Name"],
                }],
            })
        })
        .collect();
    axum::Json(entries).into_response()
}

async fn fake_agent() -> (String, Shared) {
    let state = Shared::default();
    let app = Router::new()
        .route("/v1/agent/service/register", put(register))
        .route("/v1/agent/service/deregister/{id}", put(deregister))
        .route("/v1/health/service/{name}", get(health))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_replica_registers_with_its_check_and_deregisters_on_shutdown() {
    let (consul, state) = fake_agent().await;
    let settings = Settings::from_vars(
        [
            ("CONSUL_HTTP_ADDR", consul.as_str()),
            ("CONSUL_HTTP_TOKEN", TOKEN),
            ("CONSUL_SERVICE_NAME", "catalog"),
            ("CONSUL_SERVICE_ID", "shop-catalog-1"),
            ("CONSUL_SERVICE_ADDRESS", "127.0.0.1"),
            ("CONSUL_SERVICE_TAGS", r#"["traefik.enable=true","traefik.http.routers.catalog.rule=PathPrefix(`/api/catalog`)"]"#),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let discovery = Discovery::from_settings(&settings).unwrap().unwrap();
    let agent = Agent::new(&consul, Some(TOKEN.into())).unwrap();

    // A real service router (readiness fails once draining) served with the registration.
    let (trigger, shutdown) = shopkit::shutdown::channel();
    let app = Kit::new("catalog")
        .with_shutdown(shutdown.clone())
        .wrap(Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(shopkit::cli::serve_registered(
        listener,
        app,
        shutdown.clone().started(),
        Some(discovery),
    ));

    // A second instance whose check cannot pass: nothing listens on its port.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let stale = Discovery::from_settings(&Settings::from_vars(
        [
            ("CONSUL_HTTP_ADDR", consul.as_str()),
            ("CONSUL_HTTP_TOKEN", TOKEN),
            ("CONSUL_SERVICE_NAME", "catalog"),
            ("CONSUL_SERVICE_ID", "shop-catalog-2"),
            ("CONSUL_SERVICE_ADDRESS", "127.0.0.1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    ))
    .unwrap()
    .unwrap()
    .registration(dead_port);
    agent.register(&stale).await.unwrap();

    // Only the live replica is passing, with its port and routing tags.
    eventually("the live replica's check passes", || async {
        agent.passing("catalog").await.unwrap().len() == 1
    })
    .await;
    let passing = agent.passing("catalog").await.unwrap();
    assert_eq!(passing[0].id, "shop-catalog-1");
    assert_eq!(passing[0].port, port);
    assert_eq!(passing[0].address, "127.0.0.1");
    assert!(
        passing[0]
            .tags
            .contains(&"traefik.http.routers.catalog.rule=PathPrefix(`/api/catalog`)".to_owned())
    );
    // Unfiltered, the agent still knows both: the filter is what hid the dead one.
    let all: Vec<Value> = reqwest::Client::new()
        .get(format!("{consul}/v1/health/service/catalog"))
        .header("X-Consul-Token", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let registered = state.lock().unwrap().services["shop-catalog-1"].0.clone();
    assert_eq!(
        registered["Check"]["HTTP"],
        format!("http://127.0.0.1:{port}/health/ready")
    );

    // Shutdown: the replica deregisters itself before the server stops.
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        !state
            .lock()
            .unwrap()
            .services
            .contains_key("shop-catalog-1")
    );
    assert!(
        state
            .lock()
            .unwrap()
            .requests
            .contains(&"deregister shop-catalog-1".to_owned())
    );
    assert!(agent.passing("catalog").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_agent_refusing_says_why() {
    let (consul, _state) = fake_agent().await;
    let wrong = Agent::new(&consul, Some("not-the-token".into())).unwrap();
    let discovery = Discovery::from_settings(&Settings::from_vars(
        [
            ("CONSUL_HTTP_ADDR", consul.as_str()),
            ("CONSUL_SERVICE_NAME", "cart"),
            ("CONSUL_SERVICE_ADDRESS", "127.0.0.1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    ))
    .unwrap()
    .unwrap();
    let err = wrong
        .register(&discovery.registration(8080))
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("403") && message.contains("Permission denied"),
        "{message}"
    );
    let err = wrong.deregister("cart").await.unwrap_err();
    assert!(format!("{err:#}").contains("403"), "{err:#}");
}
