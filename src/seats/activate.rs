//! Activation: a device takes a seat, or gets back the seat it already holds.

use diesel::prelude::*;

use super::txn::{self, TxnError};
use super::{Activation, ActivationRequest, SeatError, SeatState, answer, rules, sign_device_key};
use crate::app::App;
use crate::db::models::{License, Seat};
use crate::db::schema::{licenses, seats};
use crate::db::{DbConn, DbError, is_unique_violation};
use crate::identity::hash_return_token;
use crate::journal::{self, Change, ChangeKind, Recorded};

/// Activates a seat for a device, or returns the seat it already holds (idempotent).
/// Blocking: call from a worker thread.
pub fn activate(app: &App, req: &ActivationRequest) -> Result<Activation, SeatError> {
    activate_as(app, req, "device")
}

/// [`activate`] with the journal's actor named: `device` over HTTP, `cli` or `admin:NAME`
/// for an offline request file carried in by an operator (DESIGN §11).
pub fn activate_as(
    app: &App,
    req: &ActivationRequest,
    actor: &str,
) -> Result<Activation, SeatError> {
    rules::validate_key_file_text(&req.key_file)?;
    rules::validate_device_id(&req.device_id)?;
    rules::validate_user_name(&req.user_name)?;
    let device_info = rules::validate_device_info(req.device_info.as_ref())?;
    let device_key = rules::validate_device_jwk(req.device_jwk.as_ref())?;
    let file = app.verify_presented(&req.key_file)?;
    let lic = file.claims.lic.as_str();
    txn::settle("one device's seat", || {
        let now = app.clock.now();
        let (license, held) = txn::read(app, |conn| {
            find_license_and_seat(conn, lic, &req.device_id)?
                .ok_or_else(|| SeatError::UnknownLicense(lic.to_owned()))
        })?;
        rules::check_usable(&license, now)?;
        rules::require_user_name(license.model, &req.user_name)?;
        rules::require_device_jwk(license.model, device_key.as_ref())?;
        if let Some(seat) = held.as_ref().filter(|s| s.state == SeatState::Active) {
            // A seat with a registered key answers only to that key, and no repeat answer
            // carries the return token (DESIGN §5).
            if seat.device_jkt.is_some()
                && seat.device_jkt.as_deref() != device_key.as_ref().map(|k| k.jkt.as_str())
            {
                return Err(SeatError::DeviceKeyMismatch.into());
            }
            if seat.user_name != req.user_name {
                return Err(SeatError::ReissueRequired.into());
            }
            return Ok(answer(app, &license, seat, false)?);
        }
        app.clock.check(now)?;
        check_federation_grace(app, &license, now)?;
        if !rules::has_free_seat(&license) {
            // Full already: count the refusal without signing anything.
            app.db.count_refusal(&license.id, now)?;
            return Err(exhausted(&license, license.in_use).into());
        }
        let mut seat = next_seat(&license, held.as_ref(), req, device_info.clone(), now);
        if let Some(key) = &device_key {
            seat.device_jwk = Some(key.json.clone());
            seat.device_jkt = Some(key.jkt.clone());
        }
        if held
            .as_ref()
            .is_some_and(|old| old.device_jkt != seat.device_jkt)
        {
            // Another device key (a reinstall, after an admin retired the seat) is a new
            // meter state: its packets are numbered from 1 and its reports start afresh.
            seat.packet_seq = 0;
            seat.reported_last_seq = 0;
            seat.reported_used = 0;
            seat.meter_flag = None;
        }
        seat.device_key = sign_device_key(app, &license, &seat, now)?;
        seat.return_token_hash =
            hash_return_token(&app.identity.return_token(&seat.id, seat.cycle));
        let granted = {
            let license = license.clone();
            let actor = actor.to_owned();
            app.db.write(&license.id.clone(), move |conn| {
                grant(conn, &license, held, seat, now, &actor)
            })?
        };
        match granted {
            Grant::Granted(seat) => Ok(answer(app, &license, &seat, true)?),
            Grant::Exhausted { in_use } => {
                app.db.count_refusal(&license.id, now)?;
                Err(exhausted(&license, in_use).into())
            }
        }
    })
}

/// Refuses new grants (seats, packets) once the license's `federation.grace` passed with
/// events unacknowledged (DESIGN §7). A read outside any write: the oldest pending event's age.
pub fn check_federation_grace(app: &App, license: &License, now: i64) -> Result<(), SeatError> {
    let Some(grace) = license.federation_grace else {
        return Ok(());
    };
    let age = txn::read(app, |conn| {
        crate::federation::status::oldest_pending_age(conn, &license.id, now)
            .map_err(SeatError::from)
    })?;
    match age.filter(|age| *age > grace) {
        Some(age) => Err(SeatError::FederationOverdue {
            license: license.id.clone(),
            overdue_secs: age,
        }),
        None => Ok(()),
    }
}

/// A license and the device's seat under it, in one query.
fn find_license_and_seat(
    conn: &mut DbConn,
    lic: &str,
    device_id: &str,
) -> QueryResult<Option<(License, Option<Seat>)>> {
    // The body is written once and compiled per backend (see `on_backend!`).
    crate::on_backend!(conn, |c| licenses::table
        .left_join(
            seats::table.on(seats::license_id
                .eq(licenses::id)
                .and(seats::device_id.eq(device_id))),
        )
        .filter(licenses::id.eq(lic))
        .select((License::as_select(), Option::<Seat>::as_select()))
        .get_result(c)
        .optional())
}

/// The seat row a grant writes: a new seat, or the device's released seat taken again with
/// a new cycle (so a new return token) and the next key generation. Key and token hash are
/// filled in by the caller.
fn next_seat(
    license: &License,
    held: Option<&Seat>,
    req: &ActivationRequest,
    device_info: Option<String>,
    now: i64,
) -> Seat {
    let (id, generation, cycle) = match held {
        Some(seat) => (seat.id.clone(), seat.generation + 1, seat.cycle + 1),
        None => (new_seat_id(), 1, 1),
    };
    Seat {
        id,
        license_id: license.id.clone(),
        device_id: req.device_id.clone(),
        user_name: req.user_name.clone(),
        state: SeatState::Active,
        generation,
        cycle,
        device_key: String::new(),
        return_token_hash: String::new(),
        device_info,
        overage: false,
        activated_at: now,
        updated_at: now,
        released_at: None,
        device_jwk: None,
        device_jkt: None,
        // Packet numbering and reports continue on a seat taken again with the same key
        // (same device, same state file); a flag stays until an operator resets it.
        packet_seq: held.map_or(0, |s| s.packet_seq),
        reported_last_seq: held.map_or(0, |s| s.reported_last_seq),
        reported_used: held.map_or(0, |s| s.reported_used),
        meter_flag: held.and_then(|s| s.meter_flag.clone()),
    }
}

fn new_seat_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("st_{}", crate::jws::b64url(&bytes))
}

/// What the grant transaction decided.
enum Grant {
    Granted(Box<Seat>),
    /// No seat was free when the transaction ran (the refusal is recorded).
    Exhausted {
        in_use: i64,
    },
}

/// The write transaction of an activation: take a seat if one is free, then insert (or
/// reactivate) the device's seat row and journal it.
fn grant(
    conn: &mut DbConn,
    license: &License,
    held: Option<Seat>,
    mut seat: Seat,
    now: i64,
    actor: &str,
) -> Result<Grant, TxnError> {
    // The check and the increment are one statement, which also locks the license row and
    // takes the change's number.
    // Written once, compiled per backend (see `on_backend!`): the writer runs these for every
    // grant, and the concrete connection finds its cached statement without rendering SQL.
    let taken: Option<(i64, i64, i64, i64)> = crate::on_backend!(conn, |c| diesel::update(
        licenses::table
            .filter(licenses::id.eq(&license.id))
            .filter(licenses::in_use.lt(licenses::capacity)),
    )
    .set((
        licenses::in_use.eq(licenses::in_use + 1),
        journal::take_number(),
    ))
    .returning(journal::recorded_columns())
    .get_result(c)
    .optional())?;
    let Some(recorded) = taken.map(Recorded::from) else {
        // The refusal is counted by the caller, in the counters' place at the end of a batch:
        // counting it here would lock a counter row before other jobs' license rows.
        return Ok(Grant::Exhausted {
            in_use: current_in_use(conn, &license.id)?,
        });
    };
    let (in_use, seats_bought) = (recorded.in_use, recorded.seats);
    seat.overage = in_use > seats_bought;
    let renamed_from = renamed_after_return(held.as_ref(), &seat, now);
    if renamed_from.is_some() {
        // Return and activate again under another name counts as a name change (DESIGN §5).
        rules::check_reissue_limit(conn, &seat.id, license.reissue_limit, now)?;
    }
    let written = match &held {
        None => match crate::on_backend!(conn, |c| diesel::insert_into(seats::table)
            .values(seat.clone())
            .execute(c))
        {
            Err(e) if is_unique_violation(&e) => 0,
            other => other?,
        },
        Some(old) => diesel::update(
            seats::table
                .filter(seats::id.eq(&old.id))
                .filter(seats::state.eq(old.state.as_str()))
                .filter(seats::cycle.eq(old.cycle)),
        )
        .set((
            seats::state.eq(SeatState::Active.as_str()),
            seats::user_name.eq(&seat.user_name),
            seats::generation.eq(seat.generation),
            seats::cycle.eq(seat.cycle),
            seats::device_key.eq(&seat.device_key),
            seats::return_token_hash.eq(&seat.return_token_hash),
            seats::device_info.eq(&seat.device_info),
            seats::overage.eq(seat.overage),
            seats::activated_at.eq(now),
            seats::updated_at.eq(now),
            seats::released_at.eq(None::<i64>),
            seats::device_jwk.eq(&seat.device_jwk),
            seats::device_jkt.eq(&seat.device_jkt),
            seats::packet_seq.eq(seat.packet_seq),
            seats::reported_last_seq.eq(seat.reported_last_seq),
            seats::reported_used.eq(seat.reported_used),
            seats::meter_flag.eq(&seat.meter_flag),
        ))
        .execute(conn)?,
    };
    if written != 1 {
        // Roll back this grant's savepoint (the counter goes back too) and retry from a fresh read.
        return Err(TxnError::LostRace);
    }
    journal::record_numbered(
        conn,
        &Change {
            at: now,
            actor,
            kind: ChangeKind::SeatActivated,
            license: Some(&license.id),
            seat: Some(&seat.id),
            detail: serde_json::json!({
                "device_id": seat.device_id,
                "user_name": seat.user_name,
                "generation": seat.generation,
                "in_use": in_use,
                "seats": seats_bought,
                "overage": seat.overage,
            }),
        },
        recorded,
    )?;
    if let Some(from_user_name) = renamed_from {
        journal::record(
            conn,
            &Change {
                at: now,
                actor,
                kind: ChangeKind::SeatReissued,
                license: Some(&license.id),
                seat: Some(&seat.id),
                detail: serde_json::json!({
                    "device_id": seat.device_id,
                    "from_user_name": from_user_name,
                    "user_name": seat.user_name,
                    "generation": seat.generation,
                    "by": "reactivation",
                }),
            },
        )?;
    }
    Ok(Grant::Granted(Box::new(seat)))
}

/// The previous name, when a device takes back the seat it returned less than 365 days ago
/// under another user name.
fn renamed_after_return(held: Option<&Seat>, seat: &Seat, now: i64) -> Option<String> {
    let old = held?;
    let recent = old
        .released_at
        .is_some_and(|at| at >= now - rules::LIMIT_WINDOW_SECS);
    (old.state == SeatState::Returned && recent && old.user_name != seat.user_name)
        .then(|| old.user_name.clone())
}

fn current_in_use(conn: &mut DbConn, lic: &str) -> Result<i64, DbError> {
    Ok(licenses::table
        .find(lic)
        .select(licenses::in_use)
        .get_result(conn)?)
}

fn exhausted(license: &License, in_use: i64) -> SeatError {
    SeatError::SeatsExhausted {
        license: license.id.clone(),
        seats: license.seats,
        in_use,
    }
}
