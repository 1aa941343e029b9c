//! The gateway (Traefik): how it serves TLS, and the wait after `up`.
//!
//! TLS: a shop with a public domain and `[gateway] acme_email` gets its certificate from
//! Let's Encrypt (TLS-ALPN challenge on the `websecure` entrypoint, certificates in a
//! volume) and plain HTTP redirects to HTTPS. Any other shop (localhost, an IP, no email)
//! serves a self-signed certificate that shopctl generates into `secrets/` and Traefik
//! reads through its file provider, and keeps serving plain HTTP.
//!
//! After `up`: Traefik learns about containers from the engine's events a moment after
//! they are healthy, so a healthy stack can still answer 404 for a while; `up` waits until
//! each routed service answers its liveness check through the gateway's host port, so
//! that the URL it prints works when it prints it.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::shop::Shop;

/// The self-signed certificate and its key, under the shop's `secrets/`.
pub const CERT_FILE: &str = "gateway_tls.crt";
pub const KEY_FILE: &str = "gateway_tls.key";
/// Traefik's dynamic configuration naming them (file provider), under the shop's dir.
pub const TLS_CONFIG: &str = "config/traefik/tls.yml";
/// Where the gateway container sees that configuration.
pub const TLS_CONFIG_TARGET: &str = "/etc/traefik/dynamic/tls.yml";
/// The volume (`<shop>-letsencrypt`) and path of the ACME certificates.
pub const ACME_VOLUME: &str = "letsencrypt";
pub const ACME_DIR: &str = "/letsencrypt";
/// The certificate resolver's name in Traefik's configuration and the routers' labels.
pub const RESOLVER: &str = "letsencrypt";

/// How the gateway serves HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Let's Encrypt for `domain`; HTTP redirects to HTTPS.
    Acme { domain: String, email: String },
    /// shopctl's self-signed certificate; HTTP keeps working (localhost, development).
    SelfSigned,
}

impl Tls {
    pub fn of(shop: &Shop) -> Self {
        let domain = &shop.file.shop.domain;
        match &shop.file.gateway.acme_email {
            Some(email) if is_public_domain(domain) => Self::Acme {
                domain: domain.clone(),
                email: email.clone(),
            },
            _ => Self::SelfSigned,
        }
    }
}

/// A name Let's Encrypt can issue for: a dotted DNS name, not localhost or an address.
pub fn is_public_domain(domain: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let local = domain == "localhost"
        || domain.ends_with(".localhost")
        || domain.ends_with(".local")
        || domain.ends_with(".internal");
    !local
        && domain.parse::<IpAddr>().is_err()
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Traefik's static flags for the TLS mode, after the stack's own command.
pub fn command_args(tls: &Tls) -> Vec<String> {
    match tls {
        Tls::Acme { email, .. } => vec![
            format!("--certificatesresolvers.{RESOLVER}.acme.email={email}"),
            format!("--certificatesresolvers.{RESOLVER}.acme.storage={ACME_DIR}/acme.json"),
            format!("--certificatesresolvers.{RESOLVER}.acme.tlschallenge=true"),
            "--entrypoints.web.http.redirections.entrypoint.to=websecure".into(),
            "--entrypoints.web.http.redirections.entrypoint.scheme=https".into(),
            "--entrypoints.web.http.redirections.entrypoint.permanent=true".into(),
        ],
        Tls::SelfSigned => vec![format!("--providers.file.filename={TLS_CONFIG_TARGET}")],
    }
}

/// The file provider's configuration: the self-signed pair as the default certificate
/// (served whatever name the client asks for, an IP included).
pub fn tls_config() -> String {
    format!(
        "# Written by shopctl: the gateway's self-signed certificate (secrets/{CERT_FILE}).\n\
         tls:\n  \
           stores:\n    \
             default:\n      \
               defaultCertificate:\n        \
                 certFile: /run/secrets/{CERT_FILE}\n        \
                 keyFile: /run/secrets/{KEY_FILE}\n"
    )
}

/// A self-signed certificate (PEM) and its key (PEM) for the shop's gateway: valid for
/// localhost, the loopback addresses, `gateway` and the shop's domain.
pub fn self_signed(shop: &str, domain: &str) -> anyhow::Result<(String, String)> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "gateway".to_owned(),
    ];
    if !names.iter().any(|n| n == domain) && !domain.is_empty() {
        names.push(domain.to_owned());
    }
    let mut params =
        rcgen::CertificateParams::new(names).context("the gateway certificate's names")?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{shop} (Shopstack, self-signed)"),
    );
    let key = rcgen::KeyPair::generate().context("generating the gateway's TLS key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the gateway's certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes the gateway's TLS files into the shop when they are missing (a shop made before
/// they existed, or after deleting them to get a new certificate); returns whether the
/// certificate was (re)generated.
pub fn ensure_files(dir: &Path, shop: &str, domain: &str) -> anyhow::Result<bool> {
    let config = dir.join(TLS_CONFIG);
    if let Some(parent) = config.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if std::fs::read_to_string(&config).ok().as_deref() != Some(tls_config().as_str()) {
        std::fs::write(&config, tls_config())
            .with_context(|| format!("writing {}", config.display()))?;
    }
    let secrets = dir.join("secrets");
    if secrets.join(CERT_FILE).exists() && secrets.join(KEY_FILE).exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(&secrets).with_context(|| format!("creating {}", secrets.display()))?;
    let (cert, key) = self_signed(shop, domain)?;
    crate::init::write_secret(&secrets, KEY_FILE, &key)?;
    crate::init::write_secret(&secrets, CERT_FILE, &cert)?;
    Ok(true)
}

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
    // With ACME, plain HTTP only redirects: probe HTTPS (its certificate may still be
    // Traefik's default while Let's Encrypt answers; the probe does not verify it).
    let (scheme, port_name) = match Tls::of(shop) {
        Tls::Acme { .. } => ("https", "https"),
        Tls::SelfSigned => ("http", "http"),
    };
    let Some(port) = gateway
        .ports
        .iter()
        .find(|p| p.name == port_name)
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
                format!(
                    "{scheme}://127.0.0.1:{port}{}{LIVE}",
                    route.trim_end_matches('/')
                ),
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
    // Loopback liveness probes only: an ACME shop's certificate names its public domain.
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .tls_danger_accept_invalid_certs(true)
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

    #[test]
    fn only_public_names_are_public_domains() {
        for public in ["shop.example.com", "example.org", "my-shop.co.uk."] {
            assert!(is_public_domain(public), "{public}");
        }
        for local in [
            "localhost",
            "shop.localhost",
            "127.0.0.1",
            "::1",
            "10.0.0.5",
            "printer.local",
            "intranet",
            "",
            "bad_name.example.com",
        ] {
            assert!(!is_public_domain(local), "{local}");
        }
    }

    #[test]
    fn acme_flags_name_the_email_and_redirect_http_self_signed_reads_the_file_provider() {
        let acme = command_args(&Tls::Acme {
            domain: "shop.example.com".into(),
            email: "ops@example.com".into(),
        });
        assert!(acme.contains(
            &"--certificatesresolvers.letsencrypt.acme.email=ops@example.com".to_owned()
        ));
        assert!(
            acme.contains(&"--certificatesresolvers.letsencrypt.acme.tlschallenge=true".to_owned())
        );
        assert!(acme.contains(&format!(
            "--certificatesresolvers.letsencrypt.acme.storage={ACME_DIR}/acme.json"
        )));
        assert!(
            acme.contains(
                &"--entrypoints.web.http.redirections.entrypoint.to=websecure".to_owned()
            )
        );
        assert!(!acme.iter().any(|a| a.starts_with("--providers.file")));
        let own = command_args(&Tls::SelfSigned);
        assert_eq!(
            own,
            [format!("--providers.file.filename={TLS_CONFIG_TARGET}")]
        );
        assert!(!own.iter().any(|a| a.contains("redirections")));
        assert!(tls_config().contains(&format!("certFile: /run/secrets/{CERT_FILE}")));
    }

    #[test]
    fn the_self_signed_certificate_is_written_once_and_verifies_for_localhost() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(ensure_files(tmp.path(), "demo", "shop.lan").unwrap());
        let cert = std::fs::read_to_string(tmp.path().join("secrets").join(CERT_FILE)).unwrap();
        let key = std::fs::read_to_string(tmp.path().join("secrets").join(KEY_FILE)).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(key.contains("PRIVATE KEY"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join("secrets").join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second call keeps the pair: the gateway is not restarted for nothing.
        assert!(!ensure_files(tmp.path(), "demo", "shop.lan").unwrap());
        let again = std::fs::read_to_string(tmp.path().join("secrets").join(CERT_FILE)).unwrap();
        assert_eq!(cert, again);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(TLS_CONFIG)).unwrap(),
            tls_config()
        );
        // reqwest accepts it as a root (what the end-to-end test does against Traefik).
        reqwest::Certificate::from_pem(cert.as_bytes()).unwrap();
    }

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
