//! Bad input through the real binary: each mistake gets its exit code and a message that
//! says what is wrong and what to do. Needs a Docker engine (no images) for the port and
//! image cases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

const SHOPCTL: &str = env!("CARGO_BIN_EXE_shopctl");

fn shopctl(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(SHOPCTL)
        .arg("--shop")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A shop whose every host port is random, so tests never collide on fixed ports.
fn new_shop(dir: &Path, name: &str) {
    let (code, text) = shopctl(
        dir,
        &[
            "init",
            dir.to_str().unwrap(),
            "--name",
            name,
            "--images",
            "local",
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
}

fn edit_shop(dir: &Path, edit: impl Fn(&str) -> String) {
    let path = dir.join("shop.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&text)).unwrap();
}

#[test]
fn malformed_shop_toml_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    new_shop(dir.path(), "badtoml");
    edit_shop(dir.path(), |t| {
        t.replace("mode = \"development\"", "mode = development")
    });
    let line = std::fs::read_to_string(dir.path().join("shop.toml"))
        .unwrap()
        .lines()
        .position(|l| l.starts_with("mode = development"))
        .unwrap()
        + 1;
    let (code, text) = shopctl(dir.path(), &["config", "check"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(&format!("shop.toml:{line}:8")), "{text}");
}

#[test]
fn no_docker_engine_gives_the_remedy() {
    let dir = tempfile::tempdir().unwrap();
    new_shop(dir.path(), "noengine");
    let (code, text) = shopctl(
        dir.path(),
        &["status"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("/nonexistent/docker.sock"), "{text}");
    assert!(text.contains("remedy: start it"), "{text}");
}

#[test]
fn a_taken_port_names_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    new_shop(dir.path(), "porttaken");
    // Someone (this test) takes the gateway's port after init chose it.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    edit_shop(dir.path(), |t| with_gateway_port(t, port));
    let (code, text) = shopctl(dir.path(), &["up"], &[]);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains(&format!("host port {port} is taken by")),
        "{text}"
    );
    assert!(
        text.contains(&format!("(pid {})", std::process::id())),
        "the holder is this test process: {text}"
    );
    drop(listener);
}

/// shop.toml with the gateway's host port set to `port`.
fn with_gateway_port(text: &str, port: u16) -> String {
    let mut in_gateway = false;
    text.lines()
        .map(|l| {
            if l.starts_with('[') {
                in_gateway = l == "[components.gateway]";
            }
            if in_gateway && l.starts_with("ports.http =") {
                format!("ports.http = {port}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_missing_image_without_a_registry_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    new_shop(dir.path(), "noimage");
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    edit_shop(dir.path(), |t| {
        with_gateway_port(t, port).replacen(
            "image = \"shopstack/postgres:15\"",
            "image = \"postgres:15-shopstack-test-absent\"",
            1,
        )
    });
    let (code, text) = shopctl(dir.path(), &["up", "postgres"], &[]);
    assert_eq!(code, 5, "{text}");
    assert!(text.contains("postgres:15-shopstack-test-absent"), "{text}");
    assert!(text.contains("the pull failed"), "{text}");
    assert!(text.contains("remedy:"), "{text}");
    assert!(
        text.contains("shopctl images build") || text.contains("shopctl images load"),
        "{text}"
    );
}
