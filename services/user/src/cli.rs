//! The binary's commands: shopkit's `serve | migrate | healthcheck` plus `create-admin`.
//! Everything else comes from environment variables, so the one-shot containers that
//! shopctl runs (`user migrate`, `user create-admin --email …`) need nothing more.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use shopkit::auth::ROLE_ADMIN;
use shopkit::cli::Common;
use shopkit::config::Settings;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::Config;
use crate::outbox::{self, types};
use crate::password::{HashParams, Hasher};
use crate::startup::Application;
use crate::store::{self, NewUser};
use crate::validate::Email;

/// How long `migrate` and `create-admin` wait for PostgreSQL to accept connections (the
/// one-shot containers may start a moment before it does).
const DATABASE_WAIT: Duration = Duration::from_secs(60);
/// More than any password the policy accepts (128 characters of up to 4 bytes).
const MAX_STDIN_BYTES: u64 = 4096;

#[derive(Debug, clap::Parser)]
#[command(
    name = "user",
    version,
    about = "Shopstack's user service: accounts, tokens, addresses"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    #[command(flatten)]
    Common(Common),
    /// Create an administrator account. The password is read from standard input (its
    /// first line), never from an argument or the environment, and must meet the
    /// password policy; there is no default password.
    CreateAdmin {
        /// The administrator's email address (their log-in).
        #[arg(long)]
        email: String,
    },
}

/// Runs a command (`serve` when none is given) and turns its outcome into an exit code.
pub async fn run(command: Option<Command>, settings: Settings) -> ExitCode {
    match command.unwrap_or(Command::Common(Common::Serve)) {
        Command::Common(Common::Healthcheck) => shopkit::cli::healthcheck(&settings).await,
        Command::Common(Common::Serve) => shopkit::cli::exit_code(serve(&settings).await),
        Command::Common(Common::Migrate) => shopkit::cli::exit_code(migrate(&settings).await),
        Command::CreateAdmin { email } => {
            shopkit::cli::exit_code(create_admin_from_stdin(&settings, &email).await)
        }
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let config = Config::from_settings(settings)?;
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), "user service listening");
    app.run_until_stopped(shopkit::shutdown::os_signal()).await
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = shopkit::db::pool_from_settings(settings)?;
    let version = shopkit::db::migrate(&pool, &crate::MIGRATOR, DATABASE_WAIT).await?;
    tracing::info!(version, "user schema is up to date");
    Ok(())
}

/// The first line of `input`, without its line ending.
pub fn password_from(input: &str) -> anyhow::Result<String> {
    let line = input.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        bail!(
            "no password on standard input: pipe it in, e.g. `printf '%s\\n' \"$PASSWORD\" | user create-admin --email …`"
        );
    }
    Ok(line.to_owned())
}

async fn create_admin_from_stdin(settings: &Settings, email: &str) -> anyhow::Result<()> {
    let params = crate::config::hash_params(settings)?;
    let pool = shopkit::db::pool_from_settings(settings)?;
    if std::io::stdin().is_terminal() {
        eprintln!("Password for {email} (one line; it will be visible as you type):");
    }
    let input = tokio::task::spawn_blocking(|| {
        let mut input = String::new();
        std::io::stdin()
            .take(MAX_STDIN_BYTES)
            .read_to_string(&mut input)
            .map(|_| input)
    })
    .await?
    .context("reading the password from standard input")?;
    let password = password_from(&input)?;
    wait_for(&pool).await?;
    let id = create_admin(&pool, params, email, &password, &Clock::system()).await?;
    tracing::info!(user.id = %id, "administrator created");
    Ok(())
}

async fn wait_for(pool: &PgPool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + DATABASE_WAIT;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %err, "waiting for the database");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err).context("cannot reach the database"),
        }
    }
}

/// Creates an administrator (email counted as verified) and records `user.admin_created`.
/// Fails, changing nothing, if the email is malformed or taken or the password breaks
/// the policy.
pub async fn create_admin(
    pool: &PgPool,
    params: HashParams,
    email: &str,
    password: &str,
    clock: &Clock,
) -> anyhow::Result<Uuid> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    crate::password::check_policy(password, email.as_str())
        .map_err(|e| anyhow::anyhow!("the password {e}"))?;
    let hash = Hasher::new(params, 1)?.hash(password).await?;
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let user = NewUser {
        email: email.as_str(),
        password_hash: &hash,
        role: ROLE_ADMIN,
        verified: true,
    };
    let Some(id) = store::insert_user(&mut tx, &user, now).await? else {
        bail!("an account with the email {email} already exists; nothing was changed");
    };
    let data = json!({ "user_id": id, "email": email.as_str() });
    outbox::record(&mut tx, types::ADMIN_CREATED, data, now, None).await?;
    tx.commit().await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_of_stdin() {
        assert_eq!(
            password_from("violet staple gun\n").unwrap(),
            "violet staple gun"
        );
        assert_eq!(
            password_from("violet staple gun\r\nrest").unwrap(),
            "violet staple gun"
        );
        assert_eq!(password_from(" spaces kept  ").unwrap(), " spaces kept  ");
        assert!(password_from("").is_err());
        assert!(password_from("\n").is_err());
    }
}
