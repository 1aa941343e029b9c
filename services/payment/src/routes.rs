//! The routes and the OpenAPI document, generated from the handlers' annotations.

use axum::Router;
use shopkit::http::BearerAuth;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::startup::AppState;
use crate::{admin, api, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shopstack payment",
        description = "Payment intents for orders (created when an order awaits payment), \
                       confirmed with a card through the configured provider, and the ledger \
                       of money charged and refunded. Every endpoint needs a bearer token \
                       except GET /payments/config and the providers' signed webhooks; \
                       /admin needs role admin. Errors are RFC 9457 application/problem+json."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "payments", description = "The buyer's payments"),
        (name = "admin", description = "Back-office reads; role admin"),
        (name = "webhooks", description = "The payment provider's events; signed by the provider, no bearer token"),
    ),
    components(schemas(shopkit::error::Problem, shopkit::error::FieldError))
)]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::list_payments))
        .routes(routes!(api::payment_config))
        .routes(routes!(api::start_payment))
        .routes(routes!(api::get_payment))
        .routes(routes!(api::confirm_payment))
        .routes(routes!(api::authenticate_payment))
        .routes(routes!(admin::list_payments))
        .routes(routes!(admin::order_ledger))
        .routes(routes!(webhooks::stripe_webhook))
        .routes(routes!(webhooks::paypal_webhook))
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
