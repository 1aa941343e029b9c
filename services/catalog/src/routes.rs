//! The routes and the OpenAPI document, generated from the handlers' annotations.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use shopkit::http::BearerAuth;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::import::IMPORT_BODY_LIMIT;
use crate::startup::AppState;
use crate::{admin, import, public};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shopstack catalog",
        description = "Categories, products, variants, stock and search. Reads are public \
                       and cacheable; writes under /admin need a bearer token with role admin. \
                       Errors are RFC 9457 application/problem+json."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "catalog", description = "Public reads: published products only"),
        (name = "admin", description = "Writes and back-office reads; role admin"),
    ),
    components(schemas(shopkit::error::Problem, shopkit::error::FieldError))
)]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    let public = OpenApiRouter::new()
        .routes(routes!(public::search_products))
        .routes(routes!(public::get_product))
        .routes(routes!(public::category_tree))
        .routes(routes!(public::category_products))
        .layer(middleware::from_fn(shopkit::http::etag))
        .routes(routes!(public::lookup_skus));
    let admin = OpenApiRouter::new()
        .routes(routes!(admin::create_product))
        .routes(routes!(
            admin::get_product,
            admin::update_product,
            admin::delete_product
        ))
        .routes(routes!(admin::add_variant))
        .routes(routes!(admin::update_variant, admin::delete_variant))
        .routes(routes!(admin::create_category))
        .routes(routes!(admin::update_category, admin::delete_category))
        .routes(routes!(admin::get_inventory))
        .routes(routes!(admin::adjust_inventory));
    // Only the import accepts bodies above shopkit's default 1 MiB.
    let import = OpenApiRouter::new()
        .routes(routes!(import::import))
        .layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public)
        .merge(admin)
        .merge(import)
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
