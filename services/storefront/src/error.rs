//! What a page handler can fail with, as the customer sees it: an HTML page with the
//! right status (never internal text; the cause goes to the log).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// A form without the session's CSRF token.
    #[error("the form expired")]
    Csrf,
    #[error("not allowed")]
    Forbidden,
    /// A service is down, slow or answered something unexpected.
    #[error("upstream: {0:#}")]
    Upstream(#[from] anyhow::Error),
}

pub type PageResult<T = Response> = Result<T, PageError>;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "We could not find that page.".to_owned(),
            ),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired. Go back, reload the page and try again.".to_owned(),
            ),
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "You are not allowed to see this page.".to_owned(),
            ),
            PageError::Upstream(e) => {
                tracing::error!(error = format!("{e:#}"), "a service call failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The shop is having trouble right now. Please try again in a moment."
                        .to_owned(),
                )
            }
        };
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{code}</title><link rel=\"stylesheet\" href=\"/static/theme.css\">\
             <link rel=\"stylesheet\" href=\"/static/style.css\"></head><body>\
             <main id=\"main\" class=\"container\"><h1>{code}</h1><p>{msg}</p>\
             <p><a href=\"/\">Back to the shop</a></p></main></body></html>",
            code = status.as_u16(),
            msg = escape(&message),
        );
        let mut response = (status, Html(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        response
    }
}
