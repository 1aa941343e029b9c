//! The cart's errors: shopkit's [`ApiError`] for the common cases, plus the problems
//! that carry extension members (RFC 9457 §3.2) a client acts on — the stock left when a
//! quantity is too high, the SKU that is not sold, the cart's version after a conflict.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shopkit::ApiError;
use shopkit::error::PROBLEM_JSON;

/// Where the cart's own problem types live (next to shopkit's).
const PROBLEM_BASE: &str = "https://shopstack.dev/problems";

pub type CartResult<T> = Result<T, CartError>;

#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The SKU is not in the catalog, or its product is not published.
    #[error("SKU {0:?} is not for sale: it is not in the catalog or its product is not published")]
    UnknownSku(String),
    /// More than the catalog has available.
    #[error("only {available} of SKU {sku:?} are available; {requested} were asked for")]
    OutOfStock {
        sku: String,
        requested: i64,
        available: i64,
    },
    /// A cart holds one currency; this SKU is priced in another.
    #[error(
        "SKU {sku:?} is priced in {sku_currency} but this cart is in {cart_currency}; \
         a cart holds one currency"
    )]
    CurrencyMismatch {
        sku: String,
        sku_currency: String,
        cart_currency: String,
    },
    /// `If-Match` named another version than the cart's.
    #[error(
        "the cart changed since version {expected} (it is at version {current}); reload it and retry"
    )]
    VersionMismatch { expected: i64, current: i64 },
}

impl From<sqlx::Error> for CartError {
    fn from(err: sqlx::Error) -> Self {
        Self::Api(err.into())
    }
}

impl From<anyhow::Error> for CartError {
    fn from(err: anyhow::Error) -> Self {
        Self::Api(ApiError::Internal(err))
    }
}

impl CartError {
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::Api(ApiError::not_found(what))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Api(ApiError::invalid(field, message))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api(err) => err.status(),
            Self::UnknownSku(_) | Self::CurrencyMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::OutOfStock { .. } => StatusCode::CONFLICT,
            Self::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
        }
    }

    /// The problem document of one of the cart's own types (not for [`CartError::Api`]).
    fn problem(&self, slug: &str, title: &str, extensions: Value) -> Value {
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}/{slug}"),
            "title": title,
            "status": self.status().as_u16(),
            "detail": self.to_string(),
        });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extensions) {
            body.extend(extra);
        }
        body
    }
}

impl IntoResponse for CartError {
    fn into_response(self) -> Response {
        let body = match self {
            Self::Api(err) => return err.into_response(),
            ref other => other.body(),
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl CartError {
    /// The problem document of the cart's own types.
    fn body(&self) -> Value {
        match self {
            Self::Api(err) => json!(err.problem()),
            Self::UnknownSku(sku) => self.problem(
                "unknown-sku",
                "Unknown SKU",
                json!({
                    "sku": sku,
                    "errors": [{"field": "sku", "message": format!("{sku:?} is not for sale")}],
                }),
            ),
            Self::OutOfStock {
                sku,
                requested,
                available,
            } => self.problem(
                "out-of-stock",
                "Out of stock",
                json!({"sku": sku, "requested": requested, "available": available}),
            ),
            Self::CurrencyMismatch {
                sku,
                sku_currency,
                cart_currency,
            } => self.problem(
                "currency-mismatch",
                "Currency mismatch",
                json!({"sku": sku, "currency": sku_currency, "cart_currency": cart_currency}),
            ),
            Self::VersionMismatch { current, .. } => self.problem(
                "version-mismatch",
                "Precondition Failed",
                json!({"version": current}),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(err: CartError) -> (StatusCode, Value) {
        let response = err.into_response();
        let status = response.status();
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn out_of_stock_names_what_is_available() {
        let (status, body) = body(CartError::OutOfStock {
            sku: "MUG-BLU".into(),
            requested: 5,
            available: 2,
        })
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["type"], "https://shopstack.dev/problems/out-of-stock");
        assert_eq!(body["status"], 409);
        assert_eq!(body["available"], 2);
        assert_eq!(body["sku"], "MUG-BLU");
        assert!(body["detail"].as_str().unwrap().contains("only 2"));
    }

    #[tokio::test]
    async fn unknown_skus_are_named_and_common_errors_stay_shopkits() {
        let (status, body) = body(CartError::UnknownSku("NOPE-1".into())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["field"], "sku");
        assert!(body["detail"].as_str().unwrap().contains("NOPE-1"));
        let (status, body) = body_of_api().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body["detail"].as_str().unwrap().contains("10.0.0.7"));
    }

    async fn body_of_api() -> (StatusCode, Value) {
        body(CartError::Api(ApiError::Unavailable(
            "catalog at 10.0.0.7 refused".into(),
        )))
        .await
    }
}
