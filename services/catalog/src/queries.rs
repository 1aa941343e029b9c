//! The SQL behind the public reads, as plain functions over a pool. The HTTP handlers
//! call exactly these, so a benchmark can run them straight against PostgreSQL and compare.
//!
//! All statements are static strings with bind parameters; optional filters are
//! `($n IS NULL OR …)` so that one statement per sort order serves every combination.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::model::{
    CategoryFacet, CategoryNode, CategoryRef, Facets, Money, PriceBucket, ProductDetail,
    ProductSummary, SearchResults, Status, ValueFacet, Variant,
};
use crate::search::{self, Cursor, CursorKey, SearchRequest, Sort};

/// Lower edges of the price facet's buckets, in minor units (the first bucket starts at 0):
/// under 25, 25–50, 50–100, 100–200, 200 and more.
pub const PRICE_BUCKET_EDGES: [i64; 4] = [2_500, 5_000, 10_000, 20_000];

/// Which products a lookup may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// The public: published products only.
    Published,
    /// Admins: drafts too.
    Any,
}

// ---- product by id or slug ---------------------------------------------------------------

const PRODUCT_SQL: &str = "
SELECT p.id, p.slug, p.name, p.description, p.status, p.image_urls,
       p.created_at, p.updated_at,
       c.id AS category_id, c.slug AS category_slug, c.name AS category_name,
       coalesce((
           SELECT jsonb_agg(jsonb_build_object(
                      'id', v.id, 'sku', v.sku, 'attributes', v.attributes,
                      'price_minor', v.price_minor, 'currency', v.currency,
                      'available', coalesce(i.available, 0))
                  ORDER BY v.position, v.sku)
           FROM variants v LEFT JOIN inventory i ON i.sku = v.sku
           WHERE v.product_id = p.id), '[]'::jsonb) AS variants
FROM products p JOIN categories c ON c.id = p.category_id
WHERE (p.id = $1 OR p.slug = $2) AND ($3 OR p.status = 'published')";

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: Uuid,
    slug: String,
    name: String,
    description: String,
    status: String,
    image_urls: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    category_id: Uuid,
    category_slug: String,
    category_name: String,
    variants: Json<Vec<VariantRow>>,
}

#[derive(Deserialize)]
struct VariantRow {
    id: Uuid,
    sku: String,
    attributes: BTreeMap<String, String>,
    price_minor: i64,
    currency: String,
    available: i32,
}

/// A product key from a path: a UUID is an id, anything else a slug.
fn id_or_slug(key: &str) -> (Option<Uuid>, Option<&str>) {
    match Uuid::parse_str(key) {
        Ok(id) => (Some(id), None),
        Err(_) => (None, Some(key)),
    }
}

/// `GET /products/{id}`: one product with its variants and their stock, by id or slug.
pub async fn product(
    pool: &PgPool,
    key: &str,
    visibility: Visibility,
) -> sqlx::Result<Option<ProductDetail>> {
    let (id, slug) = id_or_slug(key);
    let row = sqlx::query_as::<_, ProductRow>(PRODUCT_SQL)
        .bind(id)
        .bind(slug)
        .bind(visibility == Visibility::Any)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(ProductRow::into_detail))
}

impl ProductRow {
    fn into_detail(self) -> ProductDetail {
        let variants: Vec<Variant> = self
            .variants
            .0
            .into_iter()
            .map(|v| Variant {
                id: v.id,
                sku: v.sku,
                attributes: v.attributes,
                price: Money {
                    amount_minor: v.price_minor,
                    currency: v.currency,
                },
                available: v.available,
                in_stock: v.available > 0,
            })
            .collect();
        let price_from = variants
            .iter()
            .min_by(|a, b| {
                a.price
                    .amount_minor
                    .cmp(&b.price.amount_minor)
                    .then(a.sku.cmp(&b.sku))
            })
            .map(|v| v.price.clone());
        ProductDetail {
            id: self.id,
            slug: self.slug,
            name: self.name,
            description: self.description,
            status: Status::parse(&self.status).unwrap_or_default(),
            category: CategoryRef {
                id: self.category_id,
                slug: self.category_slug,
                name: self.category_name,
            },
            image_urls: self.image_urls,
            price_from,
            in_stock: variants.iter().any(|v| v.in_stock),
            variants,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

// ---- category tree -----------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct CategoryRow {
    id: Uuid,
    parent_id: Option<Uuid>,
    slug: String,
    name: String,
    position: i32,
    direct_products: i64,
}

/// `GET /categories`: the whole tree, siblings by position then name, each node counting
/// the published products of its subtree.
pub async fn category_tree(pool: &PgPool) -> sqlx::Result<Vec<CategoryNode>> {
    let rows = sqlx::query_as::<_, CategoryRow>(
        "SELECT c.id, c.parent_id, c.slug, c.name, c.position,
                (SELECT count(*) FROM products p
                 WHERE p.category_id = c.id AND p.status = 'published') AS direct_products
         FROM categories c
         ORDER BY c.position, c.name, c.slug",
    )
    .fetch_all(pool)
    .await?;
    Ok(build_tree(&rows))
}

fn build_tree(rows: &[CategoryRow]) -> Vec<CategoryNode> {
    let mut children: HashMap<Option<Uuid>, Vec<&CategoryRow>> = HashMap::new();
    for row in rows {
        children.entry(row.parent_id).or_default().push(row);
    }
    // Depth-first from the roots; the schema forbids cycles, and a node in one (were it
    // possible) would simply be unreachable rather than loop.
    fn build(
        parent: Option<Uuid>,
        children: &HashMap<Option<Uuid>, Vec<&CategoryRow>>,
        depth: usize,
    ) -> Vec<CategoryNode> {
        // Deeper than any real catalog; stops a corrupted tree from exhausting the stack.
        const MAX_DEPTH: usize = 64;
        if depth > MAX_DEPTH {
            return Vec::new();
        }
        children
            .get(&parent)
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        let kids = build(Some(row.id), children, depth + 1);
                        let product_count =
                            row.direct_products + kids.iter().map(|k| k.product_count).sum::<i64>();
                        CategoryNode {
                            id: row.id,
                            slug: row.slug.clone(),
                            name: row.name.clone(),
                            position: row.position,
                            product_count,
                            children: kids,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    build(None, &children, 0)
}

pub async fn category_exists(pool: &PgPool, slug: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM categories WHERE slug = $1)")
        .bind(slug)
        .fetch_one(pool)
        .await
}

// ---- search and listings -----------------------------------------------------------------

/// The filtered result set, shared by the page and the facet statements, in two forms:
/// `text` (the products the full-text index finds for `$1`, ranked) and `all` (every
/// published product, rank 0; `$1` is NULL).
///
/// Two forms rather than `($1 IS NULL OR p.search @@ …)`: PostgreSQL switches a prepared
/// statement to a generic plan after five executions when that looks no dearer than the
/// custom plans so far, and a generic plan of the `OR` cannot use the full-text index.
/// After a few category listings every search on the connection scanned all products
/// (`cargo xtask bench catalog`: 150 instead of 500 searches/s on two cores). Each form
/// has one plan shape that suits any parameters, so the cached generic plans are good
/// and the statements are planned once per connection instead of on every request.
///
/// `$1` query text (it must contain lexemes: see [`has_lexemes`]), `$2` category slug
/// (descendants included), `$3`/`$4` price range, `$5` in stock only, `$6` attribute
/// filters as `{"color": ["blue", "navy"]}`. The variant-level filters must all hold for
/// one and the same variant (a product with a blue S and a red M is not a "blue M").
macro_rules! matched_cte {
    (text) => {
        matched_cte!(
            "ts_rank(p.search, q.tsq)::real AS rank
             FROM products p, (SELECT websearch_to_tsquery('english', $1::text) AS tsq) q
             WHERE p.status = 'published' AND p.search @@ q.tsq"
        )
    };
    (all) => {
        matched_cte!(
            "0::real AS rank
             FROM products p
             WHERE p.status = 'published' AND $1::text IS NULL"
        )
    };
    ($source:literal) => {
        concat!(
            "WITH RECURSIVE scope (id) AS (
             SELECT id FROM categories WHERE slug = $2::text
             UNION
             SELECT c.id FROM categories c JOIN scope s ON c.parent_id = s.id
         ),
         matched AS (
             SELECT p.id, p.created_at, p.min_price_minor, ",
            $source,
            "
               AND ($2::text IS NULL OR p.category_id IN (SELECT id FROM scope))
               AND (($3::bigint IS NULL AND $4::bigint IS NULL AND NOT $5::boolean
                     AND $6::jsonb = '{}'::jsonb)
                    OR EXISTS (
                        SELECT 1 FROM variants v LEFT JOIN inventory i ON i.sku = v.sku
                        WHERE v.product_id = p.id
                          AND ($3::bigint IS NULL OR v.price_minor >= $3::bigint)
                          AND ($4::bigint IS NULL OR v.price_minor <= $4::bigint)
                          AND (NOT $5::boolean OR coalesce(i.available, 0) > 0)
                          AND NOT EXISTS (
                              SELECT 1 FROM jsonb_each($6::jsonb) AS f (key, vals)
                              WHERE NOT coalesce(f.vals ? (v.attributes ->> f.key), false))))
         )"
        )
    };
}

/// One page: `$7` rows (one more than the page, to know whether another follows), after
/// the keyset position `($8, $9)`.
macro_rules! page_sql {
    ($form:ident, $keyset:literal, $order:literal) => {
        concat!(
            matched_cte!($form),
            "
         SELECT p.id, p.slug, p.name, c.slug AS category, p.min_price_minor,
                p.price_currency::text AS price_currency, p.image_urls[1] AS image_url,
                p.created_at, m.rank,
                EXISTS (SELECT 1 FROM variants v JOIN inventory i ON i.sku = v.sku
                        WHERE v.product_id = p.id AND i.available > 0) AS in_stock
         FROM matched m
         JOIN products p ON p.id = m.id
         JOIN categories c ON c.id = p.category_id
         WHERE $9::uuid IS NULL OR ",
            $keyset,
            "
         ORDER BY ",
            $order,
            "
         LIMIT $7"
        )
    };
}

/// The page statements of one form, one per sort.
macro_rules! page_statements {
    ($form:ident) => {
        PageStatements {
            relevance: page_sql!(
                $form,
                "(m.rank, m.id) < ($8::real, $9::uuid)",
                "m.rank DESC, m.id DESC"
            ),
            newest: page_sql!(
                $form,
                "(m.created_at, m.id) < ($8::timestamptz, $9::uuid)",
                "m.created_at DESC, m.id DESC"
            ),
            price_asc: page_sql!(
                $form,
                "(m.min_price_minor, m.id) > ($8::bigint, $9::uuid)",
                "m.min_price_minor ASC, m.id ASC"
            ),
            price_desc: page_sql!(
                $form,
                "(m.min_price_minor, m.id) < ($8::bigint, $9::uuid)",
                "m.min_price_minor DESC, m.id DESC"
            ),
        }
    };
}

struct PageStatements {
    relevance: &'static str,
    newest: &'static str,
    price_asc: &'static str,
    price_desc: &'static str,
}

impl PageStatements {
    fn get(&self, sort: Sort) -> &'static str {
        match sort {
            Sort::Relevance => self.relevance,
            Sort::Newest => self.newest,
            Sort::PriceAsc => self.price_asc,
            Sort::PriceDesc => self.price_desc,
        }
    }
}

const PAGE_TEXT: PageStatements = page_statements!(text);
const PAGE_ALL: PageStatements = page_statements!(all);

/// Facet counts over the whole filtered set; `$7` are the price bucket edges.
macro_rules! facets_sql {
    ($form:ident) => {
        concat!(
            matched_cte!($form),
            "
SELECT
  (SELECT count(*) FROM matched) AS total,
  (SELECT count(*) FROM matched m
   WHERE EXISTS (SELECT 1 FROM variants v JOIN inventory i ON i.sku = v.sku
                 WHERE v.product_id = m.id AND i.available > 0)) AS in_stock,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('slug', c.slug, 'name', c.name, 'count', x.n)
                             ORDER BY x.n DESC, c.slug), '[]'::jsonb)
   FROM (SELECT p.category_id, count(*) AS n
         FROM matched m JOIN products p ON p.id = m.id
         GROUP BY p.category_id) x
   JOIN categories c ON c.id = x.category_id) AS categories,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('key', y.key, 'value', y.value, 'count', y.n)
                             ORDER BY y.key, y.n DESC, y.value), '[]'::jsonb)
   FROM (SELECT a.key, a.value, count(DISTINCT m.id) AS n
         FROM matched m
         JOIN variants v ON v.product_id = m.id
         CROSS JOIN LATERAL jsonb_each_text(v.attributes) AS a
         GROUP BY a.key, a.value) y) AS attributes,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('bucket', z.bucket, 'count', z.n)
                             ORDER BY z.bucket), '[]'::jsonb)
   FROM (SELECT width_bucket(m.min_price_minor, $7::bigint[]) AS bucket, count(*) AS n
         FROM matched m GROUP BY 1) z) AS prices"
        )
    };
}

const FACETS_TEXT: &str = facets_sql!(text);
const FACETS_ALL: &str = facets_sql!(all);

/// The filters of a request, in the form the statements bind.
#[derive(Debug, Clone)]
pub struct Filter<'a> {
    /// The query actually run (after correction). It must contain lexemes
    /// ([`has_lexemes`]): a query of only stop words matches nothing here, and
    /// [`search`] runs it as no query at all.
    pub q: Option<&'a str>,
    pub category: Option<&'a str>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: bool,
    pub attributes: &'a BTreeMap<String, Vec<String>>,
}

impl<'a> Filter<'a> {
    /// The request's filters, with `q` replaced by `query` (the corrected query, if any).
    pub fn of(request: &'a SearchRequest, query: Option<&'a str>) -> Self {
        Self {
            q: query,
            category: request.category.as_deref(),
            min_price: request.min_price,
            max_price: request.max_price,
            in_stock: request.in_stock,
            attributes: &request.attributes,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: Uuid,
    slug: String,
    name: String,
    category: String,
    min_price_minor: i64,
    price_currency: Option<String>,
    image_url: Option<String>,
    created_at: DateTime<Utc>,
    rank: f32,
    in_stock: bool,
}

impl SummaryRow {
    fn key(&self, sort: Sort) -> CursorKey {
        match sort {
            Sort::Relevance => CursorKey::Rank(self.rank),
            Sort::PriceAsc | Sort::PriceDesc => CursorKey::Price(self.min_price_minor),
            Sort::Newest => CursorKey::Created(self.created_at),
        }
    }

    fn into_summary(self) -> ProductSummary {
        ProductSummary {
            id: self.id,
            slug: self.slug,
            name: self.name,
            category: self.category,
            price_from: self.price_currency.map(|currency| Money {
                amount_minor: self.min_price_minor,
                currency,
            }),
            image_url: self.image_url,
            in_stock: self.in_stock,
            created_at: self.created_at,
        }
    }
}

/// One page of results and the cursor for the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<ProductSummary>,
    pub next: Option<Cursor>,
}

/// The page statement for `sort`, after `cursor` (which must be of the same sort).
pub async fn search_page(
    pool: &PgPool,
    filter: &Filter<'_>,
    sort: Sort,
    limit: u32,
    cursor: Option<&Cursor>,
) -> sqlx::Result<Page> {
    let sql = match filter.q {
        Some(_) => PAGE_TEXT.get(sort),
        None => PAGE_ALL.get(sort),
    };
    let cursor = cursor.filter(|c| c.sort == sort);
    let query = sqlx::query_as::<_, SummaryRow>(sql)
        .bind(filter.q)
        .bind(filter.category)
        .bind(filter.min_price)
        .bind(filter.max_price)
        .bind(filter.in_stock)
        .bind(Json(filter.attributes))
        .bind(i64::from(limit) + 1);
    // `$8` is typed by the sort: a real rank, a bigint price or a timestamp.
    let query = match (sort, cursor.map(|c| c.key)) {
        (_, Some(CursorKey::Rank(rank))) => query.bind(Some(rank)),
        (_, Some(CursorKey::Price(price))) => query.bind(Some(price)),
        (_, Some(CursorKey::Created(at))) => query.bind(Some(at)),
        (Sort::Relevance, None) => query.bind(None::<f32>),
        (Sort::Newest, None) => query.bind(None::<DateTime<Utc>>),
        (Sort::PriceAsc | Sort::PriceDesc, None) => query.bind(None::<i64>),
    };
    let mut rows = query.bind(cursor.map(|c| c.id)).fetch_all(pool).await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| Cursor {
            sort,
            key: row.key(sort),
            id: row.id,
        })
    } else {
        None
    };
    Ok(Page {
        items: rows.into_iter().map(SummaryRow::into_summary).collect(),
        next,
    })
}

#[derive(sqlx::FromRow)]
struct FacetRow {
    total: i64,
    in_stock: i64,
    categories: Json<Vec<CategoryFacet>>,
    attributes: Json<Vec<AttributeCount>>,
    prices: Json<Vec<BucketCount>>,
}

#[derive(Deserialize)]
struct AttributeCount {
    key: String,
    value: String,
    count: i64,
}

#[derive(Deserialize)]
struct BucketCount {
    bucket: usize,
    count: i64,
}

/// The facet statement: the total and the facet counts of the filtered set.
pub async fn search_facets(pool: &PgPool, filter: &Filter<'_>) -> sqlx::Result<(i64, Facets)> {
    let sql = if filter.q.is_some() {
        FACETS_TEXT
    } else {
        FACETS_ALL
    };
    let row = sqlx::query_as::<_, FacetRow>(sql)
        .bind(filter.q)
        .bind(filter.category)
        .bind(filter.min_price)
        .bind(filter.max_price)
        .bind(filter.in_stock)
        .bind(Json(filter.attributes))
        .bind(&PRICE_BUCKET_EDGES[..])
        .fetch_one(pool)
        .await?;
    let mut attributes: BTreeMap<String, Vec<ValueFacet>> = BTreeMap::new();
    for a in row.attributes.0 {
        attributes.entry(a.key).or_default().push(ValueFacet {
            value: a.value,
            count: a.count,
        });
    }
    let mut price: Vec<PriceBucket> = (0..=PRICE_BUCKET_EDGES.len())
        .map(|bucket| PriceBucket {
            min_minor: if bucket == 0 {
                0
            } else {
                PRICE_BUCKET_EDGES[bucket - 1]
            },
            max_minor: PRICE_BUCKET_EDGES.get(bucket).copied(),
            count: 0,
        })
        .collect();
    for b in row.prices.0 {
        if let Some(slot) = price.get_mut(b.bucket) {
            slot.count = b.count;
        }
    }
    Ok((
        row.total,
        Facets {
            categories: row.categories.0,
            attributes,
            price,
            in_stock: row.in_stock,
        },
    ))
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    input: String,
    word: String,
    ndoc: i32,
    distance: i32,
    similarity: f32,
}

/// Typo correction. Each word of `query` that matches no published product (and is not
/// a stop word) is replaced by the closest word of the vocabulary (`search_terms`):
/// Levenshtein distance at most 2 (1 for words of up to 4 letters), ranked as
/// [`search::best_candidate`] says. `None` when nothing needed or allowed correcting.
pub async fn correct_query(pool: &PgPool, query: &str) -> sqlx::Result<Option<String>> {
    let words = search::correctable_words(query);
    if words.is_empty() {
        return Ok(None);
    }
    let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let unmatched: Vec<String> = sqlx::query_scalar(
        "SELECT w FROM unnest($1::text[]) AS w
         WHERE numnode(plainto_tsquery('english', w)) > 0
           AND NOT EXISTS (SELECT 1 FROM products p
                           WHERE p.status = 'published'
                             AND p.search @@ plainto_tsquery('english', w))",
    )
    .bind(&texts)
    .fetch_all(pool)
    .await?;
    if unmatched.is_empty() {
        return Ok(None);
    }
    let limits: Vec<i32> = unmatched.iter().map(|w| search::max_distance(w)).collect();
    let rows = sqlx::query_as::<_, CandidateRow>(
        "SELECT w.input, t.word, t.ndoc,
                levenshtein(w.input, t.word) AS distance,
                similarity(w.input, t.word)::real AS similarity
         FROM unnest($1::text[], $2::int[]) AS w (input, max_distance)
         JOIN search_terms t
           ON abs(char_length(t.word) - char_length(w.input)) <= w.max_distance
          AND levenshtein_less_equal(w.input, t.word, w.max_distance) <= w.max_distance",
    )
    .bind(&unmatched)
    .bind(&limits)
    .fetch_all(pool)
    .await?;
    let mut by_word: HashMap<&str, Vec<search::Candidate>> = HashMap::new();
    for row in &rows {
        by_word
            .entry(row.input.as_str())
            .or_default()
            .push(search::Candidate {
                word: row.word.clone(),
                distance: row.distance,
                similarity: row.similarity,
                ndoc: row.ndoc,
            });
    }
    let mut replacements = Vec::new();
    for word in &words {
        if !unmatched.contains(&word.text) {
            continue;
        }
        if let Some(best) = by_word
            .get(word.text.as_str())
            .and_then(|candidates| search::best_candidate(&word.text, candidates))
        {
            replacements.push((word, best.word.as_str()));
        }
    }
    if replacements.is_empty() {
        return Ok(None);
    }
    Ok(Some(search::substitute(query, &replacements)))
}

/// Whether `query` has any lexemes for the full-text search (`the and`, `""` or `!` have
/// none, and filter nothing).
pub async fn has_lexemes(pool: &PgPool, query: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT numnode(websearch_to_tsquery('english', $1)) > 0")
        .bind(query)
        .fetch_one(pool)
        .await
}

/// `GET /products`: typo correction, then the page and the facets (concurrently, on two
/// connections).
pub async fn search(pool: &PgPool, request: &SearchRequest) -> sqlx::Result<SearchResults> {
    let corrected = match &request.q {
        Some(q) => correct_query(pool, q).await?,
        None => None,
    };
    let effective = match corrected.as_deref().or(request.q.as_deref()) {
        Some(q) if has_lexemes(pool, q).await? => Some(q),
        _ => None,
    };
    let filter = Filter::of(request, effective);
    let sort = request.effective_sort();
    let (page, (total, facets)) = tokio::try_join!(
        search_page(
            pool,
            &filter,
            sort,
            request.effective_limit(),
            request.cursor.as_ref()
        ),
        search_facets(pool, &filter),
    )?;
    Ok(SearchResults {
        items: page.items,
        next_cursor: page.next.map(|c| c.encode()),
        query: request.q.clone(),
        corrected_query: corrected,
        total,
        facets,
    })
}

/// `GET /categories/{slug}/products`: the search restricted to a category and its
/// descendants; `None` when the category does not exist.
pub async fn category_listing(
    pool: &PgPool,
    slug: &str,
    request: &SearchRequest,
) -> sqlx::Result<Option<SearchResults>> {
    if !category_exists(pool, slug).await? {
        return Ok(None);
    }
    let request = SearchRequest {
        category: Some(slug.to_owned()),
        ..request.clone()
    };
    search(pool, &request).await.map(Some)
}

#[derive(sqlx::FromRow)]
struct SkuRow {
    sku: String,
    product_id: Uuid,
    product_name: String,
    product_slug: String,
    attributes: Json<BTreeMap<String, String>>,
    price_minor: i64,
    currency: String,
    available: i32,
    published: bool,
}

/// The variants with these SKUs (unknown ones left out), in the order asked.
pub async fn skus(pool: &PgPool, skus: &[String]) -> sqlx::Result<Vec<crate::model::SkuInfo>> {
    let rows: Vec<SkuRow> = sqlx::query_as(
        "SELECT v.sku, p.id AS product_id, p.name AS product_name, p.slug AS product_slug,
                v.attributes, v.price_minor, v.currency::text AS currency,
                coalesce(i.available, 0) AS available, p.status = 'published' AS published
         FROM unnest($1::text[]) WITH ORDINALITY AS asked (sku, n)
         JOIN variants v ON v.sku = asked.sku
         JOIN products p ON p.id = v.product_id
         LEFT JOIN inventory i ON i.sku = v.sku
         ORDER BY asked.n",
    )
    .bind(skus)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| crate::model::SkuInfo {
            sku: r.sku,
            product_id: r.product_id,
            product_name: r.product_name,
            product_slug: r.product_slug,
            attributes: r.attributes.0,
            price_minor: r.price_minor,
            currency: r.currency,
            available: r.available,
            published: r.published,
        })
        .collect())
}
