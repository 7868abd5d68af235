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

/// Seats of a license, optionally filtered by device id or user name (substring).
pub fn list(conn: &mut DbConn, lic: &str, search: Option<&str>) -> QueryResult<Vec<Seat>> {
    let mut query = seats::table
        .filter(seats::license_id.eq(lic))
        .select(Seat::as_select())
        .order((seats::state, seats::device_id))
        .into_boxed();
    if let Some(text) = search.filter(|t| !t.is_empty()) {
        let pattern = like_pattern(text);
        query = query.filter(
            seats::device_id
                .like(pattern.clone())
                .escape('\\')
                .or(seats::user_name.like(pattern).escape('\\')),
        );
    }
    query.load(conn)
}

/// How the console lists a license's seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatSort {
    DeviceId,
    UserName,
    ActivatedAt,
}

/// A page of a license's seats: search, state filter, sort, offset.
#[derive(Debug, Clone)]
pub struct SeatPageQuery<'a> {
    /// Substring of the device id or user name.
    pub search: Option<&'a str>,
    pub state: Option<SeatState>,
    pub sort: SeatSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

fn like_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// Applies the page query's filters to a query on one license's seats (written once for
/// the rows and the count, whose select clauses differ).
macro_rules! filtered {
    ($query:expr, $lic:expr, $q:expr) => {{
        let mut query = $query.filter(seats::license_id.eq($lic)).into_boxed();
        if let Some(state) = $q.state {
            query = query.filter(seats::state.eq(state.as_str()));
        }
        if let Some(text) = $q.search.filter(|t| !t.is_empty()) {
            let pattern = like_pattern(text);
            query = query.filter(
                seats::device_id
                    .like(pattern.clone())
                    .escape('\\')
                    .or(seats::user_name.like(pattern).escape('\\')),
            );
        }
        query
    }};
}

/// One page of a license's seats and how many match in all. Sorted on indexed columns
/// (`(license_id, device_id)`, `(license_id, user_name)`, `(license_id, activated_at)`),
/// device id breaking ties, so a page costs its offset in index steps, not a sort.
pub fn page(conn: &mut DbConn, lic: &str, q: &SeatPageQuery<'_>) -> QueryResult<(Vec<Seat>, i64)> {
    let total: i64 = filtered!(seats::table.count(), lic, q).get_result(conn)?;
    let query = filtered!(seats::table.select(Seat::as_select()), lic, q);
    let query = match (q.sort, q.descending) {
        (SeatSort::DeviceId, false) => query.order(seats::device_id.asc()),
        (SeatSort::DeviceId, true) => query.order(seats::device_id.desc()),
        (SeatSort::UserName, false) => {
            query.order((seats::user_name.asc(), seats::device_id.asc()))
        }
        (SeatSort::UserName, true) => {
            query.order((seats::user_name.desc(), seats::device_id.desc()))
        }
        (SeatSort::ActivatedAt, false) => {
            query.order((seats::activated_at.asc(), seats::device_id.asc()))
        }
        (SeatSort::ActivatedAt, true) => {
            query.order((seats::activated_at.desc(), seats::device_id.desc()))
        }
    };
    let rows = query.offset(q.offset).limit(q.limit).load(conn)?;
    Ok((rows, total))
}

/// A seat by id (`UnknownSeat` when there is none, `InvalidField` for a malformed id).
pub fn find(conn: &mut DbConn, seat_id: &str) -> Result<Seat, SeatError> {
    find_seat(conn, seat_id)
}
