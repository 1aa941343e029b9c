//! Who may reach a cart.
//!
//! - A **user cart** is visible to its user only (and, for reads, to an admin); to
//!   anyone else it does not exist: 404, never 403, so cart ids reveal nothing.
//! - An **anonymous cart** needs its token (`X-Cart-Token`, else the `cart_token`
//!   cookie); a wrong token is the same 404.
//! - A request with **no credentials at all** (no bearer token, no cart token) is a 401
//!   whatever the cart: it says what to send, and since it is decided before the cart is
//!   looked up it reveals nothing either.
//! - A merged (closed) cart is a 404 for everyone.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use shopkit::ApiError;
use shopkit::auth::Caller;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{CartError, CartResult};
use crate::startup::AppState;
use crate::store::{self, CartOwner};
use crate::token;

pub const AUTH_NOT_CONFIGURED: &str = "authentication is not configured on this cart service \
     (set AUTH_JWKS_URL or AUTH_JWKS_FILE), so user carts are disabled; anonymous carts work";

pub const NO_CREDENTIALS: &str = "this cart needs credentials: its token as `X-Cart-Token` (or \
     the `cart_token` cookie), or `Authorization: Bearer <access token>` for a user's cart";

/// What a request presents: a verified bearer token and/or a cart token.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub caller: Option<Caller>,
    pub cart_token: Option<String>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.caller.is_none() && self.cart_token.is_none()
    }
}

/// Whether the request only reads, or changes the cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
}

/// A bearer token, when sent, must be valid (an expired one is a 401, so the client
/// refreshes it rather than silently losing its user cart).
impl FromRequestParts<AppState> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = if parts.headers.contains_key(AUTHORIZATION) {
            let Some(verifier) = state.verifier() else {
                return Err(ApiError::Unauthorized(AUTH_NOT_CONFIGURED.into()));
            };
            Some(Caller::from_request_parts(parts, verifier).await?)
        } else {
            None
        };
        Ok(Credentials {
            caller,
            cart_token: token::from_headers(&parts.headers),
        })
    }
}

/// A caller with a verified bearer token (for `/carts/mine`).
#[derive(Debug, Clone)]
pub struct User(pub Caller);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(verifier) = state.verifier() else {
            return Err(ApiError::Unauthorized(AUTH_NOT_CONFIGURED.into()));
        };
        Ok(User(Caller::from_request_parts(parts, verifier).await?))
    }
}

/// The rule itself, without the database.
pub fn permits(owner: &CartOwner, credentials: &Credentials, mode: Mode) -> bool {
    if !owner.is_open() {
        return false;
    }
    let caller = credentials.caller.as_ref();
    if caller.is_some_and(|c| mode == Mode::Read && c.is_admin()) {
        return true;
    }
    match (&owner.user_id, &owner.token_hash) {
        (Some(user_id), _) => caller.is_some_and(|c| c.user_id == *user_id),
        (None, Some(hash)) => credentials
            .cart_token
            .as_deref()
            .is_some_and(|t| token::well_formed(t) && token::matches(t, hash)),
        (None, None) => false,
    }
}

/// Looks the cart up and applies [`permits`]: Ok, or the 401/404 described above.
pub async fn authorize(
    pool: &PgPool,
    id: Uuid,
    credentials: &Credentials,
    mode: Mode,
) -> CartResult<()> {
    if credentials.is_empty() {
        return Err(CartError::Api(ApiError::Unauthorized(
            NO_CREDENTIALS.into(),
        )));
    }
    match store::owner(pool, id).await? {
        Some(owner) if permits(&owner, credentials, mode) => Ok(()),
        _ => Err(CartError::not_found(format!("cart {id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user_id: Uuid, roles: &[&str]) -> Option<Caller> {
        Some(Caller {
            user_id,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        })
    }

    fn anonymous(token: &str) -> CartOwner {
        CartOwner {
            user_id: None,
            token_hash: Some(token::hash(token).to_vec()),
            status: "open".into(),
        }
    }

    #[test]
    fn an_anonymous_cart_needs_its_token() {
        let token = token::generate();
        let owner = anonymous(&token);
        let with = |t: &str| Credentials {
            caller: None,
            cart_token: Some(t.to_owned()),
        };
        assert!(permits(&owner, &with(&token), Mode::Write));
        assert!(!permits(&owner, &with(&token::generate()), Mode::Read));
        assert!(!permits(&owner, &with("short"), Mode::Read));
        let user = Credentials {
            caller: caller(Uuid::now_v7(), &["customer"]),
            cart_token: None,
        };
        assert!(!permits(&owner, &user, Mode::Read));
        let mut merged = owner;
        merged.status = "merged".into();
        assert!(!permits(&merged, &with(&token), Mode::Read));
    }

    #[test]
    fn a_user_cart_is_its_users_and_admins_only_read_it() {
        let user_id = Uuid::now_v7();
        let owner = CartOwner {
            user_id: Some(user_id),
            token_hash: None,
            status: "open".into(),
        };
        let as_ = |id: Uuid, roles: &[&str]| Credentials {
            caller: caller(id, roles),
            cart_token: None,
        };
        assert!(permits(&owner, &as_(user_id, &["customer"]), Mode::Write));
        assert!(!permits(
            &owner,
            &as_(Uuid::now_v7(), &["customer"]),
            Mode::Read
        ));
        assert!(permits(
            &owner,
            &as_(Uuid::now_v7(), &["admin"]),
            Mode::Read
        ));
        assert!(!permits(
            &owner,
            &as_(Uuid::now_v7(), &["admin"]),
            Mode::Write
        ));
        let token_only = Credentials {
            caller: None,
            cart_token: Some(token::generate()),
        };
        assert!(!permits(&owner, &token_only, Mode::Read));
    }
}
