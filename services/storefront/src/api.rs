//! The services, over HTTP: one small client with the calls the pages make. Answers come
//! back as status + JSON; the pages decide what each status means for the customer.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::config::Upstreams;
use crate::session::{Auth, CartRef};

/// A service's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's `detail` (or `title`) for a refused request, to show the customer.
    pub fn problem_text(&self) -> String {
        self.body["detail"]
            .as_str()
            .or_else(|| self.body["title"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the request was refused ({})", self.status))
    }

    /// Field errors of a `422` as `field: message` (with the row, for imports).
    pub fn field_errors(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let field = e["field"].as_str().unwrap_or("");
                let message = e["message"].as_str().unwrap_or("");
                match e["row"].as_u64() {
                    Some(row) => format!("row {row}: {field}: {message}"),
                    None => format!("{field}: {message}"),
                }
            })
            .collect()
    }
}

/// Which service a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Catalog,
    User,
    Cart,
    Order,
    Payment,
    /// Only when `NOTIFICATION_URL` is set (pages check first).
    Notification,
}

/// Who is calling: the customer's bearer token, an anonymous cart's token, or nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cred<'a> {
    pub bearer: Option<&'a str>,
    pub cart_token: Option<&'a str>,
}

impl<'a> Cred<'a> {
    pub fn none() -> Self {
        Cred::default()
    }

    pub fn of(auth: Option<&'a Auth>, cart: Option<&'a CartRef>) -> Self {
        Cred {
            bearer: auth.map(|a| a.access_token.as_str()),
            cart_token: cart.and_then(|c| c.token.as_deref()),
        }
    }

    pub fn bearer(auth: &'a Auth) -> Self {
        Cred {
            bearer: Some(&auth.access_token),
            cart_token: None,
        }
    }
}

/// Anonymous catalog reads that every visitor shares, for a short while: a busy category
/// page would otherwise run the same listing and facet queries many times a second.
/// Concurrent misses of one key make one call (the others wait for its answer).
type CatalogCache = moka::future::Cache<String, Reply>;

/// Why a cached read's answer was not kept.
#[derive(Debug)]
enum NotKept {
    /// The catalog answered, but not with success (a 404 or 400 is passed on as it is).
    Refused(Reply),
    Failed(anyhow::Error),
}

#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    /// For the cart's event stream: no overall timeout (the stream is long-lived).
    streaming: reqwest::Client,
    /// `None` when `CATALOG_CACHE_MS` is 0.
    catalog_cache: Option<CatalogCache>,
    pub upstreams: Upstreams,
}

impl Api {
    pub fn new(
        upstreams: Upstreams,
        timeout: Duration,
        catalog_cache: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Api {
            catalog_cache: (!catalog_cache.is_zero()).then(|| {
                CatalogCache::builder()
                    .max_capacity(10_000)
                    .time_to_live(catalog_cache)
                    .build()
            }),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(64)
                .build()
                .context("building the HTTP client")?,
            streaming: reqwest::Client::builder()
                .connect_timeout(timeout)
                .build()
                .context("building the streaming HTTP client")?,
            upstreams,
        })
    }

    fn base(&self, service: Service) -> &str {
        match service {
            Service::Catalog => &self.upstreams.catalog,
            Service::User => &self.upstreams.user,
            Service::Cart => &self.upstreams.cart,
            Service::Order => &self.upstreams.order,
            Service::Payment => &self.upstreams.payment,
            Service::Notification => self
                .upstreams
                .notification
                .as_deref()
                .unwrap_or("http://notification.invalid"),
        }
    }

    fn request(
        &self,
        method: Method,
        service: Service,
        path: &str,
        cred: Cred<'_>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base(service)));
        if let Some(bearer) = cred.bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(token) = cred.cart_token {
            request = request.header("X-Cart-Token", token);
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Reply> {
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {what}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading {what}"))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }

    pub async fn get(&self, service: Service, path: &str, cred: Cred<'_>) -> anyhow::Result<Reply> {
        self.send(self.request(Method::GET, service, path, cred), path)
            .await
    }

    /// A GET with query parameters (repeated names allowed).
    pub async fn get_query(
        &self,
        service: Service,
        path: &str,
        query: &[(String, String)],
        cred: Cred<'_>,
    ) -> anyhow::Result<Reply> {
        self.send(
            self.request(Method::GET, service, path, cred).query(query),
            path,
        )
        .await
    }

    /// An anonymous catalog read that is the same for every visitor (the category tree,
    /// a listing), through the short-lived cache when it is on. Only successful answers
    /// are kept.
    pub async fn catalog_shared(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> anyhow::Result<Reply> {
        let fetch = || self.get_query(Service::Catalog, path, query, Cred::none());
        let Some(cache) = &self.catalog_cache else {
            return fetch().await;
        };
        let key = format!("{path}?{}", serde_urlencoded::to_string(query)?);
        let kept = cache
            .try_get_with(key, async {
                match fetch().await {
                    Ok(reply) if reply.ok() => Ok(reply),
                    Ok(reply) => Err(NotKept::Refused(reply)),
                    Err(e) => Err(NotKept::Failed(e)),
                }
            })
            .await;
        match kept {
            Ok(reply) => Ok(reply),
            Err(not_kept) => match &*not_kept {
                NotKept::Refused(reply) => Ok(reply.clone()),
                NotKept::Failed(e) => Err(anyhow::anyhow!("{e:#}")),
            },
        }
    }

    /// A write: sent like any call, and then, if it went to the catalog, this
    /// storefront's shared catalog reads are stale (whatever the answer was: a timed-out
    /// write may still have happened).
    async fn send_write(
        &self,
        service: Service,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<Reply> {
        let reply = self.send(request, what).await;
        if let (Service::Catalog, Some(cache)) = (service, &self.catalog_cache) {
            cache.invalidate_all();
        }
        reply
    }

    pub async fn send_json(
        &self,
        method: Method,
        service: Service,
        path: &str,
        cred: Cred<'_>,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut request = self.request(method, service, path, cred).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.send_write(service, request, path).await
    }

    pub async fn post(
        &self,
        service: Service,
        path: &str,
        cred: Cred<'_>,
        body: &Value,
    ) -> anyhow::Result<Reply> {
        self.send_json(Method::POST, service, path, cred, body, None)
            .await
    }

    pub async fn delete(
        &self,
        service: Service,
        path: &str,
        cred: Cred<'_>,
    ) -> anyhow::Result<Reply> {
        let request = self.request(Method::DELETE, service, path, cred);
        self.send_write(service, request, path).await
    }

    /// A CSV body (the catalog's bulk import).
    pub async fn post_csv(&self, path: &str, cred: Cred<'_>, csv: String) -> anyhow::Result<Reply> {
        let request = self
            .request(Method::POST, Service::Catalog, path, cred)
            .header("Content-Type", "text/csv")
            .body(csv);
        self.send_write(Service::Catalog, request, path).await
    }

    /// The cart's Server-Sent Events, as a live response to relay.
    pub async fn cart_events(
        &self,
        cart: &CartRef,
        cred: Cred<'_>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .streaming
            .get(format!("{}/carts/{}/events", self.upstreams.cart, cart.id))
            .header("Accept", "text/event-stream");
        if let Some(bearer) = cred.bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(token) = cred.cart_token {
            request = request.header("X-Cart-Token", token);
        }
        request
            .send()
            .await
            .context("opening the cart's event stream")
    }

    /// Logs in and turns the token pair into the session's [`Auth`].
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Result<Auth, Reply>> {
        let reply = self
            .post(
                Service::User,
                "/login",
                Cred::none(),
                &json!({"email": email, "password": password}),
            )
            .await?;
        if !reply.ok() {
            return Ok(Err(reply));
        }
        auth_from_pair(&reply.body, email).map(Ok)
    }

    /// A new token pair for a session whose access token is about to expire; `None` when
    /// the refresh token is no longer good (the customer signs in again).
    pub async fn refresh(&self, auth: &Auth) -> anyhow::Result<Option<Auth>> {
        let reply = self
            .post(
                Service::User,
                "/refresh",
                Cred::none(),
                &json!({"refresh_token": auth.refresh_token}),
            )
            .await?;
        if reply.status.is_client_error() {
            return Ok(None);
        }
        if !reply.ok() {
            anyhow::bail!("refreshing the session: {}", reply.status);
        }
        auth_from_pair(&reply.body, &auth.email).map(Some)
    }
}

/// The session's view of a token pair. The claims are read (not verified: the token
/// came straight from the user service, and every service verifies it again).
pub fn auth_from_pair(pair: &Value, email: &str) -> anyhow::Result<Auth> {
    let access = pair["access_token"].as_str().context("no access_token")?;
    let refresh = pair["refresh_token"].as_str().context("no refresh_token")?;
    let claims = claims(access).context("an access token without readable claims")?;
    Ok(Auth {
        access_token: access.to_owned(),
        refresh_token: refresh.to_owned(),
        expires_at: claims["exp"].as_i64().unwrap_or(0),
        user_id: claims["sub"].as_str().unwrap_or("").to_owned(),
        email: email.to_owned(),
        roles: claims["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    })
}

/// The payload of a JWT, decoded.
pub fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_pair_becomes_the_sessions_auth() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"sub":"u1","roles":["customer","admin"],"exp":1700000000}"#);
        let pair = json!({"access_token": format!("h.{payload}.s"), "refresh_token": "r"});
        let auth = auth_from_pair(&pair, "a@example.com").unwrap();
        assert_eq!(auth.user_id, "u1");
        assert_eq!(auth.roles, ["customer", "admin"]);
        assert_eq!(auth.expires_at, 1_700_000_000);
        assert!(
            auth_from_pair(
                &json!({"access_token": "nonsense", "refresh_token": "r"}),
                "a"
            )
            .is_err()
        );
    }

    #[test]
    fn problems_read_as_text() {
        let reply = Reply {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"title": "Invalid", "errors": [{"field": "sku", "message": "bad", "row": 2}]}),
        };
        assert_eq!(reply.problem_text(), "Invalid");
        assert_eq!(reply.field_errors(), ["row 2: sku: bad"]);
    }

    /// A catalog on loopback that counts the calls of each path; `/categories/gone/...`
    /// answers 404 and a slow path makes concurrent misses overlap.
    async fn counting_catalog() -> (
        String,
        std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    ) {
        use axum::extract::{Request, State};
        use axum::response::IntoResponse;
        type Calls = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>;
        let calls: Calls = Default::default();
        async fn answer(State(calls): State<Calls>, request: Request) -> axum::response::Response {
            let key = format!("{} {}", request.method(), request.uri());
            *calls.lock().unwrap().entry(key).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            if request.uri().path().starts_with("/categories/gone") {
                return (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"title": "Not Found"})),
                )
                    .into_response();
            }
            axum::Json(json!({"path": request.uri().to_string()})).into_response()
        }
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, calls)
    }

    fn api(catalog: &str, cache: Duration) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let upstreams = Upstreams {
            catalog: catalog.to_owned(),
            user: catalog.to_owned(),
            cart: catalog.to_owned(),
            order: catalog.to_owned(),
            payment: catalog.to_owned(),
            notification: None,
        };
        Api::new(upstreams, Duration::from_secs(5), cache).unwrap()
    }

    #[tokio::test]
    async fn shared_catalog_reads_are_made_once_per_ttl_and_cleared_by_a_write() {
        let (url, calls) = counting_catalog().await;
        let api = api(&url, Duration::from_secs(60));
        let count = |key: &str| calls.lock().unwrap().get(key).copied().unwrap_or(0);
        let shirts = [("sort".to_owned(), "newest".to_owned())];

        // Twenty visitors at once: one call, every one of them gets its answer.
        let replies = futures::future::join_all(
            (0..20).map(|_| api.catalog_shared("/categories/shirts/products", &shirts)),
        )
        .await;
        for reply in replies {
            let reply = reply.unwrap();
            assert!(reply.ok());
            assert_eq!(
                reply.body["path"],
                "/categories/shirts/products?sort=newest"
            );
        }
        assert_eq!(count("GET /categories/shirts/products?sort=newest"), 1);
        // Another query is another entry.
        api.catalog_shared("/categories/shirts/products", &[])
            .await
            .unwrap();
        assert_eq!(count("GET /categories/shirts/products?"), 0, "no stray '?'");
        assert_eq!(count("GET /categories/shirts/products"), 1);

        // A refusal is passed on and not kept.
        for _ in 0..2 {
            let gone = api
                .catalog_shared("/categories/gone/products", &[])
                .await
                .unwrap();
            assert_eq!(gone.status, StatusCode::NOT_FOUND);
        }
        assert_eq!(count("GET /categories/gone/products"), 2);

        // A write to the catalog through this storefront: the next read asks again.
        api.post(
            Service::Catalog,
            "/admin/products",
            Cred::none(),
            &json!({}),
        )
        .await
        .unwrap();
        api.catalog_shared("/categories/shirts/products", &shirts)
            .await
            .unwrap();
        assert_eq!(count("GET /categories/shirts/products?sort=newest"), 2);
        // A write elsewhere does not clear it.
        api.post(Service::Cart, "/carts", Cred::none(), &json!({}))
            .await
            .unwrap();
        api.catalog_shared("/categories/shirts/products", &shirts)
            .await
            .unwrap();
        assert_eq!(count("GET /categories/shirts/products?sort=newest"), 2);
    }

    #[tokio::test]
    async fn with_the_cache_off_every_read_asks_the_catalog() {
        let (url, calls) = counting_catalog().await;
        let api = api(&url, Duration::ZERO);
        for _ in 0..3 {
            api.catalog_shared("/categories", &[]).await.unwrap();
        }
        assert_eq!(calls.lock().unwrap()["GET /categories"], 3);
    }

    #[tokio::test]
    async fn a_kept_read_expires_after_its_ttl() {
        let (url, calls) = counting_catalog().await;
        let api = api(&url, Duration::from_millis(300));
        api.catalog_shared("/categories", &[]).await.unwrap();
        api.catalog_shared("/categories", &[]).await.unwrap();
        assert_eq!(calls.lock().unwrap()["GET /categories"], 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        api.catalog_shared("/categories", &[]).await.unwrap();
        assert_eq!(calls.lock().unwrap()["GET /categories"], 2);
    }
}
