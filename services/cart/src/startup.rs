//! Wiring: the shared state, the router (business routes inside shopkit's [`Kit`]), and
//! the [`Application`] that binds a port, runs the change listener and serves until
//! told to stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use shopkit::auth::Verifier;
use shopkit::events::{Events, Subscription};
use shopkit::http::Kit;
use shopkit::shutdown::{Shutdown, ShutdownTrigger};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::catalog::CatalogClient;
use crate::config::Config;
use crate::handlers::{CONSUMER, CartEvents, ROUTING_KEYS};
use crate::live::Hub;

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pool: PgPool,
    /// `None`: started without keys; user carts are refused, anonymous ones work.
    verifier: Option<Verifier>,
    catalog: CatalogClient,
    /// This replica's live subscribers.
    hub: Hub,
    /// Resolves when the live streams must end (when the drain period is over).
    streams_end: Shutdown,
    /// Keeps `streams_end` pending for a state built without an [`Application`].
    _streams_trigger: Option<Arc<ShutdownTrigger>>,
    cookie_secure: bool,
}

impl AppState {
    pub fn new(pool: PgPool, verifier: Option<Verifier>, catalog: CatalogClient) -> Self {
        let (trigger, streams_end) = shopkit::shutdown::channel();
        Self {
            pool,
            verifier,
            catalog,
            hub: Hub::default(),
            streams_end,
            _streams_trigger: Some(Arc::new(trigger)),
            cookie_secure: false,
        }
    }

    /// Marks the `cart_token` cookie `Secure`.
    pub fn with_secure_cookie(mut self, secure: bool) -> Self {
        self.cookie_secure = secure;
        self
    }

    /// Live streams end when `streams_end` resolves.
    fn with_streams_end(mut self, streams_end: Shutdown) -> Self {
        self.streams_end = streams_end;
        self._streams_trigger = None;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    pub fn catalog(&self) -> &CatalogClient {
        &self.catalog
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn streams_end(&self) -> Shutdown {
        self.streams_end.clone()
    }

    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

/// The complete service: business routes with health, metrics, OpenAPI, request ids,
/// problem+json fallbacks and body limits around them. Testable with `oneshot` (live
/// streams need the listener, which [`Application`] runs).
pub fn router(state: AppState) -> Router {
    kit(&state).wrap(crate::routes::routes(state))
}

fn kit(state: &AppState) -> Kit {
    crate::metrics::describe();
    Kit::new("cart")
        .with_database(state.pool.clone())
        .with_openapi(crate::routes::openapi())
}

/// The service bound to its port, ready to run.
#[derive(Debug)]
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    state: AppState,
    trigger: ShutdownTrigger,
    streams_trigger: ShutdownTrigger,
    /// The relay and the `cart` consumer; `None` without `AMQP_URL`.
    events: Option<Events>,
    drain: Duration,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the router.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        if config.verifier.is_none() {
            tracing::warn!(
                "neither AUTH_JWKS_URL nor AUTH_JWKS_FILE is set: anonymous carts work, user carts answer 401"
            );
        }
        let (trigger, shutdown) = shopkit::shutdown::channel();
        let (streams_trigger, streams_end) = shopkit::shutdown::channel();
        let state = AppState::new(config.pool, config.verifier, config.catalog)
            .with_secure_cookie(config.cookie_secure)
            .with_streams_end(streams_end);
        let hub = state.hub().clone();
        let mut kit =
            kit(&state)
                .with_shutdown(shutdown.clone())
                .with_check("listener", move || {
                    let connected = hub.is_connected();
                    async move {
                        if connected {
                            Ok(())
                        } else {
                            Err("the cart change listener is not connected".to_owned())
                        }
                    }
                });
        let events = match config.events {
            Some(events_config) => {
                let subscription = Subscription::new(CONSUMER, &ROUTING_KEYS, Arc::new(CartEvents));
                let events = Events::start(
                    events_config,
                    state.pool().clone(),
                    vec![subscription],
                    shutdown,
                )
                .await?;
                kit = kit.with_broker(events.connected_flag());
                Some(events)
            }
            None => {
                tracing::warn!(
                    "AMQP_URL is not set: no catalog or order events are consumed (prices and \
                     stock refresh only when a line changes; paid orders do not empty carts)"
                );
                None
            }
        };
        let router = kit.wrap(crate::routes::routes(state.clone()));
        Ok(Application {
            port,
            listener,
            router,
            state,
            trigger,
            streams_trigger,
            events,
            drain: config.drain,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the event machinery is connected to the broker (false without it).
    pub fn events_connected(&self) -> bool {
        self.events.as_ref().is_some_and(Events::is_connected)
    }

    /// Waits until the broker connection is up (tests); `false` after `timeout`.
    pub async fn wait_events_connected(&self, timeout: Duration) -> bool {
        match &self.events {
            Some(events) => events.wait_connected(timeout).await,
            None => false,
        }
    }

    /// Runs the change listener and serves until `shutdown` resolves; then readiness
    /// fails for the drain period (live streams keep flowing), the live streams end, the
    /// listener closes, and requests in flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
            trigger,
            streams_trigger,
            events,
            drain,
            ..
        } = self;
        let changes = tokio::spawn(crate::live::run_listener(
            state.pool().clone(),
            state.hub().clone(),
            state.streams_end(),
        ));
        let sweeper = tokio::spawn(sweep_idle_carts(state.pool().clone(), state.streams_end()));
        let stop = async move {
            shutdown.await;
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "shutdown requested; draining"
            );
            trigger.trigger();
            tokio::time::sleep(drain).await;
            streams_trigger.trigger();
        };
        let served = shopkit::cli::serve(listener, router, stop).await;
        // The listener has nothing to finish (its streams have ended); stop it also when
        // the server failed before the streams were told to end.
        changes.abort();
        sweeper.abort();
        let _ = changes.await;
        if served.is_ok()
            && let Some(events) = events
        {
            // Messages in hand are finished before the process exits.
            events.stopped().await;
        }
        served
    }
}

/// How often idle anonymous carts are purged (every replica does; the DELETE is
/// idempotent).
const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

/// Purges anonymous carts idle for longer than their cookie lives, until `stop`.
async fn sweep_idle_carts(pool: PgPool, stop: Shutdown) {
    let idle = Duration::from_secs(crate::token::COOKIE_MAX_AGE_SECS);
    let stop = stop.started();
    tokio::pin!(stop);
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = every.tick() => {}
        }
        match crate::store::purge_idle_anonymous(&pool, idle).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged idle anonymous carts"),
            Err(err) => tracing::warn!(error = %err, "purging idle anonymous carts failed"),
        }
    }
}
