//! Public reads: search, product, category tree, category listing. No token needed; only
//! published products. Every answer carries `Cache-Control` and (via shopkit's `etag`
//! middleware) an ETag, so a repeated GET with `If-None-Match` is a 304.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use shopkit::ApiResult;
use shopkit::error::{Json, Path, Problem, Query};
use utoipa::IntoParams;

use crate::model::{CategoryNode, ProductDetail, SearchResults, SkuInfo};
use crate::queries::{self, Visibility};
use crate::search::SearchRequest;
use crate::startup::AppState;

/// Public reads may be cached briefly by browsers and the gateway.
pub const PUBLIC_CACHE_CONTROL: &str = "public, max-age=30";

pub(crate) fn cached(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(PUBLIC_CACHE_CONTROL),
    );
    response
}

/// The query parameters of searches and listings (documentation only: they are parsed
/// by [`SearchRequest::from_pairs`], because `attr.<name>` keys are open-ended).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct SearchParams {
    /// Full-text query (websearch syntax: `"blue shirt" -linen`, `shirt or blouse`).
    /// Misspelled words are corrected; see `corrected_query` in the answer.
    q: Option<String>,
    /// A category slug; products of its descendants are included.
    category: Option<String>,
    /// Lowest variant price, in minor units.
    min_price: Option<i64>,
    /// Highest variant price, in minor units.
    max_price: Option<i64>,
    /// Only products with stock available.
    in_stock: Option<bool>,
    /// An attribute filter; any attribute works as `attr.<name>=<value>`, repeat for
    /// alternatives (`attr.color=blue&attr.color=navy`).
    #[param(rename = "attr.color")]
    attr_color: Option<String>,
    /// `relevance` (default with `q`), `price_asc`, `price_desc`, `newest` (default without).
    sort: Option<String>,
    /// Page size, 1 to 100 (default 20).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Search published products.
#[utoipa::path(
    get, path = "/products", tag = "catalog",
    params(SearchParams),
    responses(
        (status = 200, description = "One page of results with facets", body = SearchResults),
        (status = 400, description = "A malformed parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn search_products(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let request = SearchRequest::from_pairs(&pairs)?;
    let results = queries::search(state.pool(), &request).await?;
    crate::metrics::search(results.corrected_query.is_some());
    Ok(cached(Json(results)))
}

/// A published product with its variants, by id or slug.
#[utoipa::path(
    get, path = "/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "The product's id or slug")),
    responses(
        (status = 200, description = "The product", body = ProductDetail),
        (status = 404, description = "No such published product", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_product(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let product = queries::product(state.pool(), &key, Visibility::Published)
        .await?
        .ok_or_else(|| shopkit::ApiError::not_found(format!("product {key:?}")))?;
    Ok(cached(Json(product)))
}

/// The category tree.
#[utoipa::path(
    get, path = "/categories", tag = "catalog",
    responses((status = 200, description = "Top-level categories with their descendants", body = Vec<CategoryNode>))
)]
pub(crate) async fn category_tree(State(state): State<AppState>) -> ApiResult<Response> {
    let tree = queries::category_tree(state.pool()).await?;
    Ok(cached(Json(tree)))
}

/// Published products of a category and its descendants, with the filters, sorting and
/// pagination of `/products`.
#[utoipa::path(
    get, path = "/categories/{slug}/products", tag = "catalog",
    params(("slug" = String, Path, description = "The category's slug"), SearchParams),
    responses(
        (status = 200, description = "One page of results with facets", body = SearchResults),
        (status = 400, description = "A malformed parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such category", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn category_products(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let request = SearchRequest::from_pairs(&pairs)?;
    let results = queries::category_listing(state.pool(), &slug, &request)
        .await?
        .ok_or_else(|| shopkit::ApiError::not_found(format!("category {slug:?}")))?;
    crate::metrics::search(results.corrected_query.is_some());
    Ok(cached(Json(results)))
}

/// The most SKUs one `/skus` lookup answers (a cart or an order, not the catalog).
pub const MAX_SKUS_PER_LOOKUP: usize = 100;

/// Current price and availability of variants by SKU, for carts and orders: whether each
/// is for sale (`published`), at what price, with how much stock available. Unknown SKUs
/// are absent from the answer. Not cached: it decides what may be bought.
#[utoipa::path(
    get, path = "/skus", tag = "catalog",
    params(("sku" = Vec<String>, Query, description = "A SKU; repeat for several (at most 100)")),
    responses(
        (status = 200, description = "The SKUs that exist, in the order asked", body = Vec<SkuInfo>),
        (status = 400, description = "No SKU, or too many", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn lookup_skus(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let skus: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "sku")
        .map(|(_, v)| v)
        .collect();
    if skus.is_empty() || skus.len() > MAX_SKUS_PER_LOOKUP {
        return Err(shopkit::ApiError::BadRequest(format!(
            "give 1 to {MAX_SKUS_PER_LOOKUP} `sku` parameters (e.g. /skus?sku=A-1&sku=B-2), not {}",
            skus.len()
        )));
    }
    let found = queries::skus(state.pool(), &skus).await?;
    let mut response = Json(found).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
