//! Browsing: home, category listings with facets and sorting, search, product pages.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use crate::api::{Cred, Service};
use crate::error::{PageError, PageResult};
use crate::session::SessionHandle;
use crate::startup::AppState;
use crate::views::{self, ListingQuery};

/// A category of the navigation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NavCategory {
    pub slug: String,
    pub name: String,
    pub count: i64,
    pub children: Vec<NavCategory>,
}

pub fn nav(tree: &Value) -> Vec<NavCategory> {
    tree.as_array()
        .into_iter()
        .flatten()
        .map(|c| NavCategory {
            slug: c["slug"].as_str().unwrap_or("").to_owned(),
            name: c["name"].as_str().unwrap_or("").to_owned(),
            count: c["product_count"].as_i64().unwrap_or(0),
            children: nav(&c["children"]),
        })
        .collect()
}

fn find<'a>(tree: &'a [NavCategory], slug: &str) -> Option<&'a NavCategory> {
    tree.iter().find_map(|c| {
        if c.slug == slug {
            Some(c)
        } else {
            find(&c.children, slug)
        }
    })
}

async fn categories(state: &AppState) -> Result<Vec<NavCategory>, PageError> {
    let reply = state.api().catalog_shared("/categories", &[]).await?;
    if !reply.ok() {
        return Err(anyhow::anyhow!("catalog /categories: {}", reply.status).into());
    }
    Ok(nav(&reply.body))
}

pub async fn home(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
) -> PageResult {
    let query = [
        ("sort".to_owned(), "newest".to_owned()),
        ("limit".to_owned(), "8".to_owned()),
    ];
    let (tree, newest) = tokio::join!(
        categories(&state),
        state
            .api()
            .get_query(Service::Catalog, "/products", &query, Cred::none())
    );
    let tree = tree?;
    let newest = newest?;
    let mut ctx = state.context(&session);
    ctx.insert("categories", &tree);
    ctx.insert("products", &views::product_cards(&newest.body["items"]));
    state.render("home.html", &ctx)
}

const SORTS: [(&str, &str); 4] = [
    ("newest", "Newest"),
    ("price_asc", "Price: low to high"),
    ("price_desc", "Price: high to low"),
    ("relevance", "Best match"),
];

#[derive(Serialize)]
struct SortOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn listing_context(
    ctx: &mut tera::Context,
    results: &Value,
    query: &ListingQuery,
    base: &str,
    with_relevance: bool,
) {
    let currency = results["items"][0]["price_from"]["currency"]
        .as_str()
        .unwrap_or("USD");
    let default_sort = if with_relevance {
        "relevance"
    } else {
        "newest"
    };
    let sort = query
        .get("sort")
        .filter(|s| !s.is_empty())
        .unwrap_or(default_sort);
    let sorts: Vec<SortOption> = SORTS
        .iter()
        .filter(|(v, _)| with_relevance || *v != "relevance")
        .map(|(value, label)| SortOption {
            value,
            label,
            selected: *value == sort,
        })
        .collect();
    ctx.insert("products", &views::product_cards(&results["items"]));
    ctx.insert("total", &results["total"].as_i64().unwrap_or(0));
    ctx.insert(
        "facets",
        &views::facet_groups(&results["facets"], query, currency),
    );
    ctx.insert("sorts", &sorts);
    ctx.insert("in_stock_only", &query.has("in_stock", "true"));
    ctx.insert(
        "in_stock_count",
        &results["facets"]["in_stock"].as_i64().unwrap_or(0),
    );
    ctx.insert("q", query.get("q").unwrap_or(""));
    ctx.insert("corrected_query", &results["corrected_query"].as_str());
    ctx.insert("base", base);
    ctx.insert(
        "next_page",
        &results["next_cursor"]
            .as_str()
            .map(|c| format!("{base}?{}", query.with_cursor(c))),
    );
}

pub async fn category(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let query = ListingQuery::parse(raw.as_deref().unwrap_or(""));
    let path = format!("/categories/{slug}/products");
    let params = query.catalog_params();
    let (tree, results) = tokio::join!(
        categories(&state),
        state.api().catalog_shared(&path, &params)
    );
    let tree = tree?;
    let results = results?;
    if results.status == reqwest::StatusCode::NOT_FOUND {
        return Err(PageError::NotFound);
    }
    if results.status == reqwest::StatusCode::BAD_REQUEST {
        return Err(PageError::BadRequest(results.problem_text()));
    }
    if !results.ok() {
        return Err(anyhow::anyhow!("catalog {path}: {}", results.status).into());
    }
    let current = find(&tree, &slug).cloned();
    let mut ctx = state.context(&session);
    ctx.insert(
        "title",
        &current.as_ref().map_or(slug.clone(), |c| c.name.clone()),
    );
    ctx.insert(
        "subcategories",
        &current.map(|c| c.children).unwrap_or_default(),
    );
    ctx.insert("categories", &tree);
    listing_context(
        &mut ctx,
        &results.body,
        &query,
        &format!("/c/{slug}"),
        false,
    );
    state.render("listing.html", &ctx)
}

pub async fn search(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let query = ListingQuery::parse(raw.as_deref().unwrap_or(""));
    let q = query.get("q").unwrap_or("").trim().to_owned();
    let params = query.catalog_params();
    let (tree, results) = tokio::join!(
        categories(&state),
        state
            .api()
            .get_query(Service::Catalog, "/products", &params, Cred::none())
    );
    let tree = tree?;
    let results = results?;
    if results.status == reqwest::StatusCode::BAD_REQUEST
        || results.status == reqwest::StatusCode::UNPROCESSABLE_ENTITY
    {
        return Err(PageError::BadRequest(results.problem_text()));
    }
    if !results.ok() {
        return Err(anyhow::anyhow!("catalog /products: {}", results.status).into());
    }
    let mut ctx = state.context(&session);
    ctx.insert(
        "title",
        &if q.is_empty() {
            "All products".to_owned()
        } else {
            format!("Results for “{q}”")
        },
    );
    ctx.insert("subcategories", &Vec::<NavCategory>::new());
    ctx.insert("categories", &tree);
    listing_context(&mut ctx, &results.body, &query, "/search", !q.is_empty());
    state.render("listing.html", &ctx)
}

pub async fn product(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path(slug): Path<String>,
) -> PageResult<Response> {
    let reply = state
        .api()
        .get(Service::Catalog, &format!("/products/{slug}"), Cred::none())
        .await?;
    if reply.status == reqwest::StatusCode::NOT_FOUND
        || reply.status == reqwest::StatusCode::BAD_REQUEST
    {
        return Err(PageError::NotFound);
    }
    if !reply.ok() {
        return Err(anyhow::anyhow!("catalog /products/{slug}: {}", reply.status).into());
    }
    let p = &reply.body;
    let variants = views::variants(p);
    let mut ctx = state.context(&session);
    let name = p["name"].as_str().unwrap_or("");
    ctx.insert("name", name);
    ctx.insert(
        "initial",
        &name
            .chars()
            .next()
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default(),
    );
    ctx.insert("slug", &slug);
    ctx.insert("description", p["description"].as_str().unwrap_or(""));
    ctx.insert("category", &p["category"]);
    ctx.insert(
        "price_from",
        &views::money(
            p["price_from"]["amount_minor"].as_i64().unwrap_or(0),
            p["price_from"]["currency"].as_str().unwrap_or("USD"),
        ),
    );
    ctx.insert(
        "selected",
        &variants
            .iter()
            .find(|v| v.in_stock)
            .or(variants.first())
            .map(|v| v.sku.clone()),
    );
    ctx.insert("in_stock", &variants.iter().any(|v| v.in_stock));
    ctx.insert("variants", &variants);
    state.render("product.html", &ctx)
}
