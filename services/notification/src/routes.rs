//! The routes and the OpenAPI document, generated from the handlers' annotations.

use axum::Router;
use shopkit::http::BearerAuth;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api;
use crate::startup::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shopstack notification",
        description = "Emails and text messages made from the shop's events (order \
                       confirmations, shipping, refunds, account emails), their delivery \
                       status, and each customer's preferences. Every endpoint needs a bearer \
                       token; /messages needs role admin. Errors are RFC 9457 \
                       application/problem+json."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "preferences", description = "The caller's own choices"),
        (name = "admin", description = "Messages; role admin"),
    ),
    components(schemas(shopkit::error::Problem, shopkit::error::FieldError))
)]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::list_messages))
        .routes(routes!(api::get_message))
        .routes(routes!(api::get_preferences, api::put_preferences))
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
