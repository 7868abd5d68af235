//! Seats taken and freed per license and UTC day, written with the changes and read by the
//! console's usage charts (at most 365 rows a license page, where grouping the audit log
//! cost tens of milliseconds at 100,000 seats).
//!
//! Inside a group commit the journal's moves are added up per batch and written after the
//! batch's jobs, one upsert per license and day ([`crate::db::day_counts`]); outside the
//! writer a move is written at once.

use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::db::DbConn;
use crate::db::day_counts::{DAY, SEAT_MOVES};
use crate::db::schema::seat_moves_daily;
use crate::journal::ChangeKind;

/// Seats taken and freed on one day.
#[derive(Debug, Clone, Queryable)]
pub struct DayMoves {
    /// Day number (unix seconds / 86,400).
    pub day: i64,
    pub taken: i64,
    pub freed: i64,
}

/// Ends the batch's adding up and writes its moves, in key order.
pub fn flush(conn: &mut DbConn) -> QueryResult<()> {
    for ((license_id, day), (taken, freed)) in SEAT_MOVES.with(|c| c.take()) {
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
    if SEAT_MOVES.with(|c| c.add(license_id, at, taken, freed)) {
        return Ok(());
    }
    upsert(conn, license_id, at.div_euclid(DAY), taken, freed)
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
