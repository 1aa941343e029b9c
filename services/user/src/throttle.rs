//! Brute-force protection for password checks (log-in, password change): failures are
//! counted per account (the email as typed, whether or not it exists) and per client
//! address, in PostgreSQL so that every replica sees the same counts.
//!
//! The check happens *before* any hashing, and an attempt counts as a failure from the
//! moment it is let through (it is taken back only when the password turns out right).
//! So parallel guesses cannot slip past the limit: the 11th concurrent attempt already
//! sees ten counted.
//!
//! The rule per subject: at most `max_failures` failures in any `window` (a sliding
//! window, not a fixed one). The attempt after that starts a lockout whose length doubles
//! with each consecutive lockout (`base`, 2×`base`, 4×`base`, … capped at `max`), and lasts
//! at least until the oldest counted failure leaves the window. Consecutive lockouts are
//! forgotten after a successful log-in, or after [`Policy::memory`] without one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::tokens::subject_hash;

/// The limits for one kind of subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures allowed within `window` (`LOGIN_MAX_FAILURES_PER_ACCOUNT` / `…_PER_ADDRESS`).
    pub max_failures: u32,
    /// The sliding window (`LOGIN_FAILURE_WINDOW_SECS`).
    pub window: Duration,
    /// The first lockout (`LOGIN_LOCKOUT_BASE_SECS`).
    pub lockout_base: Duration,
    /// The longest lockout (`LOGIN_LOCKOUT_MAX_SECS`).
    pub lockout_max: Duration,
    /// How long after a lockout ends the next one still counts as consecutive.
    pub memory: Duration,
}

impl Policy {
    /// Per account: 10 failures per hour, then 1 h, 2 h, 4 h … up to a day.
    pub const ACCOUNT: Self = Self {
        max_failures: 10,
        window: Duration::from_secs(3600),
        lockout_base: Duration::from_secs(3600),
        lockout_max: Duration::from_secs(86_400),
        memory: Duration::from_secs(86_400),
    };

    /// Per client address: more lenient, since many people may share one (offices,
    /// carrier-grade NAT), but it stops one host from spraying many accounts.
    pub const ADDRESS: Self = Self {
        max_failures: 100,
        ..Self::ACCOUNT
    };
}

/// What is stored per subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// When each counted failure (or attempt in flight) happened, oldest first.
    pub failures: Vec<DateTime<Utc>>,
    /// Consecutive lockouts so far.
    pub lockouts: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead and check the password; the attempt is counted.
    Allow,
    /// Refused without checking anything until then.
    Locked { until: DateTime<Utc> },
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The length of lockout number `n` (1-based): `base × 2^(n-1)`, at most `max`.
pub fn backoff(n: u32, policy: &Policy) -> Duration {
    let doublings = n.saturating_sub(1).min(32);
    policy
        .lockout_base
        .checked_mul(1_u32 << doublings.min(31))
        .unwrap_or(policy.lockout_max)
        .min(policy.lockout_max)
}

/// Decides an attempt at `now` and returns the state to store.
pub fn reserve(mut state: State, now: DateTime<Utc>, policy: &Policy) -> (Decision, State) {
    if let Some(until) = state.locked_until {
        if until > now {
            return (Decision::Locked { until }, state);
        }
        if now - until >= chrono(policy.memory) {
            state.lockouts = 0;
            state.locked_until = None;
        }
    }
    let window = chrono(policy.window);
    state.failures.retain(|at| now - *at < window);
    state.failures.sort();
    if state.failures.len() >= usize::try_from(policy.max_failures).unwrap_or(usize::MAX) {
        state.lockouts = state.lockouts.saturating_add(1);
        let backoff_until = now + chrono(backoff(state.lockouts, policy));
        // Never shorter than the window rule itself: no failure counted now may share a
        // window with one after the lockout.
        let window_until = state
            .failures
            .first()
            .map_or(now, |oldest| *oldest + window);
        let until = backoff_until.max(window_until);
        state.locked_until = Some(until);
        state.failures.clear();
        return (Decision::Locked { until }, state);
    }
    state.failures.push(now);
    (Decision::Allow, state)
}

/// The account's state after its password was right: everything forgotten.
pub fn account_succeeded() -> State {
    State::default()
}

/// An address's state after a right password: only that attempt is taken back.
pub fn address_succeeded(mut state: State, attempted_at: DateTime<Utc>) -> State {
    if let Some(i) = state.failures.iter().position(|at| *at == attempted_at) {
        state.failures.remove(i);
    }
    state
}

/// Seconds to put in `Retry-After`: until `until`, rounded up, at least 1.
pub fn retry_after_secs(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let millis = u64::try_from((until - now).num_milliseconds()).unwrap_or(0);
    millis.div_ceil(1000).max(1)
}

/// Who is trying: the account key (a normalised email) and the client address, if known.
#[derive(Debug, Clone)]
pub struct Subjects {
    account: Vec<u8>,
    address: Vec<u8>,
}

const ACCOUNT: &str = "account";
const ADDRESS: &str = "address";

impl Subjects {
    pub fn new(account: &str, address: Option<std::net::IpAddr>) -> Self {
        let address = address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        Self {
            account: subject_hash(ACCOUNT, account),
            address: subject_hash(ADDRESS, &address),
        }
    }
}

/// Both policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub account: Policy,
    pub address: Policy,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            account: Policy::ACCOUNT,
            address: Policy::ADDRESS,
        }
    }
}

/// The outcome of [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Counted as a failure at this time unless [`succeeded`] takes it back.
    Reserved(DateTime<Utc>),
    Locked {
        until: DateTime<Utc>,
    },
}

async fn load(conn: &mut PgConnection, scope: &str, key: &[u8]) -> sqlx::Result<State> {
    sqlx::query(
        "INSERT INTO login_throttle (scope, key_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    let (failures, lockouts, locked_until): (Vec<DateTime<Utc>>, i32, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT failures, lockouts, locked_until FROM login_throttle
             WHERE scope = $1 AND key_hash = $2 FOR UPDATE",
        )
        .bind(scope)
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    Ok(State {
        failures,
        lockouts: u32::try_from(lockouts).unwrap_or(0),
        locked_until,
    })
}

async fn store(
    conn: &mut PgConnection,
    scope: &str,
    key: &[u8],
    state: &State,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE login_throttle SET failures = $3, lockouts = $4, locked_until = $5, updated_at = $6
         WHERE scope = $1 AND key_hash = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(&state.failures)
    .bind(i32::try_from(state.lockouts).unwrap_or(i32::MAX))
    .bind(state.locked_until)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Checks both subjects and, if neither is locked, counts the attempt against both, in
/// one transaction (rows locked in a fixed order: account, then address).
pub async fn check(
    pool: &PgPool,
    subjects: &Subjects,
    policies: &Policies,
    now: DateTime<Utc>,
) -> sqlx::Result<Attempt> {
    let mut tx = pool.begin().await?;
    let account = load(&mut tx, ACCOUNT, &subjects.account).await?;
    let address = load(&mut tx, ADDRESS, &subjects.address).await?;
    let (account_decision, account_next) = reserve(account, now, &policies.account);
    let (address_decision, address_next) = reserve(address, now, &policies.address);
    let outcome = match (account_decision, address_decision) {
        (Decision::Allow, Decision::Allow) => {
            store(&mut tx, ACCOUNT, &subjects.account, &account_next, now).await?;
            store(&mut tx, ADDRESS, &subjects.address, &address_next, now).await?;
            Attempt::Reserved(now)
        }
        // A refusal counts against neither; only a lockout that begins now is stored.
        (account_decision, address_decision) => {
            let mut until = now;
            if let Decision::Locked { until: at } = account_decision {
                store(&mut tx, ACCOUNT, &subjects.account, &account_next, now).await?;
                until = until.max(at);
            }
            if let Decision::Locked { until: at } = address_decision {
                store(&mut tx, ADDRESS, &subjects.address, &address_next, now).await?;
                until = until.max(at);
            }
            Attempt::Locked { until }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Takes back an attempt whose password was right: the account starts afresh, the
/// address loses just this attempt.
pub async fn succeeded(
    pool: &PgPool,
    subjects: &Subjects,
    attempted_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    forget_account_in(&mut tx, &subjects.account, now).await?;
    let address = load(&mut tx, ADDRESS, &subjects.address).await?;
    store(
        &mut tx,
        ADDRESS,
        &subjects.address,
        &address_succeeded(address, attempted_at),
        now,
    )
    .await?;
    tx.commit().await
}

async fn forget_account_in(
    conn: &mut PgConnection,
    key: &[u8],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE login_throttle SET failures = '{}', lockouts = 0, locked_until = NULL, updated_at = $2
         WHERE scope = 'account' AND key_hash = $1",
    )
    .bind(key)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Lifts an account's lockout and forgets its failures (after a password reset, which
/// proves control of the mailbox).
pub async fn forget_account(
    conn: &mut PgConnection,
    email: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    forget_account_in(conn, &subject_hash(ACCOUNT, email), now).await
}

/// Deletes rows that no longer hold anything that could matter: untouched for longer
/// than the window and the lockout memory, and not locked. Returns how many went.
pub async fn prune(pool: &PgPool, policies: &Policies, now: DateTime<Utc>) -> sqlx::Result<u64> {
    let keep = [policies.account, policies.address]
        .iter()
        .map(|p| p.window.max(p.memory))
        .max()
        .unwrap_or(Policy::ACCOUNT.memory);
    let cutoff = now - chrono(keep);
    let done = sqlx::query(
        "DELETE FROM login_throttle
         WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)",
    )
    .bind(cutoff)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy::ACCOUNT;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn mins(n: i64) -> chrono::Duration {
        chrono::Duration::minutes(n)
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let hours = |n| backoff(n, &P).as_secs() / 3600;
        assert_eq!(
            [hours(1), hours(2), hours(3), hours(4), hours(5)],
            [1, 2, 4, 8, 16]
        );
        assert_eq!(hours(6), 24, "capped at a day");
        assert_eq!(hours(1000), 24, "no overflow");
        assert_eq!(backoff(0, &P), P.lockout_base);
    }

    #[test]
    fn the_eleventh_attempt_in_an_hour_is_locked_out() {
        let mut state = State::default();
        for i in 0..10 {
            let (decision, next) = reserve(state, t0() + mins(i), &P);
            assert_eq!(decision, Decision::Allow, "attempt {}", i + 1);
            state = next;
        }
        let (decision, state) = reserve(state, t0() + mins(10), &P);
        // The first failure was at 0:00, so the window rule holds it until 1:00; the
        // first lockout (1 h from 0:10) is longer.
        assert_eq!(
            decision,
            Decision::Locked {
                until: t0() + mins(70)
            }
        );
        assert_eq!(state.lockouts, 1);
        assert!(state.failures.is_empty());
        // Still locked just before the end, whatever the attempt.
        let (decision, _) = reserve(state.clone(), t0() + mins(69), &P);
        assert!(matches!(decision, Decision::Locked { .. }));
        // Free again afterwards; the next ten failures lead to a lockout twice as long.
        let mut state = state;
        for i in 0..10 {
            let (decision, next) = reserve(state, t0() + mins(70 + i), &P);
            assert_eq!(decision, Decision::Allow);
            state = next;
        }
        let (decision, state) = reserve(state, t0() + mins(80), &P);
        assert_eq!(
            decision,
            Decision::Locked {
                until: t0() + mins(80 + 120)
            }
        );
        assert_eq!(state.lockouts, 2);
    }

    #[test]
    fn the_window_slides() {
        let mut state = State::default();
        for i in 0..10 {
            state = reserve(state, t0() + mins(i * 6), &P).1; // 0:00 … 0:54
        }
        // At 1:00 the failure of 0:00 has left the window: one more is allowed, not two.
        let (decision, state) = reserve(state, t0() + mins(60), &P);
        assert_eq!(decision, Decision::Allow);
        let (decision, _) = reserve(state, t0() + mins(61), &P);
        assert!(matches!(decision, Decision::Locked { .. }));
    }

    #[test]
    fn lockouts_are_forgotten_after_a_quiet_day_or_a_success() {
        let state = State {
            failures: Vec::new(),
            lockouts: 4,
            locked_until: Some(t0()),
        };
        let (_, later) = reserve(state.clone(), t0() + mins(60 * 25), &P);
        assert_eq!(later.lockouts, 0);
        let (_, soon) = reserve(state, t0() + mins(60), &P);
        assert_eq!(soon.lockouts, 4);
        assert_eq!(account_succeeded(), State::default());
    }

    #[test]
    fn a_success_takes_back_only_its_own_attempt_at_an_address() {
        let (_, state) = reserve(State::default(), t0(), &Policy::ADDRESS);
        let (_, state) = reserve(state, t0() + mins(1), &Policy::ADDRESS);
        let state = address_succeeded(state, t0() + mins(1));
        assert_eq!(state.failures, [t0()]);
        let state = address_succeeded(state, t0() + mins(5));
        assert_eq!(state.failures, [t0()], "an unknown attempt changes nothing");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(
            retry_after_secs(t0() + chrono::Duration::milliseconds(1500), t0()),
            2
        );
        assert_eq!(retry_after_secs(t0(), t0()), 1);
        assert_eq!(retry_after_secs(t0() + mins(60), t0()), 3600);
    }
}
