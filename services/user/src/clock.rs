//! The service's notion of "now". Every expiry (tokens, lockouts) is computed from it and
//! passed to SQL as a parameter, never taken from the database's `now()`, so that tests can
//! move time forward instead of sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// Wall-clock time, or a manual clock for tests. Cheap to clone; clones share the time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands still at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self {
            manual: Some(Arc::new(Mutex::new(start.trunc_subsecs(6)))),
        }
    }

    /// Now, to the microsecond (PostgreSQL's `timestamptz` resolution, so that a value
    /// read back compares equal to the one written).
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now().trunc_subsecs(6),
            Some(time) => *time
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }

    /// Moves a manual clock forward; the system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(time) = &self.manual {
            let mut time = time
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *time += by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = Utc::now();
        let clock = Clock::manual(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start.trunc_subsecs(6));
        other.advance(Duration::hours(2));
        assert_eq!(clock.now(), start.trunc_subsecs(6) + Duration::hours(2));
        let system = Clock::system();
        system.advance(Duration::days(1));
        assert!(system.now() <= Utc::now());
    }
}
