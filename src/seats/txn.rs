//! How the seat operations touch the database, so the operations themselves read as rules:
//! [`read`] lends a pooled connection for one closure, writes go through
//! [`crate::db::Database::write`] (the group-commit writer), and [`settle`] retries an
//! operation that lost a race to a concurrent change of the same seat.

use diesel::prelude::*;

use super::SeatError;
use crate::app::App;
use crate::db::models::Seat;
use crate::db::schema::seats;
use crate::db::{DbConn, DbError};

/// How often an operation is tried again after losing a race.
const RACE_RETRIES: usize = 5;

/// Why a write transaction was abandoned.
pub(super) enum TxnError {
    /// A concurrent request changed the same seat first; read again and retry.
    LostRace,
    /// A real error.
    Seat(SeatError),
}

impl From<diesel::result::Error> for TxnError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Seat(e.into())
    }
}

impl From<DbError> for TxnError {
    fn from(e: DbError) -> Self {
        Self::Seat(SeatError::Db(e))
    }
}

impl From<crate::clock::ClockUntrusted> for TxnError {
    fn from(e: crate::clock::ClockUntrusted) -> Self {
        Self::Seat(e.into())
    }
}

impl From<SeatError> for TxnError {
    fn from(e: SeatError) -> Self {
        Self::Seat(e)
    }
}

/// Runs `attempt` (read, decide, sign, write) until it does not lose a race; `what` names the
/// contended thing for the error when it loses too often.
pub(super) fn settle<T>(
    what: &str,
    mut attempt: impl FnMut() -> Result<T, TxnError>,
) -> Result<T, SeatError> {
    for _ in 0..RACE_RETRIES {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(TxnError::LostRace) => continue,
            Err(TxnError::Seat(e)) => return Err(e),
        }
    }
    Err(SeatError::Db(DbError::Unavailable(format!(
        "too much contention on {what}; retry"
    ))))
}

/// Runs `f` on a pooled connection, returned to the pool as soon as `f` is done (never held
/// while signing or waiting for a commit).
pub(super) fn read<T>(
    app: &App,
    f: impl FnOnce(&mut DbConn) -> Result<T, SeatError>,
) -> Result<T, SeatError> {
    let mut conn = app.db.conn()?;
    f(&mut conn)
}

/// A seat by id (an id that cannot be valid never reaches the query).
pub(super) fn find_seat(conn: &mut DbConn, seat_id: &str) -> Result<Seat, SeatError> {
    super::rules::validate_seat_id(seat_id)?;
    seats::table
        .find(seat_id)
        .select(Seat::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| SeatError::UnknownSeat(seat_id.to_owned()))
}
