//! Wiring: the shared state, the router (business routes inside shopkit's [`Kit`]), and
//! the [`Application`] that binds a port and serves until told to stop.

use std::future::Future;
use std::sync::Arc;
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

use crate::client::TrustedProxies;
use crate::clock::Clock;
use crate::config::{Config, Lifetimes, Options};
use crate::keys::KeyRing;
use crate::password::Hasher;
use crate::throttle::Policies;

/// How often expired tokens and stale throttling rows are deleted.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    keys: KeyRing,
    hasher: Hasher,
    clock: Clock,
    lifetimes: Lifetimes,
    throttle: Policies,
    trusted_proxies: TrustedProxies,
}

impl AppState {
    /// Builds the state; computes the hasher's dummy hash (one hash's worth of CPU).
    pub fn new(pool: PgPool, options: Options, clock: Clock) -> anyhow::Result<Self> {
        if !options.hash.meets_owasp_minimum() {
            tracing::warn!(
                params = ?options.hash,
                "argon2 parameters below OWASP's minimum (m=19456 KiB, t=2, p=1): fine for tests, not for a shop"
            );
        }
        let hasher = Hasher::new(options.hash, options.hash_concurrency)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                keys: options.keys,
                hasher,
                clock,
                lifetimes: options.lifetimes,
                throttle: options.throttle,
                trusted_proxies: options.trusted_proxies,
            }),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub fn hasher(&self) -> &Hasher {
        &self.inner.hasher
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn lifetimes(&self) -> &Lifetimes {
        &self.inner.lifetimes
    }

    pub fn throttle(&self) -> &Policies {
        &self.inner.throttle
    }

    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.inner.trusted_proxies
    }

    /// Deletes expired tokens and throttling rows that no longer matter.
    pub async fn maintain(&self) -> anyhow::Result<u64> {
        let now = self.clock().now();
        let mut conn = self.pool().acquire().await?;
        let tokens = crate::store::prune_expired(&mut conn, now).await?;
        let throttle = crate::throttle::prune(self.pool(), self.throttle(), now).await?;
        Ok(tokens + throttle)
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.inner.keys.verifier().clone()
    }
}

/// The complete service: business routes with health, metrics, OpenAPI, request ids,
/// problem+json fallbacks and body limits around them. Testable with `oneshot`.
pub fn router(state: AppState) -> Router {
    kit(&state).wrap(crate::routes::routes(state))
}

fn kit(state: &AppState) -> Kit {
    crate::metrics::describe();
    Kit::new("user")
        .with_database(state.pool().clone())
        .with_openapi(crate::routes::openapi())
}

fn router_with_shutdown(state: AppState, shutdown: Shutdown, events: Option<&Events>) -> Router {
    let mut kit = kit(&state).with_shutdown(shutdown);
    if let Some(events) = events {
        kit = kit.with_broker(events.connected_flag());
    }
    kit.wrap(crate::routes::routes(state))
}

/// The service bound to its port, ready to run.
#[derive(Debug)]
pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    state: AppState,
    trigger: ShutdownTrigger,
    drain: Duration,
    events: Option<Events>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the router.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Clock::system()).await
    }

    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        let (trigger, shutdown) = shopkit::shutdown::channel();
        // The relay only: the user service consumes no events.
        let events = match config.events {
            Some(events) => Some(
                Events::start(events, config.pool.clone(), Vec::new(), shutdown.clone()).await?,
            ),
            None => None,
        };
        let state = AppState::new(config.pool, config.options, clock)?;
        let router = router_with_shutdown(state.clone(), shutdown, events.as_ref());
        Ok(Application {
            port,
            listener,
            router,
            state,
            trigger,
            drain: config.drain,
            events,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves; then readiness fails for the drain period, the
    /// listener closes, and requests in flight finish. Maintenance runs hourly meanwhile.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
            trigger,
            drain,
            events,
            ..
        } = self;
        let maintenance = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(MAINTENANCE_INTERVAL);
            loop {
                ticks.tick().await;
                match state.maintain().await {
                    Ok(removed) => tracing::debug!(removed, "maintenance done"),
                    Err(err) => tracing::warn!(error = format!("{err:#}"), "maintenance failed"),
                }
            }
        });
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
        maintenance.abort();
        // The relay's last pass publishes what committed before the shutdown.
        if let Some(events) = events {
            events.stopped().await;
        }
        served
    }
}
