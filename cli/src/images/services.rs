//! Service images: static release binaries of the workspace, `FROM scratch`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};

use super::base::run_logged;
use super::catalog::SERVICE_DOCKERFILE;
use super::context::BuildContext;
use super::elf::{self, Linkage};
use crate::output::Output;

/// Where the CA bundle of a Debian/Ubuntu host lives, and where the images want it.
pub(super) const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Names a Shopstack source tree explicitly (else it is searched for).
pub(super) const SOURCE_ENV: &str = "SHOPSTACK_SOURCE";
/// The revision label for prebuilt binaries (`--binaries`), e.g. CI's commit.
pub(super) const REVISION_ENV: &str = "SHOPSTACK_REVISION";

/// The Shopstack workspace: `SHOPSTACK_SOURCE`, else the first ancestor of the
/// current directory, else of the shopctl executable, that is a workspace root with a
/// `services/` directory.
pub(super) fn find_workspace() -> anyhow::Result<Option<PathBuf>> {
    if let Some(explicit) = std::env::var_os(SOURCE_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        if is_workspace(&path) {
            return Ok(Some(path));
        }
        bail!(
            "{SOURCE_ENV}={} is not a Shopstack source tree (no Cargo.toml with [workspace] \
             next to a services/ directory)\n\
             remedy: point {SOURCE_ENV} at the root of a Shopstack checkout, or unset it",
            path.display()
        );
    }
    let starts = [
        std::env::current_dir().ok(),
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf)),
    ];
    Ok(starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .find(|dir| is_workspace(dir))
            .map(Path::to_path_buf)
    }))
}

pub(super) fn is_workspace(dir: &Path) -> bool {
    dir.join("services").is_dir()
        && std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
}

/// What `cargo metadata` says about the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// Workspace package name → its binary target's name.
    pub binaries: BTreeMap<String, String>,
}

pub(super) async fn metadata(root: &Path) -> anyhow::Result<Workspace> {
    let output = tokio::process::Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .stdin(Stdio::null())
        .output()
        .await
        .context("running `cargo metadata` (is cargo installed? https://rustup.rs)")?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed in {}:\n{}",
            root.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_metadata(root, &output.stdout)
}

pub(super) fn parse_metadata(root: &Path, json: &[u8]) -> anyhow::Result<Workspace> {
    let value: serde_json::Value =
        serde_json::from_slice(json).context("reading the output of `cargo metadata`")?;
    let target_dir = value["target_directory"]
        .as_str()
        .map_or_else(|| root.join("target"), PathBuf::from);
    let mut binaries = BTreeMap::new();
    for package in value["packages"].as_array().into_iter().flatten() {
        let Some(name) = package["name"].as_str() else {
            continue;
        };
        let bins: Vec<&str> = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
            })
            .filter_map(|t| t["name"].as_str())
            .collect();
        // The binary named like the package, else the only one.
        let bin = bins
            .iter()
            .find(|&&b| b == name)
            .or_else(|| if bins.len() == 1 { bins.first() } else { None });
        if let Some(bin) = bin {
            binaries.insert(name.to_owned(), (*bin).to_owned());
        }
    }
    Ok(Workspace {
        root: root.to_path_buf(),
        target_dir,
        binaries,
    })
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The target triple of static builds on this machine.
pub(super) fn target_triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// `RUSTFLAGS` for a static build, keeping the caller's own flags.
pub(super) fn static_rustflags(existing: Option<&str>) -> String {
    match existing.map(str::trim).filter(|s| !s.is_empty()) {
        Some(flags) => format!("{flags} -C target-feature=+crt-static"),
        None => "-C target-feature=+crt-static".to_owned(),
    }
}

/// Builds static release binaries of `packages`; returns each package's binary path,
/// or the error that kept it from building.
pub(super) async fn cargo_build(
    workspace: &Workspace,
    packages: &[String],
    out: Output,
) -> BTreeMap<String, anyhow::Result<PathBuf>> {
    let mut results = BTreeMap::new();
    if packages.is_empty() {
        return results;
    }
    out.step(
        "cargo",
        &format!("building static release binaries: {}", packages.join(", ")),
    );
    // One cargo run for all (shared dependencies build once); when it fails, one per
    // package, so that the packages that do compile still get images.
    let together = run_cargo(workspace, packages, out).await;
    let outcomes: Vec<(String, anyhow::Result<()>)> = match together {
        Ok(()) => packages.iter().map(|p| (p.clone(), Ok(()))).collect(),
        Err(error) if packages.len() == 1 => vec![(packages[0].clone(), Err(error))],
        Err(_) => {
            out.warn("the combined cargo build failed; building each service on its own");
            let mut each = Vec::new();
            for package in packages {
                let result = run_cargo(workspace, std::slice::from_ref(package), out).await;
                each.push((package.clone(), result));
            }
            each
        }
    };
    for (package, outcome) in outcomes {
        let result = outcome.and_then(|()| {
            let bin = workspace.binaries.get(&package).unwrap_or(&package);
            let path = workspace
                .target_dir
                .join(target_triple())
                .join("release")
                .join(bin);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "cargo built {package} but {} does not exist",
                    path.display()
                )
            }
        });
        results.insert(package, result);
    }
    results
}

async fn run_cargo(workspace: &Workspace, packages: &[String], out: Output) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new(cargo());
    command
        .current_dir(&workspace.root)
        .args(["build", "--release", "--target"])
        .arg(target_triple());
    for package in packages {
        command.args(["-p", package]);
    }
    // Static only for the target: with an explicit --target, build scripts and proc
    // macros are built for the host without these flags, as they must be.
    let flags = static_rustflags(std::env::var("RUSTFLAGS").ok().as_deref());
    command
        .env("RUSTFLAGS", flags)
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    run_logged(command, "cargo", &cargo_step, out)
        .await
        .with_context(|| {
            format!(
                "`cargo build --release --target {} -p {}` failed in {}\n\
                 remedy: fix the compile error above (try `cargo build -p {}`), or pass \
                 prebuilt static binaries with --binaries DIR",
                target_triple(),
                packages.join(" -p "),
                workspace.root.display(),
                packages.join(" -p ")
            )
        })
}

/// Cargo lines worth a progress step: workspace crates compiling (not the hundreds of
/// dependencies), waiting for another build's lock, the end.
fn cargo_step(line: &str) -> bool {
    (line.starts_with("Compiling ") && line.contains(" (/"))
        || line.starts_with("Blocking ")
        || line.starts_with("Finished ")
}

/// Fails unless the file at `path` is a static ELF executable.
pub(super) fn ensure_static(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    match elf::linkage(bytes)
        .with_context(|| format!("reading {} as an ELF executable", path.display()))?
    {
        Linkage::Static => Ok(()),
        Linkage::Dynamic { interpreter } => bail!(
            "{} is dynamically linked (it needs {interpreter}), so it cannot run in an image \
             FROM scratch\n\
             remedy: build it with RUSTFLAGS='-C target-feature=+crt-static' and an explicit \
             --target {} (shopctl does that when it builds from the workspace)",
            path.display(),
            target_triple()
        ),
    }
}

/// The git revision of the workspace (`-dirty` with uncommitted changes), if any.
pub(super) async fn git_revision(root: &Path) -> Option<String> {
    let head = tokio::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .stdin(Stdio::null())
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())?;
    let mut revision = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let dirty = tokio::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stdin(Stdio::null())
        .output()
        .await
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    if dirty {
        revision.push_str("-dirty");
    }
    Some(revision)
}

/// The revision label for prebuilt binaries.
pub(super) fn prebuilt_revision() -> String {
    std::env::var(REVISION_ENV)
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The build context of a service image.
pub(super) fn context(
    service: &str,
    version: &str,
    revision: &str,
    binary: Vec<u8>,
    ca_bundle: Vec<u8>,
) -> BuildContext {
    let dockerfile = SERVICE_DOCKERFILE
        .replace("@SERVICE@", service)
        .replace("@VERSION@", version)
        .replace("@REVISION@", revision);
    let mut context = BuildContext::new();
    context.add("Dockerfile", 0o644, dockerfile.into_bytes());
    context.add("ca-certificates.crt", 0o644, ca_bundle);
    context.add(service, 0o755, binary);
    context
}

/// The host's CA bundle, copied into every service image.
pub(super) fn ca_bundle() -> anyhow::Result<Vec<u8>> {
    std::fs::read(CA_BUNDLE).with_context(|| {
        format!(
            "reading the CA bundle {CA_BUNDLE} (service images need it for outbound TLS)\n\
             remedy: `apt-get install -y ca-certificates`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_dockerfile_is_filled_in() {
        let context = context(
            "catalog",
            "0.1.0",
            "abc123",
            b"\x7fELF".to_vec(),
            b"CA".to_vec(),
        );
        let tar = context.to_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut dockerfile = String::new();
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            if name == "Dockerfile" {
                std::io::Read::read_to_string(&mut entry, &mut dockerfile).unwrap();
            }
            names.push((name, entry.header().mode().unwrap()));
        }
        assert!(names.contains(&("catalog".to_owned(), 0o755)));
        assert!(names.contains(&("ca-certificates.crt".to_owned(), 0o644)));
        assert!(!dockerfile.contains('@'), "{dockerfile}");
        for line in [
            "FROM scratch",
            "COPY catalog /catalog",
            "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
            "EXPOSE 8080",
            "ENTRYPOINT [\"/catalog\"]",
            "CMD [\"serve\"]",
        ] {
            assert!(dockerfile.contains(line), "{line} in\n{dockerfile}");
        }
        assert!(dockerfile.contains("org.opencontainers.image.version=\"0.1.0\""));
        assert!(dockerfile.contains("org.opencontainers.image.revision=\"abc123\""));
    }

    #[test]
    fn cargo_progress_shows_workspace_crates_only() {
        assert!(cargo_step(
            "Compiling catalog v0.1.0 (/work/main/services/catalog)"
        ));
        assert!(!cargo_step("Compiling serde v1.0.219"));
        assert!(cargo_step(
            "Blocking waiting for file lock on build directory"
        ));
        assert!(cargo_step(
            "Finished `release` profile [optimized] target(s) in 3m"
        ));
    }

    #[test]
    fn rustflags_keep_the_callers_flags() {
        assert_eq!(static_rustflags(None), "-C target-feature=+crt-static");
        assert_eq!(
            static_rustflags(Some("  ")),
            "-C target-feature=+crt-static"
        );
        assert_eq!(
            static_rustflags(Some("-C opt-level=3")),
            "-C opt-level=3 -C target-feature=+crt-static"
        );
    }

    #[test]
    fn metadata_names_binaries_and_target_dir() {
        let json = br#"{
            "target_directory": "/w/target",
            "packages": [
                {"name": "catalog", "targets": [
                    {"name": "catalog", "kind": ["lib"]},
                    {"name": "catalog", "kind": ["bin"]}]},
                {"name": "shopkit", "targets": [{"name": "shopkit", "kind": ["lib"]}]},
                {"name": "cart", "targets": [{"name": "cart-server", "kind": ["bin"]}]}
            ]
        }"#;
        let workspace = parse_metadata(Path::new("/w"), json).unwrap();
        assert_eq!(workspace.target_dir, PathBuf::from("/w/target"));
        assert_eq!(
            workspace.binaries.get("catalog").map(String::as_str),
            Some("catalog")
        );
        assert_eq!(
            workspace.binaries.get("cart").map(String::as_str),
            Some("cart-server")
        );
        assert!(!workspace.binaries.contains_key("shopkit"));
    }

    #[test]
    fn this_checkout_is_a_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert!(is_workspace(root));
        assert!(!is_workspace(Path::new(env!("CARGO_MANIFEST_DIR"))));
    }

    #[test]
    fn dynamic_binaries_are_refused_with_a_remedy() {
        let exe = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&exe).unwrap();
        if let Err(error) = ensure_static(&exe, &bytes) {
            assert!(error.to_string().contains("crt-static"), "{error}");
        }
        assert!(ensure_static(Path::new("x"), b"not elf at all, really").is_err());
    }
}
