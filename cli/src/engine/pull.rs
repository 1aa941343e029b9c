//! Pulling a missing image from its registry, with a progress bar per layer.

use std::collections::HashMap;

use anyhow::Context;
use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Output;

/// `name:tag` → (`name`, `tag`); a registry port (`host:5000/x`) is not a tag.
pub fn split_reference(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// Pulls `image`. Progress goes to stderr: one bar per layer on a terminal, NDJSON
/// steps with `--json`. Fails fast (with the engine's reason) when no registry answers.
pub async fn pull(docker: &Docker, image: &str, out: Output) -> anyhow::Result<()> {
    let (name, tag) = split_reference(image);
    let options = CreateImageOptions {
        from_image: Some(name.to_owned()),
        tag: Some(tag.to_owned()),
        ..Default::default()
    };
    let bars = MultiProgress::with_draw_target(if out.is_json() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style = ProgressStyle::with_template(
        "  {prefix:<14} {msg:<12} {bytes:>10}/{total_bytes:<10} {wide_bar}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut layers: HashMap<String, ProgressBar> = HashMap::new();
    out.step(image, "pulling");
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("pulling {image}"))?;
        if let Some(error) = info.error_detail.and_then(|e| e.message) {
            anyhow::bail!("pulling {image}: {error}");
        }
        let (Some(id), Some(status)) = (info.id, info.status) else {
            continue;
        };
        let bar = layers.entry(id.clone()).or_insert_with(|| {
            let bar = bars.add(ProgressBar::new(0));
            bar.set_style(style.clone());
            bar.set_prefix(id);
            bar
        });
        if let Some(detail) = info.progress_detail {
            if let Some(total) = detail.total.and_then(|t| u64::try_from(t).ok()) {
                bar.set_length(total);
            }
            if let Some(current) = detail.current.and_then(|c| u64::try_from(c).ok()) {
                bar.set_position(current);
            }
        }
        bar.set_message(status);
    }
    for bar in layers.values() {
        bar.finish();
    }
    out.step(image, "pulled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split_into_name_and_tag() {
        assert_eq!(split_reference("postgres:15"), ("postgres", "15"));
        assert_eq!(split_reference("traefik"), ("traefik", "latest"));
        assert_eq!(
            split_reference("registry.local:5000/shopstack/catalog"),
            ("registry.local:5000/shopstack/catalog", "latest")
        );
        assert_eq!(
            split_reference("registry.local:5000/shopstack/catalog:0.1"),
            ("registry.local:5000/shopstack/catalog", "0.1")
        );
    }
}
