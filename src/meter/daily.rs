//! Units and packets issued per metered license and UTC day, written in each packet's issuing
//! transaction and read by the console's pool charts (at most 365 rows a license page, where
//! grouping the packets would grow with every packet ever issued).
//!
//! The issuing transaction already holds the license row's lock (the pool's `UPDATE`), so
//! the day's row is locked after it, in the order every change takes.

use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::db::DbConn;
use crate::db::schema::meter_issued_daily;

/// Seconds of a day.
pub const DAY: i64 = 86_400;

/// What one day issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct DayIssued {
    /// Day number (unix seconds / 86,400).
    pub day: i64,
    pub units: i64,
    pub packets: i64,
}

/// Counts one packet of `units` issued for `license_id` at `at`.
pub fn record(conn: &mut DbConn, license_id: &str, at: i64, units: i64) -> QueryResult<()> {
    let row = (
        meter_issued_daily::license_id.eq(license_id),
        meter_issued_daily::day.eq(at.div_euclid(DAY)),
        meter_issued_daily::units.eq(units),
        meter_issued_daily::packets.eq(1),
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
        .select((
            meter_issued_daily::day,
            meter_issued_daily::units,
            meter_issued_daily::packets,
        ))
        .load(conn)
}
