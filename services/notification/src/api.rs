//! The HTTP API: the messages (admin: what was sent, what failed, what is parked — with
//! the outbox provider, the shop's mailbox) and each customer's own preferences.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shopkit::auth::{Admin, Caller};
use shopkit::error::{Json, Path, Problem, Query};
use shopkit::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::provider::Channel;
use crate::startup::AppState;
use crate::store::{self, Filter, MessageRow, Preferences};
use crate::templates::Kind;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only messages to this email address or phone number.
    to: Option<String>,
    /// Only this kind (`order_confirmation`, `password_reset`, …).
    kind: Option<String>,
    /// `pending`, `sent`, `failed` or `parked`.
    status: Option<String>,
    /// `email` or `sms`.
    channel: Option<String>,
    /// Only the messages of this event.
    event_id: Option<Uuid>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageRow>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Validates a listing's query into a filter (400s name the parameter).
pub fn filter(
    to: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    channel: Option<String>,
    event_id: Option<Uuid>,
) -> Result<Filter, ApiError> {
    if let Some(k) = &kind
        && Kind::parse(k).is_none()
    {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(ApiError::BadRequest(format!(
            "kind {k:?} is not one of {}",
            known.join(", ")
        )));
    }
    if let Some(s) = &status
        && !["pending", "sent", "failed", "parked"].contains(&s.as_str())
    {
        return Err(ApiError::BadRequest(format!(
            "status {s:?} is not one of pending, sent, failed, parked"
        )));
    }
    if let Some(c) = &channel
        && Channel::parse(c).is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "channel {c:?} is not one of email, sms"
        )));
    }
    Ok(Filter {
        to,
        kind,
        status,
        channel,
        event_id,
    })
}

/// The messages, newest first.
#[utoipa::path(
    get, path = "/messages", tag = "admin", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, description = "Bad filter, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_messages(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let filter = filter(
        query.to,
        query.kind,
        query.status,
        query.channel,
        query.event_id,
    )?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let before = query
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<Uuid>().map_err(|_| {
                ApiError::BadRequest(
                    "cursor is not one this service issued; drop it to start again".into(),
                )
            })
        })
        .transpose()?;
    let mut conn = state.pool().acquire().await?;
    let mut items = store::list_messages(&mut conn, &filter, before, limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| items.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(no_store(Json(MessagePage { items, next_cursor })))
}

/// One message.
#[utoipa::path(
    get, path = "/messages/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message", body = MessageRow),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_message(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let mut conn = state.pool().acquire().await?;
    let message = store::get_message(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id}")))?;
    Ok(no_store(Json(message)))
}

/// The caller's preferences (the defaults until they chose: order emails, no texts).
#[utoipa::path(
    get, path = "/preferences/me", tag = "preferences", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's preferences", body = Preferences),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_preferences(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Response> {
    let mut conn = state.pool().acquire().await?;
    let preferences = store::preferences(&mut conn, caller.user_id).await?;
    Ok(no_store(Json(preferences)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreferencesBody {
    /// Order emails.
    email: bool,
    /// Order texts; needs `phone`.
    sms: bool,
    /// E.164: `+`, country code, number; spaces, dashes and parentheses are dropped.
    #[serde(default)]
    phone: Option<String>,
}

/// A phone number in E.164 (`+4930123456`), from what a person types.
pub fn normalise_phone(raw: &str) -> Result<String, String> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let digits = compact
        .strip_prefix('+')
        .ok_or_else(|| "must start with + and the country code, e.g. +4930123456".to_owned())?;
    if !(7..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err("must be + and 7 to 15 digits (E.164), e.g. +4930123456".into());
    }
    Ok(compact)
}

/// Sets the caller's preferences.
#[utoipa::path(
    put, path = "/preferences/me", tag = "preferences", security(("bearer" = [])),
    request_body = PreferencesBody,
    responses(
        (status = 200, description = "The preferences as saved", body = Preferences),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad phone number, or texts without one", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn put_preferences(
    caller: Caller,
    State(state): State<AppState>,
    Json(body): Json<PreferencesBody>,
) -> ApiResult<Response> {
    let phone = match body.phone.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(normalise_phone(raw).map_err(|m| ApiError::invalid("phone", m))?),
    };
    if body.sms && phone.is_none() {
        return Err(ApiError::invalid(
            "phone",
            "is needed for text messages (sms: true)",
        ));
    }
    let preferences = Preferences {
        email: body.email,
        sms: body.sms,
        phone,
    };
    let mut conn = state.pool().acquire().await?;
    store::save_preferences(&mut conn, caller.user_id, &preferences, chrono::Utc::now()).await?;
    Ok(no_store(Json(preferences)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_e164() {
        assert_eq!(
            normalise_phone("+49 (30) 123-4567").unwrap(),
            "+49301234567"
        );
        assert!(normalise_phone("030 1234567").is_err());
        assert!(normalise_phone("+0301234567").is_err());
        assert!(normalise_phone("+12").is_err());
        assert!(normalise_phone("+49 30 abc").is_err());
    }
}
