//! Time, passed in rather than read from the wall inside rules.
//!
//! Every rule that depends on time (token expiry, grace windows, back-off)
//! asks a [`Clock`], so tests can move time forward instead of sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
#[derive(Clone)]
pub struct Clock(Arc<ClockInner>);

enum ClockInner {
    System,
    Manual(Mutex<DateTime<Utc>>),
}

impl Clock {
    /// The wall clock, for production.
    pub fn system() -> Self {
        Self(Arc::new(ClockInner::System))
    }

    /// A clock that only moves when told to, for tests.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self(Arc::new(ClockInner::Manual(Mutex::new(start))))
    }

    /// The current instant, truncated to microseconds so that a value read
    /// back from any database compares equal to the one written.
    pub fn now(&self) -> DateTime<Utc> {
        let now = match &*self.0 {
            ClockInner::System => Utc::now(),
            ClockInner::Manual(at) => *at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
        let micros = now.timestamp_micros();
        DateTime::from_timestamp_micros(micros).unwrap_or(now)
    }

    /// Moves a manual clock forward; the system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let ClockInner::Manual(at) = &*self.0 {
            let mut at = at.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *at += by;
        }
    }

    /// Sets a manual clock to an instant; the system clock ignores it.
    pub fn set(&self, to: DateTime<Utc>) {
        if let ClockInner::Manual(at) = &*self.0 {
            *at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            ClockInner::System => f.write_str("Clock::System"),
            ClockInner::Manual(_) => f.write_str("Clock::Manual"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::hours(2));
        assert_eq!(clock.now(), start + Duration::hours(2));
    }
}
