//! Passwords: the policy a new password must meet, and argon2id hashing with a bounded
//! number of hashes in flight.
//!
//! The policy follows NIST SP 800-63B rather than composition rules: a length of 12 to
//! 128 characters, not the account's email address, and not one of the most common
//! passwords (`data/common-passwords.txt`, embedded). No character classes are demanded.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Shortest accepted password, in characters (Unicode scalar values).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password, in characters: long enough for any passphrase, short
/// enough that hashing cost stays bounded.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The most common passwords, lower case, most common first (see `data/README.md`).
static COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim_end)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// Whether the password, compared without regard to case, is on the common list.
pub fn is_common(password: &str) -> bool {
    common_passwords().contains(password.to_lowercase().as_str())
}

/// How many passwords the shipped list holds (for the README and a test).
pub fn common_list_len() -> usize {
    common_passwords().len()
}

/// The policy for a new password of the account `email` (as typed: it is compared
/// trimmed and without regard to case); `Err` holds the message for the password field.
pub fn check_policy(password: &str, email: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters (got {chars}); a few unrelated words make a good one"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "must be at most {MAX_PASSWORD_CHARS} characters (got {chars})"
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if password.trim().to_lowercase() == email.trim().to_lowercase() {
        return Err("must not be your email address".into());
    }
    if is_common(password) {
        return Err("is one of the most commonly used passwords; choose another".into());
    }
    Ok(())
}

/// Argon2id cost parameters. New hashes use the configured ones; a stored hash made with
/// weaker ones is replaced at the next successful log-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB (`ARGON2_MEMORY_KIB`).
    pub memory_kib: u32,
    /// Passes over the memory (`ARGON2_ITERATIONS`).
    pub iterations: u32,
    /// Lanes (`ARGON2_PARALLELISM`).
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP Password Storage Cheat Sheet's minimum for argon2id: 19 MiB, 2 iterations, 1 lane.
    pub const OWASP_MINIMUM: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// What the service uses unless configured otherwise.
    pub const DEFAULT: Self = Self::OWASP_MINIMUM;

    /// Whether these parameters cost less than `other` in any dimension.
    pub fn weaker_than(&self, other: &Self) -> bool {
        self.memory_kib < other.memory_kib
            || self.iterations < other.iterations
            || self.parallelism < other.parallelism
    }

    /// Whether these meet OWASP's minimum (the service warns at start-up when not).
    pub fn meets_owasp_minimum(&self) -> bool {
        !self.weaker_than(&Self::OWASP_MINIMUM)
    }

    fn argon2(&self) -> anyhow::Result<Params> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters {self:?}: {e}"))
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Mismatch,
    /// The password is right; `needs_rehash` when the hash was made with weaker
    /// parameters (or another algorithm) than the configured ones.
    Match {
        needs_rehash: bool,
    },
}

/// Hashes and verifies passwords on the blocking pool, at most `concurrency` at a time
/// (each argon2 hash holds `memory_kib` of memory while it runs).
#[derive(Debug, Clone)]
pub struct Hasher {
    params: HashParams,
    argon: Params,
    /// A hash of a random password with the configured parameters: unknown emails are
    /// verified against it, so they cost the same time as known ones.
    dummy: Arc<str>,
    permits: Arc<Semaphore>,
}

impl Hasher {
    /// Builds the hasher and its dummy hash (one hash's worth of CPU time).
    pub fn new(params: HashParams, concurrency: usize) -> anyhow::Result<Self> {
        let argon = params.argon2()?;
        let dummy_password = crate::tokens::random_token();
        let dummy = hash_with(&argon, &dummy_password)?;
        Ok(Self {
            params,
            argon,
            dummy: dummy.into(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        })
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with a fresh random salt.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let argon = self.argon.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_with(&argon, &password))
            .await
            .context("the hashing task failed")?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no
    /// stored hash (an unknown email): the answer is then always a mismatch, after the
    /// same work.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> anyhow::Result<Verification> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy.clone(), Arc::from);
        let password = password.to_owned();
        let params = self.params;
        let outcome = tokio::task::spawn_blocking(move || verify_with(&password, &stored, &params))
            .await
            .context("the verifying task failed")??;
        Ok(if known {
            outcome
        } else {
            Verification::Mismatch
        })
    }
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    hasher(params)
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

fn verify_with(
    password: &str,
    stored: &str,
    configured: &HashParams,
) -> anyhow::Result<Verification> {
    let hash = PasswordHash::new(stored)
        .map_err(|e| anyhow::anyhow!("a stored password hash does not parse: {e}"))?;
    // The hash's own parameters are used, whatever is configured now.
    if Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_err()
    {
        return Ok(Verification::Mismatch);
    }
    Ok(Verification::Match {
        needs_rehash: needs_rehash(&hash, configured),
    })
}

/// Whether a stored hash is weaker than the configured parameters, or not argon2id v19.
fn needs_rehash(hash: &PasswordHash, configured: &HashParams) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.version != Some(Version::V0x13.into())
    {
        return true;
    }
    match Params::try_from(hash) {
        Ok(stored) => HashParams {
            memory_kib: stored.m_cost(),
            iterations: stored.t_cost(),
            parallelism: stored.p_cost(),
        }
        .weaker_than(configured),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so that the tests are fast.
    const LOW: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn defaults_meet_the_owasp_minimum() {
        let d = HashParams::default();
        assert!(d.memory_kib >= 19_456, "{d:?}");
        assert!(d.iterations >= 2, "{d:?}");
        assert!(d.parallelism >= 1, "{d:?}");
        assert!(d.meets_owasp_minimum());
        assert!(!LOW.meets_owasp_minimum());
    }

    #[test]
    fn the_policy_bounds_length_in_characters() {
        let e = "ann@example.com";
        assert!(
            check_policy("short words", e)
                .unwrap_err()
                .contains("at least 12")
        );
        assert!(check_policy("correct horse", e).is_ok());
        // 12 characters, 24 bytes: length counts characters, not bytes.
        assert!(check_policy("ééééééééééé1", e).is_ok());
        assert!(check_policy(&"x".repeat(128), e).is_ok());
        assert!(
            check_policy(&"x".repeat(129), e)
                .unwrap_err()
                .contains("at most 128")
        );
        assert!(check_policy("tab\tinside password", e).is_err());
    }

    #[test]
    fn the_policy_refuses_the_email_and_common_passwords() {
        let e = "ann.long.name@example.com";
        assert!(
            check_policy("Ann.Long.Name@Example.com", e)
                .unwrap_err()
                .contains("email")
        );
        assert!(is_common("qwertyuiop123"), "a well-known one");
        assert!(is_common("QwertyUIOP123"), "compared without case");
        assert!(
            check_policy("1q2w3e4r5t6y", e)
                .unwrap_err()
                .contains("common")
        );
        assert!(
            check_policy("qwerty123456", e)
                .unwrap_err()
                .contains("common")
        );
        assert!(!is_common("violet staple gun 1987"));
        assert!(common_list_len() > 10_000, "{}", common_list_len());
    }

    #[test]
    fn hashes_are_argon2id_with_the_configured_parameters() {
        let params = LOW.argon2().unwrap();
        let hash = hash_with(&params, "violet staple gun").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        let again = hash_with(&params, "violet staple gun").unwrap();
        assert_ne!(hash, again, "each hash has its own salt");
        assert_eq!(
            verify_with("violet staple gun", &hash, &LOW).unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            verify_with("violet staple gum", &hash, &LOW).unwrap(),
            Verification::Mismatch
        );
    }

    #[test]
    fn a_hash_weaker_than_the_configuration_needs_rehashing() {
        let hash = hash_with(&LOW.argon2().unwrap(), "violet staple gun").unwrap();
        let raised = HashParams {
            memory_kib: 128,
            ..LOW
        };
        assert_eq!(
            verify_with("violet staple gun", &hash, &raised).unwrap(),
            Verification::Match { needs_rehash: true }
        );
        let more_passes = HashParams {
            iterations: 2,
            ..LOW
        };
        assert!(LOW.weaker_than(&more_passes));
        assert!(
            !more_passes.weaker_than(&LOW),
            "lowering parameters never forces a rehash"
        );
    }

    #[tokio::test]
    async fn unknown_accounts_never_match_even_the_dummy_password() {
        let hasher = Hasher::new(LOW, 2).unwrap();
        let stored = hasher.hash("violet staple gun").await.unwrap();
        assert_eq!(
            hasher
                .verify("violet staple gun", Some(&stored))
                .await
                .unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        let dummy = hasher.dummy.to_string();
        assert_eq!(
            hasher.verify("anything", None).await.unwrap(),
            Verification::Mismatch
        );
        assert!(dummy.starts_with("$argon2id$"));
    }
}
