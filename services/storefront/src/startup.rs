//! Wiring: the shared state, the router (pages inside shopkit's [`Kit`], the session
//! layer, the security headers), and the [`Application`] that binds and serves.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngCore;
use shopkit::http::Kit;
use shopkit::shutdown::{Shutdown, ShutdownTrigger};
use tokio::net::TcpListener;

use crate::api::Api;
use crate::config::{Branding, Config};
use crate::error::{PageError, PageResult};
use crate::pages;
use crate::session::{Sealer, Session, SessionHandle};
use crate::theme::Theme;

/// The Content-Security-Policy of every page: nothing inline, nothing from elsewhere
/// (scripts and styles come from `/static`, forms post to us).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
                       connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                       base-uri 'none'; object-src 'none'";

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api,
    theme: Theme,
    sealer: Sealer,
    branding: Branding,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("branding", &self.inner.branding)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let key = match config.session_key {
            Some(key) => key,
            None => {
                tracing::warn!(
                    "STOREFRONT_SESSION_KEY is not set: sessions use a random key of this process \
                     (they end at a restart and do not cross replicas)"
                );
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                key
            }
        };
        Ok(AppState {
            inner: Arc::new(Inner {
                api: Api::new(
                    config.upstreams.clone(),
                    config.upstream_timeout,
                    config.catalog_cache,
                )?,
                theme: Theme::load(config.theme_dir.as_deref(), &config.branding)?,
                sealer: Sealer::new(&key, config.cookie_secure),
                branding: config.branding.clone(),
            }),
        })
    }

    pub fn api(&self) -> &Api {
        &self.inner.api
    }

    pub fn theme(&self) -> &Theme {
        &self.inner.theme
    }

    /// The context every page starts from: the shop, the visitor, the CSRF token.
    pub fn context(&self, session: &SessionHandle) -> tera::Context {
        let s: Session = session.get();
        let mut ctx = tera::Context::new();
        ctx.insert("shop_name", &self.inner.branding.name);
        ctx.insert("logo_url", &self.inner.branding.logo_url);
        ctx.insert("csrf", &s.csrf);
        ctx.insert("signed_in", &s.auth.is_some());
        ctx.insert("email", &s.auth.as_ref().map(|a| a.email.clone()));
        ctx.insert("is_admin", &s.is_admin());
        ctx.insert("cart_count", &s.cart_count);
        ctx.insert("flash", &session.take_flash());
        ctx.insert(
            "notifications",
            &self.inner.api.upstreams.notification.is_some(),
        );
        ctx
    }

    pub fn render(&self, template: &str, ctx: &tera::Context) -> PageResult {
        let html = self
            .inner
            .theme
            .tera
            .render(template, ctx)
            .map_err(|e| PageError::Upstream(anyhow::anyhow!("rendering {template}: {e:?}")))?;
        Ok(Html(html).into_response())
    }
}

/// Security headers on every answer; pages (which carry CSRF tokens and the visitor's
/// state) are never cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if is_html {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    response
}

/// The pages, without shopkit's shared routes (for `oneshot` tests use [`router`]).
pub fn pages(state: AppState) -> Router {
    let sealer = state.inner.sealer.clone();
    Router::new()
        .route("/", get(pages::shop::home))
        .route("/c/{slug}", get(pages::shop::category))
        .route("/search", get(pages::shop::search))
        .route("/p/{slug}", get(pages::shop::product))
        .route("/cart", get(pages::cart::page))
        .route("/cart/lines", get(pages::cart::lines))
        .route("/cart/events", get(pages::cart::events))
        .route("/cart/items", post(pages::cart::add))
        .route("/cart/items/{sku}", post(pages::cart::update))
        .route(
            "/checkout",
            get(pages::checkout::form).post(pages::checkout::place),
        )
        .route(
            "/checkout/pay/{id}",
            get(pages::checkout::pay_page).post(pages::checkout::pay),
        )
        .route(
            "/checkout/pay/{id}/authenticate",
            post(pages::checkout::authenticate),
        )
        .route("/orders/{id}", get(pages::checkout::order_page))
        .route("/account", get(pages::account::page))
        .route(
            "/account/signin",
            get(pages::account::signin_form).post(pages::account::signin),
        )
        .route(
            "/account/signup",
            get(pages::account::signup_form).post(pages::account::signup),
        )
        .route("/account/signout", post(pages::account::signout))
        .route("/account/addresses", post(pages::account::add_address))
        .route(
            "/account/notifications",
            post(pages::account::notifications),
        )
        .route(
            "/account/addresses/{id}/delete",
            post(pages::account::delete_address),
        )
        .route("/admin", get(pages::admin::index))
        .route("/admin/products", post(pages::admin::create_product))
        .route("/admin/import", post(pages::admin::import))
        .route("/admin/inventory", post(pages::admin::adjust))
        .route("/admin/orders", get(pages::admin::orders))
        .route(
            "/admin/orders/{id}/{action}",
            post(pages::admin::order_action),
        )
        .route("/static/{*file}", get(pages::assets::file))
        .layer(middleware::from_fn_with_state(
            sealer,
            crate::session::layer,
        ))
        .with_state(state)
}

/// The whole app: the pages inside shopkit's Kit (health, metrics, access log), with the
/// security headers outermost.
pub fn router(state: AppState) -> Router {
    router_with_kit(state, Kit::new("storefront"))
}

fn router_with_kit(state: AppState, kit: Kit) -> Router {
    let routes = pages(state);
    kit.wrap(routes)
        .fallback(|| async { PageError::NotFound })
        .layer(middleware::from_fn(security_headers))
}

/// A bound storefront, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    trigger: ShutdownTrigger,
    drain: std::time::Duration,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let state = AppState::new(&config)?;
        let (trigger, shutdown): (ShutdownTrigger, Shutdown) = shopkit::shutdown::channel();
        let router = router_with_kit(state, Kit::new("storefront").with_shutdown(shutdown));
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        Ok(Application {
            listener,
            router,
            trigger,
            drain: config.drain,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `stop` resolves, then fails readiness for the drain period and lets
    /// requests in flight (and live cart streams) finish.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let trigger = self.trigger;
        let drain = self.drain;
        let shutdown = async move {
            stop.await;
            trigger.trigger();
            tokio::time::sleep(drain).await;
        };
        shopkit::cli::serve(self.listener, self.router, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Upstreams;

    /// Upstreams nobody listens on: these tests must not need them.
    fn state() -> AppState {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dead = "http://127.0.0.1:9".to_owned();
        let config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            upstreams: Upstreams {
                catalog: dead.clone(),
                user: dead.clone(),
                cart: dead.clone(),
                order: dead.clone(),
                payment: dead,
                notification: None,
            },
            theme_dir: None,
            branding: Branding {
                name: "Test & Co".into(),
                ..Branding::default()
            },
            session_key: Some([3; 32]),
            cookie_secure: true,
            upstream_timeout: std::time::Duration::from_millis(200),
            catalog_cache: std::time::Duration::ZERO,
            drain: std::time::Duration::ZERO,
        };
        AppState::new(&config).unwrap()
    }

    async fn send(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = router(state()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_guest_cart_page_renders_with_a_session_cookie_and_strict_headers() {
        let (status, headers, body) =
            send(Request::get("/cart").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("Your cart is empty"), "{body}");
        assert!(body.contains("Test &amp; Co"), "the shop name, escaped");
        assert!(!body.contains("<script>"), "no inline script");
        let cookie = headers["set-cookie"].to_str().unwrap();
        assert!(
            cookie.starts_with("sf_session=")
                && cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Lax")
                && cookie.contains("Secure"),
            "{cookie}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers["cache-control"], "private, no-store");
    }

    #[tokio::test]
    async fn a_post_without_the_sessions_csrf_token_is_refused_before_any_call() {
        let request = Request::post("/cart/items")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("sku=MUG-1&quantity=1&csrf=forged"))
            .unwrap();
        let (status, _, body) = send(request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("form has expired"), "{body}");
    }

    #[tokio::test]
    async fn the_csrf_token_of_the_session_is_accepted() {
        // Open a session, read its token from the page, post with both.
        let response = router(state())
            .oneshot(Request::get("/account/signin").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        let token = body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let request = Request::post("/account/signout")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(Body::from(format!("csrf={token}")))
            .unwrap();
        let (status, headers, _) = send(request).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers["location"], "/");
        // Another session's cookie with this token is refused.
        let request = Request::post("/account/signout")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={token}")))
            .unwrap();
        assert_eq!(send(request).await.0, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn a_service_that_is_down_is_a_503_page_without_internals() {
        let (status, headers, body) = send(Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("trouble") && !body.contains("127.0.0.1"),
            "{body}"
        );
        assert_eq!(headers["retry-after"], "5");
    }

    #[tokio::test]
    async fn assets_have_validators_and_the_theme_colours() {
        let (status, headers, body) = send(
            Request::get("/static/theme.css")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("--primary:#1f4e79"));
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let again = Request::get("/static/theme.css")
            .header("if-none-match", &etag)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(again).await.0, StatusCode::NOT_MODIFIED);
        assert_eq!(
            send(Request::get("/static/nope.js").body(Body::empty()).unwrap())
                .await
                .0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn admin_pages_send_visitors_to_sign_in() {
        let (status, headers, _) = send(Request::get("/admin").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers["location"], "/account/signin?next=%2Fadmin");
    }

    #[test]
    fn templates_render_the_cart_view_accessibly() {
        let state = state();
        let session = SessionHandle::new(Session::fresh(), false);
        let mut ctx = state.context(&session);
        let cart = serde_json::json!({"id": "c1", "version": 2, "currency": "USD", "total_minor": 1299,
            "lines": [{"sku": "MUG-1", "quantity": 1, "unit_price_minor": 1299, "currency": "USD", "line_total_minor": 1299,
                       "product_name": "<Mug>", "product_slug": "mug", "attributes": {}, "available": 5, "insufficient_stock": false}]});
        ctx.insert("cart", &crate::views::cart_view(&cart));
        let html = state.theme().tera.render("cart.html", &ctx).unwrap();
        assert!(html.contains("&lt;Mug&gt;"), "escaped");
        assert!(
            html.contains("<label for=\"qty-MUG-1\""),
            "labelled quantity"
        );
        assert!(html.contains("href=\"/checkout\""));
        assert!(html.contains("<main id=\"main\""), "landmark");
        assert!(html.contains("data-version=\"2\""));
    }
}
