//! Admin writes (role `admin`): products, variants, categories, stock. Every handler
//! validates the whole request before it touches the database, then writes in one
//! transaction, so a refused request leaves nothing behind.

use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shopkit::error::{Json, Path, Problem};
use shopkit::{ApiError, ApiResult};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use crate::auth::AdminAuth;
use crate::model::{
    AdjustStock, Adjustment, Category, CategoryInput, Inventory, Money, NewProduct, NewVariant,
    ProductDetail, ProductPatch, StockLevel, Variant, VariantPatch,
};
use crate::queries::{self, Visibility};
use crate::startup::AppState;
use crate::store::{self, StockChange, VariantColumns, WriteMode};
use crate::validate::{self, Errors};

/// How many adjustments `GET /admin/inventory/{sku}` shows.
const RECENT_ADJUSTMENTS: i64 = 50;

fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn created(location: &str, body: impl IntoResponse) -> Response {
    let mut response = (StatusCode::CREATED, body).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The checks of one variant, its fields named under `prefix` (`variants[2]`).
pub(crate) fn check_variant(
    errors: &mut Errors,
    prefix: &str,
    sku: &str,
    attributes: &BTreeMap<String, String>,
    price_minor: i64,
    currency: &str,
    on_hand: i64,
) {
    errors.check(format!("{prefix}sku"), validate::sku(sku));
    validate::attributes(errors, &format!("{prefix}attributes"), attributes);
    errors.check(
        format!("{prefix}price_minor"),
        validate::price_minor(price_minor),
    );
    errors.check(format!("{prefix}currency"), validate::currency(currency));
    errors.check(format!("{prefix}on_hand"), validate::on_hand(on_hand));
}

/// Validates a new product; returns its slug (given or derived from the name).
fn check_new_product(product: &NewProduct) -> Result<String, ApiError> {
    let mut errors = Errors::new();
    errors.check("name", validate::name(&product.name));
    errors.check("description", validate::description(&product.description));
    errors.check("category", validate::category_slug(&product.category));
    validate::image_urls(&mut errors, "image_urls", &product.image_urls);
    let slug = match &product.slug {
        Some(slug) => {
            errors.check("slug", validate::product_slug(slug));
            slug.clone()
        }
        None => {
            let slug = validate::slugify(&product.name);
            if slug.is_empty() && validate::name(&product.name).is_ok() {
                errors.push(
                    "slug",
                    "cannot be derived from a name without ASCII letters or digits; send one",
                );
            }
            slug
        }
    };
    if product.variants.len() > validate::MAX_VARIANTS {
        errors.push(
            "variants",
            format!("at most {} variants", validate::MAX_VARIANTS),
        );
    }
    let mut skus = HashSet::new();
    for (i, v) in product.variants.iter().enumerate() {
        let prefix = format!("variants[{i}].");
        check_variant(
            &mut errors,
            &prefix,
            &v.sku,
            &v.attributes,
            v.price_minor,
            &v.currency,
            v.on_hand,
        );
        if !skus.insert(v.sku.as_str()) {
            errors.push(format!("{prefix}sku"), "appears twice in this product");
        }
    }
    errors.finish()?;
    Ok(slug)
}

/// On-hand within the validated range, as the column type.
fn stock(value: i64) -> i32 {
    i32::try_from(value.clamp(0, validate::MAX_STOCK)).unwrap_or(i32::MAX)
}

async fn admin_detail(state: &AppState, id: Uuid) -> ApiResult<ProductDetail> {
    queries::product(state.pool(), &id.to_string(), Visibility::Any)
        .await?
        .ok_or_else(|| ApiError::not_found("the product"))
}

/// Create a product, optionally with variants and their initial stock.
#[utoipa::path(
    post, path = "/admin/products", tag = "admin", security(("bearer" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, description = "Created", body = ProductDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Slug or SKU taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_product(
    admin: AdminAuth,
    State(state): State<AppState>,
    Json(product): Json<NewProduct>,
) -> ApiResult<Response> {
    let slug = check_new_product(&product)?;
    let mut tx = state.pool().begin().await?;
    let category_id = store::category_id(&mut tx, &product.category, "category").await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO products (id, slug, name, description, category_id, status, image_urls)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&slug)
    .bind(&product.name)
    .bind(&product.description)
    .bind(category_id)
    .bind(product.status.as_str())
    .bind(&product.image_urls)
    .execute(&mut *tx)
    .await
    .map_err(store::client_error)?;
    let mut variants = VariantColumns::default();
    let mut changes = Vec::new();
    for (position, v) in (0_i32..).zip(&product.variants) {
        variants.push(
            id,
            &v.sku,
            &v.attributes,
            v.price_minor,
            &v.currency,
            position,
        );
        changes.push(StockChange {
            sku: v.sku.clone(),
            previous: 0,
            on_hand: stock(v.on_hand),
        });
    }
    store::write_variants(&mut tx, &variants, WriteMode::Insert)
        .await
        .map_err(store::client_error)?;
    store::set_stock(&mut tx, &changes, "initial stock", &admin.actor()).await?;
    tx.commit().await.map_err(store::client_error)?;
    let detail = admin_detail(&state, id).await?;
    Ok(created(&format!("/products/{id}"), Json(detail)))
}

/// A product in any status (drafts included), by id or slug.
#[utoipa::path(
    get, path = "/admin/products/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product's id or slug")),
    responses(
        (status = 200, description = "The product", body = ProductDetail),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_product(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let product = queries::product(state.pool(), &key, Visibility::Any)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product {key:?}")))?;
    Ok(no_store(Json(product)))
}

/// Change a product's fields (absent fields stay).
#[utoipa::path(
    patch, path = "/admin/products/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product's id or slug")),
    request_body = ProductPatch,
    responses(
        (status = 200, description = "The changed product", body = ProductDetail),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Slug taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn update_product(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(patch): Json<ProductPatch>,
) -> ApiResult<Response> {
    let mut errors = Errors::new();
    if let Some(slug) = &patch.slug {
        errors.check("slug", validate::product_slug(slug));
    }
    if let Some(name) = &patch.name {
        errors.check("name", validate::name(name));
    }
    if let Some(description) = &patch.description {
        errors.check("description", validate::description(description));
    }
    if let Some(category) = &patch.category {
        errors.check("category", validate::category_slug(category));
    }
    if let Some(urls) = &patch.image_urls {
        validate::image_urls(&mut errors, "image_urls", urls);
    }
    errors.finish()?;
    let mut tx = state.pool().begin().await?;
    let id = store::lock_product(&mut tx, &key).await?;
    let category_id = match &patch.category {
        Some(slug) => Some(store::category_id(&mut tx, slug, "category").await?),
        None => None,
    };
    sqlx::query(
        "UPDATE products
         SET slug = coalesce($2, slug), name = coalesce($3, name),
             description = coalesce($4, description), category_id = coalesce($5, category_id),
             status = coalesce($6, status), image_urls = coalesce($7::text[], image_urls),
             updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&patch.slug)
    .bind(&patch.name)
    .bind(&patch.description)
    .bind(category_id)
    .bind(patch.status.map(|s| s.as_str()))
    .bind(&patch.image_urls)
    .execute(&mut *tx)
    .await
    .map_err(store::client_error)?;
    tx.commit().await.map_err(store::client_error)?;
    Ok(no_store(Json(admin_detail(&state, id).await?)))
}

/// Delete a product with its variants and their stock (refused while stock is reserved).
#[utoipa::path(
    delete, path = "/admin/products/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product's id or slug")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stock of it is reserved", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_product(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.pool().begin().await?;
    let id = store::lock_product(&mut tx, &key).await?;
    let reserved: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM variants v JOIN inventory i ON i.sku = v.sku
                        WHERE v.product_id = $1 AND i.reserved > 0)",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if reserved {
        return Err(ApiError::Conflict(
            "stock of this product is reserved by open orders; unpublish it instead".into(),
        ));
    }
    sqlx::query("DELETE FROM products WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(store::client_error)?;
    tx.commit().await.map_err(store::client_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a variant (a SKU) to a product.
#[utoipa::path(
    post, path = "/admin/products/{id}/variants", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product's id or slug")),
    request_body = NewVariant,
    responses(
        (status = 201, description = "Created", body = Variant),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SKU taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn add_variant(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(v): Json<NewVariant>,
) -> ApiResult<Response> {
    let mut errors = Errors::new();
    check_variant(
        &mut errors,
        "",
        &v.sku,
        &v.attributes,
        v.price_minor,
        &v.currency,
        v.on_hand,
    );
    errors.finish()?;
    let mut tx = state.pool().begin().await?;
    let product_id = store::lock_product(&mut tx, &key).await?;
    let position: i32 = sqlx::query_scalar(
        "SELECT coalesce(max(position) + 1, 0) FROM variants WHERE product_id = $1",
    )
    .bind(product_id)
    .fetch_one(&mut *tx)
    .await?;
    let mut columns = VariantColumns::default();
    let id = columns.push(
        product_id,
        &v.sku,
        &v.attributes,
        v.price_minor,
        &v.currency,
        position,
    );
    store::write_variants(&mut tx, &columns, WriteMode::Insert)
        .await
        .map_err(store::client_error)?;
    let on_hand = stock(v.on_hand);
    let change = StockChange {
        sku: v.sku.clone(),
        previous: 0,
        on_hand,
    };
    store::set_stock(&mut tx, &[change], "initial stock", &admin.actor()).await?;
    tx.commit().await.map_err(store::client_error)?;
    let variant = Variant {
        id,
        sku: v.sku.clone(),
        attributes: v.attributes,
        price: Money {
            amount_minor: v.price_minor,
            currency: v.currency,
        },
        available: on_hand,
        in_stock: on_hand > 0,
    };
    Ok(created(&format!("/products/{product_id}"), Json(variant)))
}

#[derive(sqlx::FromRow)]
struct VariantRow {
    id: Uuid,
    sku: String,
    attributes: SqlJson<BTreeMap<String, String>>,
    price_minor: i64,
    currency: String,
    available: i32,
}

/// Change a variant's attributes or price (absent fields stay).
#[utoipa::path(
    patch, path = "/admin/variants/{sku}", tag = "admin", security(("bearer" = [])),
    params(("sku" = String, Path, description = "The variant's SKU")),
    request_body = VariantPatch,
    responses(
        (status = 200, description = "The changed variant", body = Variant),
        (status = 404, description = "No such SKU", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn update_variant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(sku): Path<String>,
    Json(patch): Json<VariantPatch>,
) -> ApiResult<Response> {
    let mut errors = Errors::new();
    if let Some(attributes) = &patch.attributes {
        validate::attributes(&mut errors, "attributes", attributes);
    }
    if let Some(price) = patch.price_minor {
        errors.check("price_minor", validate::price_minor(price));
    }
    if let Some(currency) = &patch.currency {
        errors.check("currency", validate::currency(currency));
    }
    errors.finish()?;
    let mut tx = state.pool().begin().await?;
    let row = sqlx::query_as::<_, VariantRow>(
        "WITH v AS (
             UPDATE variants
             SET attributes = coalesce($2, attributes), price_minor = coalesce($3, price_minor),
                 currency = coalesce($4, currency), updated_at = now()
             WHERE sku = $1
             RETURNING id, sku, attributes, price_minor, currency)
         SELECT v.id, v.sku, v.attributes, v.price_minor, v.currency::text AS currency,
                coalesce(i.available, 0) AS available
         FROM v LEFT JOIN inventory i ON i.sku = v.sku",
    )
    .bind(&sku)
    .bind(patch.attributes.as_ref().map(SqlJson))
    .bind(patch.price_minor)
    .bind(&patch.currency)
    .fetch_optional(&mut *tx)
    .await
    .map_err(store::client_error)?
    .ok_or_else(|| ApiError::not_found(format!("SKU {sku:?}")))?;
    if patch.price_minor.is_some() || patch.currency.is_some() {
        // Open carts show the new price (docs/checkout.md).
        shopkit::events::record(
            &mut tx,
            crate::reservations::SOURCE,
            "variant.price_changed",
            serde_json::json!({"sku": row.sku, "price_minor": row.price_minor, "currency": row.currency}),
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(no_store(Json(Variant {
        id: row.id,
        sku: row.sku,
        attributes: row.attributes.0,
        price: Money {
            amount_minor: row.price_minor,
            currency: row.currency,
        },
        available: row.available,
        in_stock: row.available > 0,
    })))
}

/// Delete a variant and its stock (refused while stock is reserved).
#[utoipa::path(
    delete, path = "/admin/variants/{sku}", tag = "admin", security(("bearer" = [])),
    params(("sku" = String, Path, description = "The variant's SKU")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such SKU", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stock of it is reserved", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_variant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.pool().begin().await?;
    let reserved: Option<i32> = sqlx::query_scalar(
        "SELECT coalesce(i.reserved, 0) FROM variants v LEFT JOIN inventory i ON i.sku = v.sku
         WHERE v.sku = $1 FOR UPDATE OF v",
    )
    .bind(&sku)
    .fetch_optional(&mut *tx)
    .await?;
    match reserved {
        None => return Err(ApiError::not_found(format!("SKU {sku:?}"))),
        Some(r) if r > 0 => {
            return Err(ApiError::Conflict(format!(
                "{r} units of {sku} are reserved by open orders"
            )));
        }
        Some(_) => {}
    }
    sqlx::query("DELETE FROM variants WHERE sku = $1")
        .bind(&sku)
        .execute(&mut *tx)
        .await
        .map_err(store::client_error)?;
    tx.commit().await.map_err(store::client_error)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- categories --------------------------------------------------------------------------

fn check_category(input: &CategoryInput) -> Result<(), ApiError> {
    let mut errors = Errors::new();
    errors.check("slug", validate::category_slug(&input.slug));
    errors.check("name", validate::name(&input.name));
    if let Some(parent) = &input.parent {
        errors.check("parent", validate::category_slug(parent));
    }
    errors.finish()
}

/// Serialises moves in the category tree, so that two concurrent moves cannot build a
/// cycle that neither would alone.
async fn lock_tree(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('catalog.categories'))")
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Create a category.
#[utoipa::path(
    post, path = "/admin/categories", tag = "admin", security(("bearer" = [])),
    request_body = CategoryInput,
    responses(
        (status = 201, description = "Created", body = Category),
        (status = 409, description = "Slug taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or unknown parent", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_category(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Json(input): Json<CategoryInput>,
) -> ApiResult<Response> {
    check_category(&input)?;
    let mut tx = state.pool().begin().await?;
    let parent_id = match &input.parent {
        Some(parent) => Some(store::category_id(&mut tx, parent, "parent").await?),
        None => None,
    };
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO categories (id, parent_id, slug, name, position) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(parent_id)
    .bind(&input.slug)
    .bind(&input.name)
    .bind(input.position)
    .execute(&mut *tx)
    .await
    .map_err(store::client_error)?;
    tx.commit().await.map_err(store::client_error)?;
    let category = Category {
        id,
        slug: input.slug,
        name: input.name,
        parent: input.parent,
        position: input.position,
    };
    Ok(created(
        &format!("/categories/{}/products", category.slug),
        Json(category),
    ))
}

/// Replace a category's slug, name, parent and position (moving it in the tree).
#[utoipa::path(
    put, path = "/admin/categories/{slug}", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, description = "The category's current slug")),
    request_body = CategoryInput,
    responses(
        (status = 200, description = "The changed category", body = Category),
        (status = 404, description = "No such category", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Slug taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, unknown parent, or a move under itself", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn update_category(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Json(input): Json<CategoryInput>,
) -> ApiResult<Response> {
    check_category(&input)?;
    let mut tx = state.pool().begin().await?;
    lock_tree(&mut tx).await?;
    let id: Uuid = sqlx::query_scalar("SELECT id FROM categories WHERE slug = $1 FOR UPDATE")
        .bind(&slug)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("category {slug:?}")))?;
    let parent_id = match &input.parent {
        Some(parent) => Some(store::category_id(&mut tx, parent, "parent").await?),
        None => None,
    };
    if let Some(parent_id) = parent_id {
        let cycle: bool = sqlx::query_scalar(
            "WITH RECURSIVE subtree (id) AS (
                 SELECT $1::uuid
                 UNION
                 SELECT c.id FROM categories c JOIN subtree s ON c.parent_id = s.id)
             SELECT EXISTS (SELECT 1 FROM subtree WHERE id = $2)",
        )
        .bind(id)
        .bind(parent_id)
        .fetch_one(&mut *tx)
        .await?;
        if cycle {
            return Err(ApiError::invalid(
                "parent",
                "a category cannot move under itself or one of its descendants",
            ));
        }
    }
    sqlx::query(
        "UPDATE categories SET slug = $2, name = $3, parent_id = $4, position = $5,
                               updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&input.slug)
    .bind(&input.name)
    .bind(parent_id)
    .bind(input.position)
    .execute(&mut *tx)
    .await
    .map_err(store::client_error)?;
    tx.commit().await.map_err(store::client_error)?;
    Ok(no_store(Json(Category {
        id,
        slug: input.slug,
        name: input.name,
        parent: input.parent,
        position: input.position,
    })))
}

/// Delete an empty category (no subcategories, no products).
#[utoipa::path(
    delete, path = "/admin/categories/{slug}", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, description = "The category's slug")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such category", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It still has subcategories or products", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_category(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.pool().begin().await?;
    lock_tree(&mut tx).await?;
    let usage: Option<(i64, i64)> = sqlx::query_as(
        "SELECT (SELECT count(*) FROM categories k WHERE k.parent_id = c.id),
                (SELECT count(*) FROM products p WHERE p.category_id = c.id)
         FROM categories c WHERE c.slug = $1",
    )
    .bind(&slug)
    .fetch_optional(&mut *tx)
    .await?;
    match usage {
        None => return Err(ApiError::not_found(format!("category {slug:?}"))),
        Some((children, products)) if children > 0 || products > 0 => {
            return Err(ApiError::Conflict(format!(
                "category {slug:?} still has {children} subcategories and {products} products; move or delete them first"
            )));
        }
        Some(_) => {}
    }
    sqlx::query("DELETE FROM categories WHERE slug = $1")
        .bind(&slug)
        .execute(&mut *tx)
        .await
        .map_err(store::client_error)?;
    tx.commit().await.map_err(store::client_error)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- inventory ---------------------------------------------------------------------------

/// Stock of a SKU with its latest adjustments.
#[utoipa::path(
    get, path = "/admin/inventory/{sku}", tag = "admin", security(("bearer" = [])),
    params(("sku" = String, Path, description = "The variant's SKU")),
    responses(
        (status = 200, description = "Stock and audit trail", body = Inventory),
        (status = 404, description = "No stock record for this SKU", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_inventory(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> ApiResult<Response> {
    let level = sqlx::query_as::<_, StockLevel>(
        "SELECT sku, on_hand, reserved, available FROM inventory WHERE sku = $1",
    )
    .bind(&sku)
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("stock of SKU {sku:?}")))?;
    let adjustments = sqlx::query_as::<_, Adjustment>(
        "SELECT id, delta, reason, actor, on_hand_after, at FROM inventory_adjustments
         WHERE sku = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(&sku)
    .bind(RECENT_ADJUSTMENTS)
    .fetch_all(state.pool())
    .await?;
    Ok(no_store(Json(Inventory { level, adjustments })))
}

/// Add or remove stock. Atomic and row-level: concurrent adjustments of one SKU queue on
/// its row, and an adjustment that would leave less on hand than is reserved (or less
/// than zero) is refused with 409 and changes nothing.
#[utoipa::path(
    post, path = "/admin/inventory/{sku}/adjust", tag = "admin", security(("bearer" = [])),
    params(("sku" = String, Path, description = "The variant's SKU")),
    request_body = AdjustStock,
    responses(
        (status = 200, description = "The new stock level", body = StockLevel),
        (status = 404, description = "No stock record for this SKU", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would go below reserved or zero", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn adjust_inventory(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(sku): Path<String>,
    Json(input): Json<AdjustStock>,
) -> ApiResult<Response> {
    let mut errors = Errors::new();
    if input.delta == 0 {
        errors.push("delta", "must not be zero");
    } else if input.delta.abs() > validate::MAX_STOCK {
        errors.push(
            "delta",
            format!("must be between -{0} and {0}", validate::MAX_STOCK),
        );
    }
    errors.check("reason", validate::reason(&input.reason));
    errors.finish()?;
    // One statement: the UPDATE takes the row lock and checks the bounds on the locked
    // row; the audit row (and the event for carts) is written only if it did.
    let mut tx = state.pool().begin().await?;
    let level = sqlx::query_as::<_, StockLevel>(
        "WITH updated AS (
             UPDATE inventory SET on_hand = on_hand + $2, updated_at = now()
             WHERE sku = $1
               AND on_hand::bigint + $2 >= reserved
               AND on_hand::bigint + $2 <= $6
             RETURNING sku, on_hand, reserved, available),
         audit AS (
             INSERT INTO inventory_adjustments (id, sku, delta, reason, actor, on_hand_after)
             SELECT $3, sku, $2, $4, $5, on_hand FROM updated)
         SELECT sku, on_hand, reserved, available FROM updated",
    )
    .bind(&sku)
    .bind(input.delta)
    .bind(Uuid::now_v7())
    .bind(input.reason.trim())
    .bind(admin.actor())
    .bind(validate::MAX_STOCK)
    .fetch_optional(&mut *tx)
    .await
    .map_err(store::client_error)?;
    if let Some(level) = level {
        shopkit::events::record(
            &mut tx,
            crate::reservations::SOURCE,
            "inventory.changed",
            serde_json::json!({"sku": level.sku, "available": level.available}),
            None,
        )
        .await?;
        tx.commit().await?;
        crate::metrics::adjustment(input.delta);
        return Ok(no_store(Json(level)));
    }
    drop(tx);
    let current = sqlx::query_as::<_, StockLevel>(
        "SELECT sku, on_hand, reserved, available FROM inventory WHERE sku = $1",
    )
    .bind(&sku)
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("stock of SKU {sku:?}")))?;
    Err(ApiError::Conflict(format!(
        "adjusting {sku} by {} would leave {} on hand with {} reserved; on hand can go neither below reserved nor below zero (nor above {})",
        input.delta,
        i64::from(current.on_hand) + input.delta,
        current.reserved,
        validate::MAX_STOCK
    )))
}
