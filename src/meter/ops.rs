//! What operators see and do (`seatkeep usage status | devices | reset-device`): the pool
//! of a license, the use per device, and clearing a flagged device.

use diesel::prelude::*;
use serde::Serialize;

use super::{MeterError, pool};
use crate::app::App;
use crate::db::models::Seat;
use crate::db::schema::{meter_packets, seats};
use crate::journal::{self, Change, ChangeKind};
use crate::seats::SeatError;

/// A license's pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    pub license: String,
    pub unit: String,
    /// Units sold (lifetime total).
    pub units: i64,
    /// What may be issued in all: units and the overdraft.
    pub cap: i64,
    pub issued: i64,
    pub available: i64,
    pub overdraft_percent: i64,
    /// Issued beyond `units` (overage the provider bills).
    pub overage: i64,
    pub packets: i64,
    /// Seats that reported an impossible state and wait for `reset-device`.
    pub devices_flagged: i64,
}

/// One device's use.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceUsage {
    pub seat: String,
    pub device_id: String,
    pub user_name: String,
    pub state: String,
    pub packets: i64,
    /// Units issued to it.
    pub issued: i64,
    /// The highest packet it reported applied.
    pub last_seq: i64,
    /// Units it reported used.
    pub used: i64,
    /// Issued but not reported used: on the device, lapsed, or lost with it.
    pub stranded: i64,
    pub flag: Option<String>,
}

fn metered(app: &App, lic: &str) -> Result<seatkeep_device::meter::MeterTerms, MeterError> {
    let license = crate::licenses::find(&mut *app.db.conn()?, lic)?
        .ok_or_else(|| SeatError::UnknownLicense(lic.to_owned()))?;
    super::terms_of(&license)?.ok_or_else(|| MeterError::MeterNotEnabled(lic.to_owned()))
}

/// The pool of license `lic`.
pub fn status(app: &App, lic: &str) -> Result<PoolStatus, MeterError> {
    let terms = metered(app, lic)?;
    let mut conn = app.db.conn()?;
    let (stored_cap, issued) = pool::figures(&mut conn, lic)?;
    let seat_ids = seats::table
        .filter(seats::license_id.eq(lic))
        .select(seats::id);
    let packets: i64 = meter_packets::table
        .filter(meter_packets::seat_id.eq_any(seat_ids))
        .count()
        .get_result(&mut *conn)?;
    let devices_flagged: i64 = seats::table
        .filter(seats::license_id.eq(lic))
        .filter(seats::meter_flag.is_not_null())
        .count()
        .get_result(&mut *conn)?;
    Ok(PoolStatus {
        license: lic.to_owned(),
        unit: terms.unit.as_str().to_owned(),
        units: terms.units,
        cap: terms.cap(),
        issued,
        available: pool::available(stored_cap, issued),
        overdraft_percent: terms.overdraft_percent,
        overage: (issued - terms.units).max(0),
        packets,
        devices_flagged,
    })
}

/// Every device of license `lic` with its use, by device id.
pub fn devices(app: &App, lic: &str) -> Result<Vec<DeviceUsage>, MeterError> {
    metered(app, lic)?;
    let mut conn = app.db.conn()?;
    let seat_rows: Vec<Seat> = seats::table
        .filter(seats::license_id.eq(lic))
        .order(seats::device_id.asc())
        .select(Seat::as_select())
        .load(&mut *conn)?;
    let packet_rows: Vec<(String, i64)> = meter_packets::table
        .inner_join(seats::table)
        .filter(seats::license_id.eq(lic))
        .select((meter_packets::seat_id, meter_packets::amount))
        .load(&mut *conn)?;
    Ok(seat_rows
        .into_iter()
        .map(|seat| {
            let amounts = packet_rows.iter().filter(|(id, _)| *id == seat.id);
            let (packets, issued) = amounts.fold((0, 0), |(n, sum), (_, amt)| (n + 1, sum + amt));
            DeviceUsage {
                stranded: (issued - seat.reported_used).max(0),
                seat: seat.id,
                device_id: seat.device_id,
                user_name: seat.user_name,
                state: seat.state.as_str().to_owned(),
                packets,
                issued,
                last_seq: seat.reported_last_seq,
                used: seat.reported_used,
                flag: seat.meter_flag,
            }
        })
        .collect())
}

/// Clears a seat's flag and forgets its reports, so the device's next report starts
/// afresh (an operator checked the device: a restored backup, a repaired state file).
/// Audited with `actor`. Returns the reason that was cleared (`None`: it was not flagged).
pub fn reset_device(app: &App, seat_id: &str, actor: &str) -> Result<Option<String>, MeterError> {
    crate::seats::rules::validate_seat_id(seat_id)?;
    let seat: Seat = seats::table
        .find(seat_id)
        .select(Seat::as_select())
        .get_result(&mut *app.db.conn()?)
        .optional()?
        .ok_or_else(|| SeatError::UnknownSeat(seat_id.to_owned()))?;
    let (actor, now) = (actor.to_owned(), app.clock.now());
    app.db.write(&seat.license_id.clone(), move |conn| {
        journal::record(
            conn,
            &Change {
                at: now,
                actor: &actor,
                kind: ChangeKind::UsageDeviceReset,
                license: Some(&seat.license_id),
                seat: Some(&seat.id),
                detail: serde_json::json!({
                    "device_id": seat.device_id,
                    "cleared_flag": seat.meter_flag,
                    "reported_last_seq": seat.reported_last_seq,
                    "reported_used": seat.reported_used,
                }),
            },
        )?;
        diesel::update(seats::table.find(&seat.id))
            .set((
                seats::meter_flag.eq(None::<String>),
                seats::reported_last_seq.eq(0),
                seats::reported_used.eq(0),
            ))
            .execute(conn)?;
        Ok(seat.meter_flag)
    })
}

/// The figures `/metrics` reports per metered license (all instances, from the database).
#[derive(Debug, Clone, Default)]
pub struct UsageGauge {
    pub license: String,
    pub units: i64,
    pub issued: i64,
    pub packets: i64,
    pub devices_flagged: i64,
}

/// [`UsageGauge`]s of every metered license, by license id: three grouped queries.
pub fn gauges(conn: &mut crate::db::DbConn) -> Result<Vec<UsageGauge>, MeterError> {
    use crate::db::schema::licenses;
    use diesel::dsl::count_star;
    let pools: Vec<(String, Option<String>, i64)> = licenses::table
        .filter(licenses::meter_terms.is_not_null())
        .order(licenses::id.asc())
        .select((licenses::id, licenses::meter_terms, licenses::meter_issued))
        .load(conn)?;
    let packets: Vec<(String, i64)> = meter_packets::table
        .inner_join(seats::table)
        .group_by(seats::license_id)
        .select((seats::license_id, count_star()))
        .load(conn)?;
    let flagged: Vec<(String, i64)> = seats::table
        .filter(seats::meter_flag.is_not_null())
        .group_by(seats::license_id)
        .select((seats::license_id, count_star()))
        .load(conn)?;
    let of = |rows: &[(String, i64)], lic: &str| {
        rows.iter().find(|(id, _)| id == lic).map_or(0, |(_, n)| *n)
    };
    Ok(pools
        .into_iter()
        .map(|(license, terms, issued)| UsageGauge {
            units: terms
                .and_then(|t| serde_json::from_str::<seatkeep_device::meter::MeterTerms>(&t).ok())
                .map_or(0, |t| t.units),
            issued,
            packets: of(&packets, &license),
            devices_flagged: of(&flagged, &license),
            license,
        })
        .collect())
}
