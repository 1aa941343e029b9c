//! The theme's static files, from memory, with strong ETags.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::PageError;
use crate::startup::AppState;

pub async fn file(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let asset = state.theme().assets.get(&name).ok_or(PageError::NotFound)?;
    let etag = HeaderValue::from_str(&asset.etag).map_err(|e| PageError::Upstream(e.into()))?;
    let cache = HeaderValue::from_static("public, max-age=300");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == asset.etag.as_bytes())
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body.clone(),
    )
        .into_response())
}
