//! Changes to a held seat: reissue (name change), return (by the device), retire (by an
//! admin).

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::{
    Activation, LIMIT_WINDOW_SECS, RACE_RETRIES, SeatError, SeatStatus, TxnError, action, answer,
    check_return_token, check_usable, find_seat, require_active, sign_device_key,
    validate_user_name,
};
use crate::app::App;
use crate::audit;
use crate::db::models::Seat;
use crate::db::schema::{licenses, seats};
use crate::db::{DbConn, DbError, now_unix};
use crate::keyfile::LicenseModel;
use crate::licenses as license_store;

/// Seconds until the oldest event in the window leaves it.
fn retry_after(oldest: Option<i64>, now: i64) -> i64 {
    oldest.map_or(LIMIT_WINDOW_SECS, |t| (t + LIMIT_WINDOW_SECS - now).max(1))
}

/// Changes the user name on a seat: a new device key with `gen + 1`, at most
/// `reissue_limit` times per 365 days. The same name again returns the current key.
pub fn reissue(
    app: &App,
    seat_id: &str,
    return_token: &str,
    user_name: &str,
) -> Result<Activation, SeatError> {
    validate_user_name(user_name)?;
    let mut conn = app.db.conn()?;
    for _ in 0..RACE_RETRIES {
        let now = now_unix();
        let seat = find_seat(&mut conn, seat_id)?;
        check_return_token(&seat, return_token)?;
        require_active(&seat)?;
        let license = license_store::find(&mut conn, &seat.license_id)?
            .ok_or_else(|| SeatError::UnknownLicense(seat.license_id.clone()))?;
        check_usable(&license, now)?;
        if user_name.is_empty() && license.model != LicenseModel::SingleDevice.as_str() {
            return Err(SeatError::InvalidField {
                field: "user_name",
                reason: "must not be empty for a node_locked license".into(),
            });
        }
        if seat.user_name == user_name {
            return answer(app, &mut conn, &license, &seat, false);
        }
        app.clock.check(now)?;
        let generation = seat.generation + 1;
        let device_key = sign_device_key(
            app,
            &license,
            &seat.id,
            &seat.device_id,
            user_name,
            generation,
            now,
        )?;
        let result = conn.write_transaction(|conn| -> Result<(), TxnError> {
            let (count, oldest) =
                audit::count_since(conn, &seat.id, action::REISSUED, now - LIMIT_WINDOW_SECS)?;
            if count >= license.reissue_limit {
                return Err(SeatError::ReissueLimitReached {
                    seat: seat.id.clone(),
                    limit: license.reissue_limit,
                    retry_after: retry_after(oldest, now),
                }
                .into());
            }
            let changed = diesel::update(
                seats::table
                    .filter(seats::id.eq(&seat.id))
                    .filter(seats::state.eq("active"))
                    .filter(seats::generation.eq(seat.generation)),
            )
            .set((
                seats::user_name.eq(user_name),
                seats::generation.eq(generation),
                seats::device_key.eq(&device_key),
                seats::updated_at.eq(now),
            ))
            .execute(conn)?;
            if changed != 1 {
                return Err(TxnError::LostRace);
            }
            audit::record(
                conn,
                now,
                "device",
                action::REISSUED,
                Some(&license.id),
                Some(&seat.id),
                serde_json::json!({
                    "device_id": seat.device_id,
                    "from_user_name": seat.user_name,
                    "user_name": user_name,
                    "generation": generation,
                }),
            )?;
            Ok(())
        });
        match result {
            Ok(()) => {
                let seat = find_seat(&mut conn, seat_id)?;
                return answer(app, &mut conn, &license, &seat, false);
            }
            Err(TxnError::LostRace) => continue,
            Err(TxnError::Seat(e)) => return Err(e),
        }
    }
    Err(SeatError::Db(DbError::Unavailable(
        "too much contention on one seat; retry".into(),
    )))
}

/// The device gives its seat back (proving it holds the return token), at most
/// `return_limit` times per 365 days.
pub fn return_seat(app: &App, seat_id: &str, return_token: &str) -> Result<SeatStatus, SeatError> {
    let mut conn = app.db.conn()?;
    let seat = find_seat(&mut conn, seat_id)?;
    check_return_token(&seat, return_token)?;
    require_active(&seat)?;
    let limit = license_store::find(&mut conn, &seat.license_id)?.map_or(0, |l| l.return_limit);
    let now = now_unix();
    release(&mut conn, &seat, "returned", "device", now, Some(limit))?;
    Ok(SeatStatus::from(&find_seat(&mut conn, seat_id)?))
}

/// An admin frees a seat. `actor` names the admin for the audit log.
pub fn retire(app: &App, seat_id: &str, actor: &str) -> Result<SeatStatus, SeatError> {
    let mut conn = app.db.conn()?;
    let seat = find_seat(&mut conn, seat_id)?;
    require_active(&seat)?;
    release(&mut conn, &seat, "retired", actor, now_unix(), None)?;
    Ok(SeatStatus::from(&find_seat(&mut conn, seat_id)?))
}

/// Frees an active seat (returned or retired) and the license counter, with its audit row.
fn release(
    conn: &mut DbConn,
    seat: &Seat,
    new_state: &'static str,
    actor: &str,
    now: i64,
    return_limit: Option<i64>,
) -> Result<(), SeatError> {
    let audit_action = if new_state == "returned" {
        action::RETURNED
    } else {
        action::RETIRED
    };
    conn.write_transaction(|conn| {
        if let Some(limit) = return_limit {
            let (count, oldest) =
                audit::count_since(conn, &seat.id, action::RETURNED, now - LIMIT_WINDOW_SECS)?;
            if count >= limit {
                return Err(SeatError::ReturnLimitReached {
                    seat: seat.id.clone(),
                    limit,
                    retry_after: retry_after(oldest, now),
                });
            }
        }
        // The license row first, then the seat, as activation does: one lock order
        // everywhere, so concurrent changes on PostgreSQL cannot deadlock.
        diesel::update(licenses::table.filter(licenses::id.eq(&seat.license_id)))
            .set((
                licenses::in_use.eq(licenses::in_use - 1),
                // Shrinks the surplus of a down-renewal as seats drain; never below capacity.
                licenses::ceiling.eq(diesel::dsl::sql::<BigInt>(
                    "CASE WHEN capacity > in_use - 1 THEN capacity ELSE in_use - 1 END",
                )),
                licenses::updated_at.eq(now),
            ))
            .execute(conn)?;
        let changed = diesel::update(
            seats::table
                .filter(seats::id.eq(&seat.id))
                .filter(seats::state.eq("active")),
        )
        .set((
            seats::state.eq(new_state),
            seats::released_at.eq(Some(now)),
            seats::updated_at.eq(now),
        ))
        .execute(conn)?;
        if changed != 1 {
            // Someone released it first; the rollback undoes the decrement.
            return Err(SeatError::SeatNotActive {
                seat: seat.id.clone(),
                state: "released".into(),
            });
        }
        audit::record(
            conn,
            now,
            actor,
            audit_action,
            Some(&seat.license_id),
            Some(&seat.id),
            serde_json::json!({
                "device_id": seat.device_id,
                "user_name": seat.user_name,
            }),
        )?;
        Ok(())
    })
}
