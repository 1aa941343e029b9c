//! PostgreSQL: the pool every service uses and its embedded migrations.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{ConfigError, Settings};

/// The pool from `DATABASE_URL` (without its password, which comes from the secret
/// `DATABASE_PASSWORD` when set) and `DATABASE_MAX_CONNECTIONS` (default 10).
pub fn pool_from_settings(settings: &Settings) -> Result<PgPool, ConfigError> {
    let url = settings.required("DATABASE_URL", "a postgres://user@host:5432/db URL")?;
    let mut options: PgConnectOptions = url.parse().map_err(|e| ConfigError {
        name: "DATABASE_URL".into(),
        problem: format!("is not a valid postgres:// URL: {e}"),
    })?;
    if let Some(password) = settings.secret("DATABASE_PASSWORD")? {
        options = options.password(&password);
    }
    let max = settings.parse_or("DATABASE_MAX_CONNECTIONS", 10_u32)?;
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options))
}

/// Runs the embedded migrations, retrying the connection for up to `wait` because the
/// migrate container may start a moment before PostgreSQL accepts connections.
pub async fn migrate(pool: &PgPool, migrator: &Migrator, wait: Duration) -> anyhow::Result<i64> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match pool.acquire().await {
            Ok(_) => break,
            // The server answered and refused (no such database, bad password): waiting
            // will not help, so say so now.
            Err(sqlx::Error::Database(err)) => {
                return Err(anyhow::anyhow!("{err}"))
                    .context("the database refused the connection");
            }
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %err, "waiting for the database");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err).context("cannot reach the database to migrate it"),
        }
    }
    migrator.run(pool).await.context("running migrations")?;
    schema_version(pool).await
}

/// The newest applied migration, or 0 before the first.
pub async fn schema_version(pool: &PgPool) -> anyhow::Result<i64> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .context("reading the schema version")?;
    Ok(version.unwrap_or(0))
}
