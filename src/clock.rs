//! Clock watch (DESIGN §6): the highest time seen is kept in memory and in the database;
//! when now is more than `clock.tolerance` behind it, nothing is signed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use diesel::prelude::*;

use crate::db::schema::server_state;
use crate::db::{Database, DbError, now_unix};

const HIGH_WATER: &str = "clock_high_water";

/// The clock went back too far.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the server clock is {behind_secs} s behind the latest time seen; signing is paused until it is corrected"
)]
pub struct ClockUntrusted {
    /// How far behind, in seconds.
    pub behind_secs: i64,
}

/// Tracks the highest time seen.
#[derive(Debug)]
pub struct ClockWatch {
    high_water: AtomicI64,
    tolerance_secs: i64,
}

impl ClockWatch {
    /// A watch with the given tolerance and no history.
    pub fn new(tolerance: Duration) -> Self {
        Self {
            high_water: AtomicI64::new(0),
            tolerance_secs: i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX),
        }
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

    /// Merges the stored mark into memory and stores ours when the clock is trusted.
    /// Blocking: run off the async workers.
    pub fn sync(&self, db: &Database) -> Result<(), DbError> {
        let mut conn = db.conn()?;
        let stored: i64 = server_state::table
            .find(HIGH_WATER)
            .select(server_state::value)
            .get_result(&mut *conn)?;
        self.high_water.fetch_max(stored, Ordering::Relaxed);
        let now = now_unix();
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
        let watch = ClockWatch::new(Duration::from_secs(100));
        watch.check(1_000).unwrap();
        watch.check(950).unwrap();
        assert_eq!(watch.check(899), Err(ClockUntrusted { behind_secs: 101 }));
        watch.check(2_000).unwrap();
    }
}
