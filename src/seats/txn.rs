//! How the seat operations touch the database, so the operations themselves read as rules:
//! [`read`] lends a pooled connection for one closure, writes go through
//! [`crate::db::Database::write`] (the group-commit writer), and [`settle`] retries an
//! operation that lost a race to a concurrent change of the same seat
//! ([`crate::db::race`], with the seats' retry count).

use diesel::prelude::*;

use super::SeatError;
use crate::app::App;
use crate::db::models::Seat;
use crate::db::schema::seats;
use crate::db::{DbConn, race};

/// How often an operation is tried again after losing a race.
const RACE_RETRIES: usize = 5;

/// A seat write abandoned: lost a race (retry) or failed with a [`SeatError`].
pub(super) type TxnError = race::TxnError<SeatError>;

impl From<crate::clock::ClockUntrusted> for TxnError {
    fn from(e: crate::clock::ClockUntrusted) -> Self {
        Self::Failed(e.into())
    }
}

impl From<SeatError> for TxnError {
    fn from(e: SeatError) -> Self {
        Self::Failed(e)
    }
}

/// Runs `attempt` (read, decide, sign, write) until it does not lose a race; `what` names the
/// contended thing for the error when it loses too often.
pub(super) fn settle<T>(
    what: &str,
    attempt: impl FnMut() -> Result<T, TxnError>,
) -> Result<T, SeatError> {
    race::settle(what, RACE_RETRIES, attempt)
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
