//! Wiring: the shared state, the router (business routes inside shopkit's [`Kit`]), and
//! the [`Application`] that binds a port, consumes the shop's events, runs the delivery
//! worker, and serves until told to stop.

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

use crate::config::Config;
use crate::delivery::{Policy, Providers};
use crate::handlers::{CONSUMER, Notifications, ROUTING_KEYS};
use crate::templates::Templates;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    verifier: Verifier,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(pool: PgPool, verifier: Verifier) -> Self {
        Self {
            inner: Arc::new(Inner { pool, verifier }),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.inner.verifier.clone()
    }
}

/// The complete service, testable with `oneshot`.
pub fn router(state: AppState) -> Router {
    kit(&state).wrap(crate::routes::routes(state))
}

fn kit(state: &AppState) -> Kit {
    crate::metrics::describe();
    Kit::new("notification")
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
    pool: PgPool,
    providers: Providers,
    policy: Policy,
    poll: Duration,
    drain: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Loads and checks the templates, binds the listener (port 0 picks a free one),
    /// starts the consumer (when `AMQP_URL` is set) and builds the router.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let templates = Templates::load(config.templates_dir.as_deref())?;
        if !templates.overridden().is_empty() {
            tracing::info!(templates = ?templates.overridden(), "using the shop's own notification templates");
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        if !config.providers.email.is_live() {
            tracing::warn!(
                provider = config.providers.email.name(),
                "emails are kept in the shop's OUTBOX (GET /messages, shopctl notifications): none leaves the shop"
            );
        }
        match &config.providers.sms {
            Some(p) if !p.is_live() => tracing::warn!(
                provider = p.name(),
                "text messages are kept in the shop's OUTBOX: none is sent"
            ),
            None => tracing::info!("no SMS provider: no text messages are made"),
            Some(_) => {}
        }
        let (trigger, shutdown) = shopkit::shutdown::channel();
        let state = AppState::new(config.pool.clone(), config.verifier);
        let mut kit = kit(&state).with_shutdown(shutdown.clone());
        let events = match config.events {
            Some(events_config) => {
                let handler = Arc::new(Notifications::new(
                    Arc::new(templates),
                    config.shop.clone(),
                    config.providers.sms.is_some(),
                ));
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
                    "AMQP_URL is not set: no events are consumed, so no messages are made"
                );
                None
            }
        };
        let router = kit.wrap(crate::routes::routes(state));
        Ok(Application {
            port,
            listener,
            router,
            trigger,
            shutdown,
            events,
            pool: config.pool,
            providers: config.providers,
            policy: config.policy,
            poll: config.poll,
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
    /// listener closes, requests in flight finish, the consumer and the worker stop.
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
            pool,
            providers,
            policy,
            poll,
            drain,
            ..
        } = self;
        let worker = tokio::spawn(crate::delivery::run(
            pool, providers, policy, poll, draining,
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
        if served.is_ok() {
            if let Some(events) = events {
                events.stopped().await;
            }
            let _ = worker.await;
        }
        served
    }
}
