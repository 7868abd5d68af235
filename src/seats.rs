//! The seat rules: activation, reissue, return, retire. Each change is one write transaction
//! holding the seat row, the license counter and the audit row; device keys are signed before
//! the transaction opens, and a failed commit discards them.
//!
//! Exactness rests on the database, not on this code: a seat is granted by one conditional
//! `UPDATE licenses SET in_use = in_use + 1 WHERE in_use < capacity`, and one seat per
//! (license, device) is a unique constraint.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::audit;
use crate::clock::ClockUntrusted;
use crate::db::models::{License, NewSeatRefusal, Seat};
use crate::db::schema::{licenses, seat_refusals, seats};
use crate::db::{DbConn, DbError, is_unique_violation, now_unix};
use crate::identity::{DeviceKeyClaims, DeviceKeyProduct, hash_return_token};
use crate::keyfile::{self, KeyFileError, LicenseModel};
use crate::licenses as license_store;
use crate::signing::SigningError;

/// Window for `reissue_limit` and `return_limit`.
pub const LIMIT_WINDOW_SECS: i64 = 365 * 24 * 3600;
/// Longest device id.
pub const MAX_DEVICE_ID: usize = 128;
/// Longest user name, in Unicode scalar values.
pub const MAX_USER_NAME: usize = 64;
/// Largest `device_info`, serialized.
pub const MAX_DEVICE_INFO: usize = 4096;
/// How often a write is retried after losing a race to a concurrent change of the same seat.
const RACE_RETRIES: usize = 5;

/// Audit actions written by this module.
mod action {
    pub const ACTIVATED: &str = "seat.activated";
    pub const REISSUED: &str = "seat.reissued";
    pub const RETURNED: &str = "seat.returned";
    pub const RETIRED: &str = "seat.retired";
}

/// Why a seat operation was refused. Each variant has a stable code (DESIGN §5).
#[derive(Debug, thiserror::Error)]
pub enum SeatError {
    /// A request field is wrong.
    #[error("{field}: {reason}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// Rule broken.
        reason: String,
    },
    /// The key file is wrong (or its license's term is over / not started).
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// Valid key file, never imported here.
    #[error("license {0} is not imported on this server")]
    UnknownLicense(String),
    /// No such seat.
    #[error("no seat {0}")]
    UnknownSeat(String),
    /// The license was revoked.
    #[error("license {0} is revoked")]
    LicenseRevoked(String),
    /// All seats in use.
    #[error("all {seats} seats of license {license} are in use")]
    SeatsExhausted {
        /// License.
        license: String,
        /// Seats bought.
        seats: i64,
        /// Seats in use.
        in_use: i64,
    },
    /// Reissue/return of a seat that is not active.
    #[error("seat {seat} is {state}, not active")]
    SeatNotActive {
        /// Seat.
        seat: String,
        /// Its state.
        state: String,
    },
    /// The device asked again under another user name.
    #[error(
        "device already holds seat {seat} for user '{current}'; change the name with POST /api/v1/activations/{seat}/reissue"
    )]
    ReissueRequired {
        /// Seat.
        seat: String,
        /// Name on the seat now.
        current: String,
    },
    /// Too many name changes.
    #[error("seat {seat} reached its limit of {limit} name changes per 365 days")]
    ReissueLimitReached {
        /// Seat.
        seat: String,
        /// Limit.
        limit: i64,
        /// Seconds until one more is allowed.
        retry_after: i64,
    },
    /// Too many returns.
    #[error("seat {seat} reached its limit of {limit} returns per 365 days")]
    ReturnLimitReached {
        /// Seat.
        seat: String,
        /// Limit.
        limit: i64,
        /// Seconds until one more is allowed.
        retry_after: i64,
    },
    /// Wrong return token.
    #[error("the return token does not match this seat")]
    InvalidReturnToken,
    /// Clock went back.
    #[error(transparent)]
    ClockUntrusted(#[from] ClockUntrusted),
    /// Signing failed.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for SeatError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// A device's request for a seat.
#[derive(Debug, Clone)]
pub struct ActivationRequest {
    /// Key file text, armored or bare.
    pub key_file: String,
    /// Device id.
    pub device_id: String,
    /// User name.
    pub user_name: String,
    /// Optional device description (JSON object).
    pub device_info: Option<serde_json::Value>,
}

/// What a device gets back.
#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    /// True when this call took a new seat (HTTP 201), false for the same device again.
    #[serde(skip)]
    pub created: bool,
    /// Seat id.
    pub seat: String,
    /// The signed device key.
    pub device_key: String,
    /// The license's current key file.
    pub key_file: String,
    /// Seat state.
    pub state: String,
    /// End of the license term.
    pub expires_at: Option<i64>,
    /// Proof of possession for reissue and return.
    pub return_token: String,
    /// Granted under the overage allowance (beyond the seats bought).
    pub overage: bool,
    /// Device key generation.
    pub generation: i64,
}

/// A seat's state as devices see it.
#[derive(Debug, Clone, Serialize)]
pub struct SeatStatus {
    /// Seat id.
    pub seat: String,
    /// `active`, `retired`, `returned`, `revoked`.
    pub state: String,
    /// License.
    pub license: String,
    /// Device id.
    pub device_id: String,
    /// Device key generation.
    pub generation: i64,
    /// Last change.
    pub updated_at: i64,
}

impl From<&Seat> for SeatStatus {
    fn from(seat: &Seat) -> Self {
        Self {
            seat: seat.id.clone(),
            state: seat.state.clone(),
            license: seat.license_id.clone(),
            device_id: seat.device_id.clone(),
            generation: seat.generation,
            updated_at: seat.updated_at,
        }
    }
}

/// Why a write transaction was abandoned.
enum TxnError {
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

impl From<SeatError> for TxnError {
    fn from(e: SeatError) -> Self {
        Self::Seat(e)
    }
}

/// Checks a device id: 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn validate_device_id(device_id: &str) -> Result<(), SeatError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if device_id.is_empty() || device_id.len() > MAX_DEVICE_ID {
        return Err(SeatError::InvalidField {
            field: "device_id",
            reason: format!("must be 1 to {MAX_DEVICE_ID} characters"),
        });
    }
    if !device_id.chars().all(ok_char) {
        return Err(SeatError::InvalidField {
            field: "device_id",
            reason: "may only contain A-Z a-z 0-9 . _ : -".into(),
        });
    }
    Ok(())
}

/// Checks a user name: 0–64 Unicode scalar values, no control characters.
pub fn validate_user_name(user_name: &str) -> Result<(), SeatError> {
    if user_name.chars().count() > MAX_USER_NAME {
        return Err(SeatError::InvalidField {
            field: "user_name",
            reason: format!("must be at most {MAX_USER_NAME} characters"),
        });
    }
    if user_name.chars().any(char::is_control) {
        return Err(SeatError::InvalidField {
            field: "user_name",
            reason: "must not contain control characters".into(),
        });
    }
    Ok(())
}

fn validate_request(req: &ActivationRequest) -> Result<Option<String>, SeatError> {
    if req.key_file.trim().is_empty() {
        return Err(SeatError::InvalidField {
            field: "key_file",
            reason: "must not be empty".into(),
        });
    }
    validate_device_id(&req.device_id)?;
    validate_user_name(&req.user_name)?;
    match &req.device_info {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(info @ serde_json::Value::Object(_)) => {
            let text = info.to_string();
            if text.len() > MAX_DEVICE_INFO {
                return Err(SeatError::InvalidField {
                    field: "device_info",
                    reason: format!("must be at most {MAX_DEVICE_INFO} bytes of JSON"),
                });
            }
            Ok(Some(text))
        }
        Some(_) => Err(SeatError::InvalidField {
            field: "device_info",
            reason: "must be a JSON object".into(),
        }),
    }
}

/// Refuses licenses that are revoked or outside their term.
fn check_usable(license: &License, now: i64) -> Result<(), SeatError> {
    if license.status == "revoked" {
        return Err(SeatError::LicenseRevoked(license.id.clone()));
    }
    keyfile::check_term(license.not_before, license.expires_at, now)?;
    Ok(())
}

fn find_seat(conn: &mut DbConn, seat_id: &str) -> Result<Seat, SeatError> {
    seats::table
        .find(seat_id)
        .select(Seat::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| SeatError::UnknownSeat(seat_id.to_owned()))
}

/// A license and the device's seat under it, in one query.
fn find_license_and_seat(
    conn: &mut DbConn,
    lic: &str,
    device_id: &str,
) -> QueryResult<Option<(License, Option<Seat>)>> {
    licenses::table
        .left_join(
            seats::table.on(seats::license_id
                .eq(licenses::id)
                .and(seats::device_id.eq(device_id))),
        )
        .filter(licenses::id.eq(lic))
        .select((License::as_select(), Option::<Seat>::as_select()))
        .first(conn)
        .optional()
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
            // Exhausted already: record the refusal without signing anything.
            conn.write_transaction(|conn| record_refusal(conn, lic, &req.device_id, now))?;
            return Err(exhausted(&mut conn, &license)?);
        }
        let (seat_id, generation, cycle) = match &existing {
            Some(seat) => (seat.id.clone(), seat.generation + 1, seat.cycle + 1),
            None => (new_seat_id(), 1, 1),
        };
        let device_key = app.identity.sign_device_key(&DeviceKeyClaims {
            iss: app.identity.id().to_owned(),
            sub: req.device_id.clone(),
            name: req.user_name.clone(),
            lic: lic.to_owned(),
            product: DeviceKeyProduct {
                id: license.product_id.clone(),
                edition: license.product_edition,
            },
            seat: seat_id.clone(),
            r#gen: generation,
            iat: now,
            exp: license.expires_at,
            model: license.model.clone(),
        })?;
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
        let attempt =
            conn.write_transaction(|conn| grant(conn, &license, existing.as_ref(), seat, now));
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
/// reactivate) the device's seat row and audit it. `Ok(Done(None))` means exhausted.
fn grant(
    conn: &mut DbConn,
    license: &License,
    existing: Option<&Seat>,
    mut seat: Seat,
    now: i64,
) -> Result<Option<Seat>, TxnError> {
    let taken = diesel::update(
        licenses::table
            .filter(licenses::id.eq(&license.id))
            .filter(licenses::in_use.lt(licenses::capacity)),
    )
    .set(licenses::in_use.eq(licenses::in_use + 1))
    .execute(conn)?;
    if taken == 0 {
        record_refusal(conn, &license.id, &seat.device_id, now)?;
        return Ok(None);
    }
    let (in_use, seats_bought): (i64, i64) = licenses::table
        .find(&license.id)
        .select((licenses::in_use, licenses::seats))
        .first(conn)?;
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
        // Abandon the transaction (the counter goes back too) and retry from a fresh read.
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
        .first(conn)?;
    Ok(SeatError::SeatsExhausted {
        license: license.id.clone(),
        seats: license.seats,
        in_use,
    })
}

/// Shapes the answer for a device: its seat, key, token and the current key file.
fn answer(
    app: &App,
    conn: &mut DbConn,
    license: &License,
    seat: &Seat,
    created: bool,
) -> Result<Activation, SeatError> {
    Ok(Activation {
        created,
        seat: seat.id.clone(),
        device_key: seat.device_key.clone(),
        key_file: app
            .key_file_text(conn, &license.current_key_file)?
            .to_string(),
        state: seat.state.clone(),
        expires_at: license.expires_at,
        return_token: app.identity.return_token(&seat.id, seat.cycle),
        overage: seat.overage,
        generation: seat.generation,
    })
}

/// Checks a presented return token against the stored hash, in constant time.
fn check_return_token(seat: &Seat, token: &str) -> Result<(), SeatError> {
    let presented = hash_return_token(token);
    if bool::from(
        presented
            .as_bytes()
            .ct_eq(seat.return_token_hash.as_bytes()),
    ) {
        Ok(())
    } else {
        Err(SeatError::InvalidReturnToken)
    }
}

fn require_active(seat: &Seat) -> Result<(), SeatError> {
    if seat.state == "active" {
        Ok(())
    } else {
        Err(SeatError::SeatNotActive {
            seat: seat.id.clone(),
            state: seat.state.clone(),
        })
    }
}

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
        let device_key = app.identity.sign_device_key(&DeviceKeyClaims {
            iss: app.identity.id().to_owned(),
            sub: seat.device_id.clone(),
            name: user_name.to_owned(),
            lic: license.id.clone(),
            product: DeviceKeyProduct {
                id: license.product_id.clone(),
                edition: license.product_edition,
            },
            seat: seat.id.clone(),
            r#gen: generation,
            iat: now,
            exp: license.expires_at,
            model: license.model.clone(),
        })?;
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
            // Someone released it first.
            return Err(SeatError::SeatNotActive {
                seat: seat.id.clone(),
                state: "released".into(),
            });
        }
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

/// A seat's state, for devices polling for retirement.
pub fn status(app: &App, seat_id: &str) -> Result<SeatStatus, SeatError> {
    let mut conn = app.db.conn()?;
    Ok(SeatStatus::from(&find_seat(&mut conn, seat_id)?))
}

/// One active device key, as the key repository returns it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredKey {
    /// Seat.
    pub seat: String,
    /// Device key.
    pub device_key: String,
    /// Generation.
    pub generation: i64,
    /// User name.
    pub user_name: String,
    /// License.
    pub license: String,
}

/// Every active device key of a device under the license of `key_file` (reinstall).
pub fn lookup(app: &App, key_file: &str, device_id: &str) -> Result<Vec<StoredKey>, SeatError> {
    if key_file.trim().is_empty() {
        return Err(SeatError::InvalidField {
            field: "key_file",
            reason: "must not be empty".into(),
        });
    }
    validate_device_id(device_id)?;
    let file = app.verify_presented(key_file)?;
    let mut conn = app.db.conn()?;
    let lic = &file.claims.lic;
    if license_store::find(&mut conn, lic)?.is_none() {
        return Err(SeatError::UnknownLicense(lic.clone()));
    }
    let rows: Vec<Seat> = seats::table
        .filter(seats::license_id.eq(lic))
        .filter(seats::device_id.eq(device_id))
        .filter(seats::state.eq("active"))
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
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        query = query.filter(
            seats::device_id
                .like(pattern.clone())
                .escape('\\')
                .or(seats::user_name.like(pattern).escape('\\')),
        );
    }
    query.load(conn)
}
