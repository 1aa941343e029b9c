//! What the API sends and receives. Money is always integer minor units plus an ISO 4217
//! currency; ids are UUIDv7.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Whether the public sees a product. Only `published` products appear in reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Draft,
    Published,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "draft" => Some(Self::Draft),
            "published" => Some(Self::Published),
            _ => None,
        }
    }
}

/// An amount of money: `amount_minor` in the currency's minor unit (cents for USD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    #[schema(example = 2999)]
    pub amount_minor: i64,
    #[schema(example = "USD")]
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CategoryRef {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

/// A product as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductSummary {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// The slug of the product's category.
    pub category: String,
    /// The cheapest variant's price; absent while the product has no variants.
    pub price_from: Option<Money>,
    pub image_url: Option<String>,
    /// Whether any variant has stock available.
    pub in_stock: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Variant {
    pub id: Uuid,
    #[schema(example = "SHRT-0001-M")]
    pub sku: String,
    /// Free-form attributes such as `{"color": "blue", "size": "M"}`.
    pub attributes: BTreeMap<String, String>,
    pub price: Money,
    /// On hand minus reserved.
    pub available: i32,
    pub in_stock: bool,
}

/// A product with its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductDetail {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub status: Status,
    pub category: CategoryRef,
    pub image_urls: Vec<String>,
    pub price_from: Option<Money>,
    pub in_stock: bool,
    pub variants: Vec<Variant>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A node of the category tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CategoryNode {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub position: i32,
    /// Published products in this category and all its descendants.
    pub product_count: i64,
    #[schema(no_recursion)]
    pub children: Vec<CategoryNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// The parent's slug; absent for a top-level category.
    pub parent: Option<String>,
    pub position: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CategoryFacet {
    pub slug: String,
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValueFacet {
    pub value: String,
    pub count: i64,
}

/// Products whose "from" price lies in `[min_minor, max_minor)`; the last bucket has no
/// upper bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PriceBucket {
    pub min_minor: i64,
    pub max_minor: Option<i64>,
    pub count: i64,
}

/// Counts over the whole filtered result set (not just the page).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Facets {
    /// Per (direct) category of the matching products.
    pub categories: Vec<CategoryFacet>,
    /// Per attribute name, per value: matching products with a variant of that value.
    pub attributes: BTreeMap<String, Vec<ValueFacet>>,
    pub price: Vec<PriceBucket>,
    /// Matching products with stock available.
    pub in_stock: i64,
}

/// One page of a search or category listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    pub items: Vec<ProductSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// The query as sent.
    pub query: Option<String>,
    /// The query that was run instead, when a word matched nothing and was corrected.
    #[schema(example = "shirt")]
    pub corrected_query: Option<String>,
    /// Matching products in all pages.
    pub total: i64,
    pub facets: Facets,
}

/// Stock of one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct StockLevel {
    pub sku: String,
    pub on_hand: i32,
    pub reserved: i32,
    pub available: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Adjustment {
    pub id: Uuid,
    pub delta: i32,
    pub reason: String,
    pub actor: String,
    pub on_hand_after: i32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Inventory {
    #[serde(flatten)]
    pub level: StockLevel,
    /// The newest adjustments first.
    pub adjustments: Vec<Adjustment>,
}

// ---- requests ----------------------------------------------------------------------------

/// A new variant (one SKU) of a product.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    #[schema(example = "SHRT-0001-M")]
    pub sku: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Integer minor units, not negative.
    #[schema(example = 2999)]
    pub price_minor: i64,
    #[schema(example = "USD")]
    pub currency: String,
    /// Initial stock (recorded as an inventory adjustment).
    #[serde(default)]
    pub on_hand: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Derived from the name when absent.
    #[serde(default)]
    pub slug: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The category's slug.
    pub category: String,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub image_urls: Vec<String>,
    #[serde(default)]
    pub variants: Vec<NewVariant>,
}

/// Changes to a product; absent fields stay as they are. Variants change through their
/// own endpoints.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub status: Option<Status>,
    pub image_urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantPatch {
    pub attributes: Option<BTreeMap<String, String>>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    pub slug: String,
    pub name: String,
    /// The parent's slug; absent for a top-level category.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub position: i32,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustStock {
    /// Units to add (positive) or remove (negative); never zero.
    pub delta: i64,
    #[schema(example = "cycle count")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub rows: usize,
    pub products_created: usize,
    pub products_updated: usize,
    pub variants_created: usize,
    pub variants_updated: usize,
    pub stock_adjustments: usize,
}

/// A variant as carts and orders see it: what it is, whether it is for sale, its current
/// price and available stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkuInfo {
    pub sku: String,
    pub product_id: Uuid,
    pub product_name: String,
    pub product_slug: String,
    pub attributes: BTreeMap<String, String>,
    pub price_minor: i64,
    pub currency: String,
    pub available: i32,
    /// Whether the product is published (only published products can be bought).
    pub published: bool,
}
