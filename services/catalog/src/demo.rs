//! The demo catalog: 27 categories in a tree and over a thousand published products with
//! variants, stock and images, generated from a fixed seed so that every shop (and every
//! benchmark run) gets exactly the same catalog, ids included.
//!
//! [`seed`] loads it once: a second run finds its marker in `seed_runs` and does nothing,
//! and a catalog that already holds data of its own is left alone.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{StockChange, VariantColumns, WriteMode};

/// Bump when the generated catalog changes; recorded with the marker.
pub const DEMO_VERSION: i32 = 1;
const SEED_NAME: &str = "demo";
/// The generator's seed: change it and every shop's demo changes.
const SEED: u64 = 0x5EED_CA7A_1065;
/// Published products per leaf category (22 leaves: 1,056 products).
const PRODUCTS_PER_LEAF: usize = 48;
/// Plus one draft per leaf, which the public never sees.
const DRAFTS_PER_LEAF: usize = 1;
/// Demo products are dated from here on, one minute apart, so that `newest` is a
/// meaningful (and stable) order.
const EPOCH_MILLIS: u64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const CURRENCY: &str = "USD";

/// SplitMix64: tiny, fast, and the same on every platform and Rust version (unlike
/// `StdRng`, whose algorithm may change).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant at these sizes).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n.max(1) as u64)).unwrap_or(0)
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("")
    }

    pub fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn bytes10(&mut self) -> [u8; 10] {
        let a = self.next_u64().to_le_bytes();
        let b = self.next_u64().to_le_bytes();
        [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1]]
    }
}

/// A UUIDv7 for the n-th demo row: timestamp from the demo epoch, random bits from the
/// generator.
fn demo_id(rng: &mut Rng, minute: u64) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(EPOCH_MILLIS + minute * 60_000, &rng.bytes10())
        .into_uuid()
}

const COLORS: [&str; 12] = [
    "Blue", "Black", "White", "Grey", "Navy", "Red", "Green", "Beige", "Brown", "Olive",
    "Burgundy", "Pink",
];

/// How the products of one leaf category are made up.
struct Kind {
    parent: &'static str,
    slug: &'static str,
    name: &'static str,
    /// SKU prefix, unique per leaf.
    code: &'static str,
    noun: &'static str,
    styles: &'static [&'static str],
    materials: &'static [&'static str],
    sizes: &'static [&'static str],
    /// Price range in minor units; prices end in 99.
    price: (i64, i64),
    blurbs: &'static [&'static str],
}

const APPAREL: &[&str] = &["XS", "S", "M", "L", "XL"];
const SHOE_SIZES: &[&str] = &["38", "39", "40", "41", "42", "43", "44", "45"];
const ONE_SIZE: &[&str] = &["One Size"];

const ROOTS: [(&str, &str); 5] = [
    ("apparel", "Apparel"),
    ("shoes", "Shoes"),
    ("home", "Home"),
    ("sports", "Sports"),
    ("accessories", "Accessories"),
];

const KINDS: [Kind; 22] = [
    Kind {
        parent: "apparel",
        slug: "shirts",
        name: "Shirts",
        code: "SHRT",
        noun: "Shirt",
        styles: &[
            "Oxford",
            "Flannel",
            "Chambray",
            "Poplin",
            "Twill",
            "Button-Down",
            "Camp Collar",
            "Slim Fit",
        ],
        materials: &["Cotton", "Linen", "Organic Cotton", "Cotton Blend"],
        sizes: APPAREL,
        price: (2_999, 8_999),
        blurbs: &[
            "A versatile shirt with a classic collar and a tailored fit.",
            "Soft against the skin and easy to iron.",
            "Dress it up with chinos or wear it open over a tee.",
        ],
    },
    Kind {
        parent: "apparel",
        slug: "t-shirts",
        name: "T-Shirts",
        code: "TSHT",
        noun: "T-Shirt",
        styles: &[
            "Crew Neck",
            "V-Neck",
            "Pocket",
            "Heavyweight",
            "Striped",
            "Graphic",
            "Relaxed",
        ],
        materials: &["Cotton", "Organic Cotton", "Jersey", "Bamboo"],
        sizes: APPAREL,
        price: (1_499, 3_999),
        blurbs: &[
            "An everyday tee that keeps its shape wash after wash.",
            "Pre-shrunk and garment dyed.",
            "Layers well under jackets and sweaters.",
        ],
    },
    Kind {
        parent: "apparel",
        slug: "jeans",
        name: "Jeans",
        code: "JEAN",
        noun: "Jeans",
        styles: &[
            "Slim", "Straight", "Relaxed", "Tapered", "Bootcut", "Selvedge",
        ],
        materials: &["Denim", "Stretch Denim", "Raw Denim"],
        sizes: &["28", "30", "32", "34", "36"],
        price: (4_999, 12_999),
        blurbs: &[
            "Five-pocket jeans that soften with every wear.",
            "A mid rise with room to move.",
            "Reinforced seams for years of use.",
        ],
    },
    Kind {
        parent: "apparel",
        slug: "jackets",
        name: "Jackets",
        code: "JCKT",
        noun: "Jacket",
        styles: &[
            "Bomber",
            "Field",
            "Quilted",
            "Rain",
            "Trucker",
            "Puffer",
            "Harrington",
        ],
        materials: &["Nylon", "Wool", "Waxed Cotton", "Polyester"],
        sizes: APPAREL,
        price: (7_999, 24_999),
        blurbs: &[
            "Keeps the wind out and the warmth in.",
            "Zip pockets for phone and keys.",
            "Packs small for travel.",
        ],
    },
    Kind {
        parent: "apparel",
        slug: "dresses",
        name: "Dresses",
        code: "DRSS",
        noun: "Dress",
        styles: &["Wrap", "Midi", "Maxi", "Shift", "Slip", "Tea", "Sundress"],
        materials: &["Viscose", "Linen", "Silk", "Cotton"],
        sizes: APPAREL,
        price: (3_999, 14_999),
        blurbs: &[
            "A flattering silhouette for days and evenings.",
            "Fully lined with hidden side pockets.",
            "Light enough for summer, easy to layer in winter.",
        ],
    },
    Kind {
        parent: "apparel",
        slug: "sweaters",
        name: "Sweaters",
        code: "SWTR",
        noun: "Sweater",
        styles: &[
            "Cable Knit",
            "Crew Neck",
            "Turtleneck",
            "Cardigan",
            "Ribbed",
            "Quarter Zip",
        ],
        materials: &["Merino Wool", "Cashmere", "Lambswool", "Cotton"],
        sizes: APPAREL,
        price: (4_999, 17_999),
        blurbs: &[
            "Warm without the bulk.",
            "Knitted with a soft hand feel and ribbed trims.",
            "A cold-weather staple you will reach for every day.",
        ],
    },
    Kind {
        parent: "shoes",
        slug: "sneakers",
        name: "Sneakers",
        code: "SNKR",
        noun: "Sneakers",
        styles: &["Low Top", "High Top", "Court", "Retro", "Slip-On", "Canvas"],
        materials: &["Leather", "Canvas", "Suede", "Knit"],
        sizes: SHOE_SIZES,
        price: (5_999, 15_999),
        blurbs: &[
            "Cushioned insoles for all-day comfort.",
            "A grippy rubber outsole.",
            "Goes with everything from jeans to shorts.",
        ],
    },
    Kind {
        parent: "shoes",
        slug: "boots",
        name: "Boots",
        code: "BOOT",
        noun: "Boots",
        styles: &["Chelsea", "Hiking", "Chukka", "Work", "Combat", "Ankle"],
        materials: &["Leather", "Suede", "Nubuck"],
        sizes: SHOE_SIZES,
        price: (8_999, 24_999),
        blurbs: &[
            "Goodyear welted and resoleable.",
            "Water-resistant uppers for wet days.",
            "Built to break in, not break down.",
        ],
    },
    Kind {
        parent: "shoes",
        slug: "sandals",
        name: "Sandals",
        code: "SNDL",
        noun: "Sandals",
        styles: &["Slide", "Strappy", "Sport", "Flip-Flop", "Espadrille"],
        materials: &["Leather", "Cork", "Rubber", "Jute"],
        sizes: SHOE_SIZES,
        price: (2_499, 8_999),
        blurbs: &[
            "A contoured footbed for warm days.",
            "Adjustable straps for a secure fit.",
            "Light enough to pack for any trip.",
        ],
    },
    Kind {
        parent: "shoes",
        slug: "running-shoes",
        name: "Running Shoes",
        code: "RUNS",
        noun: "Running Shoes",
        styles: &["Road", "Trail", "Racing", "Stability", "Cushioned"],
        materials: &["Mesh", "Knit", "Synthetic"],
        sizes: SHOE_SIZES,
        price: (7_999, 17_999),
        blurbs: &[
            "Responsive foam returns energy with every stride.",
            "A breathable upper keeps feet cool.",
            "Reflective details for early runs.",
        ],
    },
    Kind {
        parent: "home",
        slug: "kitchen",
        name: "Kitchen",
        code: "KTCH",
        noun: "Mug",
        styles: &[
            "Stoneware",
            "Speckled",
            "Handmade",
            "Classic",
            "Tall",
            "Espresso",
        ],
        materials: &["Ceramic", "Porcelain", "Enamel", "Glass"],
        sizes: &["250 ml", "350 ml", "500 ml"],
        price: (999, 3_999),
        blurbs: &[
            "Dishwasher and microwave safe.",
            "Holds heat for a slow morning.",
            "Glazed by hand, so each piece is a little different.",
        ],
    },
    Kind {
        parent: "home",
        slug: "bedding",
        name: "Bedding",
        code: "BDNG",
        noun: "Duvet Cover",
        styles: &["Percale", "Sateen", "Washed", "Waffle", "Striped"],
        materials: &["Cotton", "Linen", "Bamboo", "Organic Cotton"],
        sizes: &["Single", "Double", "Queen", "King"],
        price: (4_999, 19_999),
        blurbs: &[
            "Breathable and softer with every wash.",
            "Hidden button closure and corner ties.",
            "Sleeps cool in summer and cosy in winter.",
        ],
    },
    Kind {
        parent: "home",
        slug: "decor",
        name: "Decor",
        code: "DECR",
        noun: "Cushion",
        styles: &["Velvet", "Boucle", "Embroidered", "Tufted", "Geometric"],
        materials: &["Velvet", "Wool", "Cotton", "Linen"],
        sizes: &["45 cm", "50 cm", "60 cm"],
        price: (1_999, 6_999),
        blurbs: &[
            "A quick way to refresh a sofa or bed.",
            "Feather insert included.",
            "Removable cover with a concealed zip.",
        ],
    },
    Kind {
        parent: "home",
        slug: "lighting",
        name: "Lighting",
        code: "LGHT",
        noun: "Table Lamp",
        styles: &["Arc", "Mushroom", "Pleated", "Industrial", "Minimal"],
        materials: &["Brass", "Ceramic", "Rattan", "Steel"],
        sizes: ONE_SIZE,
        price: (3_999, 19_999),
        blurbs: &[
            "Casts a warm, even glow.",
            "Dimmable with an inline switch.",
            "Bulb included.",
        ],
    },
    Kind {
        parent: "sports",
        slug: "fitness",
        name: "Fitness",
        code: "FTNS",
        noun: "Yoga Mat",
        styles: &["Grip", "Travel", "Extra Thick", "Alignment", "Eco"],
        materials: &["Natural Rubber", "TPE", "Cork"],
        sizes: &["4 mm", "6 mm", "8 mm"],
        price: (2_499, 9_999),
        blurbs: &[
            "Non-slip on both sides.",
            "Cushions knees and wrists.",
            "Rolls up with a carry strap.",
        ],
    },
    Kind {
        parent: "sports",
        slug: "cycling",
        name: "Cycling",
        code: "CYCL",
        noun: "Cycling Jersey",
        styles: &["Race", "Club", "Thermal", "Aero", "Gravel"],
        materials: &["Polyester", "Merino Wool", "Recycled Polyester"],
        sizes: APPAREL,
        price: (4_999, 13_999),
        blurbs: &[
            "Three rear pockets and a full-length zip.",
            "Wicks sweat on long climbs.",
            "A close fit that does not flap at speed.",
        ],
    },
    Kind {
        parent: "sports",
        slug: "camping",
        name: "Camping",
        code: "CAMP",
        noun: "Backpack",
        styles: &["Trekking", "Daypack", "Rolltop", "Ultralight", "Expedition"],
        materials: &["Ripstop Nylon", "Canvas", "Cordura"],
        sizes: &["20 L", "30 L", "45 L"],
        price: (3_999, 22_999),
        blurbs: &[
            "A padded back panel and hip belt.",
            "Weatherproof fabric and taped seams.",
            "Loops and straps for poles and a bedroll.",
        ],
    },
    Kind {
        parent: "sports",
        slug: "activewear",
        name: "Activewear",
        code: "ACTV",
        noun: "Shorts",
        styles: &["Running", "Training", "Lined", "Cargo", "Board"],
        materials: &["Polyester", "Nylon", "Recycled Polyester"],
        sizes: APPAREL,
        price: (1_999, 5_999),
        blurbs: &[
            "Quick drying with a zip pocket.",
            "An elastic waist with a drawcord.",
            "Four-way stretch for full range of motion.",
        ],
    },
    Kind {
        parent: "accessories",
        slug: "bags",
        name: "Bags",
        code: "BAGS",
        noun: "Tote Bag",
        styles: &["Market", "Weekender", "Zip-Top", "Crossbody", "Oversized"],
        materials: &["Canvas", "Leather", "Recycled Nylon"],
        sizes: ONE_SIZE,
        price: (2_999, 14_999),
        blurbs: &[
            "Roomy enough for a laptop and lunch.",
            "An inner pocket keeps small things found.",
            "Reinforced handles carry heavy loads.",
        ],
    },
    Kind {
        parent: "accessories",
        slug: "hats",
        name: "Hats",
        code: "HATS",
        noun: "Hat",
        styles: &["Beanie", "Baseball", "Bucket", "Fedora", "Sun"],
        materials: &["Wool", "Cotton", "Straw", "Felt"],
        sizes: &["S/M", "L/XL"],
        price: (1_499, 5_999),
        blurbs: &[
            "Shields from sun and drizzle alike.",
            "A soft sweatband for comfort.",
            "Folds flat into a pocket.",
        ],
    },
    Kind {
        parent: "accessories",
        slug: "belts",
        name: "Belts",
        code: "BELT",
        noun: "Belt",
        styles: &["Classic", "Braided", "Reversible", "Western", "Webbing"],
        materials: &["Leather", "Suede", "Canvas"],
        sizes: &["S", "M", "L"],
        price: (1_999, 7_999),
        blurbs: &[
            "A solid brass buckle.",
            "Cut from a single piece and edge finished by hand.",
            "Ages beautifully.",
        ],
    },
    Kind {
        parent: "accessories",
        slug: "watches",
        name: "Watches",
        code: "WTCH",
        noun: "Watch",
        styles: &["Field", "Dive", "Dress", "Chronograph", "Minimalist"],
        materials: &["Stainless Steel", "Titanium", "Leather Strap"],
        sizes: &["38 mm", "40 mm", "42 mm"],
        price: (9_999, 39_999),
        blurbs: &[
            "Sapphire crystal and a screw-down crown.",
            "Water resistant to 100 metres.",
            "Quick-release strap pins.",
        ],
    },
];

/// A generated category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoCategory {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub slug: String,
    pub name: String,
    pub position: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoVariant {
    pub id: Uuid,
    pub sku: String,
    pub attributes: BTreeMap<String, String>,
    pub price_minor: i64,
    pub on_hand: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoProduct {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub category_id: Uuid,
    pub published: bool,
    pub image_urls: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub variants: Vec<DemoVariant>,
}

/// The whole generated catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoCatalog {
    pub categories: Vec<DemoCategory>,
    pub products: Vec<DemoProduct>,
}

impl DemoCatalog {
    pub fn variant_count(&self) -> usize {
        self.products.iter().map(|p| p.variants.len()).sum()
    }
}

fn size_code(size: &str) -> String {
    if size == "One Size" {
        return "OS".into();
    }
    size.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Generates the catalog; the same every time.
pub fn catalog() -> DemoCatalog {
    let mut rng = Rng::new(SEED);
    let mut minute = 0_u64;
    let mut categories = Vec::new();
    let mut root_ids = BTreeMap::new();
    for (position, (slug, name)) in (0_i32..).zip(ROOTS) {
        let id = demo_id(&mut rng, 0);
        root_ids.insert(slug, id);
        categories.push(DemoCategory {
            id,
            parent_id: None,
            slug: slug.into(),
            name: name.into(),
            position,
        });
    }
    let mut leaf_ids = Vec::new();
    for (position, kind) in (0_i32..).zip(KINDS.iter()) {
        let id = demo_id(&mut rng, 0);
        leaf_ids.push(id);
        categories.push(DemoCategory {
            id,
            parent_id: root_ids.get(kind.parent).copied(),
            slug: kind.slug.into(),
            name: kind.name.into(),
            position,
        });
    }

    let mut products = Vec::new();
    let mut slugs = HashSet::new();
    // Products are interleaved across categories so that `newest` mixes them.
    for n in 0..(PRODUCTS_PER_LEAF + DRAFTS_PER_LEAF) {
        for (k, kind) in KINDS.iter().enumerate() {
            minute += 1;
            // Each colour appears equally often per category: four blue shirts, four
            // blue t-shirts, and so on.
            let color = COLORS[(n + k) % COLORS.len()];
            let style = rng.pick(kind.styles);
            let material = rng.pick(kind.materials);
            let name = format!("{color} {style} {material} {}", kind.noun);
            let base = crate::validate::slugify(&name);
            let mut slug = base.clone();
            let mut suffix = 2;
            while !slugs.insert(slug.clone()) {
                slug = format!("{base}-{suffix}");
                suffix += 1;
            }
            let (lo, hi) = kind.price;
            let steps = usize::try_from((hi - lo) / 100).unwrap_or(1).max(1);
            let price = lo + 100 * i64::try_from(rng.below(steps + 1)).unwrap_or(0);
            let description = format!(
                "The {name} in {} {}. {} {}",
                color.to_lowercase(),
                material.to_lowercase(),
                rng.pick(kind.blurbs),
                rng.pick(kind.blurbs),
            );
            let product_number = products.len() + 1;
            // Most products come in all sizes; some in a run of three.
            let sizes: Vec<&str> = if kind.sizes.len() > 3 && rng.percent(30) {
                let start = rng.below(kind.sizes.len() - 2);
                kind.sizes[start..start + 3].to_vec()
            } else {
                kind.sizes.to_vec()
            };
            let variants = sizes
                .iter()
                .map(|size| {
                    let mut attributes = BTreeMap::new();
                    attributes.insert("color".to_owned(), color.to_lowercase());
                    attributes.insert("material".to_owned(), material.to_lowercase());
                    if *size != "One Size" {
                        attributes.insert("size".to_owned(), (*size).to_owned());
                    }
                    // The largest sizes cost a little more.
                    let premium = if matches!(*size, "XL" | "King" | "45") {
                        500
                    } else {
                        0
                    };
                    let on_hand = if rng.percent(15) {
                        0
                    } else {
                        i32::try_from(1 + rng.below(60)).unwrap_or(1)
                    };
                    DemoVariant {
                        id: demo_id(&mut rng, minute),
                        sku: format!("{}-{product_number:04}-{}", kind.code, size_code(size)),
                        attributes,
                        price_minor: price + premium,
                        on_hand,
                    }
                })
                .collect();
            let at = EPOCH_MILLIS + minute * 60_000;
            products.push(DemoProduct {
                id: demo_id(&mut rng, minute),
                image_urls: vec![
                    format!("/static/img/{slug}.jpg"),
                    format!("/static/img/{slug}-2.jpg"),
                ],
                slug,
                name,
                description,
                category_id: leaf_ids.get(k).copied().unwrap_or_default(),
                published: n < PRODUCTS_PER_LEAF,
                created_at: chrono::DateTime::from_timestamp_millis(i64::try_from(at).unwrap_or(0))
                    .unwrap_or_default(),
                variants,
            });
        }
    }
    DemoCatalog {
        categories,
        products,
    }
}

/// What [`seed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOutcome {
    /// The demo catalog was loaded.
    Seeded,
    /// It had been loaded before; nothing was done.
    AlreadySeeded,
    /// The catalog holds data of its own; the demo is only loaded into an empty catalog.
    NotEmpty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub outcome: SeedOutcome,
    pub categories: usize,
    pub products: usize,
    pub variants: usize,
}

impl SeedReport {
    pub fn seeded(&self) -> bool {
        self.outcome == SeedOutcome::Seeded
    }
}

impl fmt::Display for SeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            SeedOutcome::Seeded => write!(
                f,
                "demo catalog loaded: {} categories, {} products, {} variants",
                self.categories, self.products, self.variants
            ),
            SeedOutcome::AlreadySeeded => {
                write!(f, "demo catalog already loaded; nothing to do")
            }
            SeedOutcome::NotEmpty => write!(
                f,
                "the catalog already has categories or products of its own; the demo catalog was not loaded"
            ),
        }
    }
}

/// Loads the demo catalog in one transaction, unless it was loaded before or the catalog
/// is not empty. Concurrent runs are serialised; exactly one of them loads.
pub async fn seed(pool: &PgPool) -> anyhow::Result<SeedReport> {
    let mut tx = pool.begin().await.context("opening the seed transaction")?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('catalog.seed'))")
        .execute(&mut *tx)
        .await
        .context("locking the seed")?;
    let done: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM seed_runs WHERE name = $1)")
        .bind(SEED_NAME)
        .fetch_one(&mut *tx)
        .await
        .context("reading seed_runs (has `catalog migrate` run?)")?;
    let nothing = |outcome| SeedReport {
        outcome,
        categories: 0,
        products: 0,
        variants: 0,
    };
    if done {
        return Ok(nothing(SeedOutcome::AlreadySeeded));
    }
    let occupied: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM categories) OR EXISTS (SELECT 1 FROM products)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if occupied {
        return Ok(nothing(SeedOutcome::NotEmpty));
    }

    let demo = catalog();
    let c = &demo.categories;
    sqlx::query(
        "INSERT INTO categories (id, parent_id, slug, name, position)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[])",
    )
    .bind(c.iter().map(|c| c.id).collect::<Vec<_>>())
    .bind(c.iter().map(|c| c.parent_id).collect::<Vec<_>>())
    .bind(c.iter().map(|c| c.slug.as_str()).collect::<Vec<_>>())
    .bind(c.iter().map(|c| c.name.as_str()).collect::<Vec<_>>())
    .bind(c.iter().map(|c| c.position).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .context("inserting demo categories")?;

    let p = &demo.products;
    sqlx::query(
        "INSERT INTO products (id, slug, name, description, category_id, status, image_urls,
                               created_at, updated_at)
         SELECT u.id, u.slug, u.name, u.description, u.category_id, u.status,
                string_to_array(u.images, E'\\n'), u.created_at, u.created_at
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                     $7::text[], $8::timestamptz[])
              AS u (id, slug, name, description, category_id, status, images, created_at)",
    )
    .bind(p.iter().map(|p| p.id).collect::<Vec<_>>())
    .bind(p.iter().map(|p| p.slug.as_str()).collect::<Vec<_>>())
    .bind(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
    .bind(p.iter().map(|p| p.description.as_str()).collect::<Vec<_>>())
    .bind(p.iter().map(|p| p.category_id).collect::<Vec<_>>())
    .bind(
        p.iter()
            .map(|p| if p.published { "published" } else { "draft" })
            .collect::<Vec<_>>(),
    )
    .bind(
        p.iter()
            .map(|p| p.image_urls.join("\n"))
            .collect::<Vec<_>>(),
    )
    .bind(p.iter().map(|p| p.created_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .context("inserting demo products")?;

    let mut variants = VariantColumns::default();
    let mut stock = Vec::new();
    for product in p {
        for (position, v) in (0_i32..).zip(&product.variants) {
            variants.push_with_id(
                v.id,
                product.id,
                &v.sku,
                &v.attributes,
                v.price_minor,
                CURRENCY,
                position,
            );
            stock.push(StockChange {
                sku: v.sku.clone(),
                previous: 0,
                on_hand: v.on_hand,
            });
        }
    }
    crate::store::write_variants(&mut tx, &variants, WriteMode::Insert)
        .await
        .context("inserting demo variants")?;
    crate::store::set_stock(
        &mut tx,
        &stock,
        "initial stock (demo catalog)",
        "system:demo-seed",
    )
    .await
    .context("inserting demo stock")?;

    let published = p.iter().filter(|p| p.published).count();
    sqlx::query("INSERT INTO seed_runs (name, version, products) VALUES ($1, $2, $3)")
        .bind(SEED_NAME)
        .bind(DEMO_VERSION)
        .bind(i32::try_from(published).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await
        .context("recording the seed")?;
    tx.commit().await.context("committing the demo catalog")?;
    Ok(SeedReport {
        outcome: SeedOutcome::Seeded,
        categories: demo.categories.len(),
        products: demo.products.len(),
        variants: demo.variant_count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_deterministic_and_big_enough() {
        let a = catalog();
        let b = catalog();
        assert_eq!(a, b);
        assert!(a.categories.len() >= 20);
        let published = a.products.iter().filter(|p| p.published).count();
        assert!(published >= 1000, "{published}");
        let slugs: HashSet<&str> = a.products.iter().map(|p| p.slug.as_str()).collect();
        assert_eq!(slugs.len(), a.products.len());
        let skus: HashSet<&str> = a
            .products
            .iter()
            .flat_map(|p| p.variants.iter().map(|v| v.sku.as_str()))
            .collect();
        assert_eq!(skus.len(), a.variant_count());
        let blue_shirts = a
            .products
            .iter()
            .filter(|p| p.published && p.name.starts_with("Blue ") && p.name.ends_with(" Shirt"))
            .count();
        assert!(blue_shirts >= 3, "{blue_shirts}");
    }

    #[test]
    fn demo_rows_pass_the_write_rules() {
        let demo = catalog();
        for c in &demo.categories {
            assert!(
                crate::validate::category_slug(&c.slug).is_ok(),
                "{}",
                c.slug
            );
        }
        for p in &demo.products {
            assert!(crate::validate::product_slug(&p.slug).is_ok(), "{}", p.slug);
            assert!(crate::validate::name(&p.name).is_ok(), "{}", p.name);
            assert!(crate::validate::description(&p.description).is_ok());
            for v in &p.variants {
                assert!(crate::validate::sku(&v.sku).is_ok(), "{}", v.sku);
                assert!(v.price_minor >= 0);
                for (k, value) in &v.attributes {
                    assert!(crate::validate::attribute_key(k).is_ok());
                    assert!(crate::validate::attribute_value(value).is_ok());
                }
            }
        }
    }
}
