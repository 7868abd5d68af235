//! Units and packets issued per metered license and UTC day, written with each packet and
//! read by the console's pool charts (at most 365 rows a license page, where grouping the
//! packets would grow with every packet ever issued). Inside a group commit they are added
//! up per batch and written after its jobs, one upsert per license and day, as the seat
//! moves are ([`crate::db::day_counts`]).

use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::db::DbConn;
use crate::db::day_counts::{DAY, METER_ISSUED};
use crate::db::schema::meter_issued_daily;

/// What one day issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct DayIssued {
    /// Day number (unix seconds / 86,400).
    pub day: i64,
    pub units: i64,
}

/// Counts one packet of `units` issued for `license_id` at `at`.
pub fn record(conn: &mut DbConn, license_id: &str, at: i64, units: i64) -> QueryResult<()> {
    if METER_ISSUED.with(|c| c.add(license_id, at, units, 1)) {
        return Ok(());
    }
    upsert(conn, license_id, at.div_euclid(DAY), units, 1)
}

/// Ends the batch's adding up and writes what it issued, in key order.
pub fn flush(conn: &mut DbConn) -> QueryResult<()> {
    for ((license_id, day), (units, packets)) in METER_ISSUED.with(|c| c.take()) {
        upsert(conn, &license_id, day, units, packets)?;
    }
    Ok(())
}

fn upsert(
    conn: &mut DbConn,
    license_id: &str,
    day: i64,
    units: i64,
    packets: i64,
) -> QueryResult<()> {
    let row = (
        meter_issued_daily::license_id.eq(license_id),
        meter_issued_daily::day.eq(day),
        meter_issued_daily::units.eq(units),
        meter_issued_daily::packets.eq(packets),
    );
    crate::on_backend!(conn, |c| diesel::insert_into(meter_issued_daily::table)
        .values(row)
        .on_conflict((meter_issued_daily::license_id, meter_issued_daily::day))
        .do_update()
        .set((
            meter_issued_daily::units
                .eq(meter_issued_daily::units + excluded(meter_issued_daily::units)),
            meter_issued_daily::packets
                .eq(meter_issued_daily::packets + excluded(meter_issued_daily::packets)),
        ))
        .execute(c))?;
    Ok(())
}

/// What `license_id` issued on each day from `since` (unix seconds) on, oldest first; days
/// that issued nothing have no row.
pub fn by_day(conn: &mut DbConn, license_id: &str, since: i64) -> QueryResult<Vec<DayIssued>> {
    meter_issued_daily::table
        .filter(meter_issued_daily::license_id.eq(license_id))
        .filter(meter_issued_daily::day.ge(since.div_euclid(DAY)))
        .order(meter_issued_daily::day.asc())
        .select((meter_issued_daily::day, meter_issued_daily::units))
        .load(conn)
}
