//! Seats taken and freed per license and UTC day, written with the changes and read by the
//! console's usage charts (at most 365 rows a license page, where grouping the audit log
//! cost tens of milliseconds at 100,000 seats).
//!
//! Inside a group commit ([`crate::db`]'s writer) the journal's moves are added up per batch
//! and written after the batch's jobs, one upsert per license and day, like the refusal
//! counters: one upsert per grant, each in its own savepoint on the same hot row, cost a
//! third of the new activations per second on PostgreSQL (BENCHMARKS.md). A job that fails
//! takes its moves back with its savepoint. Outside the writer a move is written at once.

use std::cell::RefCell;
use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::db::DbConn;
use crate::db::schema::seat_moves_daily;
use crate::journal::ChangeKind;

/// Seconds of a day.
const DAY: i64 = 86_400;

/// Seats taken and freed on one day.
#[derive(Debug, Clone, Queryable)]
pub struct DayMoves {
    /// Day number (unix seconds / 86,400).
    pub day: i64,
    pub taken: i64,
    pub freed: i64,
}

/// Moves waiting for the end of a batch: (license, day) → (taken, freed).
pub type Pending = BTreeMap<(String, i64), (i64, i64)>;

thread_local! {
    /// Set while the writer thread runs a batch's jobs.
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// The writer starts a batch: moves are added up from now on, on this thread.
pub fn defer() {
    PENDING.with(|p| *p.borrow_mut() = Some(Pending::new()));
}

/// The moves added up so far (to put back if the next job fails).
pub fn snapshot() -> Option<Pending> {
    PENDING.with(|p| p.borrow().clone())
}

/// Puts back what [`snapshot`] saw: the failed job's moves are gone with its savepoint.
pub fn restore(saved: Option<Pending>) {
    PENDING.with(|p| *p.borrow_mut() = saved);
}

/// Ends the batch's adding up and writes its moves, in key order (every instance locks these
/// rows in the same order, after the jobs' own rows).
pub fn flush(conn: &mut DbConn) -> QueryResult<()> {
    let pending = PENDING.with(|p| p.borrow_mut().take()).unwrap_or_default();
    for ((license_id, day), (taken, freed)) in pending {
        upsert(conn, &license_id, day, taken, freed)?;
    }
    Ok(())
}

/// Counts a change of `kind` to a seat of `license_id` at `at` (other kinds are no move).
pub fn record(conn: &mut DbConn, kind: ChangeKind, license_id: &str, at: i64) -> QueryResult<()> {
    let (taken, freed) = match kind {
        ChangeKind::SeatActivated => (1, 0),
        ChangeKind::SeatReturned | ChangeKind::SeatRetired => (0, 1),
        _ => return Ok(()),
    };
    let day = at.div_euclid(DAY);
    let deferred = PENDING.with(|p| match p.borrow_mut().as_mut() {
        Some(pending) => {
            let entry = pending.entry((license_id.to_owned(), day)).or_default();
            entry.0 += taken;
            entry.1 += freed;
            true
        }
        None => false,
    });
    if deferred {
        return Ok(());
    }
    upsert(conn, license_id, day, taken, freed)
}

fn upsert(
    conn: &mut DbConn,
    license_id: &str,
    day: i64,
    taken: i64,
    freed: i64,
) -> QueryResult<()> {
    let row = (
        seat_moves_daily::license_id.eq(license_id),
        seat_moves_daily::day.eq(day),
        seat_moves_daily::taken.eq(taken),
        seat_moves_daily::freed.eq(freed),
    );
    crate::on_backend!(conn, |c| diesel::insert_into(seat_moves_daily::table)
        .values(row)
        .on_conflict((seat_moves_daily::license_id, seat_moves_daily::day))
        .do_update()
        .set((
            seat_moves_daily::taken.eq(seat_moves_daily::taken + excluded(seat_moves_daily::taken)),
            seat_moves_daily::freed.eq(seat_moves_daily::freed + excluded(seat_moves_daily::freed)),
        ))
        .execute(c))?;
    Ok(())
}

/// The moves of `license_id` on each day from `since` (unix seconds) on, oldest first.
pub fn by_day(conn: &mut DbConn, license_id: &str, since: i64) -> QueryResult<Vec<DayMoves>> {
    seat_moves_daily::table
        .filter(seat_moves_daily::license_id.eq(license_id))
        .filter(seat_moves_daily::day.ge(since.div_euclid(DAY)))
        .order(seat_moves_daily::day.asc())
        .select((
            seat_moves_daily::day,
            seat_moves_daily::taken,
            seat_moves_daily::freed,
        ))
        .load(conn)
}
