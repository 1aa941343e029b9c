//! Search: relevance, typo tolerance, filters, facets, keyset pagination, caching.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, fixture, names, product_json};

fn has_both(name: &str) -> bool {
    let name = name.to_lowercase();
    name.contains("blue") && name.contains("shirt")
}

#[tokio::test]
async fn blue_shirt_ranks_blue_shirts_first() {
    let app = fixture().await;
    let results = app.get("/products?q=blue%20shirt").await.ok();
    let names = names(&results);
    assert!(names.len() >= 3, "{names:?}");
    // Everything found mentions both words somewhere, and no draft or mug appears.
    assert!(
        !names
            .iter()
            .any(|n| n.contains("Striped") || n.contains("Mug"))
    );
    assert!(!names.iter().any(|n| n.contains("Green")), "{names:?}");
    // Products with both words in the name come before those with one there.
    let first_without = names
        .iter()
        .position(|n| !has_both(n))
        .unwrap_or(names.len());
    assert!(first_without >= 2, "{names:?}");
    assert!(
        names[first_without..].iter().all(|n| !has_both(n)),
        "a blue shirt ranked below a weaker match: {names:?}"
    );
    // Blue in the name (weight A) beats blue only in the description (B) or attributes (C).
    let flannel = names.iter().position(|n| n.contains("Flannel")).unwrap();
    let polo = names.iter().position(|n| n.contains("Polo")).unwrap();
    assert!(flannel >= 2 && polo >= 2, "{names:?}");
    assert_eq!(results["total"], names.len());
    assert_eq!(results["corrected_query"], Value::Null);
}

#[tokio::test]
async fn misspelled_words_are_corrected() {
    let app = fixture().await;
    let corrected = app.get("/products?q=shrit").await.ok();
    assert_eq!(corrected["corrected_query"], "shirt");
    assert_eq!(corrected["query"], "shrit");
    let plain = app.get("/products?q=shirt").await.ok();
    assert_eq!(names(&corrected), names(&plain));
    assert!(
        names(&corrected)
            .iter()
            .all(|n| n.to_lowercase().contains("shirt"))
    );
    assert!(corrected["total"].as_i64().unwrap() >= 5);

    // Only the misspelled word changes; the rest of the query is kept.
    let two = app.get("/products?q=Blue%20shrit").await.ok();
    assert_eq!(two["corrected_query"], "Blue shirt");
    assert_eq!(names(&two)[0..2].iter().filter(|n| has_both(n)).count(), 2);

    // Short words get one edit ("mgu" is two away from "mug", "mig" one).
    let mug = app.get("/products?q=mig").await.ok();
    assert_eq!(mug["corrected_query"], "mug");
    // A word with nothing near it stays, and finds nothing.
    let nothing = app.get("/products?q=zzxqv").await.ok();
    assert_eq!(nothing["corrected_query"], Value::Null);
    assert_eq!(nothing["total"], 0);
}

#[tokio::test]
async fn the_vocabulary_follows_writes() {
    let app = fixture().await;
    // No product mentions a kimono yet, so there is nothing to correct "kimomo" to.
    let before = app.get("/products?q=kimomo").await.ok();
    assert_eq!(before["total"], 0);
    app.product(product_json(
        "Silk Kimono",
        "shirts",
        "A robe.",
        &[("KIM-1", json!({"color": "red"}), 9999, 1)],
    ))
    .await;
    let after = app.get("/products?q=kimomo").await.ok();
    assert_eq!(after["corrected_query"], "kimono");
    assert_eq!(names(&after), ["Silk Kimono"]);
    // Unpublishing takes the word out of the public vocabulary again.
    let r = app
        .admin_json(
            Method::PATCH,
            "/admin/products/silk-kimono",
            &json!({"status": "draft"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let hidden = app.get("/products?q=kimomo").await.ok();
    assert_eq!(hidden["total"], 0);
    assert_eq!(hidden["corrected_query"], Value::Null);
}

async fn scalar(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.pool()).await.unwrap()
}

#[tokio::test]
async fn facets_count_the_whole_filtered_set() {
    let app = fixture().await;
    let results = app.get("/products?q=shirt&limit=1").await.ok();
    assert_eq!(results["items"].as_array().unwrap().len(), 1);
    let total = results["total"].as_i64().unwrap();
    let expected_total = scalar(
        &app,
        "SELECT count(*) FROM products
         WHERE status = 'published' AND search @@ websearch_to_tsquery('english', 'shirt')",
    )
    .await;
    assert_eq!(total, expected_total);

    let facets = &results["facets"];
    for facet in facets["categories"].as_array().unwrap() {
        let expected: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id
             WHERE p.status = 'published' AND c.slug = $1
               AND p.search @@ websearch_to_tsquery('english', 'shirt')",
        )
        .bind(facet["slug"].as_str().unwrap())
        .fetch_one(app.pool())
        .await
        .unwrap();
        assert_eq!(facet["count"], expected, "{facet}");
    }
    let category_sum: i64 = facets["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["count"].as_i64().unwrap())
        .sum();
    assert_eq!(category_sum, total);

    let blue = facets["attributes"]["color"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["value"] == "blue")
        .unwrap();
    let expected_blue = scalar(
        &app,
        "SELECT count(DISTINCT p.id) FROM products p JOIN variants v ON v.product_id = p.id
         WHERE p.status = 'published' AND v.attributes ->> 'color' = 'blue'
           AND p.search @@ websearch_to_tsquery('english', 'shirt')",
    )
    .await;
    assert_eq!(blue["count"], expected_blue);

    let expected_in_stock = scalar(
        &app,
        "SELECT count(*) FROM products p
         WHERE p.status = 'published' AND p.search @@ websearch_to_tsquery('english', 'shirt')
           AND EXISTS (SELECT 1 FROM variants v JOIN inventory i ON i.sku = v.sku
                       WHERE v.product_id = p.id AND i.on_hand - i.reserved > 0)",
    )
    .await;
    assert_eq!(facets["in_stock"], expected_in_stock);
    let bucket_sum: i64 = facets["price"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(bucket_sum, total);
    let expected_cheap = scalar(
        &app,
        "SELECT count(*) FROM products p
         WHERE p.status = 'published' AND p.search @@ websearch_to_tsquery('english', 'shirt')
           AND (SELECT min(price_minor) FROM variants v WHERE v.product_id = p.id) < 2500",
    )
    .await;
    assert_eq!(facets["price"][0]["count"], expected_cheap);
    assert_eq!(facets["price"][0]["max_minor"], 2500);
}

#[tokio::test]
async fn filters_combine_on_one_variant() {
    let app = fixture().await;
    // Category filters include descendants.
    let apparel = app.get("/products?category=apparel&limit=100").await.ok();
    let expected = scalar(
        &app,
        "SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id
         LEFT JOIN categories parent ON parent.id = c.parent_id
         WHERE p.status = 'published' AND 'apparel' IN (c.slug, parent.slug)",
    )
    .await;
    assert_eq!(apparel["total"], expected);
    assert!(!names(&apparel).iter().any(|n| n.contains("Mug")));

    // Blue and in stock: the Oxford (M has stock), the polo (blue M in stock), the mug;
    // not the linen shirt (no stock).
    let blue = app
        .get("/products?attr.color=blue&in_stock=true&limit=100")
        .await
        .ok();
    let mut found = names(&blue);
    found.sort();
    assert_eq!(
        found,
        [
            "Blue Ceramic Mug",
            "Blue Oxford Cotton Shirt",
            "Classic Polo Shirt"
        ]
    );
    // Blue in size L and in stock: the Oxford's L has none, so nothing.
    let none = app
        .get("/products?attr.color=blue&attr.size=L&in_stock=true")
        .await
        .ok();
    assert_eq!(none["total"], 0);
    // Either of two colours.
    let either = app
        .get("/products?attr.color=red&attr.color=green")
        .await
        .ok();
    assert_eq!(either["total"], 2);
    // Price range, on variant prices.
    let range = app
        .get("/products?min_price=2000&max_price=3000&limit=100")
        .await
        .ok();
    let mut found = names(&range);
    found.sort();
    assert_eq!(
        found,
        [
            "Classic Polo Shirt",
            "Red Flannel Shirt",
            "Short Sleeve Jersey Polo"
        ]
    );
    // Sorting by price.
    let cheap_first = app.get("/products?sort=price_asc&limit=100").await.ok();
    let prices: Vec<i64> = cheap_first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["price_from"]["amount_minor"].as_i64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    let dear_first = app.get("/products?sort=price_desc&limit=100").await.ok();
    let mut reversed = names(&cheap_first);
    reversed.reverse();
    assert_eq!(names(&dear_first).len(), reversed.len());
    assert_eq!(
        dear_first["items"][0]["price_from"]["amount_minor"],
        *prices.last().unwrap()
    );
}

#[tokio::test]
async fn category_listing_and_tree() {
    let app = fixture().await;
    let listing = app
        .get("/categories/apparel/products?sort=newest")
        .await
        .ok();
    let search = app.get("/products?category=apparel&sort=newest").await.ok();
    assert_eq!(listing, search);
    app.get("/categories/nope/products")
        .await
        .problem(StatusCode::NOT_FOUND);

    let tree = app.get("/categories").await.ok();
    let roots: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["slug"].as_str().unwrap())
        .collect();
    assert_eq!(roots.len(), 2);
    let apparel = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["slug"] == "apparel")
        .unwrap();
    assert_eq!(apparel["children"].as_array().unwrap().len(), 2);
    assert_eq!(apparel["product_count"], listing["total"]);
}

#[tokio::test]
async fn product_by_id_or_slug_and_only_published() {
    let app = fixture().await;
    let by_slug = app.get("/products/blue-oxford-cotton-shirt").await.ok();
    assert_eq!(by_slug["variants"].as_array().unwrap().len(), 2);
    assert_eq!(
        by_slug["price_from"],
        json!({"amount_minor": 4999, "currency": "USD"})
    );
    assert_eq!(by_slug["category"]["slug"], "shirts");
    let id = by_slug["id"].as_str().unwrap();
    let by_id = app.get(&format!("/products/{id}")).await.ok();
    assert_eq!(by_id, by_slug);
    app.get("/products/blue-striped-shirt")
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get("/products/no-such-thing")
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_search_parameters_are_400_problems() {
    let app = fixture().await;
    for query in [
        "min_price=19.99",
        "max_price=-5",
        "sort=sideways",
        "limit=1000",
        "cursor=bm9wZQ",
        "in_stock=perhaps",
        "attr.Bad%20Key=x",
    ] {
        app.get(&format!("/products?{query}"))
            .await
            .problem(StatusCode::BAD_REQUEST);
    }
    // Odd but harmless queries: quotes, operators, negation only, non-ASCII, stop words.
    for q in [
        "%22%22",
        "-shirt",
        "shirt%20%26%20%7C%20!%20%3A*",
        "%C3%BCn%C3%AFc%C3%B8d%C3%A9",
        "%27",
        "the%20and",
    ] {
        let r = app.get(&format!("/products?q={q}")).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text());
    }
    // A query of only stop words filters nothing.
    let everything = app.get("/products").await.ok();
    let stop_words = app.get("/products?q=the%20and").await.ok();
    assert_eq!(stop_words["total"], everything["total"], "{stop_words}");
    assert!(everything["total"].as_i64().unwrap() > 0);
    let negated = app.get("/products?q=-shirt&limit=100").await.ok();
    assert!(
        names(&negated)
            .iter()
            .all(|n| !n.to_lowercase().contains("shirt")),
        "{negated}"
    );
    assert!(negated["total"].as_i64().unwrap() >= 1);
    // Hostile text is only ever a bind parameter.
    let r = app
        .get("/products?q=%27%3B%20DROP%20TABLE%20products%3B%20--")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(app.count("products").await > 0);
}

async fn import_widgets(app: &TestApp, category: &str, names: impl Iterator<Item = (String, i64)>) {
    let rows: Vec<Value> = names
        .map(|(name, price)| {
            json!({
                "name": name, "category": category, "status": "published",
                "sku": name.to_uppercase().replace([' ', '_'], "-"), "price_minor": price,
                "currency": "USD", "on_hand": 1,
            })
        })
        .collect();
    let r = app
        .admin_json(Method::POST, "/admin/import", &Value::Array(rows))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Walks the pages after `cursor`.
async fn rest_of_pages(app: &TestApp, base: &str, mut cursor: Option<String>) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(c) = cursor {
        let page = app.get(&format!("{base}&cursor={c}")).await.ok();
        seen.extend(names(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    seen
}

#[tokio::test]
async fn keyset_pages_stay_stable_while_rows_are_inserted() {
    let app = TestApp::new().await;
    for sort in ["price_asc", "price_desc", "newest"] {
        let category = sort.replace('_', "-");
        app.category(&category, sort, None).await;
        // 25 widgets over 5 prices, so that ties are broken by id.
        let original: Vec<(String, i64)> = (0..25)
            .map(|i| (format!("Widget {sort} {i:02}"), 1000 + 100 * (i % 5)))
            .collect();
        import_widgets(&app, &category, original.iter().cloned()).await;
        let base = format!("/products?category={category}&sort={sort}&limit=10");
        let first = app.get(&base).await.ok();
        let mut seen = names(&first);
        assert_eq!(seen.len(), 10);
        // Rows that sort before page 1's end: cheapest for price_asc, dearest for
        // price_desc, and any new row for newest.
        let price = if sort == "price_desc" { 99_999 } else { 1 };
        import_widgets(
            &app,
            &category,
            (0..5).map(|i| (format!("Early {sort} {i}"), price)),
        )
        .await;
        let cursor = first["next_cursor"].as_str().map(str::to_owned);
        seen.extend(rest_of_pages(&app, &base, cursor).await);
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: duplicates in {seen:?}");
        let expected: HashSet<&String> = original.iter().map(|(n, _)| n).collect();
        assert_eq!(unique, expected, "{sort}: gaps or intruders in {seen:?}");
        // And a fresh walk does see the new rows first.
        let fresh = app.get(&base).await.ok();
        assert!(names(&fresh)[0].starts_with("Early"), "{sort}");
    }
}

#[tokio::test]
async fn relevance_pages_do_not_overlap() {
    let app = fixture().await;
    let base = "/products?q=shirt&limit=2";
    let first = app.get(base).await.ok();
    let mut seen = names(&first);
    let cursor = first["next_cursor"].as_str().map(str::to_owned);
    assert!(cursor.is_some());
    seen.extend(rest_of_pages(&app, base, cursor).await);
    let all = app.get("/products?q=shirt&limit=100").await.ok();
    assert_eq!(seen, names(&all));
}

#[tokio::test]
async fn public_reads_answer_304_to_a_matching_etag() {
    let app = fixture().await;
    for uri in [
        "/products/blue-linen-shirt",
        "/products?q=blue",
        "/categories",
        "/categories/shirts/products",
    ] {
        let first = app.get(uri).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.headers["cache-control"], "public, max-age=30");
        let tag = first.headers["etag"].to_str().unwrap().to_owned();
        let again = app.get_with(uri, &[("if-none-match", &tag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(again.body.is_empty());
        assert_eq!(again.headers["etag"], tag.as_str());
        let other = app.get_with(uri, &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(other.status, StatusCode::OK);
    }
    // A change makes the old tag stale.
    let uri = "/products/blue-linen-shirt";
    let tag = app.get(uri).await.headers["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let r = app
        .admin_json(
            Method::PATCH,
            uri.replace("/products/", "/admin/products/").as_str(),
            &json!({"name": "Blue Linen Summer Shirt"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let changed = app.get_with(uri, &[("if-none-match", &tag)]).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.json()["name"], "Blue Linen Summer Shirt");
}
