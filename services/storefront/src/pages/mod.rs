//! The page handlers, by area, and what they share: forms with CSRF tokens, the
//! signed-in customer's (refreshed) tokens, redirects.

pub mod account;
pub mod admin;
pub mod assets;
pub mod cart;
pub mod checkout;
pub mod shop;

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::PageError;
use crate::session::{Auth, SessionHandle};
use crate::startup::AppState;

/// A posted form, field by field.
pub type FormData = HashMap<String, String>;

/// Refreshes the access token this long before it expires.
const REFRESH_MARGIN_SECS: i64 = 30;

pub fn field<'a>(form: &'a FormData, name: &str) -> &'a str {
    form.get(name).map(|s| s.trim()).unwrap_or("")
}

/// Every POST carries the session's CSRF token in `csrf`.
pub fn check_csrf(session: &SessionHandle, form: &FormData) -> Result<(), PageError> {
    if session
        .get()
        .csrf_ok(form.get("csrf").map_or("", String::as_str))
    {
        Ok(())
    } else {
        Err(PageError::Csrf)
    }
}

/// `303 See Other` to `to` (after a POST, so a reload does not post again).
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    )
    .unwrap_or(0)
}

/// The signed-in customer's tokens, refreshed first when the access token is about to
/// expire. `None` when nobody is signed in (or the refresh token is no longer good, in
/// which case the session forgets it).
pub async fn auth(state: &AppState, session: &SessionHandle) -> Result<Option<Auth>, PageError> {
    let Some(auth) = session.get().auth else {
        return Ok(None);
    };
    if auth.expires_at - now() > REFRESH_MARGIN_SECS {
        return Ok(Some(auth));
    }
    let refreshed = state.api().refresh(&auth).await?;
    session.update(|s| {
        s.auth.clone_from(&refreshed);
        if refreshed.is_none() {
            s.cart = None;
            s.cart_count = 0;
        }
    });
    Ok(refreshed)
}

/// The customer's tokens, or a redirect to sign in (and back to `next`).
pub async fn require_auth(
    state: &AppState,
    session: &SessionHandle,
    next: &str,
) -> Result<Result<Auth, Response>, PageError> {
    Ok(match auth(state, session).await? {
        Some(auth) => Ok(auth),
        None => {
            let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
            Err(redirect(&format!("/account/signin?{query}")))
        }
    })
}

/// Only our own paths are followed after signing in (no open redirect).
pub fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/account"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next("/checkout"), "/checkout");
        assert_eq!(safe_next("//evil.example"), "/account");
        assert_eq!(safe_next("https://evil.example"), "/account");
        assert_eq!(safe_next("/\\evil"), "/account");
    }
}
