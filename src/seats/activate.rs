//! Activation: a device takes a seat, or gets back the seat it already holds.

use diesel::prelude::*;

use super::{
    Activation, ActivationRequest, RACE_RETRIES, SeatError, TxnError, action, answer, check_usable,
    sign_device_key, validate_request,
};
use crate::app::App;
use crate::audit;
use crate::db::models::{License, NewSeatRefusal, Seat};
use crate::db::schema::{licenses, seat_refusals, seats};
use crate::db::{DbConn, DbError, is_unique_violation, now_unix};
use crate::identity::hash_return_token;
use crate::keyfile::LicenseModel;

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

fn new_seat_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("st_{}", crate::jws::b64url(&bytes))
}

/// Activates a seat for a device, or returns the seat it already holds (idempotent).
/// Blocking: call from a worker thread.
pub fn activate(app: &App, req: &ActivationRequest) -> Result<Activation, SeatError> {
    let device_info = validate_request(req)?;
    let file = app.verify_presented(&req.key_file)?;
    let lic = file.claims.lic.as_str();
    let mut conn = app.db.conn()?;
    for _ in 0..RACE_RETRIES {
        let now = now_unix();
        let (license, existing) = find_license_and_seat(&mut conn, lic, &req.device_id)?
            .ok_or_else(|| SeatError::UnknownLicense(lic.to_owned()))?;
        check_usable(&license, now)?;
        let single_device = license.model == LicenseModel::SingleDevice.as_str();
        if req.user_name.is_empty() && !single_device {
            return Err(SeatError::InvalidField {
                field: "user_name",
                reason: "must not be empty for a node_locked license".into(),
            });
        }
        if let Some(seat) = existing.as_ref().filter(|s| s.state == "active") {
            if seat.user_name != req.user_name {
                return Err(SeatError::ReissueRequired {
                    seat: seat.id.clone(),
                    current: seat.user_name.clone(),
                });
            }
            return answer(app, &mut conn, &license, seat, false);
        }
        app.clock.check(now)?;
        if license.in_use >= license.capacity {
            // Exhausted already: record the refusal (committed with the next batch) without
            // signing anything.
            drop(conn);
            let (lic, device_id) = (lic.to_owned(), req.device_id.clone());
            app.group_commit.run(&license.id, move |conn| {
                record_refusal(conn, &lic, &device_id, now).map_err(SeatError::from)
            })?;
            return Err(SeatError::SeatsExhausted {
                license: license.id.clone(),
                seats: license.seats,
                in_use: license.in_use,
            });
        }
        // Sign and wait for the batch without holding a pooled connection.
        drop(conn);
        let (seat_id, generation, cycle) = match &existing {
            Some(seat) => (seat.id.clone(), seat.generation + 1, seat.cycle + 1),
            None => (new_seat_id(), 1, 1),
        };
        let device_key = sign_device_key(
            app,
            &license,
            &seat_id,
            &req.device_id,
            &req.user_name,
            generation,
            now,
        )?;
        let token_hash = hash_return_token(&app.identity.return_token(&seat_id, cycle));
        let seat = Seat {
            id: seat_id,
            license_id: lic.to_owned(),
            device_id: req.device_id.clone(),
            user_name: req.user_name.clone(),
            state: "active".to_owned(),
            generation,
            cycle,
            device_key,
            return_token_hash: token_hash,
            device_info: device_info.clone(),
            overage: false,
            activated_at: now,
            updated_at: now,
            released_at: None,
        };
        let attempt = {
            let license = license.clone();
            app.group_commit.run(&license.id.clone(), move |conn| {
                grant(conn, &license, existing.as_ref(), seat, now)
            })
        };
        conn = app.db.conn()?;
        match attempt {
            Ok(Some(seat)) => return answer(app, &mut conn, &license, &seat, true),
            Ok(None) => return Err(exhausted(&mut conn, &license)?),
            // Another request changed this device's seat first: read again and answer from it.
            Err(TxnError::LostRace) => continue,
            Err(TxnError::Seat(e)) => return Err(e),
        }
    }
    Err(SeatError::Db(DbError::Unavailable(
        "too much contention on one device's seat; retry".into(),
    )))
}

/// The write transaction of an activation: take a seat if one is free, then insert (or
/// reactivate) the device's seat row and audit it. `Ok(None)` means exhausted.
fn grant(
    conn: &mut DbConn,
    license: &License,
    existing: Option<&Seat>,
    mut seat: Seat,
    now: i64,
) -> Result<Option<Seat>, TxnError> {
    // The check and the increment are one statement; RETURNING saves a read.
    let taken: Option<(i64, i64)> = diesel::update(
        licenses::table
            .filter(licenses::id.eq(&license.id))
            .filter(licenses::in_use.lt(licenses::capacity)),
    )
    .set(licenses::in_use.eq(licenses::in_use + 1))
    .returning((licenses::in_use, licenses::seats))
    .get_result(conn)
    .optional()?;
    let Some((in_use, seats_bought)) = taken else {
        record_refusal(conn, &license.id, &seat.device_id, now)?;
        return Ok(None);
    };
    seat.overage = in_use > seats_bought;
    let written = match existing {
        None => match diesel::insert_into(seats::table)
            .values(&seat)
            .execute(conn)
        {
            Err(e) if is_unique_violation(&e) => 0,
            other => other?,
        },
        Some(old) => diesel::update(
            seats::table
                .filter(seats::id.eq(&old.id))
                .filter(seats::state.eq(&old.state))
                .filter(seats::cycle.eq(old.cycle)),
        )
        .set((
            seats::state.eq("active"),
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
        ))
        .execute(conn)?,
    };
    if written != 1 {
        // Roll back this grant's savepoint (the counter goes back too) and retry from a fresh read.
        return Err(TxnError::LostRace);
    }
    audit::record(
        conn,
        now,
        "device",
        action::ACTIVATED,
        Some(&license.id),
        Some(&seat.id),
        serde_json::json!({
            "device_id": seat.device_id,
            "user_name": seat.user_name,
            "generation": seat.generation,
            "in_use": in_use,
            "seats": seats_bought,
            "overage": seat.overage,
        }),
    )?;
    Ok(Some(seat))
}

fn record_refusal(conn: &mut DbConn, lic: &str, device_id: &str, now: i64) -> QueryResult<()> {
    diesel::insert_into(seat_refusals::table)
        .values(NewSeatRefusal {
            license_id: lic,
            device_id,
            at: now,
        })
        .execute(conn)?;
    Ok(())
}

/// The `seats_exhausted` refusal with fresh counts.
fn exhausted(conn: &mut DbConn, license: &License) -> Result<SeatError, SeatError> {
    let in_use = licenses::table
        .find(&license.id)
        .select(licenses::in_use)
        .get_result(conn)?;
    Ok(SeatError::SeatsExhausted {
        license: license.id.clone(),
        seats: license.seats,
        in_use,
    })
}
