//! The demo catalog: loads once, quickly, and searches sensibly.

use std::time::{Duration, Instant};

use catalog::demo::{self, SeedOutcome};

use crate::helpers::{TestApp, names};

#[tokio::test]
async fn demo_seed_loads_once_and_searches_well() {
    let app = TestApp::new().await;
    let started = Instant::now();
    let report = demo::seed(app.pool()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(report.outcome, SeedOutcome::Seeded, "{report}");
    assert!(took < Duration::from_secs(20), "seeding took {took:?}");
    let expected = demo::catalog();
    assert_eq!(report.products, expected.products.len());
    let published: i64 =
        sqlx::query_scalar("SELECT count(*) FROM products WHERE status = 'published'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(published >= 1000, "{published}");
    assert!(app.count("categories").await >= 20);
    assert_eq!(
        app.count("variants").await,
        i64::try_from(report.variants).unwrap()
    );
    assert_eq!(
        app.count("inventory").await,
        i64::try_from(report.variants).unwrap()
    );

    // Idempotent: the second run does nothing and says so.
    let before = app.counts().await;
    let again = demo::seed(app.pool()).await.unwrap();
    assert_eq!(again.outcome, SeedOutcome::AlreadySeeded);
    assert!(again.to_string().contains("already"), "{again}");
    assert_eq!(app.counts().await, before);

    // Deterministic: the same ids as generated.
    let first = &expected.products[0];
    let stored = app.get(&format!("/products/{}", first.id)).await.ok();
    assert_eq!(stored["slug"], first.slug.as_str());

    // "blue shirt": the best hits are blue shirts.
    let results = app.get("/products?q=blue%20shirt&limit=5").await.ok();
    let top = names(&results);
    assert_eq!(top.len(), 5);
    for name in &top {
        let lower = name.to_lowercase();
        assert!(lower.contains("blue") && lower.contains("shirt"), "{top:?}");
    }
    let typo = app.get("/products?q=blue%20shrit&limit=5").await.ok();
    assert_eq!(typo["corrected_query"], "blue shirt");
    assert_eq!(names(&typo), top);
    // Facets over the demo: the categories of "shirt" hits are apparel ones.
    let facets = app.get("/products?q=shirt&limit=1").await.ok();
    let slugs: Vec<&str> = facets["facets"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    assert!(
        slugs.contains(&"shirts") && slugs.contains(&"t-shirts"),
        "{slugs:?}"
    );
    let tree = app.get("/categories").await.ok();
    let total: i64 = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["product_count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, published);
}

#[tokio::test]
async fn demo_is_not_loaded_over_a_merchants_own_catalog() {
    let app = TestApp::new().await;
    app.category("mine", "Mine", None).await;
    let report = demo::seed(app.pool()).await.unwrap();
    assert_eq!(report.outcome, SeedOutcome::NotEmpty);
    assert!(!report.seeded());
    assert_eq!(app.count("products").await, 0);
    assert_eq!(app.count("categories").await, 1);
}
