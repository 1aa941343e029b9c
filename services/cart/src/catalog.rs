//! The catalog, asked over HTTP for the current facts of SKUs: `GET {CATALOG_URL}/skus?
//! sku=A&sku=B` answers `[{sku, product_id, product_name, product_slug, attributes,
//! price_minor, currency, available, published}]`, leaving out SKUs it does not know.
//! Every change to a cart is checked against this answer; when the catalog cannot be
//! reached the change is refused with a 503 rather than made on stale facts.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use uuid::Uuid;

/// A catalog that does not answer within this is treated as unreachable: the shopper is
/// waiting on the answer.
const TIMEOUT: Duration = Duration::from_secs(3);
/// SKUs per request, so that a merge of a large cart keeps its query strings short.
const BATCH: usize = 50;

/// One SKU as the catalog reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SkuInfo {
    pub sku: String,
    pub product_id: Uuid,
    pub product_name: String,
    pub product_slug: String,
    #[serde(default)]
    pub attributes: serde_json::Value,
    pub price_minor: i64,
    pub currency: String,
    pub available: i64,
    pub published: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No answer, a 5xx, or an answer that is not the documented format.
    #[error("the catalog is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
}

/// Cheap to clone (one connection pool per process).
#[derive(Debug, Clone)]
pub struct CatalogClient {
    base: reqwest::Url,
    http: reqwest::Client,
}

impl CatalogClient {
    /// `base` is the catalog's root (`http://catalog:8080`); a trailing slash is fine.
    pub fn new(base: &str) -> anyhow::Result<CatalogClient> {
        let mut base: reqwest::Url = base
            .parse()
            .with_context(|| format!("{base:?} is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("{base} is not an http(s) URL");
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // reqwest is built without a TLS provider and panics without one installed;
        // `shopkit::cli::start` installs it in the binary, this covers library users.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .context("building the catalog HTTP client")?;
        Ok(CatalogClient { base, http })
    }

    /// The catalog's facts for `skus`, keyed by SKU; unknown SKUs are absent.
    pub async fn skus(&self, skus: &[String]) -> Result<HashMap<String, SkuInfo>, CatalogError> {
        let mut found = HashMap::new();
        for chunk in skus.chunks(BATCH) {
            for info in self.fetch(chunk).await.map_err(CatalogError::Unavailable)? {
                found.insert(info.sku.clone(), info);
            }
        }
        Ok(found)
    }

    /// The facts for one SKU, `None` when the catalog does not know it.
    pub async fn sku(&self, sku: &str) -> Result<Option<SkuInfo>, CatalogError> {
        Ok(self.skus(&[sku.to_owned()]).await?.remove(sku))
    }

    async fn fetch(&self, skus: &[String]) -> anyhow::Result<Vec<SkuInfo>> {
        let mut url = self.base.join("skus").context("building the /skus URL")?;
        {
            let mut query = url.query_pairs_mut();
            for sku in skus {
                query.append_pair("sku", sku);
            }
        }
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("GET {url} answered {status}");
        }
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: the answer is not a list of SKUs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_accepted_and_the_path_is_kept() {
        assert!(CatalogClient::new("ftp://catalog").is_err());
        assert!(CatalogClient::new("not a url").is_err());
        let client = CatalogClient::new("http://gateway/api/catalog").unwrap();
        assert_eq!(
            client.base.join("skus").unwrap().as_str(),
            "http://gateway/api/catalog/skus"
        );
    }

    #[test]
    fn the_documented_answer_parses() {
        let body = serde_json::json!([{
            "sku": "MUG-BLU", "product_id": "0190a5a8-0000-7000-8000-000000000001",
            "product_name": "Blue Mug", "product_slug": "blue-mug",
            "attributes": {"color": "blue"}, "price_minor": 1299, "currency": "USD",
            "available": 20, "published": true
        }]);
        let skus: Vec<SkuInfo> = serde_json::from_value(body).unwrap();
        assert_eq!(skus[0].price_minor, 1299);
        assert!(skus[0].published);
    }
}
