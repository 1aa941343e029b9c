//! What the benchmarks share to run services for real: throw-away databases on the
//! tests' PostgreSQL (loopback only), production settings on a free loopback port, and a
//! service in-process on a runtime and threads of its own, so that its work and the load
//! generator's are scheduled apart (as two processes would be).

use std::future::Future;
use std::net::IpAddr;

use anyhow::{Context, bail};
use reqwest::Url;
use shopkit::config::Settings;
use shopkit::testing::TestDb;
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::report;

/// Refuses any server but one on this machine (`SHOPSTACK_TEST_PG_URL` could name one).
pub fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let host = Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("the benchmark only runs against a PostgreSQL on loopback, not {host:?}");
    }
    Ok(())
}

/// A fresh database with `migrator`'s schema on the tests' PostgreSQL, refused unless
/// that server is on loopback.
pub async fn database(migrator: &sqlx::migrate::Migrator) -> anyhow::Result<TestDb> {
    let db = TestDb::new(migrator)
        .await
        .context("creating a database on the test PostgreSQL server")?;
    if let Err(err) = ensure_loopback(&db.url) {
        drop_database(&db).await;
        return Err(err);
    }
    Ok(db)
}

/// Best effort: the test server drops databases of ended processes anyway.
pub async fn drop_database(db: &TestDb) {
    db.pool.close().await;
    let Ok(server) = shopkit::testing::server_url().await else {
        return;
    };
    let Ok(admin) = PgPool::connect(&format!("{server}/postgres")).await else {
        return;
    };
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        db.name
    )))
    .execute(&admin)
    .await;
    admin.close().await;
}

/// A service's settings: those of production, on a free loopback port, plus `extra`
/// (which override).
pub fn settings(database_url: &str, pool_size: u32, extra: &[(&str, &str)]) -> Settings {
    let mut vars: Vec<(String, String)> = [
        ("DATABASE_URL", database_url),
        ("DATABASE_MAX_CONNECTIONS", &pool_size.to_string()),
        ("BIND_ADDR", "127.0.0.1"),
        ("PORT", "0"),
        ("SHUTDOWN_DRAIN_MS", "0"),
        // The test server trusts loopback; a machine's /run/secrets is not ours.
        ("SECRETS_DIR", "/nonexistent/shopstack-bench"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    Settings::from_vars(vars)
}

/// A service's `Application`: bound to a port, served until told to stop.
pub trait App: 'static {
    fn port(&self) -> u16;
    fn serve(self, stop: oneshot::Receiver<()>) -> impl Future<Output = anyhow::Result<()>>;
}

impl App for catalog::Application {
    fn port(&self) -> u16 {
        catalog::Application::port(self)
    }

    fn serve(self, stop: oneshot::Receiver<()>) -> impl Future<Output = anyhow::Result<()>> {
        self.run_until_stopped(async {
            let _ = stop.await;
        })
    }
}

impl App for user::Application {
    fn port(&self) -> u16 {
        user::Application::port(self)
    }

    fn serve(self, stop: oneshot::Receiver<()>) -> impl Future<Output = anyhow::Result<()>> {
        self.run_until_stopped(async {
            let _ = stop.await;
        })
    }
}

/// An in-process service: its own thread and runtime, stopped by [`Service::stop`] (or
/// when dropped).
pub struct Service {
    pub name: &'static str,
    /// `http://127.0.0.1:<port>/`.
    pub base: Url,
    /// Worker threads of its runtime.
    pub threads: usize,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Service {
    /// Starts the application `build` makes (called on the service's own runtime, which
    /// has `threads` workers, default one per core as in production) and waits until it
    /// is bound.
    pub async fn start<A, F, Fut>(
        name: &'static str,
        threads: Option<usize>,
        build: F,
    ) -> anyhow::Result<Self>
    where
        A: App,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<A>>,
    {
        let threads = threads.unwrap_or_else(report::cores).max(1);
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<u16>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-service"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name(format!("{name}-worker"))
                    .enable_all()
                    .build()
                    .context("building the service's runtime")?;
                runtime.block_on(async move {
                    let app = match build().await {
                        Ok(app) => {
                            let _ = ready_tx.send(Ok(app.port()));
                            app
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(anyhow::anyhow!("{err:#}")));
                            return Err(err);
                        }
                    };
                    app.serve(stop_rx).await
                })
            })
            .with_context(|| format!("starting the {name} service's thread"))?;
        let port = ready_rx
            .await
            .with_context(|| format!("the {name} service's thread ended before it was ready"))?
            .with_context(|| format!("starting the {name} service"))?;
        Ok(Self {
            name,
            base: Url::parse(&format!("http://127.0.0.1:{port}/"))?,
            threads,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops the service and returns how its serving ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let name = self.name;
        match tokio::task::spawn_blocking(move || thread.join()).await? {
            Ok(result) => result.with_context(|| format!("the {name} service failed")),
            Err(_) => bail!("the {name} service's thread panicked"),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_servers_are_benchmarked() {
        for ok in [
            "postgres://postgres@127.0.0.1:5432",
            "postgres://postgres@localhost:1/db",
            "postgres://postgres@[::1]:5432/db",
            "postgres://postgres@127.0.0.2/db",
        ] {
            assert!(ensure_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "postgres://postgres@10.0.0.5:5432",
            "postgres://postgres@db.example.com/db",
            "not a url",
        ] {
            assert!(ensure_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_production_on_loopback_with_extras_overriding() {
        let s = settings(
            "postgres://x@127.0.0.1/db",
            7,
            &[
                ("PORT", "1234"),
                ("AUTH_JWKS_URL", "http://127.0.0.1:1/jwks"),
            ],
        );
        assert_eq!(s.get("DATABASE_MAX_CONNECTIONS"), Some("7"));
        assert_eq!(s.get("BIND_ADDR"), Some("127.0.0.1"));
        assert_eq!(s.get("PORT"), Some("1234"));
        assert_eq!(s.get("AUTH_JWKS_URL"), Some("http://127.0.0.1:1/jwks"));
        assert_eq!(s.get("ARGON2_MEMORY_KIB"), None, "the services' defaults");
    }
}
