//! The routes and the OpenAPI document, generated from the handlers' annotations.

use axum::Router;
use shopkit::http::BearerAuth;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::startup::AppState;
use crate::{admin, customer};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shopstack orders",
        description = "Orders placed from carts with a price snapshot, and their checkout \
                       status (pending → awaiting_payment → paid → fulfilled, or cancelled / \
                       refunded). Every route needs a bearer token; customers see only their \
                       own orders, /admin needs role admin. Errors are RFC 9457 \
                       application/problem+json."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "orders", description = "The buyer's orders"),
        (name = "admin", description = "The back office; role admin"),
    ),
    components(schemas(shopkit::error::Problem, shopkit::error::FieldError))
)]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(customer::create_order, customer::list_orders))
        .routes(routes!(customer::get_order))
        .routes(routes!(admin::list_orders))
        .routes(routes!(admin::fulfil))
        .routes(routes!(admin::cancel))
        .routes(routes!(admin::refund))
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
