//! `cargo xtask bench up`: wall time from nothing to every container healthy, `shopctl up`
//! against `docker-compose up -d` plus waiting for health, on the same images and the same
//! containers (the Compose file is `shopctl export compose` of the same shop), in one run,
//! rounds alternating which goes first. Writes `target/bench/up.json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

/// The shop's name, and so the prefix of every object the bench creates.
const SHOP: &str = "benchup";
/// The Compose project (its containers are named after it, not after the shop).
const PROJECT: &str = "benchup-compose";
/// How long either tool may take to get everything healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the Compose side is polled for health: a poll costs ~20 ms of `docker
/// inspect`, and the poll interval bounds the time added to Compose's figure.
const POLL: Duration = Duration::from_millis(100);

pub struct Options {
    pub rounds: usize,
    pub out: PathBuf,
}

pub fn run(root: &Path, shopctl: &Path, opts: &Options) -> anyhow::Result<()> {
    let compose_version = check_tool("docker-compose", &["version", "--short"])?;
    let work = tempfile_dir(root)?;
    let shop = work.join("shop");
    let compose_file = work.join("docker-compose.yml");
    ok(Command::new(shopctl)
        .args(["init"])
        .arg(&shop)
        .args(["--name", SHOP, "--images", "local"]))?;
    ok(Command::new(shopctl)
        .arg("--shop")
        .arg(&shop)
        .args(["export", "compose", "--output"])
        .arg(&compose_file))?;
    let compose = |args: &[&str]| {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("--project-name")
            .arg(PROJECT)
            .arg("--file")
            .arg(&compose_file)
            .args(args);
        cmd
    };
    let shopctl_cmd = |args: &[&str]| {
        let mut cmd = Command::new(shopctl);
        cmd.arg("--shop").arg(&shop).args(args);
        cmd
    };
    // Nothing of an earlier, interrupted run may stay around.
    let clean = || -> anyhow::Result<()> {
        ok(&mut shopctl_cmd(&["down", "--volumes", "--yes"]))?;
        ok(&mut compose(&["down", "--volumes", "--remove-orphans"]))?;
        Ok(())
    };
    clean()?;

    let mut shopctl_s = Vec::new();
    let mut compose_s = Vec::new();
    for round in 0..opts.rounds {
        let shopctl_first = round % 2 == 0;
        for side in if shopctl_first { [0, 1] } else { [1, 0] } {
            let started = Instant::now();
            if side == 0 {
                ok(&mut shopctl_cmd(&["up", "--timeout", "300"]))?;
                shopctl_s.push(started.elapsed().as_secs_f64());
            } else {
                ok(&mut compose(&["up", "--detach"]))?;
                wait_compose_healthy(started)?;
                compose_s.push(started.elapsed().as_secs_f64());
            }
            clean()?;
        }
        eprintln!(
            "bench up: round {} shopctl {:.2}s, compose {:.2}s",
            round + 1,
            shopctl_s[round],
            compose_s[round]
        );
    }
    let shopctl_median = median(&shopctl_s);
    let compose_median = median(&compose_s);
    let ratio = shopctl_median / compose_median;
    let report = json!({
        "bench": "up",
        "what": "wall time from an empty engine (images present) to every container healthy",
        "components": components(&compose_file)?,
        "rounds": opts.rounds,
        "shopctl_s": round3(shopctl_median),
        "compose_s": round3(compose_median),
        "ratio": round3(ratio),
        "shopctl_runs_s": shopctl_s.iter().copied().map(round3).collect::<Vec<_>>(),
        "compose_runs_s": compose_s.iter().copied().map(round3).collect::<Vec<_>>(),
        "compose_version": compose_version,
        "goal": "shopctl_s <= 0.7 * compose_s",
    });
    if let Some(dir) = opts.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&opts.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", opts.out.display()))?;
    eprintln!(
        "bench up: shopctl {shopctl_median:.2}s, compose {compose_median:.2}s, ratio {ratio:.2} → {}",
        opts.out.display()
    );
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

/// Every container of the Compose project is healthy (services) or exited 0 (jobs).
fn wait_compose_healthy(started: Instant) -> anyhow::Result<()> {
    loop {
        let ids = capture(Command::new("docker").args([
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label=com.docker.compose.project={PROJECT}"),
        ]))?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec![
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
            ];
            args.extend(&ids);
            let states = capture(Command::new("docker").args(&args))?;
            if states.lines().all(ready) {
                return Ok(());
            }
            if let Some(bad) = states.lines().find(|l| failed(l)) {
                bail!("a Compose container failed: {bad}");
            }
        }
        if started.elapsed() > HEALTH_TIMEOUT {
            bail!("Compose did not get healthy within {HEALTH_TIMEOUT:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// `docker inspect` line `status exit-code health` of a finished job or a healthy service.
fn ready(line: &str) -> bool {
    matches!(
        line.split_whitespace().collect::<Vec<_>>().as_slice(),
        ["running", _, "healthy"] | ["exited", "0", _]
    )
}

fn failed(line: &str) -> bool {
    matches!(
        line.split_whitespace().collect::<Vec<_>>().as_slice(),
        ["exited", code, _] if *code != "0"
    )
}

fn components(compose_file: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(compose_file)?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    Ok(doc["services"]
        .as_object()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn tempfile_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let dir = root.join("target").join("bench").join("up-work");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn check_tool(program: &str, args: &[&str]) -> anyhow::Result<String> {
    capture(Command::new(program).args(args)).with_context(|| {
        format!(
            "{program} is needed for this benchmark: install it with `apt-get install {program}`"
        )
    })
}

fn ok(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn capture(cmd: &mut Command) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&ok(cmd)?.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_count_when_exited_zero_and_services_when_healthy() {
        assert!(ready("running 0 healthy"));
        assert!(ready("exited 0 none"));
        assert!(!ready("running 0 starting"));
        assert!(!ready("exited 1 none"));
        assert!(failed("exited 1 none"));
        assert!(!failed("running 0 unhealthy"));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
