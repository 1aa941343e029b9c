//! Who may write: callers with role `admin`, checked by shopkit's [`Admin`] extractor —
//! unless the service was started without keys, in which case every write is refused
//! with a 401 that says so (reads never need a token).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use shopkit::ApiError;
use shopkit::auth::{Admin, Caller};

use crate::startup::AppState;

/// An authenticated admin. Handlers that write take one of these.
#[derive(Debug, Clone)]
pub struct AdminAuth(pub Caller);

impl AdminAuth {
    /// The actor recorded in audit rows.
    pub fn actor(&self) -> String {
        self.0.user_id.to_string()
    }
}

pub const AUTH_NOT_CONFIGURED: &str = "authentication is not configured on this catalog service \
     (set AUTH_JWKS_URL or AUTH_JWKS_FILE), so admin writes are disabled";

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(verifier) = state.verifier() else {
            return Err(ApiError::Unauthorized(AUTH_NOT_CONFIGURED.into()));
        };
        // The verifier is its own state here (`Verifier: FromRef<Verifier>`).
        let Admin(caller) = Admin::from_request_parts(parts, verifier).await?;
        Ok(Self(caller))
    }
}
