//! The test app: the catalog router over a fresh database, called with `oneshot`, plus
//! tokens and fixtures.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use catalog::AppState;
use serde_json::{Value, json};
use shopkit::testing::{TestDb, TestIssuer};

pub struct TestApp {
    pub db: TestDb,
    pub router: Router,
    pub admin: String,
    pub customer: String,
}

pub use shopkit::testing::TestResponse;

pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TestApp {
    pub async fn new() -> Self {
        install_tls();
        let db = TestDb::new(&catalog::MIGRATOR).await.unwrap();
        let issuer = TestIssuer::new().unwrap();
        let state = AppState::new(db.pool.clone(), Some(issuer.verifier().unwrap()));
        Self {
            router: catalog::router(state),
            admin: issuer.token(&["admin"]),
            customer: issuer.token(&["customer"]),
            db,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        shopkit::testing::send(&self.router, request).await.unwrap()
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A request with a raw body and content type, as `token` (none: anonymous).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        self.send(request.body(body.into()).unwrap()).await
    }

    pub async fn json_as(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: &Value,
    ) -> TestResponse {
        self.call(
            method,
            uri,
            token,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    /// An admin call with a JSON body.
    pub async fn admin_json(&self, method: Method, uri: &str, body: &Value) -> TestResponse {
        self.json_as(method, uri, Some(&self.admin), body).await
    }

    pub async fn admin_delete(&self, uri: &str) -> TestResponse {
        self.call(Method::DELETE, uri, Some(&self.admin), None, Body::empty())
            .await
    }

    pub async fn category(&self, slug: &str, name: &str, parent: Option<&str>) {
        let body = json!({ "slug": slug, "name": name, "parent": parent });
        let response = self
            .admin_json(Method::POST, "/admin/categories", &body)
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    }

    /// Creates a published product through the API and returns its detail.
    pub async fn product(&self, body: Value) -> Value {
        let response = self
            .admin_json(Method::POST, "/admin/products", &body)
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        response.json()
    }

    pub async fn count(&self, table: &str) -> i64 {
        // Test-only: table names are literals from the tests.
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Row counts of every catalog table, to check that a refused request wrote nothing.
    pub async fn counts(&self) -> [i64; 5] {
        [
            self.count("categories").await,
            self.count("products").await,
            self.count("variants").await,
            self.count("inventory").await,
            self.count("inventory_adjustments").await,
        ]
    }
}

/// A product body with one variant per `(sku, attributes, price, on_hand)`.
pub fn product_json(
    name: &str,
    category: &str,
    description: &str,
    variants: &[(&str, Value, i64, i64)],
) -> Value {
    json!({
        "name": name,
        "category": category,
        "description": description,
        "status": "published",
        "image_urls": [format!("/static/img/{}.jpg", catalog::validate::slugify(name))],
        "variants": variants.iter().map(|(sku, attributes, price, on_hand)| json!({
            "sku": sku, "attributes": attributes, "price_minor": price,
            "currency": "USD", "on_hand": on_hand,
        })).collect::<Vec<_>>(),
    })
}

/// A small catalog for search tests: apparel > shirts, t-shirts; home > kitchen.
pub async fn fixture() -> TestApp {
    let app = TestApp::new().await;
    app.category("apparel", "Apparel", None).await;
    app.category("shirts", "Shirts", Some("apparel")).await;
    app.category("t-shirts", "T-Shirts", Some("apparel")).await;
    app.category("home", "Home", None).await;
    app.category("kitchen", "Kitchen", Some("home")).await;
    let products = [
        product_json(
            "Blue Oxford Cotton Shirt",
            "shirts",
            "A crisp oxford for the office.",
            &[
                ("OXF-BLU-M", json!({"color": "blue", "size": "M"}), 4999, 5),
                ("OXF-BLU-L", json!({"color": "blue", "size": "L"}), 4999, 0),
            ],
        ),
        product_json(
            "Blue Linen Shirt",
            "shirts",
            "Light and airy for summer.",
            &[("LIN-BLU-S", json!({"color": "blue", "size": "S"}), 3999, 0)],
        ),
        product_json(
            "Red Flannel Shirt",
            "shirts",
            "A warm flannel. Pairs well with blue jeans.",
            &[("FLN-RED-M", json!({"color": "red", "size": "M"}), 2999, 3)],
        ),
        product_json(
            "Classic Polo Shirt",
            "shirts",
            "A polo for weekends.",
            &[
                ("POL-BLU-M", json!({"color": "blue", "size": "M"}), 2499, 2),
                ("POL-WHT-M", json!({"color": "white", "size": "M"}), 2499, 2),
            ],
        ),
        product_json(
            "Green Oxford Shirt",
            "shirts",
            "An oxford in forest green.",
            &[("OXF-GRN-M", json!({"color": "green", "size": "M"}), 4599, 1)],
        ),
        product_json(
            "Navy Crew Neck T-Shirt",
            "t-shirts",
            "Soft cotton jersey.",
            &[("TEE-NVY-M", json!({"color": "navy", "size": "M"}), 1999, 10)],
        ),
        product_json(
            "Short Sleeve Jersey Polo",
            "t-shirts",
            "For warm days.",
            &[("TEE-SSP-M", json!({"color": "white", "size": "M"}), 2199, 4)],
        ),
        product_json(
            "Blue Ceramic Mug",
            "kitchen",
            "Holds a large coffee.",
            &[("MUG-BLU", json!({"color": "blue"}), 1299, 20)],
        ),
    ];
    for product in products {
        app.product(product).await;
    }
    let mut draft = product_json(
        "Blue Striped Shirt",
        "shirts",
        "Not released yet.",
        &[("STR-BLU-M", json!({"color": "blue", "size": "M"}), 3499, 9)],
    );
    draft["status"] = json!("draft");
    app.product(draft).await;
    app
}

pub fn names(results: &Value) -> Vec<String> {
    results["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}
