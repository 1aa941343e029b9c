//! The Debian base image, made without a registry: `debootstrap --variant=minbase`,
//! trimmed, and imported as `shopstack/debian-base:bookworm`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::builder::{LONG_REQUEST, Tail, shorten};
use super::catalog::{BASE_DEFAULT_SOURCES, BASE_IMAGE, BASE_ROOTFS, DEBIAN_SUITE};
use super::context::BuildContext;
use super::{LABEL_SOURCE_HASH, TOOL_DIRS, find_tool};
use crate::output::Output;

/// The host's deb822 APT sources; its mirror is the one debootstrap uses.
const HOST_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
/// The classic one-line format, for hosts without deb822 sources.
const HOST_SOURCES_LIST: &str = "/etc/apt/sources.list";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// What debootstrap leaves behind that a container never needs (paths inside the
/// root). Caches and lists are re-fetched by `apt-get update`.
const PRUNE: &[&str] = &[
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/archives/partial/*",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/log/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/lintian/*",
    "usr/share/locale/*",
    // The engine mounts its own /dev, resolv.conf, hostname and hosts.
    "dev/*",
    "etc/resolv.conf",
    "etc/hostname",
    "etc/hosts",
    "etc/apt/sources.list",
];

/// Kept although their directories are pruned: licences aside, what localedef reads.
const KEEP: &[&str] = &["usr/share/locale/locale.alias"];

/// debootstrap lines worth a progress step (the rest go to the error tail only).
const PHASES: &[&str] = &[
    "I: Retrieving Release",
    "I: Resolving dependencies",
    "I: Checking component",
    "I: Installing core packages",
    "I: Unpacking the base system",
    "I: Configuring the base system",
    "I: Base system installed",
];

/// The APT sources and mirror the base is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sources {
    /// The deb822 file written to /etc/apt/sources.list.d/debian.sources.
    pub file: Vec<u8>,
    /// The archive debootstrap downloads from.
    pub mirror: String,
}

/// The host's sources when they are bookworm's (a local mirror keeps working inside
/// the images, and the security suite comes along), else deb.debian.org.
pub(super) fn sources() -> Sources {
    if let Ok(text) = std::fs::read_to_string(HOST_SOURCES)
        && let Some(mirror) = deb822_mirror(&text, DEBIAN_SUITE)
    {
        return Sources {
            file: text.into_bytes(),
            mirror,
        };
    }
    let mirror = std::fs::read_to_string(HOST_SOURCES_LIST)
        .ok()
        .and_then(|text| one_line_mirror(&text, DEBIAN_SUITE))
        .unwrap_or_else(|| DEFAULT_MIRROR.to_owned());
    let default = String::from_utf8_lossy(BASE_DEFAULT_SOURCES).replace(DEFAULT_MIRROR, &mirror);
    Sources {
        file: default.into_bytes(),
        mirror,
    }
}

/// The first URI of the first `Types: deb` stanza whose suites include `suite`.
pub(super) fn deb822_mirror(text: &str, suite: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let mut types = Vec::new();
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut enabled = true;
        for line in stanza.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let values = value.split_whitespace().map(str::to_owned);
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types.extend(values),
                "uris" => uris.extend(values),
                "suites" => suites.extend(values),
                "enabled" => enabled = value.trim() != "no",
                _ => {}
            }
        }
        if enabled
            && types.iter().any(|t| t == "deb")
            && suites.iter().any(|s| s == suite)
            && let Some(uri) = uris.into_iter().next()
        {
            return Some(uri);
        }
    }
    None
}

/// The mirror of the first `deb URI suite …` line of a sources.list.
pub(super) fn one_line_mirror(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            return None;
        }
        let mut uri = words.next()?;
        // Options in brackets: `deb [arch=amd64 signed-by=…] URI suite`.
        if uri.starts_with('[') {
            loop {
                if uri.ends_with(']') {
                    break;
                }
                uri = words.next()?;
            }
            uri = words.next()?;
        }
        (words.next()? == suite).then(|| uri.to_owned())
    })
}

/// The recipe's hash: the overlay files and the sources. The base is not rebuilt
/// when it changes (debootstrap fetches whatever the archive has today anyway), but a
/// changed recipe is reported.
pub(super) fn recipe_hash(sources: &Sources) -> String {
    let mut context = BuildContext::from_sources(BASE_ROOTFS);
    context.add(
        "etc/apt/sources.list.d/debian.sources",
        0o644,
        sources.file.clone(),
    );
    context.source_hash(&[DEBIAN_SUITE, "minbase"])
}

/// Fails with the remedy unless debootstrap can run here (it needs root and the tool).
pub(super) fn preflight() -> anyhow::Result<PathBuf> {
    let Some(debootstrap) = find_tool("debootstrap", TOOL_DIRS) else {
        bail!(
            "debootstrap is not installed; it makes the Debian base image without a registry\n\
             remedy: `apt-get install -y debootstrap` (as root), then run `shopctl images build` again"
        );
    };
    match effective_uid() {
        Some(0) => Ok(debootstrap),
        Some(uid) => bail!(
            "making the Debian base image needs root (debootstrap creates device nodes and \
             chroots), but shopctl runs as uid {uid}\n\
             remedy: run `sudo shopctl images build debian-base` once; the other images \
             build without root"
        ),
        None => bail!(
            "cannot tell whether shopctl runs as root (no /proc/self/status)\n\
             remedy: run `shopctl images build` as root on Linux"
        ),
    }
}

/// The effective uid of this process, from /proc (no libc calls: unsafe is forbidden).
fn effective_uid() -> Option<u32> {
    effective_uid_in(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// `Uid:` lists the real, effective, saved and filesystem uids.
fn effective_uid_in(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// debootstraps, trims and imports the base; returns the new image's id.
pub(super) async fn build(
    docker: &Docker,
    debootstrap: &Path,
    out: Output,
) -> anyhow::Result<String> {
    let sources = sources();
    let hash = recipe_hash(&sources);
    // On disk, not in /tmp: /tmp may be a small tmpfs and the root is ~200 MB before
    // trimming.
    let mut work = tempfile::Builder::new();
    work.prefix("shopstack-debootstrap-");
    let work = work
        .tempdir_in("/var/tmp")
        .or_else(|_| work.tempdir())
        .context("creating a directory for debootstrap (in /var/tmp or $TMPDIR)")?;
    let root = work.path().join("rootfs");

    let mut command = tokio::process::Command::new(debootstrap);
    command.arg("--variant=minbase");
    if sources.mirror.starts_with("https:") {
        // minbase has no CA certificates; apt needs them for an https mirror.
        command.arg("--include=ca-certificates");
    }
    command
        .arg(DEBIAN_SUITE)
        .arg(&root)
        .arg(&sources.mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    out.step(
        "debian-base",
        &format!(
            "debootstrap --variant=minbase {DEBIAN_SUITE} from {}",
            sources.mirror
        ),
    );
    let is_phase = |line: &str| PHASES.iter().any(|p| line.starts_with(p));
    run_logged(command, "debian-base", &is_phase, out)
        .await
        .with_context(|| {
            format!(
                "debootstrap of Debian {DEBIAN_SUITE} from {} failed\n\
                 remedy: check that this host reaches the mirror (`apt-get update` works), \
                 then run `shopctl images build debian-base` again",
                sources.mirror
            )
        })?;

    out.step(
        "debian-base",
        "trimming caches, docs, man pages and locales",
    );
    let root_for_trim = root.clone();
    let file = sources.file.clone();
    let tar = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        trim(&root_for_trim, &file)?;
        pack(&root_for_trim)
    })
    .await
    .context("the trimming task died")??;

    out.step(
        "debian-base",
        &format!("importing {BASE_IMAGE} ({} MB)", tar.len() / 1_000_000),
    );
    let (repo, tag) = BASE_IMAGE.split_once(':').unwrap_or((BASE_IMAGE, "latest"));
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
        message: Some(format!("debootstrap --variant=minbase {DEBIAN_SUITE}")),
        changes: vec![
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            format!("LABEL {LABEL_SOURCE_HASH}=\"{hash}\""),
            "CMD [\"bash\"]".to_owned(),
        ],
        ..Default::default()
    };
    let docker = docker.clone().with_timeout(LONG_REQUEST);
    let mut stream = docker.create_image(Some(options), Some(bollard::body_full(tar.into())), None);
    while let Some(item) = stream.next().await {
        item.with_context(|| format!("importing the debootstrapped root as {BASE_IMAGE}"))?;
    }
    let image = super::builder::existing(&docker, BASE_IMAGE)
        .await?
        .with_context(|| format!("the engine accepted the import but has no {BASE_IMAGE}"))?;
    Ok(image.id)
}

/// Runs `command`, reporting the lines `is_step` picks as progress steps and keeping
/// the last lines for the error.
pub(super) async fn run_logged(
    mut command: tokio::process::Command,
    component: &str,
    is_step: &dyn Fn(&str) -> bool,
    out: Output,
) -> anyhow::Result<()> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        bail!("{program}: no output pipes");
    };
    let mut stdout = BufReader::new(stdout).lines();
    let mut stderr = BufReader::new(stderr).lines();
    let mut tail = Tail::default();
    let (mut stdout_open, mut stderr_open) = (true, true);
    loop {
        let (from_stdout, line) = tokio::select! {
            line = stdout.next_line(), if stdout_open => (true, line),
            line = stderr.next_line(), if stderr_open => (false, line),
            else => break,
        };
        match line.with_context(|| format!("reading the output of {program}"))? {
            Some(line) => {
                if is_step(line.trim_start()) {
                    out.step(component, &shorten(&line));
                }
                tail.push(&line);
            }
            None if from_stdout => stdout_open = false,
            None => stderr_open = false,
        }
    }
    let status = child
        .wait()
        .await
        .with_context(|| format!("waiting for {program}"))?;
    if !status.success() {
        bail!(
            "{program} exited with {status}\nlast output:\n{}",
            tail.render()
        );
    }
    Ok(())
}

/// Lays the overlay over the root, writes the sources and prunes.
fn trim(root: &Path, sources_file: &[u8]) -> anyhow::Result<()> {
    for file in BASE_ROOTFS {
        write_file(&root.join(file.path), file.contents, file.mode)?;
    }
    write_file(
        &root.join("etc/apt/sources.list.d/debian.sources"),
        sources_file,
        0o644,
    )?;
    let keep: Vec<(PathBuf, Vec<u8>)> = KEEP
        .iter()
        .filter_map(|path| {
            let full = root.join(path);
            std::fs::read(&full).ok().map(|bytes| (full, bytes))
        })
        .collect();
    for pattern in PRUNE {
        prune(root, pattern)?;
    }
    for (path, bytes) in keep {
        write_file(&path, &bytes, 0o644)?;
    }
    // A fresh machine id per container, like Debian's own images.
    write_file(&root.join("etc/machine-id"), b"", 0o444)?;
    Ok(())
}

/// Removes `dir/*` (a pattern ending in `/*`, optionally with a `*.ext` file name) or a
/// single path, inside `root`.
fn prune(root: &Path, pattern: &str) -> anyhow::Result<()> {
    let (dir, name) = match pattern.rsplit_once('/') {
        Some((dir, name)) => (root.join(dir), name),
        None => (root.to_path_buf(), pattern),
    };
    if !name.contains('*') {
        return remove(&dir.join(name));
    }
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(prefix) && file_name.ends_with(suffix) {
            remove(&entry.path())?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let result = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    result.with_context(|| format!("removing {}", path.display()))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // A symlink (resolv.conf may be one) must not be written through into the host.
    remove(path)?;
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// The root as a tar, owners and modes kept, symlinks as symlinks.
fn pack(root: &Path) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    builder
        .append_dir_all(".", root)
        .with_context(|| format!("packing {}", root.display()))?;
    builder.into_inner().context("finishing the root tar")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "Types: deb\n\
        # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
        URIs: http://deb.debian.org/debian\n\
        Suites: bookworm bookworm-updates\n\
        Components: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
        \n\
        Types: deb\n\
        URIs: http://deb.debian.org/debian-security\n\
        Suites: bookworm-security\n\
        Components: main\n";

    #[test]
    fn mirror_from_deb822_sources() {
        assert_eq!(
            deb822_mirror(HOST, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(
            deb822_mirror(HOST, "bookworm-security").as_deref(),
            Some("http://deb.debian.org/debian-security")
        );
        assert_eq!(deb822_mirror(HOST, "trixie"), None);
        let disabled = "Types: deb\nURIs: http://a/debian\nSuites: bookworm\nEnabled: no\n\n\
                        Types: deb-src deb\nURIs: http://b/debian\nSuites: bookworm\n";
        assert_eq!(
            deb822_mirror(disabled, "bookworm").as_deref(),
            Some("http://b/debian")
        );
    }

    #[test]
    fn mirror_from_one_line_sources() {
        let text = "# comment\ndeb-src http://src/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            one_line_mirror(text, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            one_line_mirror("deb http://m/debian bookworm main", "bookworm").as_deref(),
            Some("http://m/debian")
        );
        assert_eq!(
            one_line_mirror("deb http://m/debian trixie main", "bookworm"),
            None
        );
    }

    #[test]
    fn default_sources_name_bookworm_and_security() {
        let text = String::from_utf8_lossy(BASE_DEFAULT_SOURCES);
        assert_eq!(
            deb822_mirror(&text, "bookworm").as_deref(),
            Some(DEFAULT_MIRROR)
        );
        assert!(deb822_mirror(&text, "bookworm-security").is_some());
    }

    #[test]
    fn trimming_prunes_and_overlays() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "usr/share/doc/bash/README",
            "usr/share/locale/de/LC_MESSAGES/x.mo",
            "usr/share/locale/locale.alias",
            "var/cache/apt/archives/a.deb",
            "var/cache/apt/archives/lock",
            "var/lib/apt/lists/x_Packages",
            "etc/resolv.conf",
            "usr/bin/bash",
        ] {
            write_file(&root.join(path), b"x", 0o644).unwrap();
        }
        trim(root, b"Types: deb\n").unwrap();
        assert!(!root.join("usr/share/doc/bash").exists());
        assert!(!root.join("usr/share/locale/de").exists());
        assert!(root.join("usr/share/locale/locale.alias").exists());
        assert!(!root.join("var/cache/apt/archives/a.deb").exists());
        assert!(root.join("var/cache/apt/archives/lock").exists());
        assert!(!root.join("var/lib/apt/lists/x_Packages").exists());
        assert!(!root.join("etc/resolv.conf").exists());
        assert!(root.join("usr/bin/bash").exists());
        assert!(root.join("usr/sbin/policy-rc.d").exists());
        assert_eq!(
            std::fs::read(root.join("etc/apt/sources.list.d/debian.sources")).unwrap(),
            b"Types: deb\n"
        );
        let tar = pack(root).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(
            names.iter().any(|n| n.ends_with("usr/bin/bash")),
            "{names:?}"
        );
    }

    #[test]
    fn effective_uid_is_the_second_uid() {
        let status = "Name:\tshopctl\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid_in(status), Some(0));
        assert_eq!(effective_uid_in("Name:\tx\n"), None);
        assert!(effective_uid().is_some());
    }

    #[test]
    fn recipe_hash_follows_the_sources() {
        let a = Sources {
            file: b"a".to_vec(),
            mirror: "http://a".into(),
        };
        let b = Sources {
            file: b"b".to_vec(),
            mirror: "http://a".into(),
        };
        assert_ne!(recipe_hash(&a), recipe_hash(&b));
        assert_eq!(recipe_hash(&a), recipe_hash(&a.clone()));
    }
}
