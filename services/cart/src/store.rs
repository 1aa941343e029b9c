//! The cart's SQL. Every change runs in one transaction that first bumps the cart's
//! `version` with an `UPDATE` — which takes the cart's row lock, so changes to one cart
//! are serialised however many replicas and tabs make them — then changes lines with
//! single atomic statements (`quantity = quantity + n` in an upsert), then calls
//! `pg_notify('cart_changed', id)`, delivered to every replica's listener on commit.

use std::collections::{HashMap, HashSet};

use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::catalog::SkuInfo;
use crate::error::{CartError, CartResult};
use crate::model::{CartView, LineView, MAX_QUANTITY, MergeAdjustment, MergeResult};

/// The notification channel of cart changes; the payload is the cart's id.
pub const CHANGED_CHANNEL: &str = "cart_changed";

/// Who may reach a cart.
#[derive(Debug, Clone)]
pub struct CartOwner {
    pub user_id: Option<Uuid>,
    pub token_hash: Option<Vec<u8>>,
    pub status: String,
}

impl CartOwner {
    pub fn is_open(&self) -> bool {
        self.status == STATUS_OPEN
    }
}

pub const STATUS_OPEN: &str = "open";
pub const STATUS_MERGED: &str = "merged";

#[derive(Debug, serde::Deserialize)]
struct LineRow {
    sku: String,
    quantity: i64,
    unit_price_minor: i64,
    currency: String,
    product_name: String,
    product_slug: String,
    attributes: serde_json::Value,
    available: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct CartRow {
    id: Uuid,
    user_id: Option<Uuid>,
    status: String,
    version: i64,
    lines: SqlJson<Vec<LineRow>>,
}

impl From<CartRow> for CartView {
    fn from(row: CartRow) -> Self {
        let lines: Vec<LineView> = row
            .lines
            .0
            .into_iter()
            .map(|l| LineView {
                line_total_minor: l.quantity.saturating_mul(l.unit_price_minor),
                insufficient_stock: l.quantity > l.available,
                sku: l.sku,
                quantity: l.quantity,
                unit_price_minor: l.unit_price_minor,
                currency: l.currency,
                product_name: l.product_name,
                product_slug: l.product_slug,
                attributes: l.attributes,
                available: l.available,
            })
            .collect();
        let total_minor = lines
            .iter()
            .fold(0_i64, |sum, l| sum.saturating_add(l.line_total_minor));
        CartView {
            id: row.id,
            user_id: row.user_id,
            status: row.status,
            currency: lines.first().map(|l| l.currency.clone()),
            total_minor,
            version: row.version,
            lines,
        }
    }
}

/// One statement, so the lines and the version come from the same snapshot.
const LOAD_CART: &str = r#"
SELECT c.id, c.user_id, c.status, c.version,
       COALESCE(jsonb_agg(jsonb_build_object(
                    'sku', l.sku, 'quantity', l.quantity,
                    'unit_price_minor', l.unit_price_minor, 'currency', l.currency,
                    'product_name', l.product_name, 'product_slug', l.product_slug,
                    'attributes', l.attributes, 'available', l.available)
                ORDER BY l.added_at, l.sku) FILTER (WHERE l.sku IS NOT NULL),
                '[]') AS lines
FROM carts c
LEFT JOIN cart_lines l ON l.cart_id = c.id
WHERE c.id = $1
GROUP BY c.id
"#;

/// The cart with its lines, whatever its status.
pub async fn load(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<CartView>> {
    let row: Option<CartRow> = sqlx::query_as(LOAD_CART)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(CartView::from))
}

async fn load_required(pool: &PgPool, id: Uuid) -> CartResult<CartView> {
    load(pool, id)
        .await?
        .ok_or_else(|| CartError::not_found(format!("cart {id}")))
}

pub async fn owner(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<CartOwner>> {
    let row: Option<(Option<Uuid>, Option<Vec<u8>>, String)> =
        sqlx::query_as("SELECT user_id, token_hash, status FROM carts WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(user_id, token_hash, status)| CartOwner {
        user_id,
        token_hash,
        status,
    }))
}

/// A new anonymous cart reached with the token whose hash is given.
pub async fn create_anonymous(pool: &PgPool, token_hash: &[u8]) -> CartResult<CartView> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO carts (id, token_hash) VALUES ($1, $2)")
        .bind(id)
        .bind(token_hash)
        .execute(pool)
        .await?;
    load_required(pool, id).await
}

/// The user's open cart, created when there is none. Concurrent first calls create one:
/// the partial unique index decides, the loser reads the winner's cart.
async fn open_user_cart_id(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Uuid> {
    sqlx::query(
        "INSERT INTO carts (id, user_id) VALUES ($1, $2)
         ON CONFLICT (user_id) WHERE status = 'open' AND user_id IS NOT NULL DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT id FROM carts WHERE user_id = $1 AND status = 'open'")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await
}

pub async fn user_cart(pool: &PgPool, user_id: Uuid) -> CartResult<CartView> {
    let mut conn = pool.acquire().await?;
    let id = open_user_cart_id(&mut conn, user_id).await?;
    drop(conn);
    load_required(pool, id).await
}

/// Tells every replica's listener that the cart changed (delivered on commit).
pub async fn notify(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGED_CHANNEL)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks an open cart and bumps its version; checks `If-Match` against the version
/// before. A closed or missing cart is a 404.
async fn begin_change(conn: &mut PgConnection, id: Uuid, if_match: Option<i64>) -> CartResult<i64> {
    let previous: Option<i64> = sqlx::query_scalar(
        "UPDATE carts SET version = version + 1, updated_at = now()
         WHERE id = $1 AND status = 'open'
         RETURNING version - 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let previous = previous.ok_or_else(|| CartError::not_found(format!("cart {id}")))?;
    match if_match {
        Some(expected) if expected != previous => Err(CartError::VersionMismatch {
            expected,
            current: previous,
        }),
        _ => Ok(previous + 1),
    }
}

/// A cart holds one currency: another line priced differently refuses `info`.
async fn check_currency(conn: &mut PgConnection, id: Uuid, info: &SkuInfo) -> CartResult<()> {
    let other: Option<String> = sqlx::query_scalar(
        "SELECT currency FROM cart_lines WHERE cart_id = $1 AND sku <> $2 AND currency <> $3 LIMIT 1",
    )
    .bind(id)
    .bind(&info.sku)
    .bind(&info.currency)
    .fetch_optional(&mut *conn)
    .await?;
    match other {
        Some(cart_currency) => Err(CartError::CurrencyMismatch {
            sku: info.sku.clone(),
            sku_currency: info.currency.clone(),
            cart_currency: cart_currency.trim().to_owned(),
        }),
        None => Ok(()),
    }
}

/// `POST /carts/{id}/items`: adds `quantity` to the line (creating it), at the catalog's
/// current price. The sum is checked in the statement itself, so two tabs adding at
/// once can never push a line past the stock or the per-line limit.
pub async fn add_item(
    pool: &PgPool,
    id: Uuid,
    info: &SkuInfo,
    quantity: i32,
    if_match: Option<i64>,
) -> CartResult<CartView> {
    let mut tx = pool.begin().await?;
    begin_change(&mut tx, id, if_match).await?;
    check_currency(&mut tx, id, info).await?;
    let cap = info.available.min(MAX_QUANTITY);
    let added: Option<i32> = sqlx::query_scalar(
        "INSERT INTO cart_lines (cart_id, sku, quantity, unit_price_minor, currency,
                                 product_name, product_slug, attributes, available)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE $3 <= $10
         ON CONFLICT (cart_id, sku) DO UPDATE SET
             quantity = cart_lines.quantity + EXCLUDED.quantity,
             unit_price_minor = EXCLUDED.unit_price_minor,
             currency = EXCLUDED.currency,
             product_name = EXCLUDED.product_name,
             product_slug = EXCLUDED.product_slug,
             attributes = EXCLUDED.attributes,
             available = EXCLUDED.available,
             updated_at = now()
         WHERE cart_lines.quantity + EXCLUDED.quantity <= $10
         RETURNING quantity",
    )
    .bind(id)
    .bind(&info.sku)
    .bind(quantity)
    .bind(info.price_minor)
    .bind(&info.currency)
    .bind(&info.product_name)
    .bind(&info.product_slug)
    .bind(&info.attributes)
    .bind(info.available)
    .bind(cap)
    .fetch_optional(&mut *tx)
    .await?;
    if added.is_none() {
        // Refused by the cap: say which one.
        let held: Option<i32> =
            sqlx::query_scalar("SELECT quantity FROM cart_lines WHERE cart_id = $1 AND sku = $2")
                .bind(id)
                .bind(&info.sku)
                .fetch_optional(&mut *tx)
                .await?;
        let requested = i64::from(held.unwrap_or(0)) + i64::from(quantity);
        return Err(too_many(info, requested, held));
    }
    notify(&mut tx, id).await?;
    tx.commit().await?;
    load_required(pool, id).await
}

/// The error for a line of `requested` that exceeds the stock or the per-line limit.
fn too_many(info: &SkuInfo, requested: i64, held: Option<i32>) -> CartError {
    if requested > info.available {
        CartError::OutOfStock {
            sku: info.sku.clone(),
            requested,
            available: info.available,
        }
    } else {
        let held = held.map_or(String::new(), |h| format!(" (the cart holds {h})"));
        CartError::invalid(
            "quantity",
            format!("a line holds at most {MAX_QUANTITY}; this would make {requested}{held}"),
        )
    }
}

/// `PATCH /carts/{id}/items/{sku}` with 1–99: sets the line's quantity, at the catalog's
/// current price.
pub async fn set_quantity(
    pool: &PgPool,
    id: Uuid,
    info: &SkuInfo,
    quantity: i32,
    if_match: Option<i64>,
) -> CartResult<CartView> {
    if i64::from(quantity) > info.available {
        return Err(too_many(info, i64::from(quantity), None));
    }
    let mut tx = pool.begin().await?;
    begin_change(&mut tx, id, if_match).await?;
    check_currency(&mut tx, id, info).await?;
    let updated = sqlx::query(
        "UPDATE cart_lines SET quantity = $3, unit_price_minor = $4, currency = $5,
                product_name = $6, product_slug = $7, attributes = $8, available = $9,
                updated_at = now()
         WHERE cart_id = $1 AND sku = $2",
    )
    .bind(id)
    .bind(&info.sku)
    .bind(quantity)
    .bind(info.price_minor)
    .bind(&info.currency)
    .bind(&info.product_name)
    .bind(&info.product_slug)
    .bind(&info.attributes)
    .bind(info.available)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(line_not_found(&info.sku));
    }
    notify(&mut tx, id).await?;
    tx.commit().await?;
    load_required(pool, id).await
}

fn line_not_found(sku: &str) -> CartError {
    CartError::not_found(format!("a line for SKU {sku:?} in this cart"))
}

/// `DELETE /carts/{id}/items/{sku}` (and `PATCH` with quantity 0).
pub async fn remove_item(
    pool: &PgPool,
    id: Uuid,
    sku: &str,
    if_match: Option<i64>,
) -> CartResult<CartView> {
    let mut tx = pool.begin().await?;
    begin_change(&mut tx, id, if_match).await?;
    let removed = sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1 AND sku = $2")
        .bind(id)
        .bind(sku)
        .execute(&mut *tx)
        .await?;
    if removed.rows_affected() == 0 {
        return Err(line_not_found(sku));
    }
    notify(&mut tx, id).await?;
    tx.commit().await?;
    load_required(pool, id).await
}

/// The SKUs of a cart's lines (what a merge asks the catalog about).
pub async fn skus(pool: &PgPool, id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT sku FROM cart_lines WHERE cart_id = $1 ORDER BY sku")
        .bind(id)
        .fetch_all(pool)
        .await
}

/// The catalog's answer for a merge: `asked` is what the catalog was asked about (a SKU
/// asked about but absent from `found` is not for sale any more).
#[derive(Debug, Default)]
pub struct CatalogFacts {
    pub asked: HashSet<String>,
    pub found: HashMap<String, SkuInfo>,
}

#[derive(Debug, sqlx::FromRow)]
struct MergeLine {
    sku: String,
    quantity: i32,
    unit_price_minor: i64,
    currency: String,
    product_name: String,
    product_slug: String,
    attributes: serde_json::Value,
    available: i64,
}

impl MergeLine {
    /// The facts to merge with: the catalog's, or — for a line added after the catalog
    /// was asked — the line's own, as last seen.
    fn facts(&self, catalog: &CatalogFacts) -> Option<SkuInfo> {
        if let Some(info) = catalog.found.get(&self.sku) {
            return info.published.then(|| info.clone());
        }
        if catalog.asked.contains(&self.sku) {
            return None;
        }
        Some(SkuInfo {
            sku: self.sku.clone(),
            product_id: Uuid::nil(),
            product_name: self.product_name.clone(),
            product_slug: self.product_slug.clone(),
            attributes: self.attributes.clone(),
            price_minor: self.unit_price_minor,
            currency: self.currency.trim().to_owned(),
            available: self.available,
            published: true,
        })
    }
}

/// `POST /carts/mine/merge`: folds the anonymous cart into the user's open cart, once.
/// Quantities add, capped by availability and the per-line limit (never below what the
/// user's cart already held); lines in another currency or no longer sold are left out
/// and reported. The anonymous cart is then closed (`merged`), so a repeat — a retried
/// request, a second tab logging in — returns the user's cart unchanged.
///
/// `token_ok` decides whether the caller holds the anonymous cart's token; an unknown
/// cart, a user's cart, a wrong token, or a cart merged into another user's cart are all
/// the same 404.
pub async fn merge(
    pool: &PgPool,
    user_id: Uuid,
    anonymous_id: Uuid,
    token_ok: impl Fn(&[u8]) -> bool,
    catalog: &CatalogFacts,
) -> CartResult<MergeResult> {
    let not_found = || CartError::not_found(format!("cart {anonymous_id}"));
    let mut tx = pool.begin().await?;
    let anonymous: Option<(Option<Uuid>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT user_id, token_hash FROM carts WHERE id = $1")
            .bind(anonymous_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((None, Some(token_hash))) = anonymous else {
        return Err(not_found());
    };
    if !token_ok(&token_hash) {
        return Err(not_found());
    }
    let target = open_user_cart_id(&mut tx, user_id).await?;
    // Both carts locked in id order, as the event handlers lock theirs, so that no two
    // transactions ever wait on each other in a cycle.
    let locked: Vec<(Uuid, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT id, status, merged_into FROM carts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind([anonymous_id, target].as_slice())
    .fetch_all(&mut *tx)
    .await?;
    let Some((_, status, merged_into)) = locked.into_iter().find(|(id, ..)| *id == anonymous_id)
    else {
        return Err(not_found());
    };
    if status == STATUS_MERGED {
        // Already done: by this user (a repeat), or by someone else (not theirs to see).
        if merged_into != Some(target) {
            let owner: Option<Uuid> = sqlx::query_scalar("SELECT user_id FROM carts WHERE id = $1")
                .bind(merged_into)
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
            if owner != Some(user_id) {
                return Err(not_found());
            }
        }
        tx.rollback().await?;
        return Ok(MergeResult {
            cart: load_required(pool, target).await?,
            adjustments: Vec::new(),
        });
    }

    let incoming: Vec<MergeLine> = sqlx::query_as(
        "SELECT sku, quantity, unit_price_minor, currency, product_name, product_slug,
                attributes, available
         FROM cart_lines WHERE cart_id = $1 ORDER BY added_at, sku",
    )
    .bind(anonymous_id)
    .fetch_all(&mut *tx)
    .await?;
    let held: HashMap<String, (i32, String)> = sqlx::query_as::<_, (String, i32, String)>(
        "SELECT sku, quantity, currency FROM cart_lines WHERE cart_id = $1",
    )
    .bind(target)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(sku, quantity, currency)| (sku, (quantity, currency.trim().to_owned())))
    .collect();
    let mut currency: Option<String> = held.values().next().map(|(_, c)| c.clone());

    let mut adjustments = Vec::new();
    let mut changed = false;
    for line in &incoming {
        let existing = held.get(&line.sku).map_or(0, |(q, _)| i64::from(*q));
        let requested = existing + i64::from(line.quantity);
        let adjust = |quantity: i64, reason: &str| MergeAdjustment {
            sku: line.sku.clone(),
            requested,
            quantity,
            reason: reason.to_owned(),
        };
        let Some(info) = line.facts(catalog) else {
            adjustments.push(adjust(existing, "unavailable"));
            continue;
        };
        if currency.as_ref().is_some_and(|c| *c != info.currency) {
            adjustments.push(adjust(existing, "currency"));
            continue;
        }
        let cap = info.available.clamp(0, MAX_QUANTITY);
        let quantity = requested.min(cap).max(existing);
        if quantity == 0 {
            adjustments.push(adjust(0, "unavailable"));
            continue;
        }
        if quantity < requested {
            adjustments.push(adjust(quantity, "capped"));
        }
        if quantity == existing {
            continue;
        }
        currency.get_or_insert_with(|| info.currency.clone());
        sqlx::query(
            "INSERT INTO cart_lines (cart_id, sku, quantity, unit_price_minor, currency,
                                     product_name, product_slug, attributes, available)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (cart_id, sku) DO UPDATE SET
                 quantity = EXCLUDED.quantity,
                 unit_price_minor = EXCLUDED.unit_price_minor,
                 currency = EXCLUDED.currency,
                 product_name = EXCLUDED.product_name,
                 product_slug = EXCLUDED.product_slug,
                 attributes = EXCLUDED.attributes,
                 available = EXCLUDED.available,
                 updated_at = now()",
        )
        .bind(target)
        .bind(&info.sku)
        .bind(i32::try_from(quantity).unwrap_or(0))
        .bind(info.price_minor)
        .bind(&info.currency)
        .bind(&info.product_name)
        .bind(&info.product_slug)
        .bind(&info.attributes)
        .bind(info.available)
        .execute(&mut *tx)
        .await?;
        changed = true;
    }

    sqlx::query(
        "UPDATE carts SET status = 'merged', merged_into = $2, version = version + 1,
                updated_at = now()
         WHERE id = $1",
    )
    .bind(anonymous_id)
    .bind(target)
    .execute(&mut *tx)
    .await?;
    // The closed cart's lines now live in the user's cart.
    sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1")
        .bind(anonymous_id)
        .execute(&mut *tx)
        .await?;
    notify(&mut tx, anonymous_id).await?;
    if changed {
        sqlx::query("UPDATE carts SET version = version + 1, updated_at = now() WHERE id = $1")
            .bind(target)
            .execute(&mut *tx)
            .await?;
        notify(&mut tx, target).await?;
    }
    tx.commit().await?;
    Ok(MergeResult {
        cart: load_required(pool, target).await?,
        adjustments,
    })
}

/// Deletes anonymous carts (open or merged) untouched for `idle`: their cookie has
/// expired, so nobody can reach them any more. User carts are kept. Returns how many.
pub async fn purge_idle_anonymous(pool: &PgPool, idle: std::time::Duration) -> sqlx::Result<u64> {
    let seconds = i64::try_from(idle.as_secs()).unwrap_or(i64::MAX);
    let purged = sqlx::query(
        "DELETE FROM carts
         WHERE user_id IS NULL AND updated_at < now() - $1 * interval '1 second'",
    )
    .bind(seconds)
    .execute(pool)
    .await?;
    Ok(purged.rows_affected())
}
