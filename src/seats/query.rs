//! Reading seats: a seat's state, a device's keys, a license's seats.

use diesel::prelude::*;
use serde::Serialize;

use super::rules::{self, SeatState};
use super::txn::find_seat;
use super::{SeatError, SeatStatus};
use crate::app::App;
use crate::db::DbConn;
use crate::db::models::Seat;
use crate::db::schema::seats;
use crate::licenses as license_store;

/// A seat's state, for devices polling for retirement or revocation.
pub fn status(app: &App, seat_id: &str) -> Result<SeatStatus, SeatError> {
    let mut conn = app.db.conn()?;
    let seat = find_seat(&mut conn, seat_id)?;
    let license = license_store::find(&mut conn, &seat.license_id)?
        .ok_or_else(|| SeatError::UnknownLicense(seat.license_id.clone()))?;
    let mut status = SeatStatus::from(&seat);
    status.state = rules::visible_state(&seat, &license);
    Ok(status)
}

/// One active device key, as the key repository returns it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredKey {
    pub seat: String,
    pub device_key: String,
    /// Device key generation.
    pub generation: i64,
    pub user_name: String,
    pub license: String,
}

/// The active device keys of one user on a device under the license of `key_file`
/// (reinstall). Another user's keys are never returned (DESIGN §5).
pub fn lookup(
    app: &App,
    key_file: &str,
    device_id: &str,
    user_name: &str,
) -> Result<Vec<StoredKey>, SeatError> {
    rules::validate_key_file_text(key_file)?;
    rules::validate_device_id(device_id)?;
    rules::validate_user_name(user_name)?;
    let file = app.verify_presented(key_file)?;
    let mut conn = app.db.conn()?;
    let lic = &file.claims.lic;
    let license = license_store::find(&mut conn, lic)?
        .ok_or_else(|| SeatError::UnknownLicense(lic.clone()))?;
    rules::check_not_revoked(&license)?;
    let rows: Vec<Seat> = seats::table
        .filter(seats::license_id.eq(lic))
        .filter(seats::device_id.eq(device_id))
        .filter(seats::user_name.eq(user_name))
        .filter(seats::state.eq(SeatState::Active.as_str()))
        .select(Seat::as_select())
        .load(&mut *conn)?;
    Ok(rows
        .into_iter()
        .map(|s| StoredKey {
            seat: s.id,
            device_key: s.device_key,
            generation: s.generation,
            user_name: s.user_name,
            license: s.license_id,
        })
        .collect())
}

/// A seat by id (`UnknownSeat` when there is none, `InvalidField` for a malformed id).
pub fn find(conn: &mut DbConn, seat_id: &str) -> Result<Seat, SeatError> {
    find_seat(conn, seat_id)
}
