//! Time for the whole server: one [`Clock`] on the application, so every rule reads "now" from
//! the same place and tests can move it, plus the clock watch of DESIGN §6: the highest time
//! seen is kept in memory and in the database, and when now is more than `clock.tolerance`
//! behind it, nothing is signed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use diesel::prelude::*;

use crate::db::schema::server_state;
use crate::db::{Database, DbError};

const HIGH_WATER: &str = "clock_high_water";

/// Seconds added to the system clock by debug builds only, so integration tests can run the
/// real binary in the future or the past. Release builds ignore it: time is not configurable
/// in production.
pub const TEST_OFFSET_ENV: &str = "SEATKEEP_TEST_CLOCK_OFFSET";

/// The clock went back too far.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the server clock is {behind_secs} s behind the latest time seen; signing is paused until it is corrected"
)]
pub struct ClockUntrusted {
    /// How far behind, in seconds.
    pub behind_secs: i64,
}

impl ClockUntrusted {
    /// The stable problem code (DESIGN §5).
    pub fn code(&self) -> seatkeep_device::ProblemCode {
        seatkeep_device::ProblemCode::ClockUntrusted
    }
}

/// Where unix time comes from.
pub trait TimeSource: Send + Sync + std::fmt::Debug {
    /// Unix seconds.
    fn now(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTime;

impl TimeSource for SystemTime {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The system clock shifted by a fixed number of seconds.
#[derive(Debug, Clone, Copy)]
pub struct OffsetTime(pub i64);

impl TimeSource for OffsetTime {
    fn now(&self) -> i64 {
        SystemTime.now().saturating_add(self.0)
    }
}

/// A clock that only moves when told to (unit tests).
#[derive(Debug, Default)]
pub struct ManualTime(AtomicI64);

impl ManualTime {
    /// A clock standing at `now`.
    pub fn at(now: i64) -> Self {
        Self(AtomicI64::new(now))
    }

    /// Moves the clock to `now` (forward or back).
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::Relaxed);
    }
}

impl TimeSource for ManualTime {
    fn now(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The source the binary uses: the system clock, shifted by [`TEST_OFFSET_ENV`] in debug
/// builds.
pub fn default_source() -> Arc<dyn TimeSource> {
    if cfg!(debug_assertions)
        && let Some(offset) = std::env::var(TEST_OFFSET_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
    {
        return Arc::new(OffsetTime(offset));
    }
    Arc::new(SystemTime)
}

/// The application's clock: a time source and the watch over it.
#[derive(Debug)]
pub struct Clock {
    source: Arc<dyn TimeSource>,
    high_water: AtomicI64,
    tolerance_secs: i64,
}

impl Clock {
    /// A clock reading `source`, refusing to sign when it is more than `tolerance` behind the
    /// highest time seen.
    pub fn new(source: Arc<dyn TimeSource>, tolerance: Duration) -> Self {
        Self {
            source,
            high_water: AtomicI64::new(0),
            tolerance_secs: i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.source.now()
    }

    /// Now, when it is trusted for signing: not more than the tolerance behind the highest
    /// time seen. A trusted reading raises the mark.
    pub fn trusted_now(&self) -> Result<i64, ClockUntrusted> {
        let now = self.now();
        self.check(now)?;
        Ok(now)
    }

    /// Checks `now` against the high-water mark and raises the mark when the clock is trusted.
    pub fn check(&self, now: i64) -> Result<(), ClockUntrusted> {
        let high = self.high_water.load(Ordering::Relaxed);
        if now.saturating_add(self.tolerance_secs) < high {
            return Err(ClockUntrusted {
                behind_secs: high - now,
            });
        }
        self.high_water.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// Merges the stored mark into memory and stores ours when the clock is trusted, so every
    /// instance (and the next start) knows the highest time any of them saw.
    /// Blocking: run off the async workers.
    pub fn sync(&self, db: &Database) -> Result<(), DbError> {
        let mut conn = db.conn()?;
        let stored: i64 = server_state::table
            .find(HIGH_WATER)
            .select(server_state::value)
            .get_result(&mut *conn)?;
        self.high_water.fetch_max(stored, Ordering::Relaxed);
        let now = self.now();
        if let Err(untrusted) = self.check(now) {
            tracing::error!(%untrusted, "clock untrusted: device keys are not signed until the clock is corrected");
            return Ok(());
        }
        diesel::update(
            server_state::table
                .filter(server_state::name.eq(HIGH_WATER))
                .filter(server_state::value.lt(now)),
        )
        .set(server_state::value.eq(now))
        .execute(&mut *conn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_clock_gone_back() {
        let time = Arc::new(ManualTime::at(1_000));
        let clock = Clock::new(time.clone(), Duration::from_secs(100));
        assert_eq!(clock.trusted_now(), Ok(1_000));
        time.set(950);
        assert_eq!(clock.trusted_now(), Ok(950));
        time.set(899);
        assert_eq!(
            clock.trusted_now(),
            Err(ClockUntrusted { behind_secs: 101 })
        );
        time.set(2_000);
        assert_eq!(clock.trusted_now(), Ok(2_000));
    }

    #[test]
    fn offset_time_shifts_the_system_clock() {
        let shifted = OffsetTime(3_600).now() - SystemTime.now();
        assert!((3_599..=3_601).contains(&shifted), "{shifted}");
    }
}
