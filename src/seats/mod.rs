//! The seat rules: activation, reissue, return, retire. Each change is one write transaction
//! holding the seat row, the license counter and the audit row; device keys are signed before
//! the transaction opens, and a failed commit discards them.
//!
//! Exactness rests on the database, not on this code: a seat is granted by one conditional
//! `UPDATE licenses SET in_use = in_use + 1 WHERE in_use < capacity`, and one seat per
//! (license, device) is a unique constraint.

mod activate;
mod change;
mod query;

pub use activate::activate;
pub use change::{reissue, retire, return_seat};
pub use query::{StoredKey, list, lookup, status};

use diesel::prelude::*;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::clock::ClockUntrusted;
use crate::db::models::{License, Seat};
use crate::db::schema::seats;
use crate::db::{DbConn, DbError};
use crate::identity::{DeviceKeyClaims, DeviceKeyProduct, hash_return_token};
use crate::keyfile::{self, KeyFileError};
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
pub(crate) const RACE_RETRIES: usize = 5;

/// Audit actions written by this module.
pub(crate) mod action {
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
pub(crate) enum TxnError {
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

pub(crate) fn validate_request(req: &ActivationRequest) -> Result<Option<String>, SeatError> {
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
pub(crate) fn check_usable(license: &License, now: i64) -> Result<(), SeatError> {
    if license.status == "revoked" {
        return Err(SeatError::LicenseRevoked(license.id.clone()));
    }
    keyfile::check_term(license.not_before, license.expires_at, now)?;
    Ok(())
}

pub(crate) fn find_seat(conn: &mut DbConn, seat_id: &str) -> Result<Seat, SeatError> {
    seats::table
        .find(seat_id)
        .select(Seat::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| SeatError::UnknownSeat(seat_id.to_owned()))
}

/// Signs the device key of a seat (never inside a write transaction).
pub(crate) fn sign_device_key(
    app: &App,
    license: &License,
    seat_id: &str,
    device_id: &str,
    user_name: &str,
    generation: i64,
    now: i64,
) -> Result<String, SeatError> {
    Ok(app.identity.sign_device_key(&DeviceKeyClaims {
        iss: app.identity.id().to_owned(),
        sub: device_id.to_owned(),
        name: user_name.to_owned(),
        lic: license.id.clone(),
        product: DeviceKeyProduct {
            id: license.product_id.clone(),
            edition: license.product_edition,
        },
        seat: seat_id.to_owned(),
        r#gen: generation,
        iat: now,
        exp: license.expires_at,
        model: license.model.clone(),
    })?)
}

/// Shapes the answer for a device: its seat, key, token and the current key file.
pub(crate) fn answer(
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
pub(crate) fn check_return_token(seat: &Seat, token: &str) -> Result<(), SeatError> {
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

pub(crate) fn require_active(seat: &Seat) -> Result<(), SeatError> {
    if seat.state == "active" {
        Ok(())
    } else {
        Err(SeatError::SeatNotActive {
            seat: seat.id.clone(),
            state: seat.state.clone(),
        })
    }
}
