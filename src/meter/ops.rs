//! What operators see and do (`seatkeep usage status | devices | reset-device`): the pool
//! of a license, the use per device, and clearing a flagged device.

use diesel::prelude::*;
use seatkeep_device::meter::MeterTerms;
use serde::Serialize;

use super::{MeterError, pool};
use crate::app::App;
use crate::db::DbConn;
use crate::db::models::{License, Seat};
use crate::db::schema::{meter_issued_daily, meter_packets, seats};
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

fn metered(conn: &mut DbConn, lic: &str) -> Result<(License, MeterTerms), MeterError> {
    let license = crate::licenses::find(conn, lic)?
        .ok_or_else(|| SeatError::UnknownLicense(lic.to_owned()))?;
    let terms =
        super::terms_of(&license)?.ok_or_else(|| MeterError::MeterNotEnabled(lic.to_owned()))?;
    Ok((license, terms))
}

/// The pool of license `lic`.
pub fn status(app: &App, lic: &str) -> Result<PoolStatus, MeterError> {
    let mut conn = app.db.conn()?;
    let (license, terms) = metered(&mut conn, lic)?;
    pool_status(&mut conn, &license, &terms)
}

/// The pool of `license` (as just read), whose meter terms are `terms`.
pub fn pool_status(
    conn: &mut DbConn,
    license: &License,
    terms: &MeterTerms,
) -> Result<PoolStatus, MeterError> {
    let lic = license.id.as_str();
    let (stored_cap, issued) = (license.meter_cap, license.meter_issued);
    // The day counts are written with every packet: summing them reads a row per day, not
    // a row per packet.
    let packets_per_day: Vec<i64> = meter_issued_daily::table
        .filter(meter_issued_daily::license_id.eq(lic))
        .select(meter_issued_daily::packets)
        .load(conn)?;
    let devices_flagged: i64 = seats::table
        .filter(seats::license_id.eq(lic))
        .filter(seats::meter_flag.is_not_null())
        .count()
        .get_result(conn)?;
    Ok(PoolStatus {
        license: lic.to_owned(),
        unit: terms.unit.as_str().to_owned(),
        units: terms.units,
        cap: terms.cap(),
        issued,
        available: pool::available(stored_cap, issued),
        overdraft_percent: terms.overdraft_percent,
        overage: (issued - terms.units).max(0),
        packets: packets_per_day.iter().sum(),
        devices_flagged,
    })
}

/// Every device of license `lic` with its use, by device id.
pub fn devices(app: &App, lic: &str) -> Result<Vec<DeviceUsage>, MeterError> {
    let mut conn = app.db.conn()?;
    metered(&mut conn, lic)?;
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

/// One packet, as the console's seat page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PacketSummary {
    pub seq: i64,
    /// The device key it was issued for (the start of its thumbprint).
    pub device_jkt: String,
    pub amount: i64,
    pub issued_at: i64,
    /// When the device stops accepting it (from the frozen claims).
    pub expires_at: Option<i64>,
    pub request_jti: String,
    /// False while the answer was never signed (a crash between commit and answer): the
    /// device's retry signs the frozen claims.
    pub signed: bool,
}

/// What one seat was issued and reported.
#[derive(Debug, Clone, Serialize)]
pub struct SeatUsage {
    pub packets: i64,
    pub issued: i64,
    /// The newest packets, at most the limit asked for, newest first.
    pub recent: Vec<PacketSummary>,
}

/// The packets of seat `seat_id`: counts over all of them and the newest `limit`.
pub fn seat_usage(conn: &mut DbConn, seat_id: &str, limit: i64) -> Result<SeatUsage, MeterError> {
    let amounts: Vec<i64> = meter_packets::table
        .filter(meter_packets::seat_id.eq(seat_id))
        .select(meter_packets::amount)
        .load(conn)?;
    let rows: Vec<super::issue::PacketRow> = meter_packets::table
        .filter(meter_packets::seat_id.eq(seat_id))
        .order((meter_packets::issued_at.desc(), meter_packets::seq.desc()))
        .limit(limit)
        .select(super::issue::PacketRow::as_select())
        .load(conn)?;
    let recent = rows
        .into_iter()
        .map(|row| PacketSummary {
            expires_at: serde_json::from_str::<seatkeep_device::meter::wire::PacketClaims>(
                &row.claims,
            )
            .ok()
            .map(|c| c.exp),
            device_jkt: row.device_jkt.chars().take(12).collect(),
            signed: row.token.is_some(),
            seq: row.seq,
            amount: row.amount,
            issued_at: row.issued_at,
            request_jti: row.request_jti,
        })
        .collect();
    Ok(SeatUsage {
        packets: i64::try_from(amounts.len()).unwrap_or(i64::MAX),
        issued: amounts.iter().sum(),
        recent,
    })
}
