//! After `up`: the gateway routes every service. Traefik learns about containers from the
//! engine's events a moment after they are healthy, so a healthy stack can still answer
//! 404 for a while; `up` waits until each routed service answers its liveness check
//! through the gateway's host port, so that the URL it prints works when it prints it.

use std::time::{Duration, Instant};

use crate::shop::Shop;

/// The liveness path of every service, under its route.
const LIVE: &str = "/health/live";

/// `(component, URL through the gateway)` for every routed component that is running,
/// when the gateway is part of the run and publishes a host port on this machine.
pub fn probes(shop: &Shop, running: &[String]) -> Vec<(String, String)> {
    let Some(gateway) = shop.stack.get("gateway") else {
        return Vec::new();
    };
    if !running.iter().any(|c| c == "gateway") || !engine_is_local() {
        return Vec::new();
    }
    let Some(port) = gateway
        .ports
        .first()
        .and_then(|p| shop.host_port(gateway, p))
    else {
        return Vec::new();
    };
    shop.enabled()
        .into_iter()
        .filter(|c| running.contains(&c.name))
        .filter_map(|c| {
            let route = c.route.as_ref()?;
            Some((
                c.name.clone(),
                format!("http://127.0.0.1:{port}{route}{LIVE}"),
            ))
        })
        .collect()
}

/// Published ports are on this machine only when the engine is (its socket, not a
/// remote `DOCKER_HOST`).
fn engine_is_local() -> bool {
    std::env::var("DOCKER_HOST").map_or(true, |h| h.is_empty() || h.starts_with("unix://"))
}

/// Waits until every probe answers 2xx; returns the components still not routed at the
/// deadline.
pub async fn wait_routed(probes: &[(String, String)], deadline: Instant) -> Vec<String> {
    // The TLS provider is installed by `main` (and here, for library callers); plain HTTP
    // needs none, but the client refuses to build without one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return probes.iter().map(|(c, _)| c.clone()).collect();
    };
    let mut waiting: Vec<&(String, String)> = probes.iter().collect();
    loop {
        let mut still = Vec::new();
        for probe in waiting {
            let ok = client
                .get(&probe.1)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                still.push(probe);
            }
        }
        waiting = still;
        if waiting.is_empty() || Instant::now() >= deadline {
            return waiting.into_iter().map(|(c, _)| c.clone()).collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_route_and_names_the_ones_never_routed() {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Routed: /api/catalog; the gateway's 404 for anything else.
        let app = axum::Router::new().route("/api/catalog/health/live", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let probes = vec![
            (
                "catalog".to_owned(),
                format!("http://127.0.0.1:{port}/api/catalog{LIVE}"),
            ),
            (
                "cart".to_owned(),
                format!("http://127.0.0.1:{port}/api/cart{LIVE}"),
            ),
        ];
        let deadline = Instant::now() + Duration::from_millis(400);
        assert_eq!(wait_routed(&probes, deadline).await, ["cart"]);
        assert!(
            wait_routed(&probes[..1], Instant::now() + Duration::from_secs(5))
                .await
                .is_empty()
        );
    }
}
