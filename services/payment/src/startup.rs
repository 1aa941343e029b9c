//! Wiring: the shared state, the router (business routes inside shopkit's [`Kit`]), and
//! the [`Application`] that binds a port, consumes the order's events, sweeps
//! interrupted provider calls, and serves until told to stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use shopkit::ApiError;
use shopkit::auth::Verifier;
use shopkit::events::{Events, Subscription};
use shopkit::http::Kit;
use shopkit::shutdown::{Shutdown, ShutdownTrigger};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::Config;
use crate::handlers::{CONSUMER, OrderEvents, ROUTING_KEYS};
use crate::provider::Provider;
use crate::webhooks::Webhooks;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    verifier: Verifier,
    provider: Arc<dyn Provider>,
    /// A confirmation holds its request transaction (with the idempotency key) and, for
    /// moments, a second connection for the payment's claim. Capping confirmations at
    /// half the pool means the second connection is always to be had, even when
    /// duplicates of one key queue up holding their first.
    confirm_slots: Semaphore,
    processing_timeout: Duration,
    /// What verifies the provider's webhooks (none for the test gateway).
    webhooks: Webhooks,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("provider", &self.inner.provider.name())
            .field(
                "confirm_slots",
                &self.inner.confirm_slots.available_permits(),
            )
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(
        pool: PgPool,
        verifier: Verifier,
        provider: Arc<dyn Provider>,
        processing_timeout: Duration,
    ) -> Self {
        Self::with_webhooks(
            pool,
            verifier,
            provider,
            processing_timeout,
            Webhooks::default(),
        )
    }

    /// Like [`AppState::new`], taking the provider's webhooks too.
    pub fn with_webhooks(
        pool: PgPool,
        verifier: Verifier,
        provider: Arc<dyn Provider>,
        processing_timeout: Duration,
        webhooks: Webhooks,
    ) -> Self {
        let connections = pool.options().get_max_connections() as usize;
        Self {
            inner: Arc::new(Inner {
                confirm_slots: Semaphore::new((connections / 2).max(1)),
                pool,
                verifier,
                provider,
                processing_timeout,
                webhooks,
            }),
        }
    }

    pub fn webhooks(&self) -> &Webhooks {
        &self.inner.webhooks
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn provider(&self) -> &dyn Provider {
        self.inner.provider.as_ref()
    }

    pub fn processing_timeout(&self) -> Duration {
        self.inner.processing_timeout
    }

    /// Waits for one of the confirmation slots.
    pub(crate) async fn confirm_slot(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.inner
            .confirm_slots
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable("the service is shutting down".into()))
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.inner.verifier.clone()
    }
}

/// The complete service: business routes with health, metrics, OpenAPI, request ids,
/// problem+json fallbacks and body limits around them. Testable with `oneshot`.
pub fn router(state: AppState) -> Router {
    kit(&state).wrap(crate::routes::routes(state))
}

fn kit(state: &AppState) -> Kit {
    crate::metrics::describe();
    Kit::new("payment")
        .with_database(state.pool().clone())
        .with_openapi(crate::routes::openapi())
}

/// The service bound to its port, ready to run.
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    events: Option<Events>,
    state: AppState,
    drain: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("events", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Binds the listener (port 0 picks a free one), starts the event consumer and relay
    /// (when `AMQP_URL` is set), and builds the router. Refuses a test provider in
    /// production mode, however the config was made.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        crate::config::check_mode(config.mode, config.provider.as_ref())?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        if !config.provider.is_live() {
            tracing::warn!(
                provider = config.provider.name(),
                "payments go through the built-in TEST gateway: no real money moves"
            );
        }
        let (trigger, shutdown) = shopkit::shutdown::channel();
        let state = AppState::with_webhooks(
            config.pool.clone(),
            config.verifier,
            config.provider.clone(),
            config.processing_timeout,
            config.webhooks,
        );
        let mut kit = kit(&state).with_shutdown(shutdown.clone());
        let events = match config.events {
            Some(events_config) => {
                let handler = Arc::new(OrderEvents::new(config.provider.clone()));
                let subscription = Subscription::new(CONSUMER, &ROUTING_KEYS, handler);
                let events = Events::start(
                    events_config,
                    config.pool.clone(),
                    vec![subscription],
                    shutdown.clone(),
                )
                .await?;
                kit = kit.with_broker(events.connected_flag());
                Some(events)
            }
            None => {
                tracing::warn!(
                    "AMQP_URL is not set: no order events are consumed and no payment events published"
                );
                None
            }
        };
        let router = kit.wrap(crate::routes::routes(state.clone()));
        Ok(Application {
            port,
            listener,
            router,
            trigger,
            shutdown,
            events,
            state,
            drain: config.drain,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the event broker connection is up (always `false` without `AMQP_URL`).
    pub fn events_connected(&self) -> bool {
        self.events.as_ref().is_some_and(Events::is_connected)
    }

    /// Serves until `shutdown` resolves; then readiness fails for the drain period, the
    /// listener closes, requests in flight finish, and the consumer stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            trigger,
            shutdown: draining,
            events,
            state,
            drain,
            ..
        } = self;
        let sweeper = tokio::spawn(crate::recovery::run_sweeper(
            state.pool().clone(),
            state.inner.provider.clone(),
            state.processing_timeout(),
            draining,
        ));
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
        // After a clean stop the consumer and the sweeper are finishing their work in
        // flight; after a failed server they may never be told to stop, so they are left
        // to end with the process.
        if served.is_ok() {
            if let Some(events) = events {
                events.stopped().await;
            }
            let _ = sweeper.await;
        }
        served
    }
}
