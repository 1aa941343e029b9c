//! The theme: tera templates and static assets, embedded in the binary and replaceable
//! file by file from `STOREFRONT_THEME_DIR` (`templates/<name>.html`, `static/<file>`).
//! `shopctl init` writes the embedded default theme into the shop's `theme/` directory,
//! so a merchant edits a copy of exactly what is served.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;

use crate::config::Branding;

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../theme/", $name)))),*]
    };
}

/// Every file of the default theme, by its path under the theme directory.
pub const DEFAULT_THEME: &[(&str, &str)] = embedded![
    "templates/base.html",
    "templates/macros.html",
    "templates/home.html",
    "templates/listing.html",
    "templates/product.html",
    "templates/cart.html",
    "templates/cart_lines.html",
    "templates/checkout.html",
    "templates/pay.html",
    "templates/order.html",
    "templates/account.html",
    "templates/signin.html",
    "templates/signup.html",
    "templates/error.html",
    "templates/admin/index.html",
    "templates/admin/orders.html",
    "static/style.css",
    "static/app.js",
];

/// One static file, ready to serve.
#[derive(Debug, Clone)]
pub struct Asset {
    pub body: Bytes,
    pub content_type: &'static str,
    /// A strong validator (a hash of the content), for `If-None-Match`.
    pub etag: String,
}

impl Asset {
    fn new(name: &str, body: Bytes) -> Self {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(&body);
        Asset {
            content_type: content_type(name),
            etag: format!("\"{}\"", hex::encode(&hash[..12])),
            body,
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The loaded theme.
#[derive(Debug)]
pub struct Theme {
    pub tera: tera::Tera,
    pub assets: HashMap<String, Asset>,
}

/// The stylesheet of the shop's colours, generated from `shop.toml` (validated colours
/// only, see [`crate::config::parse_color`]): `/static/theme.css`.
pub fn branding_css(branding: &Branding) -> String {
    format!(
        ":root{{--primary:{};--accent:{};}}\n",
        branding.primary, branding.accent
    )
}

impl Theme {
    /// The embedded theme with the files of `dir` laid over it.
    pub fn load(dir: Option<&Path>, branding: &Branding) -> anyhow::Result<Theme> {
        let mut files: HashMap<String, Bytes> = DEFAULT_THEME
            .iter()
            .map(|(name, body)| ((*name).to_owned(), Bytes::from_static(body.as_bytes())))
            .collect();
        if let Some(dir) = dir {
            let overrides = read_tree(dir)
                .with_context(|| format!("reading the theme in {}", dir.display()))?;
            tracing::info!(dir = %dir.display(), files = overrides.len(), "theme overrides loaded");
            files.extend(overrides);
        }
        let mut tera = tera::Tera::default();
        let mut templates = Vec::new();
        let mut assets = HashMap::new();
        for (name, body) in &files {
            if let Some(template) = name.strip_prefix("templates/") {
                let text =
                    std::str::from_utf8(body).with_context(|| format!("{name} is not UTF-8"))?;
                templates.push((template.to_owned(), text.to_owned()));
            } else if let Some(asset) = name.strip_prefix("static/") {
                assets.insert(asset.to_owned(), Asset::new(asset, body.clone()));
            }
        }
        tera.add_raw_templates(templates)
            .context("compiling the theme's templates")?;
        assets.insert(
            "theme.css".into(),
            Asset::new("theme.css", Bytes::from(branding_css(branding))),
        );
        Ok(Theme { tera, assets })
    }
}

/// Every file under `dir`, by its relative path (`templates/home.html`).
fn read_tree(dir: &Path) -> anyhow::Result<Vec<(String, Bytes)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let name = relative.to_string_lossy().replace('\\', "/");
                out.push((name, Bytes::from(std::fs::read(&path)?)));
            }
        }
    }
    Ok(out)
}

/// Writes the default theme into `dir` (what `shopctl init` does for a new shop); files
/// that exist are left alone.
pub fn write_default(dir: &Path) -> anyhow::Result<()> {
    for (name, body) in DEFAULT_THEME {
        let path = dir.join(name);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_theme_compiles_and_carries_its_assets() {
        let theme = Theme::load(None, &Branding::default()).unwrap();
        assert!(theme.tera.get_template_names().any(|n| n == "home.html"));
        assert!(
            theme.assets["style.css"]
                .content_type
                .starts_with("text/css")
        );
        assert!(
            String::from_utf8_lossy(&theme.assets["theme.css"].body).contains("--primary:#1f4e79")
        );
    }

    #[test]
    fn a_theme_directory_replaces_files_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        std::fs::create_dir_all(dir.path().join("static")).unwrap();
        std::fs::write(
            dir.path().join("templates/error.html"),
            "custom {{ message }}",
        )
        .unwrap();
        std::fs::write(dir.path().join("static/style.css"), "body{}").unwrap();
        let theme = Theme::load(Some(dir.path()), &Branding::default()).unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("message", "<b>");
        assert_eq!(
            theme.tera.render("error.html", &ctx).unwrap(),
            "custom &lt;b&gt;"
        );
        assert_eq!(&theme.assets["style.css"].body[..], b"body{}");
        assert!(
            theme.tera.get_template_names().any(|n| n == "home.html"),
            "the rest stays"
        );
    }

    #[test]
    fn write_default_leaves_the_merchants_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("static")).unwrap();
        std::fs::write(dir.path().join("static/style.css"), "mine").unwrap();
        write_default(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("static/style.css")).unwrap(),
            "mine"
        );
        assert!(dir.path().join("templates/base.html").exists());
    }
}
