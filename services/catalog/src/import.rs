//! Bulk import: `POST /admin/import` with a CSV (`text/csv`) or a JSON array
//! (`application/json`) of rows, one row per variant. Rows with the same product slug
//! are variants of one product. Existing products (by slug) and variants (by SKU) are
//! updated, new ones created.
//!
//! All or nothing: every row is validated (formats first, then against the database
//! inside the import's transaction), and if any row is bad the answer is a 422 listing
//! the errors by row number (1 = the first data row) and nothing is written.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use shopkit::error::{FieldError, Json, Problem};
use shopkit::{ApiError, ApiResult};
use uuid::Uuid;

use crate::admin::check_variant;
use crate::auth::AdminAuth;
use crate::model::{ImportReport, Status};
use crate::startup::AppState;
use crate::store::{self, StockChange, VariantColumns, WriteMode};
use crate::validate::{self, Errors};

/// The import route's body limit (other routes keep shopkit's 1 MiB); larger bodies get
/// a 413. About 40,000 typical CSV rows.
pub const IMPORT_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Rows per import; bigger catalogs import in several files.
pub const MAX_IMPORT_ROWS: usize = 20_000;
/// Errors listed in a 422; the rest are counted.
const MAX_REPORTED_ERRORS: usize = 100;

/// The CSV columns; the first five are required.
pub const CSV_COLUMNS: [&str; 11] = [
    "name",
    "category",
    "sku",
    "price_minor",
    "currency",
    "product_slug",
    "description",
    "status",
    "image_urls",
    "attributes",
    "on_hand",
];
const REQUIRED_COLUMNS: usize = 5;

/// One row as sent, before validation.
#[derive(Debug, Default, Clone)]
struct RawRow {
    product_slug: Option<String>,
    name: String,
    description: String,
    category: String,
    status: Option<String>,
    image_urls: Vec<String>,
    sku: String,
    attributes: BTreeMap<String, String>,
    price_minor: Option<i64>,
    currency: String,
    on_hand: Option<i64>,
}

/// A JSON row. Numbers arrive as JSON values so that `19.99` or `"12"` can be reported
/// against their field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    #[serde(default)]
    product_slug: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    category: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    image_urls: Vec<String>,
    sku: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    price_minor: serde_json::Value,
    currency: String,
    #[serde(default)]
    on_hand: Option<serde_json::Value>,
}

/// A valid row.
#[derive(Debug, Clone)]
struct Row {
    number: usize,
    slug: String,
    name: String,
    description: String,
    category: String,
    status: Status,
    image_urls: Vec<String>,
    sku: String,
    attributes: BTreeMap<String, String>,
    price_minor: i64,
    currency: String,
    on_hand: Option<i64>,
}

enum Format {
    Csv,
    Json,
}

fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence {
        "text/csv" => Ok(Format::Csv),
        "application/json" => Ok(Format::Json),
        _ => Err(ApiError::UnsupportedMediaType(
            "send the rows as `Content-Type: text/csv` or as a JSON array with `Content-Type: application/json`".into(),
        )),
    }
}

fn integer(value: &serde_json::Value) -> Result<i64, String> {
    match value {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| {
            "must be a whole number of minor units (1999 for 19.99), not a fraction".to_owned()
        }),
        _ => Err("must be a whole number of minor units (1999 for 19.99)".to_owned()),
    }
}

fn parse_json(body: &[u8]) -> Result<Vec<(RawRow, Errors)>, ApiError> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::Unprocessable(format!("the body must be a JSON array of rows: {e}"))
        } else {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
    })?;
    check_row_count(values.len())?;
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let mut errors = Errors::for_row(i + 1);
            let raw = match serde_json::from_value::<JsonRow>(value) {
                Ok(row) => {
                    let price_minor = match integer(&row.price_minor) {
                        Ok(p) => Some(p),
                        Err(message) => {
                            errors.push("price_minor", message);
                            None
                        }
                    };
                    let on_hand = match row.on_hand.as_ref().filter(|v| !v.is_null()) {
                        None => None,
                        Some(v) => match integer(v) {
                            Ok(n) => Some(n),
                            Err(_) => {
                                errors.push("on_hand", "must be a whole number");
                                None
                            }
                        },
                    };
                    RawRow {
                        product_slug: row.product_slug,
                        name: row.name,
                        description: row.description,
                        category: row.category,
                        status: row.status,
                        image_urls: row.image_urls,
                        sku: row.sku,
                        attributes: row.attributes,
                        price_minor,
                        currency: row.currency,
                        on_hand,
                    }
                }
                Err(e) => {
                    errors.push("row", e.to_string());
                    RawRow::default()
                }
            };
            (raw, errors)
        })
        .collect())
}

fn parse_csv(body: &[u8]) -> Result<Vec<(RawRow, Errors)>, ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::Unprocessable(format!("the CSV header cannot be read: {e}")))?
        .clone();
    let mut header_errors = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, name) in headers.iter().enumerate() {
        if !CSV_COLUMNS.contains(&name) {
            header_errors.push(FieldError::new(
                name,
                format!("unknown column; the columns are {}", CSV_COLUMNS.join(", ")),
            ));
        } else if index.insert(name, i).is_some() {
            header_errors.push(FieldError::new(name, "column appears twice"));
        }
    }
    for required in &CSV_COLUMNS[..REQUIRED_COLUMNS] {
        if !index.contains_key(required) {
            header_errors.push(FieldError::new(*required, "required column is missing"));
        }
    }
    if !header_errors.is_empty() {
        return Err(ApiError::Validation(header_errors));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        check_row_count(i + 1)?;
        let mut errors = Errors::for_row(i + 1);
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                errors.push("row", format!("cannot be read: {e}"));
                rows.push((RawRow::default(), errors));
                continue;
            }
        };
        let field =
            |name: &str| -> &str { index.get(name).and_then(|&i| record.get(i)).unwrap_or("") };
        let optional = |name: &str| Some(field(name).to_owned()).filter(|v| !v.is_empty());
        let price_minor = match field("price_minor").parse::<i64>() {
            Ok(p) => Some(p),
            Err(_) => {
                errors.push(
                    "price_minor",
                    "must be a whole number of minor units (1999 for 19.99)",
                );
                None
            }
        };
        let on_hand = match optional("on_hand") {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push("on_hand", "must be a whole number");
                    None
                }
            },
        };
        let mut attributes = BTreeMap::new();
        for pair in field("attributes")
            .split(';')
            .filter(|p| !p.trim().is_empty())
        {
            match pair.split_once('=') {
                Some((k, v)) => {
                    attributes.insert(k.trim().to_owned(), v.trim().to_owned());
                }
                None => errors.push(
                    "attributes",
                    "must be `name=value` pairs separated by `;`, like `color=blue;size=M`",
                ),
            }
        }
        let image_urls = field("image_urls")
            .split('|')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        let raw = RawRow {
            product_slug: optional("product_slug"),
            name: field("name").to_owned(),
            description: field("description").to_owned(),
            category: field("category").to_owned(),
            status: optional("status"),
            image_urls,
            sku: field("sku").to_owned(),
            attributes,
            price_minor,
            currency: field("currency").to_owned(),
            on_hand,
        };
        rows.push((raw, errors));
    }
    check_row_count(rows.len())?;
    Ok(rows)
}

fn check_row_count(rows: usize) -> Result<(), ApiError> {
    if rows > MAX_IMPORT_ROWS {
        Err(ApiError::PayloadTooLarge(format!(
            "at most {MAX_IMPORT_ROWS} rows per import; split the file"
        )))
    } else {
        Ok(())
    }
}

/// The format checks of every row, and the consistency of rows of one product.
fn validate_rows(parsed: Vec<(RawRow, Errors)>) -> (Vec<Row>, Vec<FieldError>) {
    let mut rows = Vec::new();
    let mut all_errors = Vec::new();
    let mut first_of_product: HashMap<String, usize> = HashMap::new();
    let mut sku_rows: HashMap<String, usize> = HashMap::new();
    for (i, (raw, mut errors)) in parsed.into_iter().enumerate() {
        let number = i + 1;
        if errors.list.iter().any(|e| e.field == "row") {
            all_errors.append(&mut errors.list);
            continue;
        }
        errors.check("name", validate::name(&raw.name));
        errors.check("description", validate::description(&raw.description));
        errors.check("category", validate::category_slug(&raw.category));
        validate::image_urls(&mut errors, "image_urls", &raw.image_urls);
        let status = match raw.status.as_deref() {
            None => Status::Draft,
            Some(s) => Status::parse(s).unwrap_or_else(|| {
                errors.push("status", "must be `draft` or `published`");
                Status::Draft
            }),
        };
        let slug = match &raw.product_slug {
            Some(slug) => {
                errors.check("product_slug", validate::product_slug(slug));
                slug.clone()
            }
            None => {
                let slug = validate::slugify(&raw.name);
                if slug.is_empty() && validate::name(&raw.name).is_ok() {
                    errors.push(
                        "product_slug",
                        "cannot be derived from a name without ASCII letters or digits; set one",
                    );
                }
                slug
            }
        };
        check_variant(
            &mut errors,
            "",
            &raw.sku,
            &raw.attributes,
            raw.price_minor.unwrap_or(0),
            &raw.currency,
            raw.on_hand.unwrap_or(0),
        );
        if let Some(&first) = sku_rows.get(&raw.sku) {
            errors.push("sku", format!("appears already in row {first}"));
        } else {
            sku_rows.insert(raw.sku.clone(), number);
        }
        let row = Row {
            number,
            slug: slug.clone(),
            name: raw.name,
            description: raw.description,
            category: raw.category,
            status,
            image_urls: raw.image_urls,
            sku: raw.sku,
            attributes: raw.attributes,
            price_minor: raw.price_minor.unwrap_or(0),
            currency: raw.currency,
            on_hand: raw.on_hand,
        };
        match first_of_product.get(&slug) {
            Some(&first) => {
                if let Some(first_row) = rows.iter().find(|r: &&Row| r.number == first) {
                    for field in differing_product_fields(first_row, &row) {
                        errors.push(
                            field,
                            format!("differs from row {first}, the first row of product {slug:?}"),
                        );
                    }
                }
            }
            None => {
                if errors.is_empty() {
                    first_of_product.insert(slug, number);
                }
            }
        }
        if errors.is_empty() {
            rows.push(row);
        } else {
            all_errors.append(&mut errors.list);
        }
    }
    (rows, all_errors)
}

fn differing_product_fields(a: &Row, b: &Row) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if a.name != b.name {
        fields.push("name");
    }
    if a.description != b.description {
        fields.push("description");
    }
    if a.category != b.category {
        fields.push("category");
    }
    if a.status != b.status {
        fields.push("status");
    }
    if a.image_urls != b.image_urls {
        fields.push("image_urls");
    }
    fields
}

fn rejected(mut errors: Vec<FieldError>) -> ApiError {
    errors.sort_by_key(|e| e.row.unwrap_or(0));
    if errors.len() > MAX_REPORTED_ERRORS {
        let more = errors.len() - MAX_REPORTED_ERRORS;
        errors.truncate(MAX_REPORTED_ERRORS);
        errors.push(FieldError::new(
            "rows",
            format!("and {more} more errors not listed; nothing was imported"),
        ));
    }
    crate::metrics::import(None);
    ApiError::Validation(errors)
}

#[derive(sqlx::FromRow)]
struct ExistingVariant {
    sku: String,
    product_slug: String,
}

#[derive(sqlx::FromRow)]
struct ExistingStock {
    sku: String,
    on_hand: i32,
    reserved: i32,
}

/// Import products and variants from CSV or JSON rows, all or nothing.
///
/// CSV columns (header required, any order): `name, category, sku, price_minor, currency`
/// and optionally `product_slug, description, status, image_urls` (separated by `|`),
/// `attributes` (`color=blue;size=M`), `on_hand`. JSON: an array of objects with the same
/// names (`attributes` an object, `image_urls` an array).
#[utoipa::path(
    post, path = "/admin/import", tag = "admin", security(("bearer" = [])),
    request_body(content(
        (String = "text/csv", example = "name,category,sku,price_minor,currency,attributes,on_hand\nBlue Oxford Shirt,shirts,OXF-BLU-M,4999,USD,color=blue;size=M,10\n"),
        (Vec<serde_json::Value> = "application/json"),
    )),
    responses(
        (status = 200, description = "Imported", body = ImportReport),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 8 MiB or too many rows", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither CSV nor JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid rows, listed by row number; nothing imported", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn import(
    admin: AdminAuth,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ImportReport>> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "an import body may be at most {} MiB; split the file",
                IMPORT_BODY_LIMIT / (1024 * 1024)
            ))
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    let parsed = match format_of(&headers)? {
        Format::Csv => parse_csv(&body)?,
        Format::Json => parse_json(&body)?,
    };
    if parsed.is_empty() {
        return Err(ApiError::invalid("rows", "the import has no rows"));
    }
    let total_rows = parsed.len();
    let (rows, mut errors) = validate_rows(parsed);

    let mut tx = state.pool().begin().await?;
    // Rows whose format is valid are checked against the database too, so that one 422
    // lists every problem.
    let category_slugs: Vec<&str> = rows
        .iter()
        .map(|r| r.category.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let categories: HashMap<String, Uuid> =
        sqlx::query_as::<_, (String, Uuid)>("SELECT slug, id FROM categories WHERE slug = ANY($1)")
            .bind(&category_slugs)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let skus: Vec<&str> = rows.iter().map(|r| r.sku.as_str()).collect();
    let owners: HashMap<String, String> = sqlx::query_as::<_, ExistingVariant>(
        "SELECT v.sku, p.slug AS product_slug FROM variants v JOIN products p ON p.id = v.product_id
         WHERE v.sku = ANY($1) FOR UPDATE OF v",
    )
    .bind(&skus)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|v| (v.sku, v.product_slug))
    .collect();
    let stock: HashMap<String, ExistingStock> = sqlx::query_as::<_, ExistingStock>(
        "SELECT sku, on_hand, reserved FROM inventory WHERE sku = ANY($1) FOR UPDATE",
    )
    .bind(&skus)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|s| (s.sku.clone(), s))
    .collect();
    for row in &rows {
        let mut row_errors = Errors::for_row(row.number);
        if !categories.contains_key(&row.category) {
            row_errors.push(
                "category",
                format!("no category has the slug {:?}", row.category),
            );
        }
        if let Some(owner) = owners.get(&row.sku)
            && owner != &row.slug
        {
            row_errors.push(
                "sku",
                format!("belongs to product {owner:?}; a SKU cannot move between products"),
            );
        }
        if let (Some(on_hand), Some(current)) = (row.on_hand, stock.get(&row.sku))
            && on_hand < i64::from(current.reserved)
        {
            row_errors.push(
                "on_hand",
                format!(
                    "{} units are reserved by open orders; on hand cannot go below that",
                    current.reserved
                ),
            );
        }
        errors.append(&mut row_errors.list);
    }
    if !errors.is_empty() {
        // Dropping the transaction rolls it back; nothing has been written anyway.
        return Err(rejected(errors));
    }

    // Products: the first row of each slug.
    let mut seen = HashSet::new();
    let products: Vec<&Row> = rows
        .iter()
        .filter(|r| seen.insert(r.slug.as_str()))
        .collect();
    let ids: Vec<Uuid> = products.iter().map(|_| Uuid::now_v7()).collect();
    let slugs: Vec<&str> = products.iter().map(|r| r.slug.as_str()).collect();
    let names: Vec<&str> = products.iter().map(|r| r.name.as_str()).collect();
    let descriptions: Vec<&str> = products.iter().map(|r| r.description.as_str()).collect();
    let category_ids: Vec<Uuid> = products
        .iter()
        .map(|r| categories.get(&r.category).copied().unwrap_or_default())
        .collect();
    let statuses: Vec<&str> = products.iter().map(|r| r.status.as_str()).collect();
    // Arrays of arrays cannot be UNNESTed row by row; URLs contain no whitespace, so a
    // newline-joined string per product is split back in SQL.
    let images: Vec<String> = products.iter().map(|r| r.image_urls.join("\n")).collect();
    let written: Vec<(Uuid, String, bool)> = sqlx::query_as(
        "INSERT INTO products (id, slug, name, description, category_id, status, image_urls)
         SELECT u.id, u.slug, u.name, u.description, u.category_id, u.status,
                CASE WHEN u.images = '' THEN '{}'::text[] ELSE string_to_array(u.images, E'\\n') END
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[])
              AS u (id, slug, name, description, category_id, status, images)
         ON CONFLICT (slug) DO UPDATE
            SET name = EXCLUDED.name, description = EXCLUDED.description,
                category_id = EXCLUDED.category_id, status = EXCLUDED.status,
                image_urls = EXCLUDED.image_urls, updated_at = now()
         RETURNING id, slug, (xmax = 0) AS inserted",
    )
    .bind(&ids)
    .bind(&slugs)
    .bind(&names)
    .bind(&descriptions)
    .bind(&category_ids)
    .bind(&statuses)
    .bind(&images)
    .fetch_all(&mut *tx)
    .await
    .map_err(store::client_error)?;
    let products_created = written.iter().filter(|(_, _, inserted)| *inserted).count();
    let product_ids: HashMap<String, Uuid> = written
        .into_iter()
        .map(|(id, slug, _)| (slug, id))
        .collect();

    let mut variants = VariantColumns::default();
    let mut positions: HashMap<&str, i32> = HashMap::new();
    let mut changes = Vec::new();
    for row in &rows {
        let product_id = product_ids.get(&row.slug).copied().unwrap_or_default();
        let position = positions.entry(row.slug.as_str()).or_insert(0);
        variants.push(
            product_id,
            &row.sku,
            &row.attributes,
            row.price_minor,
            &row.currency,
            *position,
        );
        *position += 1;
        let previous = stock.get(&row.sku).map(|s| s.on_hand);
        let target = row
            .on_hand
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
            .or(previous)
            .unwrap_or(0);
        if previous.is_none() || previous != Some(target) {
            changes.push(StockChange {
                sku: row.sku.clone(),
                previous: previous.unwrap_or(0),
                on_hand: target,
            });
        }
    }
    let inserted = store::write_variants(&mut tx, &variants, WriteMode::Upsert)
        .await
        .map_err(store::client_error)?;
    let stock_adjustments = store::set_stock(&mut tx, &changes, "import", &admin.actor()).await?;
    tx.commit().await.map_err(store::client_error)?;

    crate::metrics::import(Some(total_rows));
    tracing::info!(
        rows = total_rows,
        products = product_ids.len(),
        actor = %admin.actor(),
        "catalog import"
    );
    Ok(Json(ImportReport {
        rows: total_rows,
        products_created,
        products_updated: product_ids.len() - products_created,
        variants_created: inserted.len(),
        variants_updated: rows.len() - inserted.len(),
        stock_adjustments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_parsed_and_validated() {
        let csv = "\u{feff}name,category,sku,price_minor,currency,attributes,image_urls,on_hand,status\n\
                   Blue Shirt,shirts,BS-M,2999,USD,color=blue;size=M,/a.jpg|/b.jpg,5,published\n\
                   Blue Shirt,shirts,BS-L,2999,USD,color=blue;size=L,/a.jpg|/b.jpg,,published\n\
                   Bad,shirts,bad sku,19.99,usd,nonsense,,-1,gone\n";
        let parsed = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 3);
        let (rows, errors) = validate_rows(parsed);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].slug, "blue-shirt");
        assert_eq!(rows[0].image_urls, ["/a.jpg", "/b.jpg"]);
        assert_eq!(rows[0].attributes["color"], "blue");
        assert_eq!(rows[1].on_hand, None);
        let fields: HashSet<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for field in [
            "sku",
            "price_minor",
            "currency",
            "attributes",
            "on_hand",
            "status",
        ] {
            assert!(fields.contains(field), "{field} not reported: {errors:?}");
        }
        assert!(errors.iter().all(|e| e.row == Some(3)));
    }

    #[test]
    fn csv_headers_are_checked() {
        let err = parse_csv(b"name,sku,colour\nx,y,z\n").unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected a validation error")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"colour"));
        assert!(fields.contains(&"category"));
    }

    #[test]
    fn json_fractions_and_strings_are_field_errors() {
        let body = br#"[
            {"name":"A","category":"c","sku":"A-1","price_minor":19.99,"currency":"USD"},
            {"name":"B","category":"c","sku":"B-1","price_minor":"12","currency":"USD"},
            {"name":"C","category":"c","sku":"C-1","price_minor":100,"currency":"USD","colour":"x"}
        ]"#;
        let parsed = parse_json(body).unwrap();
        let (rows, errors) = validate_rows(parsed);
        assert!(rows.is_empty());
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(
            (errors[0].row, errors[0].field.as_str()),
            (Some(1), "price_minor")
        );
        assert_eq!(
            (errors[1].row, errors[1].field.as_str()),
            (Some(2), "price_minor")
        );
        assert_eq!((errors[2].row, errors[2].field.as_str()), (Some(3), "row"));
    }

    #[test]
    fn rows_of_one_product_must_agree_and_skus_be_unique() {
        let body = br#"[
            {"name":"A","category":"c","sku":"A-1","price_minor":1,"currency":"USD","product_slug":"a"},
            {"name":"A2","category":"c","sku":"A-2","price_minor":1,"currency":"USD","product_slug":"a"},
            {"name":"B","category":"c","sku":"A-1","price_minor":1,"currency":"USD"}
        ]"#;
        let (rows, errors) = validate_rows(parse_json(body).unwrap());
        assert_eq!(rows.len(), 1);
        assert_eq!((errors[0].row, errors[0].field.as_str()), (Some(2), "name"));
        assert_eq!((errors[1].row, errors[1].field.as_str()), (Some(3), "sku"));
    }

    #[test]
    fn malformed_json_is_a_400_and_a_non_array_a_422() {
        assert!(matches!(parse_json(b"[{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            parse_json(b"{\"a\":1}"),
            Err(ApiError::Unprocessable(_))
        ));
    }
}
