//! The caller's address book under `/me/addresses`.
//!
//! Every query is scoped by the caller's user id (`WHERE id = $1 AND user_id = $2`), so
//! another user's address is simply not found: **404, not 403**. A 403 would confirm
//! that the id exists and belongs to someone else; a 404 says nothing about other
//! accounts, and the caller cannot tell an id of another user from one that never
//! existed.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use shopkit::auth::Caller;
use shopkit::error::{Json, Path, Problem, Query};
use shopkit::{ApiError, ApiResult};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::model::{Address, AddressInput, AddressKind, AddressPage};
use crate::session::no_store;
use crate::startup::AppState;
use crate::validate::{self, Errors};

/// Addresses one account may keep.
pub const MAX_ADDRESSES: i64 = 50;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_LINE_CHARS: usize = 200;
pub const MAX_CITY_CHARS: usize = 100;
pub const MAX_REGION_CHARS: usize = 100;
pub const MAX_POSTAL_CODE_CHARS: usize = 20;
/// Page size when none is asked for, and the largest allowed.
const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

const NOT_FOUND: &str = "no such address in your address book";

fn not_found() -> ApiError {
    ApiError::NotFound(NOT_FOUND.into())
}

/// Checks every field; an empty optional text is stored as absent.
fn check(input: &AddressInput) -> ApiResult<()> {
    let mut errors = Errors::new();
    errors.check("name", validate::required_text(&input.name, MAX_NAME_CHARS));
    errors.check(
        "line1",
        validate::required_text(&input.line1, MAX_LINE_CHARS),
    );
    errors.check("city", validate::required_text(&input.city, MAX_CITY_CHARS));
    errors.check("country", validate::country(&input.country));
    for (field, value, max) in [
        ("company", &input.company, MAX_NAME_CHARS),
        ("line2", &input.line2, MAX_LINE_CHARS),
        ("region", &input.region, MAX_REGION_CHARS),
        ("postal_code", &input.postal_code, MAX_POSTAL_CODE_CHARS),
    ] {
        if let Some(value) = value {
            errors.check(field, validate::optional_text(value, max));
        }
    }
    if let Some(phone) = input.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        errors.check("phone", validate::phone(phone));
    }
    errors.finish()
}

fn optional(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[derive(sqlx::FromRow)]
struct AddressRow {
    id: Uuid,
    kind: String,
    name: String,
    company: Option<String>,
    line1: String,
    line2: Option<String>,
    city: String,
    region: Option<String>,
    postal_code: Option<String>,
    country: String,
    phone: Option<String>,
    is_default: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl AddressRow {
    fn into_address(self) -> ApiResult<Address> {
        let kind = AddressKind::parse(&self.kind).ok_or_else(|| {
            anyhow::anyhow!("address {} has the unknown kind {:?}", self.id, self.kind)
        })?;
        Ok(Address {
            id: self.id,
            kind,
            name: self.name,
            company: self.company,
            line1: self.line1,
            line2: self.line2,
            city: self.city,
            region: self.region,
            postal_code: self.postal_code,
            country: self.country,
            phone: self.phone,
            is_default: self.is_default,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, kind, name, company, line1, line2, city, region, postal_code, country, phone, \
                       is_default, created_at, updated_at";

/// Paging parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageParams {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<Uuid>,
}

/// The caller's addresses, oldest first (keyset pagination by id).
#[utoipa::path(
    get, path = "/me/addresses", tag = "addresses", security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = AddressPage),
        (status = 400, description = "Malformed paging parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
) -> ApiResult<Response> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let rows: Vec<AddressRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM addresses
         WHERE user_id = $1 AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    )))
    .bind(caller.user_id)
    .bind(page.cursor)
    .bind(limit + 1)
    .fetch_all(state.pool())
    .await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let items = rows
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(AddressRow::into_address)
        .collect::<ApiResult<Vec<_>>>()?;
    let next_cursor = more
        .then(|| items.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(no_store(Json(AddressPage { items, next_cursor })))
}

/// Add an address.
#[utoipa::path(
    post, path = "/me/addresses", tag = "addresses", security(("bearer" = [])),
    request_body = AddressInput,
    responses(
        (status = 201, description = "Created", body = Address),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The address book is full (50)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create(
    caller: Caller,
    State(state): State<AppState>,
    Json(input): Json<AddressInput>,
) -> ApiResult<Response> {
    check(&input)?;
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    // Locks the account row: concurrent creates cannot overshoot the limit together.
    let count: Option<i64> = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM addresses WHERE user_id = u.id) FROM users u WHERE u.id = $1 FOR UPDATE",
    )
    .bind(caller.user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(count) = count else {
        return Err(ApiError::Unauthorized(
            "the account of this token no longer exists".into(),
        ));
    };
    if count >= MAX_ADDRESSES {
        return Err(ApiError::Conflict(format!(
            "an address book holds at most {MAX_ADDRESSES} addresses; delete one first"
        )));
    }
    if input.is_default {
        clear_default(&mut tx, caller.user_id, input.kind, None).await?;
    }
    let row: AddressRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO addresses (id, user_id, kind, name, company, line1, line2, city, region, postal_code,
                                country, phone, is_default, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(caller.user_id)
    .bind(input.kind.as_str())
    .bind(input.name.trim())
    .bind(optional(input.company.as_ref()))
    .bind(input.line1.trim())
    .bind(optional(input.line2.as_ref()))
    .bind(input.city.trim())
    .bind(optional(input.region.as_ref()))
    .bind(optional(input.postal_code.as_ref()))
    .bind(&input.country)
    .bind(optional(input.phone.as_ref()))
    .bind(input.is_default)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let address = row.into_address()?;
    let mut response = (StatusCode::CREATED, Json(&address)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/me/addresses/{}", address.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn clear_default(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    kind: AddressKind,
    except: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE addresses SET is_default = false
         WHERE user_id = $1 AND kind = $2 AND is_default AND ($3::uuid IS NULL OR id <> $3)",
    )
    .bind(user_id)
    .bind(kind.as_str())
    .bind(except)
    .execute(conn)
    .await?;
    Ok(())
}

/// One of the caller's addresses.
#[utoipa::path(
    get, path = "/me/addresses/{id}", tag = "addresses", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The address id")),
    responses(
        (status = 200, description = "The address", body = Address),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not in the caller's address book (also for another user's address)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let row: Option<AddressRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM addresses WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(caller.user_id)
    .fetch_optional(state.pool())
    .await?;
    let address = row.ok_or_else(not_found)?.into_address()?;
    Ok(no_store(Json(address)))
}

/// Replace one of the caller's addresses (every field; absent optional ones are cleared).
#[utoipa::path(
    put, path = "/me/addresses/{id}", tag = "addresses", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The address id")),
    request_body = AddressInput,
    responses(
        (status = 200, description = "Replaced", body = Address),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not in the caller's address book (also for another user's address)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn replace(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(input): Json<AddressInput>,
) -> ApiResult<Response> {
    check(&input)?;
    let now = state.clock().now();
    let mut tx = state.pool().begin().await?;
    let owned: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM addresses WHERE id = $1 AND user_id = $2 FOR UPDATE")
            .bind(id)
            .bind(caller.user_id)
            .fetch_optional(&mut *tx)
            .await?;
    if owned.is_none() {
        return Err(not_found());
    }
    if input.is_default {
        clear_default(&mut tx, caller.user_id, input.kind, Some(id)).await?;
    }
    let row: AddressRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE addresses SET kind = $3, name = $4, company = $5, line1 = $6, line2 = $7, city = $8,
                region = $9, postal_code = $10, country = $11, phone = $12, is_default = $13, updated_at = $14
         WHERE id = $1 AND user_id = $2
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(caller.user_id)
    .bind(input.kind.as_str())
    .bind(input.name.trim())
    .bind(optional(input.company.as_ref()))
    .bind(input.line1.trim())
    .bind(optional(input.line2.as_ref()))
    .bind(input.city.trim())
    .bind(optional(input.region.as_ref()))
    .bind(optional(input.postal_code.as_ref()))
    .bind(&input.country)
    .bind(optional(input.phone.as_ref()))
    .bind(input.is_default)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(no_store(Json(row.into_address()?)))
}

/// Delete one of the caller's addresses.
#[utoipa::path(
    delete, path = "/me/addresses/{id}", tag = "addresses", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The address id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not in the caller's address book (also for another user's address)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let done = sqlx::query("DELETE FROM addresses WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(caller.user_id)
        .execute(state.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}
