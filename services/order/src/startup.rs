//! Wiring: the shared state, the router (business routes inside shopkit's [`Kit`]), the
//! event machinery, and the [`Application`] that binds a port and serves until told to
//! stop.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use shopkit::auth::Verifier;
use shopkit::events::Events;
use shopkit::http::Kit;
use shopkit::shutdown::{Shutdown, ShutdownTrigger};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::peers::Peers;

/// How often idempotency keys older than a day are deleted (claims already ignore them;
/// this keeps the table from growing).
const KEY_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pool: PgPool,
    verifier: Verifier,
    /// The cart and catalog clients `POST /orders` asks.
    peers: Peers,
}

impl AppState {
    pub fn new(pool: PgPool, verifier: Verifier, peers: Peers) -> Self {
        Self {
            pool,
            verifier,
            peers,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn peers(&self) -> &Peers {
        &self.peers
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The complete service without a broker: business routes with health, metrics, OpenAPI,
/// request ids, problem+json fallbacks and body limits around them. Testable with
/// `oneshot`.
pub fn router(state: AppState) -> Router {
    kit(&state).wrap(crate::routes::routes(state))
}

fn kit(state: &AppState) -> Kit {
    crate::metrics::describe();
    Kit::new("order")
        .with_database(state.pool.clone())
        .with_openapi(crate::routes::openapi())
}

/// The service bound to its port, ready to run.
#[derive(Debug)]
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    trigger: ShutdownTrigger,
    drain: Duration,
    /// The outbox relay and the `order` consumer; `None` without `AMQP_URL`.
    events: Option<Events>,
    /// The hourly purge of expired idempotency keys.
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one), starts the event machinery when a
    /// broker is configured (it connects in the background) and builds the router.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        let peers = Peers::new(config.cart_url, config.catalog_url)?;
        let (trigger, shutdown) = shopkit::shutdown::channel();
        let events = match config.events {
            Some(events) => Some(
                Events::start(
                    events,
                    config.pool.clone(),
                    vec![crate::consumer::subscription()],
                    shutdown.clone(),
                )
                .await
                .context("starting the event relay and consumer")?,
            ),
            None => {
                tracing::warn!(
                    "AMQP_URL is not set: orders are accepted but no events flow, so none \
                     moves past pending"
                );
                None
            }
        };
        let housekeeping = tokio::spawn(purge_keys(config.pool.clone(), shutdown.clone()));
        let state = AppState::new(config.pool, config.verifier, peers);
        let broker = events.as_ref().map(Events::connected_flag);
        let router = router_with(state, shutdown, broker);
        Ok(Application {
            port,
            listener,
            router,
            trigger,
            drain: config.drain,
            events,
            housekeeping,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The event machinery, when a broker is configured (tests wait for its connection).
    pub fn events(&self) -> Option<&Events> {
        self.events.as_ref()
    }

    /// Serves until `shutdown` resolves; then readiness fails for the drain period, the
    /// listener closes, requests in flight finish, and the relay and consumer stop after
    /// the messages they are handling.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            trigger,
            drain,
            events,
            housekeeping,
            ..
        } = self;
        let stop = async move {
            shutdown.await;
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "shutdown requested; draining"
            );
            trigger.trigger();
            tokio::time::sleep(drain).await;
        };
        let served = shopkit::cli::serve(listener, router, stop).await;
        if let Some(events) = events {
            events.stopped().await;
        }
        let _ = housekeeping.await;
        served
    }
}

/// Deletes expired idempotency keys every [`KEY_PURGE_INTERVAL`] until shutdown begins.
async fn purge_keys(pool: PgPool, shutdown: Shutdown) {
    let stopped = shutdown.started();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(KEY_PURGE_INTERVAL) => {}
        }
        let purged = async {
            let mut conn = pool.acquire().await?;
            shopkit::idempotency::purge_expired(&mut conn).await
        };
        match purged.await {
            Ok(0) => {}
            Ok(keys) => tracing::info!(keys, "expired idempotency keys deleted"),
            Err(err) => tracing::warn!(error = %err, "deleting expired idempotency keys failed"),
        }
    }
}

fn router_with(state: AppState, shutdown: Shutdown, broker: Option<Arc<AtomicBool>>) -> Router {
    let mut kit = kit(&state).with_shutdown(shutdown);
    if let Some(connected) = broker {
        kit = kit.with_broker(connected);
    }
    kit.wrap(crate::routes::routes(state))
}
