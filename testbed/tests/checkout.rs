//! The checkout end to end: catalog, cart, order and payment as separate processes over a
//! real PostgreSQL and RabbitMQ. Browse, cart (with a second live subscriber), order, pay;
//! a declined card; 200 buyers racing for 20 items; every event delivered twice and out of
//! order; the order service killed mid-saga.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use testbed::flows::{CARD_DECLINED, CARD_OK};
use testbed::{Options, Testbed};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(30);

async fn bed() -> Testbed {
    Testbed::start(Options::default()).await.unwrap()
}

/// A second tab: the cart's SSE stream, its `cart` events' payloads sent down a channel.
async fn subscribe(
    bed: &Testbed,
    token: &str,
    cart: Uuid,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, Value)> {
    let response = bed
        .http
        .get(format!("{}/carts/{cart}/events", bed.url("cart")))
        .bearer_auth(token)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let mut event = "message".to_owned();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim().to_owned();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if let Ok(value) = serde_json::from_str(&data) {
                    let _ = tx.send((event, value));
                }
            }
        }
    });
    rx
}

/// Waits for a `cart` event that satisfies `want`.
async fn seen(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((event, cart))) if event == "cart" && want(&cart) => return cart,
            Ok(Some(_)) => {}
            _ => panic!("no such cart event within 10 s"),
        }
    }
}

/// Waits until the SKU's `(on_hand, reserved, available)` is `want`.
async fn wait_stock(bed: &Testbed, sku: &str, want: (i64, i64, i64)) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let now = bed.stock(sku).await.unwrap();
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sku}: {now:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn quantity_of(cart: &Value, sku: &str) -> i64 {
    cart["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["sku"] == sku)
        .map_or(0, |l| l["quantity"].as_i64().unwrap())
}

async fn ledger_balance(bed: &Testbed, order: &str) -> i64 {
    let ledger = bed
        .call(
            Method::GET,
            "payment",
            &format!("/admin/ledger/{order}"),
            Some(&bed.admin_token()),
            None,
            &[],
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    ledger["balance_minor"].as_i64().unwrap()
}

#[tokio::test]
async fn browse_cart_live_checkout_pay_and_a_declined_card() {
    let bed = bed().await;
    bed.product("MUG-1", 1250, 5).await.unwrap();
    let buyer = bed.buyer();

    // Browse: the product is found by search.
    let found = bed
        .call(
            Method::GET,
            "catalog",
            "/products?q=product",
            None,
            None,
            &[],
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert!(found.to_string().contains("MUG-1"), "{found}");

    // Cart, with a second tab listening.
    let cart = bed.cart(&buyer).await.unwrap();
    let mut tab = subscribe(&bed, &buyer.token, cart).await;
    seen(&mut tab, |c| quantity_of(c, "MUG-1") == 0).await;
    bed.add_to_cart(&buyer, cart, "MUG-1", 2)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let live = seen(&mut tab, |c| quantity_of(c, "MUG-1") == 2).await;
    assert_eq!(live["total_minor"], 2500, "{live}");

    // Checkout and pay with the test card.
    let key = Uuid::now_v7().to_string();
    let placed = bed.place_order(&buyer, cart, &key).await.unwrap();
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    assert_eq!(placed.body["total_minor"], 2500);
    // The same request again is the same answer, byte for byte, and no second order.
    let again = bed.place_order(&buyer, cart, &key).await.unwrap();
    assert_eq!(again.bytes, placed.bytes);
    let order: Uuid = serde_json::from_value(placed.body["id"].clone()).unwrap();
    bed.wait_order(&buyer, order, &["awaiting_payment"], WITHIN)
        .await
        .unwrap();
    assert_eq!(bed.stock("MUG-1").await.unwrap(), (5, 2, 3));
    let payment = bed.payment_of(&buyer, order, WITHIN).await.unwrap();
    assert_eq!(payment["amount_minor"], 2500);
    let paid = bed
        .pay(&buyer, payment["id"].as_str().unwrap(), CARD_OK)
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let done = bed
        .wait_order(&buyer, order, &["paid"], WITHIN)
        .await
        .unwrap();
    assert_eq!(done["payment"]["amount_minor"], 2500, "{done}");

    // Stock decremented for good, the cart emptied (the open tab sees it too), the
    // ledger matches the order.
    wait_stock(&bed, "MUG-1", (3, 0, 3)).await;
    seen(&mut tab, |c| {
        c["lines"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert_eq!(ledger_balance(&bed, &order.to_string()).await, 2500);

    // A declined card: the order is cancelled and the stock comes back.
    let cart = bed.cart(&buyer).await.unwrap();
    bed.add_to_cart(&buyer, cart, "MUG-1", 1)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let placed = bed
        .place_order(&buyer, cart, &Uuid::now_v7().to_string())
        .await
        .unwrap()
        .ok()
        .unwrap();
    let declined_order: Uuid = serde_json::from_value(placed["id"].clone()).unwrap();
    bed.wait_order(&buyer, declined_order, &["awaiting_payment"], WITHIN)
        .await
        .unwrap();
    assert_eq!(bed.stock("MUG-1").await.unwrap(), (3, 1, 2));
    let payment = bed
        .payment_of(&buyer, declined_order, WITHIN)
        .await
        .unwrap();
    let failed = bed
        .pay(&buyer, payment["id"].as_str().unwrap(), CARD_DECLINED)
        .await
        .unwrap();
    assert_eq!(failed.body["status"], "failed", "{}", failed.body);
    let cancelled = bed
        .wait_order(&buyer, declined_order, &["cancelled"], WITHIN)
        .await
        .unwrap();
    assert_eq!(
        cancelled["cancellation_reason"], "payment_declined",
        "{cancelled}"
    );
    wait_stock(&bed, "MUG-1", (3, 0, 3)).await;
    assert_eq!(ledger_balance(&bed, &declined_order.to_string()).await, 0);
    // The declined order's cart is kept for another try.
    let kept = bed
        .call(
            Method::GET,
            "cart",
            &format!("/carts/{cart}"),
            Some(&buyer.token),
            None,
            &[],
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(quantity_of(&kept, "MUG-1"), 1, "{kept}");
}

#[tokio::test]
async fn two_hundred_buyers_for_twenty_items() {
    let bed = std::sync::Arc::new(bed().await);
    bed.product("HOT-1", 999, 20).await.unwrap();
    let buyers: Vec<_> = (0..200)
        .map(|_| {
            let bed = bed.clone();
            tokio::spawn(async move {
                let buyer = bed.buyer();
                bed.checkout(&buyer, "HOT-1", CARD_OK, Duration::from_secs(120))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let (mut paid, mut out_of_stock) = (0, 0);
    for b in buyers {
        match b.await.unwrap() {
            Ok(order) if order["status"] == "paid" => paid += 1,
            Ok(order) => {
                assert_eq!(order["cancellation_reason"], "out_of_stock", "{order}");
                out_of_stock += 1;
            }
            Err(refused) => {
                assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
                assert!(
                    refused.body["type"]
                        .as_str()
                        .unwrap_or_default()
                        .ends_with("out-of-stock"),
                    "{}",
                    refused.body
                );
                out_of_stock += 1;
            }
        }
    }
    assert_eq!(paid, 20, "{}", bed.logs());
    assert_eq!(out_of_stock, 180);
    wait_stock(&bed, "HOT-1", (0, 0, 0)).await;
    let charges: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'charge'")
            .fetch_one(bed.pool("payment").unwrap())
            .await
            .unwrap();
    assert_eq!(charges, 20);
}

/// Row counts that a duplicate or late event must not change.
async fn effects(bed: &Testbed) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (service, table) in [
        ("catalog", "reservations"),
        ("catalog", "inventory_adjustments"),
        ("order", "orders"),
        ("order", "order_transitions"),
        ("payment", "payments"),
        ("payment", "ledger_entries"),
        ("catalog", "outbox"),
        ("order", "outbox"),
        ("payment", "outbox"),
        ("cart", "outbox"),
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(bed.pool(service).unwrap())
                .await
                .unwrap();
        out.push((format!("{service}.{table}"), n));
    }
    out
}

/// Republishes every event the services have emitted, twice, newest first, and waits
/// until every consumer has seen each copy as a duplicate.
async fn deliver_everything_again(bed: &Testbed) {
    let mut all = Vec::new();
    for service in testbed::SERVICES {
        all.extend(bed.outbox(service).await.unwrap());
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.id));
    let mut expected = 0;
    for e in &all {
        expected += 2 * bed.handled_by(e.id).await.unwrap();
    }
    let mut before = 0;
    for service in testbed::SERVICES {
        before += bed.duplicates_seen(service).await.unwrap();
    }
    // Reservations, payments, transitions, cart clearing: every consumer had work.
    assert!(
        all.len() >= 15 && expected >= 2 * all.len() as u64,
        "{} events, {expected} deliveries",
        all.len()
    );
    bed.republish(&all).await.unwrap();
    bed.republish(&all).await.unwrap();
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let mut now = 0;
        for service in testbed::SERVICES {
            now += bed.duplicates_seen(service).await.unwrap();
        }
        if now - before >= expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {expected} duplicates seen",
            now - before
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_event_twice_and_out_of_order_has_one_effect() {
    let bed = bed().await;
    bed.product("DUP-1", 700, 10).await.unwrap();
    let paid_buyer = bed.buyer();
    let paid = bed
        .checkout(&paid_buyer, "DUP-1", CARD_OK, WITHIN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid["status"], "paid");
    let declined = bed
        .checkout(&bed.buyer(), "DUP-1", CARD_DECLINED, WITHIN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(declined["status"], "cancelled");
    // Mid-saga too: an order waiting for its payment.
    let waiting_buyer = bed.buyer();
    let cart = bed.cart(&waiting_buyer).await.unwrap();
    bed.add_to_cart(&waiting_buyer, cart, "DUP-1", 2)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let placed = bed
        .place_order(&waiting_buyer, cart, "k-waiting")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let waiting: Uuid = serde_json::from_value(placed["id"].clone()).unwrap();
    bed.wait_order(&waiting_buyer, waiting, &["awaiting_payment"], WITHIN)
        .await
        .unwrap();
    bed.payment_of(&waiting_buyer, waiting, WITHIN)
        .await
        .unwrap();
    // Let the last follow-on events (stock notices, cart clearing) settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stock = bed.stock("DUP-1").await.unwrap();
    let before = effects(&bed).await;
    deliver_everything_again(&bed).await;
    assert_eq!(effects(&bed).await, before);
    assert_eq!(bed.stock("DUP-1").await.unwrap(), stock);
    assert_eq!(stock, (9, 2, 7));
    assert_eq!(
        bed.order(
            &paid_buyer,
            serde_json::from_value(paid["id"].clone()).unwrap()
        )
        .await
        .unwrap()["status"],
        "paid"
    );
    assert_eq!(
        bed.order(&waiting_buyer, waiting).await.unwrap()["status"],
        "awaiting_payment"
    );
    assert_eq!(
        ledger_balance(&bed, paid["id"].as_str().unwrap()).await,
        700
    );
}

#[tokio::test]
async fn the_order_service_killed_mid_saga_still_completes_the_order() {
    let mut bed = bed().await;
    bed.product("CRASH-1", 1500, 3).await.unwrap();
    let buyer = bed.buyer();
    let cart = bed.cart(&buyer).await.unwrap();
    bed.add_to_cart(&buyer, cart, "CRASH-1", 1)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let first = bed.place_order(&buyer, cart, "crash-key").await.unwrap();
    let placed = first.clone().ok().unwrap();
    let order: Uuid = serde_json::from_value(placed["id"].clone()).unwrap();

    // Killed right after answering: order.created may still sit in its outbox.
    bed.kill("order").await.unwrap();
    // Meanwhile the catalog reserves (if the event got out) and its answer waits in the
    // order service's queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bed.start_service("order").await.unwrap();
    bed.wait_order(&buyer, order, &["awaiting_payment"], WITHIN)
        .await
        .unwrap();
    // The retried request after the crash is still the same answer.
    let again = bed.place_order(&buyer, cart, "crash-key").await.unwrap();
    assert_eq!(again.bytes, first.bytes);
    assert_eq!(again.body["id"], placed["id"]);

    let payment = bed.payment_of(&buyer, order, WITHIN).await.unwrap();
    // Killed again while the payment's success is on its way to it.
    bed.kill("order").await.unwrap();
    bed.pay(&buyer, payment["id"].as_str().unwrap(), CARD_OK)
        .await
        .unwrap()
        .ok()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    bed.start_service("order").await.unwrap();
    bed.wait_order(&buyer, order, &["paid"], WITHIN)
        .await
        .unwrap();

    // Nothing stays stuck: every outbox is published, the stock is committed once.
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let mut stuck = 0i64;
        for service in testbed::SERVICES {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(bed.pool(service).unwrap())
                    .await
                    .unwrap();
            stuck += n;
        }
        if stuck == 0 && bed.stock("CRASH-1").await.unwrap() == (2, 0, 2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stuck} unpublished; stock {:?}\n{}",
            bed.stock("CRASH-1").await,
            bed.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let transitions: Vec<String> = sqlx::query_scalar(
        "SELECT to_status FROM order_transitions WHERE order_id = $1 ORDER BY at",
    )
    .bind(order)
    .fetch_all(bed.pool("order").unwrap())
    .await
    .unwrap();
    assert_eq!(transitions, ["pending", "awaiting_payment", "paid"]);
}

#[tokio::test]
async fn an_unpaid_order_expires_its_reservation_and_is_cancelled() {
    let bed = Testbed::start(Options {
        reservation_ttl_secs: 1,
        ..Options::default()
    })
    .await
    .unwrap();
    bed.product("SLOW-1", 500, 4).await.unwrap();
    let buyer = bed.buyer();
    let cart = bed.cart(&buyer).await.unwrap();
    bed.add_to_cart(&buyer, cart, "SLOW-1", 3)
        .await
        .unwrap()
        .ok()
        .unwrap();
    let placed = bed
        .place_order(&buyer, cart, "slow")
        .await
        .unwrap()
        .ok()
        .unwrap();
    let order: Uuid = serde_json::from_value(placed["id"].clone()).unwrap();
    bed.wait_order(&buyer, order, &["awaiting_payment"], WITHIN)
        .await
        .unwrap();
    let payment = bed.payment_of(&buyer, order, WITHIN).await.unwrap();
    assert_eq!(bed.stock("SLOW-1").await.unwrap(), (4, 3, 1));

    // The buyer dawdles past the reservation's TTL: the stock is released, the order
    // cancelled, the intent cancelled, so the late payment is refused.
    let cancelled = bed
        .wait_order(&buyer, order, &["cancelled"], WITHIN)
        .await
        .unwrap();
    assert_eq!(cancelled["cancellation_reason"], "reservation_expired");
    assert_eq!(bed.stock("SLOW-1").await.unwrap(), (4, 0, 4));
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let p = bed
            .call(
                Method::GET,
                "payment",
                &format!("/payments/{}", payment["id"].as_str().unwrap()),
                Some(&buyer.token),
                None,
                &[],
            )
            .await
            .unwrap()
            .ok()
            .unwrap();
        if p["status"] == "cancelled" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{p}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let late = bed
        .pay(&buyer, payment["id"].as_str().unwrap(), CARD_OK)
        .await
        .unwrap();
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    assert_eq!(ledger_balance(&bed, &order.to_string()).await, 0);
}
