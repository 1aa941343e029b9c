//! The HTTP conventions every service shares, applied by [`Kit::wrap`]: health, metrics,
//! OpenAPI, request and trace ids, access logs, problem+json fallbacks, body limits, and
//! conditional GETs ([`etag`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::Instrument;

use crate::error::ApiError;
use crate::shutdown::Shutdown;

/// Request bodies above this are refused with 413 unless a route raises its own limit.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Readiness checks that take longer than this count as failed.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Names the replica that answered; lets operators (and the scale tests) see balancing.
pub const REPLICA: HeaderName = HeaderName::from_static("x-shopstack-replica");

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Shared conventions for one service. Build it once in `serve` and wrap the router.
#[derive(Clone)]
pub struct Kit {
    service: &'static str,
    replica: String,
    checks: Vec<(&'static str, Check)>,
    database: Option<PgPool>,
    openapi: Option<Arc<utoipa::openapi::OpenApi>>,
    shutdown: Option<Shutdown>,
}

impl std::fmt::Debug for Kit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kit")
            .field("service", &self.service)
            .field("replica", &self.replica)
            .finish()
    }
}

impl Kit {
    pub fn new(service: &'static str) -> Self {
        // Install the recorder before the first request is counted.
        crate::metrics::handle();
        Self {
            service,
            replica: replica_name(),
            checks: Vec::new(),
            database: None,
            openapi: None,
            shutdown: None,
        }
    }

    /// Readiness checks the database, and reports the schema version.
    pub fn with_database(mut self, pool: PgPool) -> Self {
        self.database = Some(pool);
        self
    }

    /// Any other readiness dependency (the broker, …).
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// The event broker as a readiness dependency: ready only while `connected`
    /// ([`crate::events::Events::connected_flag`]) says the connection is up.
    pub fn with_broker(self, connected: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.with_check("broker", move || {
            let up = connected.load(std::sync::atomic::Ordering::Relaxed);
            async move {
                if up {
                    Ok(())
                } else {
                    Err("not connected to the event broker".to_owned())
                }
            }
        })
    }

    pub fn with_openapi(mut self, doc: utoipa::openapi::OpenApi) -> Self {
        self.openapi = Some(Arc::new(doc));
        self
    }

    /// Readiness fails from the moment shutdown begins, so balancers drain us first.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Adds the shared routes and layers around the service's own routes.
    pub fn wrap(self, routes: Router) -> Router {
        let kit = Arc::new(self);
        let replica =
            HeaderValue::from_str(&kit.replica).unwrap_or(HeaderValue::from_static("unknown"));
        let shared = Router::new()
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .route("/metrics", get(|| async { crate::metrics::render() }))
            .route("/openapi.json", get(openapi))
            .with_state(kit.clone());
        routes
            .merge(shared)
            .fallback(|| async { ApiError::NotFound("no such route; see /openapi.json".into()) })
            .method_not_allowed_fallback(|| async {
                ApiError::MethodNotAllowed(
                    "this method is not allowed on this route; see /openapi.json".into(),
                )
            })
            .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
            .layer(middleware::from_fn(crate::metrics::track))
            .layer(middleware::from_fn_with_state(kit, access_log))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
                ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
            }))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let replica = replica.clone();
                async move {
                    let mut res = next.run(req).await;
                    res.headers_mut().insert(REPLICA, replica);
                    res
                }
            }))
    }
}

/// The container's hostname (Docker sets it to the container id), else the machine's.
fn replica_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local".into())
}

async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "live" }))
}

async fn ready(State(kit): State<Arc<Kit>>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    let mut migration = None;
    if kit.shutdown.as_ref().is_some_and(Shutdown::is_draining) {
        ok = false;
        checks.insert("shutdown".into(), "draining".into());
    }
    if let Some(pool) = &kit.database {
        let probe = async {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(|e| e.to_string())?;
            crate::db::schema_version(pool)
                .await
                .map_err(|e| format!("{e:#}"))
        };
        match tokio::time::timeout(READY_CHECK_TIMEOUT, probe).await {
            Ok(Ok(version)) => {
                migration = Some(version);
                checks.insert("database".into(), "ok".into());
            }
            Ok(Err(e)) => {
                ok = false;
                checks.insert("database".into(), e.into());
            }
            Err(_) => {
                ok = false;
                checks.insert("database".into(), "timed out".into());
            }
        }
    }
    for (name, check) in &kit.checks {
        let outcome = tokio::time::timeout(READY_CHECK_TIMEOUT, check())
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        match outcome {
            Ok(()) => checks.insert((*name).into(), "ok".into()),
            Err(e) => {
                ok = false;
                checks.insert((*name).into(), e.into())
            }
        };
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ok { "ready" } else { "not ready" },
        "service": kit.service,
        "replica": kit.replica,
        "migration": migration,
        "checks": checks,
    });
    (status, axum::Json(body)).into_response()
}

async fn openapi(State(kit): State<Arc<Kit>>) -> Response {
    match &kit.openapi {
        Some(doc) => axum::Json(doc.as_ref().clone()).into_response(),
        None => {
            ApiError::NotFound("this service publishes no OpenAPI document".into()).into_response()
        }
    }
}

/// The trace id from a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_id_from(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    let mut parts = value.split('-');
    let (_version, trace, _parent) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = trace.len() == 32
        && trace.bytes().all(|b| b.is_ascii_hexdigit())
        && trace.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_ascii_lowercase())
}

/// The ids every request carries, available to handlers as an extension (for outgoing
/// calls and events).
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: String,
    pub request_id: String,
}

/// Opens the request span (ECS fields), propagates ids, and logs one line per request
/// (health and metrics probes excepted: they would drown the log).
async fn access_log(State(_kit): State<Arc<Kit>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let trace_id = trace_id_from(request.headers())
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    request.extensions_mut().insert(TraceContext {
        trace_id: trace_id.clone(),
        request_id: request_id.clone(),
    });
    let path = request.uri().path().to_owned();
    let quiet = path.starts_with("/health/") || path == "/metrics";
    let span = tracing::info_span!(
        "request",
        "trace.id" = %trace_id,
        "http.request.id" = %request_id,
        "http.request.method" = %request.method(),
        "url.path" = %path,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    if !quiet || status >= 500 {
        span.in_scope(|| {
            tracing::info!(
                "http.response.status_code" = status,
                "event.duration" = started.elapsed().as_nanos() as u64,
                "request completed"
            );
        });
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Conditional GETs: a strong ETag over the body of every 200 answer to GET, and 304 when
/// `If-None-Match` already names it. Apply to public read routes with
/// `middleware::from_fn(etag)`; the handler sets `Cache-Control`.
pub async fn etag(request: Request, next: Next) -> Response {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if !is_read || response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Read bodies are bounded JSON documents; 16 MiB is far above any page we render.
    let Ok(bytes) = to_bytes(body, 16 * 1024 * 1024).await else {
        return ApiError::Internal(anyhow::anyhow!("response body could not be buffered"))
            .into_response();
    };
    let digest = Sha256::digest(&bytes);
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    let Ok(tag_value) = HeaderValue::from_str(&tag) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.insert(header::ETAG, tag_value);
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == tag)
        });
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> Router {
        let routes = Router::new()
            .route("/thing", get(|| async { "hello" }))
            .route(
                "/boom",
                get(|| async { ApiError::Internal(anyhow::anyhow!("secret detail")) }),
            )
            .layer(middleware::from_fn(etag));
        Kit::new("test").wrap(routes)
    }

    async fn send(app: Router, req: Request) -> (StatusCode, HeaderMap, String) {
        let res = app.oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problem_json() {
        let (status, headers, body) =
            send(app(), Request::get("/nope").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert!(body.contains("\"status\":404"), "{body}");

        let (status, headers, _) =
            send(app(), Request::post("/thing").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    }

    #[tokio::test]
    async fn server_errors_hide_internal_text_and_carry_a_request_id() {
        let (status, headers, body) =
            send(app(), Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("secret detail"), "{body}");
        assert!(headers.contains_key(REQUEST_ID));
        assert!(headers.contains_key(REPLICA));
    }

    #[tokio::test]
    async fn etag_answers_304_when_it_matches() {
        let (status, headers, body) =
            send(app(), Request::get("/thing").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "hello");
        let tag = headers[header::ETAG].to_str().unwrap().to_owned();
        let req = Request::get("/thing")
            .header(header::IF_NONE_MATCH, &tag)
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(app(), req).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(headers[header::ETAG], tag.as_str());
        assert!(body.is_empty());
        let req = Request::get("/thing")
            .header(header::IF_NONE_MATCH, "\"other\"")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(app(), req).await.0, StatusCode::OK);
    }

    #[test]
    fn traceparent_yields_its_trace_id() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(
            trace_id_from(&headers).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        assert_eq!(trace_id_from(&headers), None);
    }

    #[tokio::test]
    async fn metrics_count_requests_per_route_template() {
        let _ = send(app(), Request::get("/thing").body(Body::empty()).unwrap()).await;
        let (_, _, body) = send(app(), Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert!(
            body.contains("http_requests_total{method=\"GET\",route=\"/thing\",status=\"200\"}"),
            "{body}"
        );
        assert!(
            body.contains("http_request_duration_seconds_bucket"),
            "{body}"
        );
    }
}

/// The `bearer` security scheme (a JWT in `Authorization: Bearer …`) every service's
/// OpenAPI document declares: `#[openapi(modifiers(&shopkit::http::BearerAuth))]`.
#[derive(Debug, Clone, Copy)]
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
