//! What every benchmark report shares: the machine it ran on, and writing it as JSON.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde::Serialize;
use sqlx::Connection;

/// Where a benchmark ran: figures from different machines are not comparable.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores available to this process (the load generator, the service and PostgreSQL
    /// share them).
    pub cores: usize,
    pub os: &'static str,
    pub arch: &'static str,
    /// When the report was made (RFC 3339, UTC).
    pub date: String,
    /// `SELECT version()` of the server benchmarked against.
    pub postgres: Option<String>,
    /// The workspace's commit, with `-dirty` when it has uncommitted changes.
    pub git_commit: Option<String>,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the benchmark started and ended: other
    /// work on the machine (a build) takes cores from the benchmark and shows here.
    pub load_average_before: Option<[f64; 3]>,
    pub load_average_after: Option<[f64; 3]>,
}

/// A goal of the issue that asked for a benchmark (informative: not a test).
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub target: f64,
    pub actual: f64,
    pub met: bool,
}

/// The 1, 5 and 15 minute load averages (Linux only).
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Collects the machine's description at the end of a run that started with
/// `load_average_before`; what cannot be found is left out.
pub async fn machine(database_url: &str, load_average_before: Option<[f64; 3]>) -> Machine {
    let postgres = async {
        let mut conn = sqlx::PgConnection::connect(database_url).await.ok()?;
        let version: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&mut conn)
            .await
            .ok()?;
        let _ = conn.close().await;
        Some(version)
    }
    .await;
    Machine {
        cores: cores(),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        postgres,
        git_commit: git_commit(),
        load_average_before,
        load_average_after: load_average(),
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// Writes `value` as pretty JSON to `path`, creating its directories.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut json = serde_json::to_string_pretty(value).context("serialising the report")?;
    json.push('\n');
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_creating_directories() {
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        let path = dir.join("a/b/report.json");
        write_json(&path, &serde_json::json!({"by_id_ratio": 0.9})).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["by_id_ratio"], 0.9);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
