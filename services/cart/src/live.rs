//! Real-time carts: `GET /carts/{id}/events`, a Server-Sent Events stream.
//!
//! Every change, on whichever replica, calls `pg_notify('cart_changed', id)` in its
//! transaction; catalog notices (a price or stock change of a line) go on
//! `cart_notice` as JSON. Each replica runs **one** [`PgListener`] task ([`run_listener`])
//! that fans them out to this replica's subscribers through the [`Hub`]: a broadcast
//! channel per watched cart. The listener re-reads a changed cart once, for all its
//! subscribers, and only when this replica has some.
//!
//! Architecture Invariant: no change is missed. A subscriber registers with the hub
//! before it reads the cart for its first event, and after the listener (re)connects —
//! notifications sent while it was away are lost — it re-reads every watched cart.
//! Subscribers skip cart snapshots not newer than the last one they sent, so the
//! overlap shows nothing twice.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use shopkit::shutdown::Shutdown;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::model::CartView;
use crate::store::{self, CHANGED_CHANNEL};

/// The channel of catalog notices about a cart (JSON, see [`Notice`]).
pub const NOTICE_CHANNEL: &str = "cart_notice";
/// Pushes buffered per watched cart; a subscriber that falls further behind gets a fresh
/// snapshot instead of the ones it missed.
const CHANNEL_CAPACITY: usize = 64;
/// The listener's reconnect delays: doubling from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How often an idle stream sends an SSE comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A catalog change to one cart's line, pushed before the updated cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notice {
    /// `price_changed {sku, old, new}`.
    PriceChanged {
        cart_id: Uuid,
        sku: String,
        old: i64,
        new: i64,
    },
    /// `stock_changed {sku, available}`.
    StockChanged {
        cart_id: Uuid,
        sku: String,
        available: i64,
    },
}

impl Notice {
    pub fn cart_id(&self) -> Uuid {
        match self {
            Self::PriceChanged { cart_id, .. } | Self::StockChanged { cart_id, .. } => *cart_id,
        }
    }

    fn event(&self) -> Event {
        let (name, data) = match self {
            Self::PriceChanged { sku, old, new, .. } => (
                "price_changed",
                serde_json::json!({"sku": sku, "old": old, "new": new}),
            ),
            Self::StockChanged { sku, available, .. } => (
                "stock_changed",
                serde_json::json!({"sku": sku, "available": available}),
            ),
        };
        Event::default().event(name).data(data.to_string())
    }
}

/// Sends `notice` to every replica's subscribers of its cart (delivered on commit).
pub async fn publish_notice(conn: &mut sqlx::PgConnection, notice: &Notice) -> sqlx::Result<()> {
    let payload = serde_json::to_string(notice).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTICE_CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// What the hub pushes to one cart's subscribers.
#[derive(Debug, Clone)]
pub enum Push {
    /// The cart as of `version`, serialised once for all subscribers.
    Cart {
        version: i64,
        json: Arc<str>,
    },
    Notice(Arc<Notice>),
    /// The cart was merged into a user's cart (or is gone): the stream ends.
    Closed,
}

impl Push {
    fn cart(cart: &CartView) -> Push {
        match serde_json::to_string(cart) {
            Ok(json) => Push::Cart {
                version: cart.version,
                json: json.into(),
            },
            Err(_) => Push::Closed,
        }
    }
}

/// This replica's subscribers, by cart. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    carts: Mutex<HashMap<Uuid, broadcast::Sender<Push>>>,
    /// Whether the listener is connected and listening (a readiness check).
    connected: AtomicBool,
}

/// One subscriber's registration; dropping it unregisters.
#[derive(Debug)]
pub struct Subscription {
    hub: Hub,
    cart_id: Uuid,
    pub receiver: broadcast::Receiver<Push>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        crate::metrics::sse_subscribers(-1.0);
        let mut carts = self.hub.lock();
        // Our receiver is still alive while this runs: one left means only us.
        if carts
            .get(&self.cart_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            carts.remove(&self.cart_id);
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, broadcast::Sender<Push>>> {
        // A panic while holding the lock cannot leave the map inconsistent (every
        // operation is one insert or remove), so a poisoned lock is still usable.
        self.inner
            .carts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn subscribe(&self, cart_id: Uuid) -> Subscription {
        let receiver = self
            .lock()
            .entry(cart_id)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        crate::metrics::sse_subscribers(1.0);
        Subscription {
            hub: self.clone(),
            cart_id,
            receiver,
        }
    }

    /// The carts this replica has subscribers for.
    pub fn watched(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }

    fn is_watched(&self, cart_id: Uuid) -> bool {
        self.lock().contains_key(&cart_id)
    }

    fn send(&self, cart_id: Uuid, push: Push) {
        if let Some(sender) = self.lock().get(&cart_id) {
            // No receivers left is not an error: they are unsubscribing.
            let _ = sender.send(push);
        }
    }

    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// Reads each cart once and pushes it to its subscribers.
    async fn refresh(&self, pool: &PgPool, carts: impl IntoIterator<Item = Uuid>) {
        for cart_id in carts {
            match store::load(pool, cart_id).await {
                Ok(Some(cart)) if cart.status == store::STATUS_OPEN => {
                    self.send(cart_id, Push::cart(&cart));
                }
                Ok(_) => self.send(cart_id, Push::Closed),
                Err(err) => {
                    // The next notification or reconnect re-reads it.
                    tracing::warn!(error = %err, %cart_id, "re-reading a changed cart failed");
                }
            }
        }
    }
}

/// The replica's one listener: connects, listens, re-reads every watched cart, then
/// forwards notifications until the connection fails — and starts over — or shutdown.
pub async fn run_listener(pool: PgPool, hub: Hub, shutdown: Shutdown) {
    let stop = shutdown.started();
    tokio::pin!(stop);
    let mut delay = RECONNECT_FIRST;
    loop {
        let connect = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener
                .listen_all([CHANGED_CHANNEL, NOTICE_CHANNEL])
                .await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let listener = tokio::select! {
            () = &mut stop => return,
            result = connect => result,
        };
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, retry_ms = delay.as_millis() as u64, "cart listener cannot connect");
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        delay = RECONNECT_FIRST;
        hub.inner.connected.store(true, Ordering::Relaxed);
        tracing::info!("cart listener connected");
        // Whatever changed while we were not listening.
        hub.refresh(&pool, hub.watched()).await;
        loop {
            let received = tokio::select! {
                () = &mut stop => {
                    hub.inner.connected.store(false, Ordering::Relaxed);
                    return;
                }
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(first)) => {
                    let mut batch = vec![first];
                    while let Some(next) = listener.next_buffered() {
                        batch.push(next);
                    }
                    dispatch(&pool, &hub, &batch).await;
                }
                // Lost and already re-established (sqlx re-listens): notifications in
                // between are gone, so re-read.
                Ok(None) => {
                    tracing::warn!("cart listener reconnected");
                    hub.refresh(&pool, hub.watched()).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cart listener failed; reconnecting");
                    break;
                }
            }
        }
        hub.inner.connected.store(false, Ordering::Relaxed);
    }
}

/// Notices go out as they come; each changed cart is then read once per batch.
async fn dispatch(pool: &PgPool, hub: &Hub, batch: &[sqlx::postgres::PgNotification]) {
    let mut changed = Vec::new();
    let mut seen = HashSet::new();
    for notification in batch {
        match notification.channel() {
            CHANGED_CHANNEL => {
                if let Ok(cart_id) = notification.payload().parse::<Uuid>()
                    && hub.is_watched(cart_id)
                    && seen.insert(cart_id)
                {
                    changed.push(cart_id);
                }
            }
            NOTICE_CHANNEL => match serde_json::from_str::<Notice>(notification.payload()) {
                Ok(notice) => hub.send(notice.cart_id(), Push::Notice(Arc::new(notice))),
                Err(err) => tracing::warn!(error = %err, "malformed cart notice"),
            },
            _ => {}
        }
    }
    hub.refresh(pool, changed).await;
}

/// What one subscriber's stream remembers.
struct StreamState {
    subscription: Subscription,
    pool: PgPool,
    cart_id: Uuid,
    /// The newest version sent: older or equal snapshots are skipped.
    sent_version: i64,
    shutdown: Shutdown,
    done: bool,
}

fn cart_event(json: &str) -> Event {
    Event::default().event("cart").data(json)
}

fn closed_event(cart_id: Uuid) -> Event {
    Event::default()
        .event("closed")
        .data(serde_json::json!({"id": cart_id}).to_string())
}

impl StreamState {
    /// The next event to send, `None` to end the stream.
    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        loop {
            let received = tokio::select! {
                // Ends the stream when shutdown begins, so the HTTP server can drain
                // (the browser's EventSource reconnects, to another replica).
                () = self.shutdown.clone().started() => return None,
                received = self.subscription.receiver.recv() => received,
            };
            match received {
                Ok(Push::Cart { version, json }) => {
                    if version > self.sent_version {
                        self.sent_version = version;
                        return Some(cart_event(&json));
                    }
                }
                Ok(Push::Notice(notice)) => return Some(notice.event()),
                Ok(Push::Closed) => {
                    self.done = true;
                    return Some(closed_event(self.cart_id));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Missed some: the current cart says everything they said.
                    match store::load(&self.pool, self.cart_id).await {
                        Ok(Some(cart)) if cart.status == store::STATUS_OPEN => {
                            if let Push::Cart { version, json } = Push::cart(&cart)
                                && version > self.sent_version
                            {
                                self.sent_version = version;
                                return Some(cart_event(&json));
                            }
                        }
                        Ok(_) => {
                            self.done = true;
                            return Some(closed_event(self.cart_id));
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "re-reading a cart for a lagging stream failed");
                            return None;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// The SSE stream of one cart: a `cart` event now, then one per change.
pub async fn stream(
    pool: PgPool,
    hub: &Hub,
    shutdown: Shutdown,
    cart_id: Uuid,
) -> sqlx::Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>> {
    // Subscribe before reading, so that a change in between is not lost.
    let subscription = hub.subscribe(cart_id);
    let first = store::load(&pool, cart_id).await?;
    let (first, sent_version, done) = match first {
        Some(cart) if cart.status == store::STATUS_OPEN => {
            let json = serde_json::to_string(&cart).unwrap_or_default();
            (cart_event(&json), cart.version, false)
        }
        _ => (closed_event(cart_id), 0, true),
    };
    let state = StreamState {
        subscription,
        pool,
        cart_id,
        sent_version,
        shutdown,
        done,
    };
    let rest = futures::stream::unfold(state, |mut state| async move {
        state.next().await.map(|event| (Ok(event), state))
    });
    let events = futures::stream::once(async move { Ok(first) }).chain(rest);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_through_their_json() {
        let notice = Notice::PriceChanged {
            cart_id: Uuid::now_v7(),
            sku: "MUG-BLU".into(),
            old: 1299,
            new: 999,
        };
        let json = serde_json::to_string(&notice).unwrap();
        assert!(json.contains("\"event\":\"price_changed\""), "{json}");
        assert_eq!(serde_json::from_str::<Notice>(&json).unwrap(), notice);
    }

    #[test]
    fn the_hub_forgets_a_cart_when_its_last_subscriber_leaves() {
        let hub = Hub::default();
        let id = Uuid::now_v7();
        let a = hub.subscribe(id);
        let mut b = hub.subscribe(id);
        assert_eq!(hub.watched(), vec![id]);
        drop(a);
        hub.send(
            id,
            Push::Cart {
                version: 2,
                json: "{}".into(),
            },
        );
        assert!(matches!(
            b.receiver.try_recv(),
            Ok(Push::Cart { version: 2, .. })
        ));
        drop(b);
        assert!(hub.watched().is_empty());
    }
}
