//! The lockout of guessed seat credentials: after [`MAX_FAILURES`] wrong return tokens (or
//! proofs sent for a seat that has no key) within an hour, every reissue and return of it
//! answers 429 `rate_limited` — even with the right token — until the oldest failure is an
//! hour old.
//! Failures are rows in the database, so the lockout holds across instances and restarts.
//!
//! Only seats without a device key (the return-token path) are locked: a token is a secret
//! that can be guessed, a proof is an Ed25519 signature that cannot. Locking a seat with a
//! key would only let anyone who knows its seat id keep the real device from reissue and
//! return with five bad proofs an hour, so its proofs are checked every time and their
//! failures are neither counted nor stored (the device API's rate limit bounds the tries).

use diesel::prelude::*;

use super::SeatError;
use crate::app::App;
use crate::db::DbConn;
use crate::db::schema::auth_failures;

/// Failures a seat may have in [`WINDOW_SECS`].
pub const MAX_FAILURES: i64 = 5;
/// Length of the sliding window failures are counted in, in seconds; a locked seat opens again
/// when its oldest failure in the window is this old.
pub const WINDOW_SECS: i64 = 3600;

/// Runs `verify` (the credential check of `seat`) unless the seat is locked, recording a
/// failure when it fails. A seat with a device key is never locked: see the module docs.
pub(super) fn guard<T>(
    app: &App,
    seat: &crate::db::models::Seat,
    now: i64,
    verify: impl FnOnce() -> Result<T, SeatError>,
) -> Result<T, SeatError> {
    if seat.device_jwk.is_some() {
        return verify();
    }
    check(app, &seat.id, now)?;
    note(app, seat, now, verify())
}

/// Refuses a seat that had [`MAX_FAILURES`] failures in the last hour.
fn check(app: &App, seat_id: &str, now: i64) -> Result<(), SeatError> {
    let mut conn = app.db.conn()?;
    let recent: Vec<i64> = auth_failures::table
        .filter(auth_failures::seat_id.eq(seat_id))
        .filter(auth_failures::at.gt(now - WINDOW_SECS))
        .select(auth_failures::at)
        .order(auth_failures::at)
        .load(&mut *conn)?;
    if recent.len() as i64 >= MAX_FAILURES {
        let oldest = recent.first().copied().unwrap_or(now);
        return Err(SeatError::TooManyFailures {
            seat: seat_id.to_owned(),
            retry_after: (oldest + WINDOW_SECS - now).max(1),
        });
    }
    Ok(())
}

/// Records a failed credential for `seat_id` when `result` is one, and passes it on.
fn note<T>(
    app: &App,
    seat: &crate::db::models::Seat,
    now: i64,
    result: Result<T, SeatError>,
) -> Result<T, SeatError> {
    if let Err(SeatError::InvalidReturnToken | SeatError::InvalidDeviceProof(_)) = &result {
        let seat_id = seat.id.clone();
        app.db.write(&seat.license_id.clone(), move |conn| {
            diesel::insert_into(auth_failures::table)
                .values((
                    auth_failures::seat_id.eq(&seat_id),
                    auth_failures::at.eq(now),
                ))
                .execute(conn)
                .map(drop)
                .map_err(SeatError::from)
        })?;
    }
    result
}

/// Forgets failures older than the window (with the proof pruning job).
pub fn prune(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    diesel::delete(auth_failures::table.filter(auth_failures::at.le(now - WINDOW_SECS)))
        .execute(conn)
}
