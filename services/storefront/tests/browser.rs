//! The shop in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver by fantoccini, against the storefront and
//! the services running as processes (the testbed) on real PostgreSQL and RabbitMQ.
//!
//! One journey, in order: browse → search (with a typo) → add to cart as a guest → a
//! second window on the same cart follows it live → sign up at checkout (the guest
//! cart merges) → address, shipping, the test card → confirmation (paid) → the order in
//! the account; then an admin creates a product that search finds. Screenshots at
//! 375×812 and 1280×800 of home, product, cart and checkout go to
//! `target/screenshots/`.
//!
//! Skipped (with a message) only when `/usr/bin/chromedriver` is not installed
//! (`cargo xtask setup` installs it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::json;
use testbed::{Options, Testbed};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the page may take to show what an event brought (SSE, paid order).
const LIVE_WAIT: Duration = Duration::from_secs(15);

fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// chromedriver on a free port, killed when dropped.
async fn chromedriver() -> anyhow::Result<(tokio::process::Child, u16)> {
    let port = free_port()?;
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting chromedriver")?;
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok((child, port));
        }
        if tokio::time::Instant::now() > deadline {
            bail!("chromedriver did not answer on port {port} within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(port: u16) -> anyhow::Result<Client> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .build();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,800", "--hide-scrollbars", "--force-device-scale-factor=1"],
        }),
    );
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .context("opening a WebDriver session")
}

/// Polls until the element's text contains `needle`.
async fn wait_text(
    c: &Client,
    css: &str,
    needle: &str,
    within: Duration,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = String::new();
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(text) = el.text().await
        {
            if text.contains(needle) {
                return Ok(text);
            }
            last = text;
        }
        if tokio::time::Instant::now() > deadline {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            bail!("{css} on {url} never contained {needle:?}; last text: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) -> anyhow::Result<()> {
    let el = c
        .find(Locator::Css(css))
        .await
        .with_context(|| format!("finding {css}"))?;
    el.clear().await?;
    el.send_keys(text).await?;
    Ok(())
}

async fn click(c: &Client, css: &str) -> anyhow::Result<()> {
    c.find(Locator::Css(css))
        .await
        .with_context(|| format!("finding {css}"))?
        .click()
        .await
        .with_context(|| format!("clicking {css}"))?;
    Ok(())
}

/// Screenshots of the current page at a phone's and a laptop's size.
async fn screenshots(c: &Client, name: &str) -> anyhow::Result<()> {
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir)?;
    for (w, h) in [(375, 812), (1280, 800)] {
        c.set_window_size(w, h).await?;
        // Let layout settle at the new size.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = c.screenshot().await?;
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(dir.join(format!("{name}-{w}x{h}.png")), png)?;
    }
    Ok(())
}

async fn seed(bed: &Testbed) -> anyhow::Result<()> {
    let admin = bed.admin_token();
    let call = |path: &'static str, body: serde_json::Value| {
        let admin = admin.clone();
        async move {
            bed.call(
                Method::POST,
                "catalog",
                path,
                Some(&admin),
                Some(&body),
                &[],
            )
            .await?
            .ok()
        }
    };
    call(
        "/admin/categories",
        json!({"slug": "kitchen", "name": "Kitchen"}),
    )
    .await?;
    call(
        "/admin/products",
        json!({"name": "Blue Coffee Mug", "category": "kitchen", "status": "published",
               "description": "A sturdy stoneware mug for coffee.",
               "variants": [
                   {"sku": "MUG-BLU-S", "attributes": {"size": "small"}, "price_minor": 1299, "currency": "USD", "on_hand": 20},
                   {"sku": "MUG-BLU-L", "attributes": {"size": "large"}, "price_minor": 1499, "currency": "USD", "on_hand": 3}]}),
    )
    .await?;
    call(
        "/admin/products",
        json!({"name": "Red Tea Cup", "category": "kitchen", "status": "published",
               "description": "Porcelain, with a saucer.",
               "variants": [{"sku": "CUP-RED", "attributes": {"color": "red"}, "price_minor": 899, "currency": "USD", "on_hand": 10}]}),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_buys_and_an_admin_adds_a_product_in_a_real_browser() -> anyhow::Result<()> {
    if !Path::new(CHROMEDRIVER).exists() {
        eprintln!(
            "SKIPPED: {CHROMEDRIVER} is not installed (apt-get install chromium chromium-driver, or `cargo xtask setup`)"
        );
        return Ok(());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bed = Testbed::start(Options {
        storefront: true,
        ..Options::default()
    })
    .await?;
    let result = journey(&bed).await;
    if let Err(e) = &result {
        eprintln!("{e:#}\n{}", bed.logs());
    }
    result
}

async fn journey(bed: &Testbed) -> anyhow::Result<()> {
    seed(bed).await?;
    bed.create_admin("boss@example.com", "correct horse battery staple")
        .await?;
    let shop = bed.url("storefront");
    let (_driver, port) = chromedriver().await?;
    let c = browser(port).await?;
    let outcome = shop_flow(&c, &shop).await;
    let _ = c.close().await;
    outcome
}

async fn shop_flow(c: &Client, shop: &str) -> anyhow::Result<()> {
    // Browse: home → category (facets, sorting) → product.
    c.goto(shop).await?;
    wait_text(c, "h1", "Welcome to Testbed Shop", LIVE_WAIT).await?;
    screenshots(c, "home").await?;
    click(c, ".categories a[href='/c/kitchen']").await?;
    wait_text(c, "h1", "Kitchen", LIVE_WAIT).await?;
    wait_text(c, ".results", "Blue Coffee Mug", LIVE_WAIT).await?;
    let filters = c.find(Locator::Css("form.filters")).await?.text().await?;
    assert!(
        filters.contains("small") && filters.contains("red"),
        "attribute facets: {filters}"
    );
    c.find(Locator::Css("#sort"))
        .await?
        .select_by_value("price_asc")
        .await?;
    // The filter form applies itself on change (app.js).
    c.wait()
        .at_most(LIVE_WAIT)
        .for_element(Locator::Css("option[value=price_asc][selected]"))
        .await?;
    let first = c
        .find(Locator::Css(".grid .card .name"))
        .await?
        .text()
        .await?;
    assert_eq!(first, "Red Tea Cup", "cheapest first");

    // Search, with a typo the catalog corrects.
    fill(c, "#q", "cofee").await?;
    click(c, "form.search button").await?;
    wait_text(c, ".results", "Blue Coffee Mug", LIVE_WAIT).await?;
    wait_text(c, "main", "Showing results for", LIVE_WAIT).await?;
    click(c, ".grid a[href='/p/blue-coffee-mug']").await?;
    wait_text(c, "h1", "Blue Coffee Mug", LIVE_WAIT).await?;
    let variants = c
        .find(Locator::Css("fieldset.variants"))
        .await?
        .text()
        .await?;
    assert!(
        variants.contains("Only 3 left") && variants.contains("In stock"),
        "stock states: {variants}"
    );
    screenshots(c, "product").await?;

    // Add the large mug as a guest.
    click(c, "input[value='MUG-BLU-L']").await?;
    wait_text(c, "[data-price]", "$14.99", LIVE_WAIT).await?;
    click(c, "form.buy button[type=submit]").await?;
    wait_text(c, "[data-cart-live]", "Blue Coffee Mug", LIVE_WAIT).await?;
    wait_text(c, "[data-cart-badge]", "1", LIVE_WAIT).await?;
    let first_window = c.window().await?;

    // A second window on the same cart (same cookie) follows it without a reload.
    let second = c.new_window(false).await?.handle;
    c.switch_to_window(second.clone()).await?;
    c.goto(&format!("{shop}/cart")).await?;
    wait_text(c, "[data-cart-live]", "Blue Coffee Mug", LIVE_WAIT).await?;
    c.switch_to_window(first_window.clone()).await?;
    c.goto(&format!("{shop}/p/red-tea-cup")).await?;
    click(c, "form.buy button[type=submit]").await?;
    wait_text(c, "[data-cart-live]", "Red Tea Cup", LIVE_WAIT).await?;
    c.switch_to_window(second.clone()).await?;
    let before = c.current_url().await?;
    wait_text(c, "[data-cart-live]", "Red Tea Cup", LIVE_WAIT).await?;
    wait_text(c, "[data-cart-badge]", "2", LIVE_WAIT).await?;
    assert_eq!(c.current_url().await?, before, "updated in place");
    let marker: serde_json::Value = c
        .execute(
            "return performance.getEntriesByType('navigation').length",
            vec![],
        )
        .await?;
    assert_eq!(marker, json!(1), "no reload");
    screenshots(c, "cart").await?;
    c.close_window().await?;
    c.switch_to_window(first_window).await?;

    // Checkout: sign up on the way; the guest cart comes along.
    c.goto(&format!("{shop}/cart")).await?;
    click(c, "a.button[href='/checkout']").await?;
    wait_text(c, "h1", "Sign in", LIVE_WAIT).await?;
    click(c, "main a[href^='/account/signup']").await?;
    wait_text(c, "h1", "Create an account", LIVE_WAIT).await?;
    fill(c, "#email", "ada@example.com").await?;
    fill(c, "#password", "analytical engine 1843").await?;
    fill(c, "#password_again", "analytical engine 1843").await?;
    click(c, "main form button[type=submit]").await?;
    wait_text(c, "h1", "Checkout", LIVE_WAIT).await?;
    let summary = wait_text(c, ".summary", "Red Tea Cup", LIVE_WAIT).await?;
    assert!(
        summary.contains("Blue Coffee Mug") && summary.contains("$23.98"),
        "merged cart: {summary}"
    );
    fill(c, "#name", "Ada Lovelace").await?;
    fill(c, "#line1", "12 St James's Square").await?;
    fill(c, "#city", "London").await?;
    fill(c, "#postal_code", "SW1Y 4JH").await?;
    fill(c, "#country", "GB").await?;
    screenshots(c, "checkout").await?;
    click(c, "input[name=shipping][value=pickup]").await?;
    click(c, "main form button[type=submit]").await?;

    // Pay with the test card.
    c.wait()
        .at_most(LIVE_WAIT)
        .for_element(Locator::Css("#number"))
        .await?;
    wait_text(c, "[data-order-total]", "$23.98", LIVE_WAIT).await?;
    fill(c, "#number", "4242 4242 4242 4242").await?;
    fill(c, "#expiry", "12/34").await?;
    fill(c, "#cvc", "123").await?;
    screenshots(c, "payment").await?;
    click(c, ".card-form button[type=submit]").await?;
    wait_text(c, "[data-order-status]", "Paid", LIVE_WAIT).await?;
    wait_text(c, "h1", "Thank you", LIVE_WAIT).await?;
    let order_url = c.current_url().await?;
    let order_id = order_url.path().trim_start_matches("/orders/").to_owned();
    wait_text(c, "[data-cart-badge]", "0", LIVE_WAIT).await?;

    // The order in the account.
    c.goto(&format!("{shop}/account")).await?;
    let orders = wait_text(c, "table.orders", "Paid", LIVE_WAIT).await?;
    assert!(
        orders.contains(&order_id[order_id.len() - 8..]),
        "the order is listed: {orders}"
    );
    c.find(Locator::Css(&format!("tr[data-order-id='{order_id}']")))
        .await?;
    let addresses = c.find(Locator::Css("#addresses")).await?.text().await?;
    assert!(
        addresses.contains("St James"),
        "the address was saved: {addresses}"
    );
    click(c, "form[action='/account/signout'] button").await?;
    wait_text(c, "#live", "signed out", LIVE_WAIT).await?;

    // The admin creates a product; search finds it.
    c.goto(&format!("{shop}/admin")).await?;
    wait_text(c, "h1", "Sign in", LIVE_WAIT).await?;
    fill(c, "#email", "boss@example.com").await?;
    fill(c, "#password", "correct horse battery staple").await?;
    click(c, "main form button[type=submit]").await?;
    wait_text(c, "h1", "Shop admin", LIVE_WAIT).await?;
    fill(c, "#p-name", "Green Cast Iron Teapot").await?;
    c.find(Locator::Css("#p-category"))
        .await?
        .select_by_value("kitchen")
        .await?;
    fill(c, "#p-description", "Keeps tea hot.").await?;
    fill(c, "#p-sku", "POT-GRN").await?;
    fill(c, "#p-price", "34.50").await?;
    fill(c, "#p-stock", "5").await?;
    click(c, "form[action='/admin/products'] button").await?;
    wait_text(c, "main", "Product created", LIVE_WAIT).await?;
    // A CSV import with a bad row shows the row's error.
    fill(
        c,
        "#csv",
        "name,category,sku,price_minor,currency\nSaucer,kitchen,SAU-1,abc,USD\n",
    )
    .await?;
    click(c, "form[action='/admin/import'] button").await?;
    wait_text(c, ".errors", "row 1", LIVE_WAIT).await?;
    fill(c, "#q", "teapot").await?;
    click(c, "form.search button").await?;
    wait_text(c, ".results", "Green Cast Iron Teapot", LIVE_WAIT).await?;
    wait_text(c, ".results", "$34.50", LIVE_WAIT).await?;

    // And fulfils the customer's order.
    c.goto(&format!("{shop}/admin/orders")).await?;
    click(
        c,
        &format!("form[action='/admin/orders/{order_id}/fulfil'] button"),
    )
    .await?;
    wait_text(c, "#live", "marked fulfilled", LIVE_WAIT).await?;
    Ok(())
}
