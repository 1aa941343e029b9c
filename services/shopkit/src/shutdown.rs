//! Graceful shutdown, passed around as a value.
//!
//! On SIGTERM a service first reports not-ready (so the gateway stops sending it new
//! requests), keeps serving for a drain period, then stops accepting and lets axum finish
//! the requests in flight.

use std::time::Duration;

use tokio::sync::watch;

/// A cloneable handle that says whether shutdown has begun.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The side that starts the shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    pub fn is_draining(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has begun.
    pub async fn started(mut self) {
        let _ = self.rx.wait_for(|draining| *draining).await;
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn os_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Waits for the OS signal, flips the trigger, then waits `drain` so that load balancers
/// notice the failing readiness before the listener closes.
pub async fn on_signal(trigger: ShutdownTrigger, drain: Duration) {
    os_signal().await;
    tracing::info!(
        drain_ms = drain.as_millis() as u64,
        "shutdown requested; draining"
    );
    trigger.trigger();
    tokio::time::sleep(drain).await;
}
