//! Counts per license and UTC day (seats taken and freed, units and packets issued) that the
//! group-commit writer adds up per batch and writes after the batch's jobs, one upsert per
//! license and day: one upsert per job, each in its own savepoint on the same hot row, cost
//! a third of the new activations per second on PostgreSQL (BENCHMARKS.md).
//!
//! A job's counts are kept apart until its savepoint succeeds, then merged into the batch's;
//! a job that fails takes its counts back with it. Outside the writer (nothing deferred) the
//! caller writes its count at once.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// Seconds of a day.
pub const DAY: i64 = 86_400;

/// (license, day number) → two counts, added up.
pub type Counts = BTreeMap<(String, i64), (i64, i64)>;

/// One kind of day count on the writer's thread.
pub struct DayCounts {
    /// `Some` while the writer runs a batch: the counts of the jobs that succeeded.
    batch: RefCell<Option<Counts>>,
    /// The counts of the job running now.
    job: RefCell<Counts>,
}

impl DayCounts {
    pub const fn new() -> Self {
        Self {
            batch: RefCell::new(None),
            job: RefCell::new(BTreeMap::new()),
        }
    }

    /// Adds `(a, b)` for `license_id` on the day of `at` to the running job; `false` when no
    /// batch is running (the caller writes it itself).
    pub fn add(&self, license_id: &str, at: i64, a: i64, b: i64) -> bool {
        if self.batch.borrow().is_none() {
            return false;
        }
        let mut job = self.job.borrow_mut();
        let entry = job
            .entry((license_id.to_owned(), at.div_euclid(DAY)))
            .or_default();
        entry.0 += a;
        entry.1 += b;
        true
    }

    fn start(&self) {
        *self.batch.borrow_mut() = Some(Counts::new());
        self.job.borrow_mut().clear();
    }

    fn job_done(&self, ok: bool) {
        let job = std::mem::take(&mut *self.job.borrow_mut());
        if let (true, Some(batch)) = (ok, self.batch.borrow_mut().as_mut()) {
            for (key, (a, b)) in job {
                let entry = batch.entry(key).or_default();
                entry.0 += a;
                entry.1 += b;
            }
        }
    }

    /// Ends the batch: its counts in key order (every instance locks these rows in the same
    /// order, after the jobs' own rows).
    pub fn take(&self) -> Counts {
        self.batch.borrow_mut().take().unwrap_or_default()
    }
}

impl Default for DayCounts {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    /// Seats taken and freed (`seats::moves`).
    pub static SEAT_MOVES: DayCounts = const { DayCounts::new() };
    /// Units and packets issued (`meter::daily`).
    pub static METER_ISSUED: DayCounts = const { DayCounts::new() };
}

/// The writer starts a batch: day counts are added up from now on, on this thread.
pub fn start_batch() {
    SEAT_MOVES.with(DayCounts::start);
    METER_ISSUED.with(DayCounts::start);
}

/// The writer's job ended: its counts join the batch's if it succeeded, or are dropped.
pub fn job_done(ok: bool) {
    SEAT_MOVES.with(|c| c.job_done(ok));
    METER_ISSUED.with(|c| c.job_done(ok));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_job_takes_its_counts_back() {
        let counts = DayCounts::new();
        assert!(
            !counts.add("L", 0, 1, 0),
            "nothing is deferred outside a batch"
        );
        counts.start();
        assert!(counts.add("L", 10, 1, 0));
        counts.job_done(true);
        assert!(counts.add("L", 20, 5, 1));
        counts.job_done(false);
        assert!(counts.add("L", DAY + 1, 0, 1));
        counts.job_done(true);
        let taken = counts.take();
        assert_eq!(
            taken.into_iter().collect::<Vec<_>>(),
            vec![(("L".to_owned(), 0), (1, 0)), (("L".to_owned(), 1), (0, 1))]
        );
        assert!(!counts.add("L", 0, 1, 0), "the batch ended");
    }
}
