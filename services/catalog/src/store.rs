//! Write helpers shared by the admin endpoints, the bulk import and the demo seed: bulk
//! inserts with `UNNEST` (one statement for any number of rows) and the mapping of
//! constraint violations to 409/422.

use std::collections::BTreeMap;

use shopkit::ApiError;
use sqlx::PgConnection;
use uuid::Uuid;

/// Variants to insert, column by column.
#[derive(Debug, Default)]
pub(crate) struct VariantColumns {
    pub ids: Vec<Uuid>,
    pub product_ids: Vec<Uuid>,
    pub skus: Vec<String>,
    pub attributes: Vec<serde_json::Value>,
    pub prices: Vec<i64>,
    pub currencies: Vec<String>,
    pub positions: Vec<i32>,
}

impl VariantColumns {
    pub fn push(
        &mut self,
        product_id: Uuid,
        sku: &str,
        attributes: &BTreeMap<String, String>,
        price_minor: i64,
        currency: &str,
        position: i32,
    ) -> Uuid {
        let id = Uuid::now_v7();
        self.push_with_id(
            id,
            product_id,
            sku,
            attributes,
            price_minor,
            currency,
            position,
        );
        id
    }

    #[allow(clippy::too_many_arguments)]
    pub fn push_with_id(
        &mut self,
        id: Uuid,
        product_id: Uuid,
        sku: &str,
        attributes: &BTreeMap<String, String>,
        price_minor: i64,
        currency: &str,
        position: i32,
    ) {
        self.ids.push(id);
        self.product_ids.push(product_id);
        self.skus.push(sku.to_owned());
        self.attributes.push(serde_json::json!(attributes));
        self.prices.push(price_minor);
        self.currencies.push(currency.to_owned());
        self.positions.push(position);
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Inserts the variants; on a SKU that exists, updates it when it belongs to the same
/// product (`upsert`), else fails with the unique violation. Returns the SKUs that were
/// newly inserted.
pub(crate) async fn write_variants(
    conn: &mut PgConnection,
    rows: &VariantColumns,
    mode: WriteMode,
) -> sqlx::Result<Vec<String>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match mode {
        WriteMode::Insert => {
            "INSERT INTO variants (id, product_id, sku, attributes, price_minor, currency, position)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::bigint[],
                                  $6::text[], $7::int[])
             RETURNING sku, true AS inserted"
        }
        WriteMode::Upsert => {
            "INSERT INTO variants (id, product_id, sku, attributes, price_minor, currency, position)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::bigint[],
                                  $6::text[], $7::int[])
             ON CONFLICT (sku) DO UPDATE
                SET attributes = EXCLUDED.attributes, price_minor = EXCLUDED.price_minor,
                    currency = EXCLUDED.currency, position = EXCLUDED.position, updated_at = now()
                WHERE variants.product_id = EXCLUDED.product_id
             RETURNING sku, (xmax = 0) AS inserted"
        }
    };
    let written: Vec<(String, bool)> = sqlx::query_as(sql)
        .bind(&rows.ids)
        .bind(&rows.product_ids)
        .bind(&rows.skus)
        .bind(&rows.attributes)
        .bind(&rows.prices)
        .bind(&rows.currencies)
        .bind(&rows.positions)
        .fetch_all(&mut *conn)
        .await?;
    Ok(written
        .into_iter()
        .filter_map(|(sku, inserted)| inserted.then_some(sku))
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    Insert,
    Upsert,
}

/// Sets on-hand stock per SKU (creating inventory rows as needed) and writes one audit
/// row per change. `previous` is the current on-hand of each SKU (0 for new ones); the
/// caller has locked those rows.
pub(crate) async fn set_stock(
    conn: &mut PgConnection,
    changes: &[StockChange],
    reason: &str,
    actor: &str,
) -> sqlx::Result<usize> {
    if changes.is_empty() {
        return Ok(0);
    }
    let skus: Vec<&str> = changes.iter().map(|c| c.sku.as_str()).collect();
    let levels: Vec<i32> = changes.iter().map(|c| c.on_hand).collect();
    sqlx::query(
        "INSERT INTO inventory (sku, on_hand)
         SELECT * FROM UNNEST($1::text[], $2::int[])
         ON CONFLICT (sku) DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = now()",
    )
    .bind(&skus)
    .bind(&levels)
    .execute(&mut *conn)
    .await?;
    let audited: Vec<&StockChange> = changes.iter().filter(|c| c.on_hand != c.previous).collect();
    if audited.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = audited.iter().map(|_| Uuid::now_v7()).collect();
    let skus: Vec<&str> = audited.iter().map(|c| c.sku.as_str()).collect();
    let deltas: Vec<i32> = audited.iter().map(|c| c.on_hand - c.previous).collect();
    let after: Vec<i32> = audited.iter().map(|c| c.on_hand).collect();
    sqlx::query(
        "INSERT INTO inventory_adjustments (id, sku, delta, reason, actor, on_hand_after)
         SELECT u.id, u.sku, u.delta, $4, $5, u.after
         FROM UNNEST($1::uuid[], $2::text[], $3::int[], $6::int[]) AS u (id, sku, delta, after)",
    )
    .bind(&ids)
    .bind(&skus)
    .bind(&deltas)
    .bind(reason)
    .bind(actor)
    .bind(&after)
    .execute(&mut *conn)
    .await?;
    Ok(audited.len())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StockChange {
    pub sku: String,
    pub previous: i32,
    pub on_hand: i32,
}

/// Constraint violations as client errors; anything else stays a 5xx.
pub(crate) fn client_error(err: sqlx::Error) -> ApiError {
    if let Some(db) = err.as_database_error() {
        let conflict = match db.constraint() {
            Some("products_slug_key") => {
                Some("a product with this slug already exists; choose another slug")
            }
            Some("variants_sku_key") => Some("a variant with this SKU already exists"),
            Some("categories_slug_key") => Some("a category with this slug already exists"),
            _ => None,
        };
        if let Some(message) = conflict {
            return ApiError::Conflict(message.into());
        }
        if db.is_foreign_key_violation() {
            return ApiError::Conflict(
                "the change conflicts with rows that refer to this one (or that it refers to)"
                    .into(),
            );
        }
        if db.is_check_violation() {
            let rule = db.constraint().unwrap_or("a check constraint").to_owned();
            return ApiError::Unprocessable(format!("the change breaks the rule {rule}"));
        }
    }
    ApiError::from(err)
}

/// The id of a product given by id or slug, locked for the rest of the transaction.
pub(crate) async fn lock_product(conn: &mut PgConnection, key: &str) -> Result<Uuid, ApiError> {
    let (id, slug) = match Uuid::parse_str(key) {
        Ok(id) => (Some(id), None),
        Err(_) => (None, Some(key)),
    };
    sqlx::query_scalar("SELECT id FROM products WHERE id = $1 OR slug = $2 FOR UPDATE")
        .bind(id)
        .bind(slug)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product {key:?}")))
}

/// A category's id by slug; a 422 naming `field` when it does not exist.
pub(crate) async fn category_id(
    conn: &mut PgConnection,
    slug: &str,
    field: &str,
) -> Result<Uuid, ApiError> {
    sqlx::query_scalar("SELECT id FROM categories WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ApiError::invalid(field, format!("no category has the slug {slug:?}")))
}
