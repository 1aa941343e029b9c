//! The routes and the OpenAPI document, generated from the handlers' annotations.

use axum::Router;
use shopkit::http::BearerAuth;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::startup::AppState;
use crate::{addresses, me, recovery, session};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shopstack user",
        description = "Accounts, log-in and tokens, email verification, password reset and the \
                       address book. Access tokens are Ed25519-signed JWTs (verify them with \
                       /.well-known/jwks.json); refresh tokens are opaque and single use. Errors \
                       are RFC 9457 application/problem+json."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "account", description = "Registration, log-in, refresh, log-out"),
        (name = "me", description = "The caller's own account; bearer token"),
        (name = "addresses", description = "The caller's address book; bearer token"),
        (name = "recovery", description = "Email verification and password reset links"),
        (name = "keys", description = "Public keys for verifying access tokens"),
    ),
    components(schemas(shopkit::error::Problem, shopkit::error::FieldError))
)]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::register))
        .routes(routes!(session::login))
        .routes(routes!(session::refresh))
        .routes(routes!(session::logout))
        .routes(routes!(session::logout_all))
        .routes(routes!(session::jwks))
        .routes(routes!(me::me))
        .routes(routes!(me::change_password))
        .routes(routes!(me::request_verification))
        .routes(routes!(recovery::verify_email))
        .routes(routes!(recovery::forgot_password))
        .routes(routes!(recovery::reset_password))
        .routes(routes!(addresses::list, addresses::create))
        .routes(routes!(
            addresses::get,
            addresses::replace,
            addresses::delete
        ))
}

/// The business routes with their state (not yet wrapped by shopkit's Kit).
pub(crate) fn routes(state: AppState) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(state)
}

/// The OpenAPI document served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}
