//! Wiring: the shared state, the router (business routes inside shopkit's [`Kit`]), and
//! the [`Application`] that binds a port and serves until told to stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use shopkit::auth::Verifier;
use shopkit::events::{Events, Subscription};
use shopkit::http::Kit;
use shopkit::shutdown::ShutdownTrigger;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::reservations::{self, CheckoutEvents};

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pool: PgPool,
    /// `None`: the service was started without keys; admin writes are refused.
    verifier: Option<Verifier>,
}

impl AppState {
    pub fn new(pool: PgPool, verifier: Option<Verifier>) -> Self {
        Self { pool, verifier }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

impl FromRef<AppState> for Option<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The complete service: business routes with health, metrics, OpenAPI, request ids,
/// problem+json fallbacks and body limits around them. Testable with `oneshot`.
pub fn router(state: AppState) -> Router {
    kit(&state).wrap(crate::routes::routes(state))
}

fn kit(state: &AppState) -> Kit {
    crate::metrics::describe();
    Kit::new("catalog")
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
    events: Option<Events>,
    sweeper: tokio::task::JoinHandle<()>,
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
                "neither AUTH_JWKS_URL nor AUTH_JWKS_FILE is set: reads work, admin writes answer 401"
            );
        }
        let (trigger, shutdown) = shopkit::shutdown::channel();
        let events = match config.events {
            None => {
                tracing::warn!("AMQP_URL is not set: orders reserve no stock");
                None
            }
            Some(events) => {
                let checkout = Arc::new(CheckoutEvents {
                    ttl: config.reservation_ttl,
                });
                let subscription = Subscription::new(
                    reservations::CONSUMER,
                    reservations::SUBSCRIBES_TO,
                    checkout,
                );
                Some(
                    Events::start(
                        events,
                        config.pool.clone(),
                        vec![subscription],
                        shutdown.clone(),
                    )
                    .await?,
                )
            }
        };
        let sweeper = tokio::spawn(reservations::run_sweeper(
            config.pool.clone(),
            config.reservation_sweep,
            shutdown.clone(),
        ));
        let state = AppState::new(config.pool, config.verifier);
        let mut kit = kit(&state);
        if let Some(events) = &events {
            kit = kit.with_broker(events.connected_flag());
        }
        let router = kit
            .with_shutdown(shutdown)
            .wrap(crate::routes::routes(state));
        Ok(Application {
            port,
            listener,
            router,
            trigger,
            drain: config.drain,
            events,
            sweeper,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves; then readiness fails for the drain period, the
    /// listener closes, and requests in flight finish.
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
            sweeper,
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
        // Messages in hand are finished and the outbox flushed before the process ends.
        if let Some(events) = events {
            events.stopped().await;
        }
        let _ = sweeper.await;
        served
    }
}
