//! The routes and the OpenAPI document, generated from the handlers' annotations.

use axum::Router;
use shopkit::http::BearerAuth;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::carts;
use crate::startup::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shopstack cart",
        description = "Anonymous carts (reached with their token: `X-Cart-Token` or the \
                       `cart_token` cookie) and user carts (bearer token), validated and \
                       priced against the catalog, live over Server-Sent Events. Errors are \
                       RFC 9457 application/problem+json."
    ),
    modifiers(&BearerAuth),
    tags((name = "carts", description = "Carts, their lines and their live events")),
    components(schemas(shopkit::error::Problem, shopkit::error::FieldError))
)]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(carts::create_cart))
        .routes(routes!(carts::my_cart))
        .routes(routes!(carts::merge))
        .routes(routes!(carts::get_cart))
        .routes(routes!(carts::add_item))
        .routes(routes!(carts::set_quantity, carts::remove_item))
        .routes(routes!(carts::events))
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
