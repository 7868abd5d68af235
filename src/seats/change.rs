//! Changes to a held seat: reissue (name change), return (by the device), retire (by an
//! admin).

use diesel::prelude::*;

use super::rules::{self, LIMIT_WINDOW_SECS};
use super::txn::{self, TxnError};
use super::{
    Activation, SeatAuth, SeatError, SeatState, SeatStatus, answer, auth, lockout, sign_device_key,
};
use crate::app::App;
use crate::audit;
use crate::db::DbConn;
use crate::db::models::{License, Seat};
use crate::db::schema::{licenses, seats};
use crate::db::word::Word;
use crate::journal::{self, Change, ChangeKind, Recorded};
use crate::licenses as license_store;
use seatkeep_device::proof::ProofAction;

/// Changes the user name on a seat: a new device key with `gen + 1`, at most
/// `reissue_limit` times per 365 days. The same name again returns the current key.
pub fn reissue(
    app: &App,
    seat_id: &str,
    auth: &SeatAuth,
    user_name: &str,
) -> Result<Activation, SeatError> {
    rules::validate_user_name(user_name)?;
    txn::settle("one seat", || {
        let now = app.clock.now();
        let (seat, license) = txn::read(app, |conn| {
            let seat = txn::find_seat(conn, seat_id)?;
            Ok((seat.clone(), find_license(conn, &seat.license_id)?))
        })?;
        let jti = lockout::guard(app, &seat, now, || {
            auth::authorize(app, &seat, auth, ProofAction::Reissue, Some(user_name), now)
        })?;
        rules::require_active(&seat)?;
        rules::check_usable(&license, now)?;
        rules::require_user_name(license.model, user_name)?;
        if seat.user_name == user_name {
            // Nothing changes, but an accepted proof is still spent.
            if jti.is_some() {
                let id = seat.id.clone();
                app.db.write(&license.id.clone(), move |conn| {
                    auth::record_proof(conn, &id, jti.as_deref(), now)
                })?;
            }
            return Ok(answer(app, &license, &seat, false)?);
        }
        app.clock.check(now)?;
        let mut renamed = seat.clone();
        renamed.user_name = user_name.to_owned();
        renamed.generation = seat.generation + 1;
        renamed.device_key = sign_device_key(app, &license, &renamed, now)?;
        let limit = license.reissue_limit;
        let written = app.db.write(&license.id.clone(), move |conn| {
            rename(conn, &seat, renamed, limit, jti.as_deref(), now)
        })?;
        Ok(answer(app, &license, &written, false)?)
    })
}

/// The write transaction of a reissue.
fn rename(
    conn: &mut DbConn,
    seat: &Seat,
    renamed: Seat,
    limit: i64,
    jti: Option<&str>,
    now: i64,
) -> Result<Seat, TxnError> {
    rules::check_reissue_limit(conn, &seat.id, limit, now)?;
    // No seat counter changes, so the journal comes before the seat update: it locks the
    // license row before the seat row, in the order every change takes them. Two reissues
    // of one seat cannot both pass the count: the second loses the generation check below.
    journal::record(
        conn,
        &Change {
            at: now,
            actor: "device",
            kind: ChangeKind::SeatReissued,
            license: Some(&seat.license_id),
            seat: Some(&seat.id),
            detail: serde_json::json!({
                "device_id": seat.device_id,
                "from_user_name": seat.user_name,
                "user_name": renamed.user_name,
                "generation": renamed.generation,
            }),
        },
    )?;
    auth::record_proof(conn, &seat.id, jti, now)?;
    let changed = diesel::update(
        seats::table
            .filter(seats::id.eq(&seat.id))
            .filter(seats::state.eq(SeatState::Active.as_str()))
            .filter(seats::generation.eq(seat.generation)),
    )
    .set((
        seats::user_name.eq(&renamed.user_name),
        seats::generation.eq(renamed.generation),
        seats::device_key.eq(&renamed.device_key),
        seats::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed != 1 {
        return Err(TxnError::LostRace);
    }
    let mut written = renamed;
    written.updated_at = now;
    Ok(written)
}

/// The device gives its seat back (proving it holds the return token), at most
/// `return_limit` times per 365 days.
pub fn return_seat(app: &App, seat_id: &str, auth: &SeatAuth) -> Result<SeatStatus, SeatError> {
    let now = app.clock.now();
    let (seat, license) = txn::read(app, |conn| {
        let seat = txn::find_seat(conn, seat_id)?;
        Ok((seat.clone(), find_license(conn, &seat.license_id)?))
    })?;
    let jti = lockout::guard(app, &seat, now, || {
        auth::authorize(app, &seat, auth, ProofAction::Return, None, now)
    })?;
    rules::require_active(&seat)?;
    rules::check_not_revoked(&license)?;
    let release = Release {
        to: SeatState::Returned,
        actor: "device".to_owned(),
        reason: None,
        return_limit: Some(license.return_limit),
        proof_jti: jti,
        now,
    };
    release_seat(app, seat, release)
}

/// An admin frees a seat. `actor` names the admin and `reason` (may be empty) says why, for
/// the audit log.
pub fn retire(
    app: &App,
    seat_id: &str,
    actor: &str,
    reason: &str,
) -> Result<SeatStatus, SeatError> {
    let seat = txn::read(app, |conn| {
        let seat = txn::find_seat(conn, seat_id)?;
        rules::require_active(&seat)?;
        Ok(seat)
    })?;
    let release = Release {
        to: SeatState::Retired,
        actor: actor.to_owned(),
        reason: Some(reason.to_owned()).filter(|r| !r.is_empty()),
        return_limit: None,
        proof_jti: None,
        now: app.clock.now(),
    };
    release_seat(app, seat, release)
}

/// How a seat is freed.
struct Release {
    /// `Returned` or `Retired`.
    to: SeatState,
    actor: String,
    /// Why an admin retired it.
    reason: Option<String>,
    /// Returns allowed per 365 days, for a return.
    return_limit: Option<i64>,
    /// The device proof that asked for it, spent in the same transaction.
    proof_jti: Option<String>,
    now: i64,
}

fn release_seat(app: &App, seat: Seat, release: Release) -> Result<SeatStatus, SeatError> {
    let order = seat.license_id.clone();
    app.db
        .write(&order, move |conn| free(conn, &seat, &release))
        .map(|seat| SeatStatus::from(&seat))
}

/// The write transaction that frees an active seat and the license counter, journalled.
fn free(conn: &mut DbConn, seat: &Seat, release: &Release) -> Result<Seat, SeatError> {
    let now = release.now;
    if let Some(limit) = release.return_limit {
        let (count, oldest) = audit::count_since(
            conn,
            &seat.id,
            ChangeKind::SeatReturned,
            now - LIMIT_WINDOW_SECS,
        )?;
        if count >= limit {
            return Err(SeatError::ReturnLimitReached {
                seat: seat.id.clone(),
                limit,
                retry_after: rules::retry_after(oldest, now),
            });
        }
    }
    // The license row first, then the seat: one lock order everywhere, so concurrent
    // changes on PostgreSQL cannot deadlock.
    let row: (i64, i64, i64, i64) =
        diesel::update(licenses::table.filter(licenses::id.eq(&seat.license_id)))
            .set((
                licenses::in_use.eq(licenses::in_use - 1),
                // Shrinks the surplus of a down-renewal as seats drain.
                licenses::ceiling.eq(rules::ceiling_sql(None, -1)),
                licenses::updated_at.eq(now),
                // A freed seat ends a seats_exhausted episode (DESIGN §8).
                licenses::exhaust_episode.eq(licenses::exhaust_episode + 1),
                journal::take_number(),
            ))
            .returning(journal::recorded_columns())
            .get_result(conn)?;
    auth::record_proof(conn, &seat.id, release.proof_jti.as_deref(), now)?;
    let changed = diesel::update(
        seats::table
            .filter(seats::id.eq(&seat.id))
            .filter(seats::state.eq(SeatState::Active.as_str())),
    )
    .set((
        seats::state.eq(release.to.as_str()),
        seats::released_at.eq(Some(now)),
        seats::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed != 1 {
        // Someone released it first; the rollback undoes the decrement. The answer names
        // the state they left it in, as `require_active` does.
        let state: Word<SeatState> = seats::table
            .find(&seat.id)
            .select(seats::state)
            .get_result(conn)?;
        return Err(SeatError::SeatNotActive {
            seat: seat.id.clone(),
            state: state.0.as_str().to_owned(),
        });
    }
    let kind = if release.to == SeatState::Returned {
        ChangeKind::SeatReturned
    } else {
        ChangeKind::SeatRetired
    };
    journal::record_numbered(
        conn,
        &Change {
            at: now,
            actor: &release.actor,
            kind,
            license: Some(&seat.license_id),
            seat: Some(&seat.id),
            detail: match &release.reason {
                Some(reason) => serde_json::json!({
                    "device_id": seat.device_id, "user_name": seat.user_name, "reason": reason,
                }),
                None => serde_json::json!({
                    "device_id": seat.device_id, "user_name": seat.user_name,
                }),
            },
        },
        Recorded::from(row),
    )?;
    let mut freed = seat.clone();
    freed.state = release.to;
    freed.released_at = Some(now);
    freed.updated_at = now;
    Ok(freed)
}

fn find_license(conn: &mut DbConn, lic: &str) -> Result<License, SeatError> {
    license_store::find(conn, lic)?.ok_or_else(|| SeatError::UnknownLicense(lic.to_owned()))
}
