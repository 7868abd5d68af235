//! Seats taken and freed per license and UTC day: one upsert per seat change, written by the
//! journal in the change's transaction, read by the console's usage charts (at most 365 rows
//! a license page, where grouping the audit log cost tens of milliseconds at 100,000 seats).

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

/// Counts a change of `kind` to a seat of `license_id` at `at` (other kinds are no move).
pub fn record(conn: &mut DbConn, kind: ChangeKind, license_id: &str, at: i64) -> QueryResult<()> {
    let (taken, freed) = match kind {
        ChangeKind::SeatActivated => (1, 0),
        ChangeKind::SeatReturned | ChangeKind::SeatRetired => (0, 1),
        _ => return Ok(()),
    };
    let row = (
        seat_moves_daily::license_id.eq(license_id),
        seat_moves_daily::day.eq(at.div_euclid(DAY)),
        seat_moves_daily::taken.eq(taken),
        seat_moves_daily::freed.eq(freed),
    );
    // Once per seat change, so on the concrete connection (see `on_backend!`).
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
