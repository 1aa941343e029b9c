//! Talking to the engine about images: what exists, and `POST /build` with an
//! in-memory context, its output turned into progress steps.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use futures::StreamExt;

use super::LABEL_SOURCE_HASH;
use super::context::BuildContext;
use crate::output::Output;

/// Builds, imports and archive transfers legitimately take many minutes; the engine
/// client's default request timeout (two minutes) is for quick calls.
pub(super) const LONG_REQUEST: Duration = Duration::from_secs(60 * 60);

/// How many lines of build output an error carries.
pub(super) const TAIL_LINES: usize = 30;

/// Progress lines are cut to this many characters (a `RUN` line can be huge).
const STEP_WIDTH: usize = 110;

/// An image that exists on the engine.
#[derive(Debug, Clone)]
pub(super) struct Existing {
    pub id: String,
    pub labels: HashMap<String, String>,
}

impl Existing {
    pub(super) fn source_hash(&self) -> Option<&str> {
        self.labels.get(LABEL_SOURCE_HASH).map(String::as_str)
    }
}

/// The image `reference` if the engine has it.
pub(super) async fn existing(docker: &Docker, reference: &str) -> anyhow::Result<Option<Existing>> {
    match docker.inspect_image(reference).await {
        Ok(image) => Ok(Some(Existing {
            id: image.id.unwrap_or_default(),
            labels: image.config.and_then(|c| c.labels).unwrap_or_default(),
        })),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("inspecting image {reference}")),
    }
}

/// The last lines of some output, for error messages.
#[derive(Debug, Default)]
pub(super) struct Tail {
    lines: VecDeque<String>,
}

impl Tail {
    pub(super) fn push(&mut self, line: &str) {
        let line = strip_ansi(line);
        let line = line.trim_end();
        // The builder's own bookkeeping says nothing about a failure.
        if line.is_empty()
            || line.starts_with("Removing intermediate container")
            || line.trim_start().starts_with("---> ")
        {
            return;
        }
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }

    pub(super) fn render(&self) -> String {
        if self.lines.is_empty() {
            return "(no output)".to_owned();
        }
        let mut text = String::new();
        for line in &self.lines {
            text.push_str("    ");
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// `line` without terminal colour sequences (the legacy builder colours stderr).
pub(super) fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte (a letter).
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Cuts `line` to the width of a progress line.
pub(super) fn shorten(line: &str) -> String {
    let line = line.trim();
    if line.chars().count() <= STEP_WIDTH {
        return line.to_owned();
    }
    let mut short: String = line.chars().take(STEP_WIDTH - 1).collect();
    short.push('…');
    short
}

/// What to build and how.
pub(super) struct BuildRequest<'a> {
    pub component: &'a str,
    pub image: &'a str,
    pub context: &'a BuildContext,
    pub labels: HashMap<String, String>,
    /// Ignore Docker's layer cache (a forced rebuild picks up new Debian packages).
    pub no_cache: bool,
}

/// `docker build` through the engine API; returns the new image's id.
pub(super) async fn build(
    docker: &Docker,
    request: BuildRequest<'_>,
    out: Output,
) -> anyhow::Result<String> {
    let docker = docker.clone().with_timeout(LONG_REQUEST);
    let mut context = request.context.clone();
    context.append_labels("Dockerfile", &request.labels)?;
    let tar = context
        .to_tar()
        .with_context(|| format!("packing the build context of {}", request.image))?;
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".to_owned(),
        t: Some(request.image.to_owned()),
        // The build containers reach the Debian archive through the host's network:
        // a host resolver on 127.x is unreachable from a bridge network.
        networkmode: Some("host".to_owned()),
        nocache: request.no_cache,
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut tail = Tail::default();
    let mut id = None;
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                let cause = match e {
                    bollard::errors::Error::DockerStreamError { error } => error,
                    other => other.to_string(),
                };
                bail!(
                    "building {} failed: {}\nlast build output:\n{}remedy: fix the cause above; \
                     if a package download failed, check that this host reaches the Debian \
                     mirror, then run `shopctl images build {}` again",
                    request.image,
                    cause.trim(),
                    tail.render(),
                    request.component
                );
            }
        };
        if let Some(text) = info.stream.as_deref() {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tail.push(line);
                if line.starts_with("Step ") {
                    out.step(request.component, &shorten(line));
                }
            }
        }
        if let Some(status) = info.status.as_deref() {
            tail.push(status);
        }
        if let Some(image_id) = info.aux.and_then(|aux| aux.id) {
            id = Some(image_id);
        }
    }
    if let Some(id) = id {
        return Ok(id);
    }
    // Older engines report the id only as "Successfully built …": ask instead.
    match existing(&docker, request.image).await? {
        Some(image) => Ok(image.id),
        None => bail!(
            "building {} ended without an image\nlast build output:\n{}",
            request.image,
            tail.render()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let mut tail = Tail::default();
        for n in 0..100 {
            tail.push(&format!("line {n}\n"));
        }
        let text = tail.render();
        assert_eq!(text.lines().count(), TAIL_LINES);
        assert!(text.starts_with("    line 70\n"));
        assert!(text.ends_with("    line 99\n"));
        assert_eq!(Tail::default().render(), "(no output)");
    }

    #[test]
    fn tail_drops_colours_and_bookkeeping() {
        let mut tail = Tail::default();
        tail.push("\u{1b}[91mE: Unable to locate package foo\n\u{1b}[0m");
        tail.push("\u{1b}[0m");
        tail.push(" ---> Running in 0c58b96b0730");
        tail.push("Removing intermediate container 0c58b96b0730");
        assert_eq!(tail.render(), "    E: Unable to locate package foo\n");
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn long_steps_are_shortened() {
        assert_eq!(
            shorten("  Step 1/3 : FROM scratch\n"),
            "Step 1/3 : FROM scratch"
        );
        let long = format!("Step 2/3 : RUN {}", "x".repeat(500));
        let short = shorten(&long);
        assert_eq!(short.chars().count(), STEP_WIDTH);
        assert!(short.ends_with('…'));
    }
}
