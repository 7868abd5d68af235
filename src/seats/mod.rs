//! Seats: activation, reissue, return, retire, and reading them. The rules live in
//! [`rules`]; each change is one write transaction (through [`crate::db::Database::write`])
//! holding the license counter, the seat row and the journal entry. Device keys are signed
//! before the transaction opens, and a failed commit discards them.
//!
//! Exactness rests on the database, not on this code: a seat is granted by one conditional
//! `UPDATE licenses SET in_use = in_use + 1 WHERE in_use < capacity`, and one seat per
//! (license, device) is a unique constraint.

mod activate;
pub mod auth;
mod change;
pub mod lockout;
pub mod moves;
mod page;
mod query;
pub mod rules;
mod txn;

pub use activate::{activate, activate_as, check_federation_grace};
pub use change::{reissue, retire, return_seat};
pub use page::{MAX_SEARCH_MATCHES, SeatPage, SeatPageQuery, SeatSort, list, page};
pub use query::{StoredKey, find, lookup, status};
pub use rules::{
    LIMIT_WINDOW_SECS, LicenseStatus, MAX_DEVICE_ID, MAX_DEVICE_INFO, MAX_USER_NAME, SeatState,
    validate_device_id, validate_user_name,
};

use seatkeep_device::ProblemCode;
use serde::Serialize;

use crate::app::App;
use crate::clock::ClockUntrusted;
use crate::db::DbError;
use crate::db::models::{License, Seat};
use crate::identity::{DeviceKeyClaims, DeviceKeyProduct};
use crate::keyfile::KeyFileError;
use crate::signing::SigningError;

/// Why a seat operation was refused. [`SeatError::code`] gives the stable code (DESIGN §5).
#[derive(Debug, thiserror::Error)]
pub enum SeatError {
    /// A request field breaks its rule.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field's name in the request.
        field: &'static str,
        /// The rule broken.
        reason: String,
    },
    /// The key file is wrong, or its license's term is over or not started.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// A validly signed key file whose license was never imported here.
    #[error("license {0} is not imported on this server")]
    UnknownLicense(String),
    #[error("no seat {0}")]
    UnknownSeat(String),
    #[error("license {0} is revoked")]
    LicenseRevoked(String),
    #[error("all {seats} seats of license {license} are in use")]
    SeatsExhausted {
        license: String,
        /// Seats bought.
        seats: i64,
        in_use: i64,
    },
    /// Reissue or return of a seat that is retired, returned or revoked.
    #[error("seat {seat} is {state}, not active")]
    SeatNotActive { seat: String, state: String },
    /// The device asked again under another user name: that is a reissue. Says nothing
    /// else (not the name on the seat: DESIGN §5).
    #[error(
        "this device holds a seat of this license under another user name; change the name with POST /api/v1/activations/{{seat}}/reissue"
    )]
    ReissueRequired,
    /// The same device id with another device key (a cloned image, or a reinstall that made
    /// a new key: an admin retires the seat, then the device activates again).
    #[error("this device's seat is registered with another device key")]
    DeviceKeyMismatch,
    /// The proof is missing, does not verify with the seat's key, is stale or replayed.
    #[error("{0}")]
    InvalidDeviceProof(String),
    #[error("seat {seat} reached its limit of {limit} name changes per 365 days")]
    ReissueLimitReached {
        seat: String,
        limit: i64,
        /// Seconds until one more is allowed.
        retry_after: i64,
    },
    #[error("seat {seat} reached its limit of {limit} returns per 365 days")]
    ReturnLimitReached {
        seat: String,
        limit: i64,
        /// Seconds until one more is allowed.
        retry_after: i64,
    },
    #[error("the return token does not match this seat")]
    InvalidReturnToken,
    /// Too many wrong return tokens or proofs for this seat in the last hour.
    #[error("too many failed attempts for seat {seat}; retry in {retry_after} s")]
    TooManyFailures {
        seat: String,
        /// Seconds until the oldest failure leaves the hour.
        retry_after: i64,
    },
    #[error(transparent)]
    ClockUntrusted(#[from] ClockUntrusted),
    /// The license's `federation.grace` passed with events unacknowledged (new seats only).
    #[error(
        "license {license} has events the provider has not acknowledged for {overdue_secs} s, past its federation grace; new seats wait until they are delivered"
    )]
    FederationOverdue { license: String, overdue_secs: i64 },
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::query_errors_into!(SeatError);

impl SeatError {
    /// The stable problem code (DESIGN §5).
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::InvalidField { .. } => ProblemCode::InvalidRequest,
            Self::KeyFile(e) => e.code(),
            Self::UnknownLicense(_) => ProblemCode::UnknownLicense,
            Self::UnknownSeat(_) => ProblemCode::UnknownSeat,
            Self::LicenseRevoked(_) => ProblemCode::LicenseRevoked,
            Self::SeatsExhausted { .. } => ProblemCode::SeatsExhausted,
            Self::SeatNotActive { .. } => ProblemCode::SeatNotActive,
            Self::ReissueRequired => ProblemCode::ReissueRequired,
            Self::DeviceKeyMismatch => ProblemCode::DeviceKeyMismatch,
            Self::FederationOverdue { .. } => ProblemCode::FederationOverdue,
            Self::InvalidDeviceProof(_) => ProblemCode::InvalidDeviceProof,
            Self::ReissueLimitReached { .. } => ProblemCode::ReissueLimitReached,
            Self::ReturnLimitReached { .. } => ProblemCode::ReturnLimitReached,
            Self::InvalidReturnToken => ProblemCode::InvalidReturnToken,
            Self::TooManyFailures { .. } => ProblemCode::RateLimited,
            Self::ClockUntrusted(e) => e.code(),
            Self::Signing(_) => ProblemCode::InternalError,
            Self::Db(e) => e.code(),
        }
    }
}

/// A device's request for a seat.
#[derive(Debug, Clone)]
pub struct ActivationRequest {
    /// Key file text, armored or bare.
    pub key_file: String,
    pub device_id: String,
    pub user_name: String,
    /// Optional device description (a JSON object).
    pub device_info: Option<serde_json::Value>,
    /// The device's own public key, when it made one.
    pub device_jwk: Option<seatkeep_device::DeviceJwk>,
}

/// What a device presents to reissue or return its seat.
#[derive(Debug, Clone)]
pub enum SeatAuth {
    /// The token from the 201 that created a seat without a device key.
    ReturnToken(String),
    /// A proof signed by the seat's device key.
    Proof(String),
}

/// What a device gets back (the web layer answers it as the device crate's
/// `ActivationAnswer`).
#[derive(Debug, Clone)]
pub struct Activation {
    /// True when this call took a new seat (HTTP 201), false for the same device again.
    pub created: bool,
    pub seat: String,
    pub device_key: String,
    /// The license's current key file, so the device holds the whole chain.
    pub key_file: String,
    pub state: SeatState,
    /// End of the license term.
    pub expires_at: Option<i64>,
    /// Proof of possession for reissue and return: only in the 201 that created a seat
    /// without a device key.
    pub return_token: Option<String>,
    /// Granted under the overage allowance (beyond the seats bought).
    pub overage: bool,
    /// Device key generation.
    pub generation: i64,
}

/// A seat's state as devices see it (over HTTP as the device crate's `SeatStatus`).
/// `Serialize` is for `seatkeep seats retire --json`, which prints it.
#[derive(Debug, Clone, Serialize)]
pub struct SeatStatus {
    pub seat: String,
    pub state: SeatState,
    pub license: String,
    pub device_id: String,
    /// Device key generation.
    pub generation: i64,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

impl From<&Seat> for SeatStatus {
    fn from(seat: &Seat) -> Self {
        Self {
            seat: seat.id.clone(),
            state: seat.state,
            license: seat.license_id.clone(),
            device_id: seat.device_id.clone(),
            generation: seat.generation,
            updated_at: seat.updated_at,
        }
    }
}

/// Signs the device key of a seat (never inside a write transaction).
fn sign_device_key(
    app: &App,
    license: &License,
    seat: &Seat,
    now: i64,
) -> Result<String, SeatError> {
    let metered = crate::meter::terms_of(license)?;
    Ok(app.identity.sign_device_key(&DeviceKeyClaims {
        iss: app.identity.id().to_owned(),
        sub: seat.device_id.clone(),
        name: seat.user_name.clone(),
        lic: license.id.clone(),
        product: DeviceKeyProduct {
            id: license.product_id.clone(),
            edition: license.product_edition,
        },
        seat: seat.id.clone(),
        r#gen: seat.generation,
        iat: now,
        exp: license.expires_at,
        model: license.model.as_str().to_owned(),
        // A metered device key binds the device's initialization key (RFC 7800 `cnf`), so
        // packets for it verify on that device only (DESIGN §10.2).
        cnf: metered
            .as_ref()
            .and(seat.device_jkt.clone())
            .map(|jkt| seatkeep_device::device_key::Confirmation { jkt }),
        meter: metered
            .map(|terms| seatkeep_device::device_key::DeviceKeyMeter { unit: terms.unit }),
    })?)
}

/// Shapes the answer for a device: its seat, key, token and the current key file.
fn answer(
    app: &App,
    license: &License,
    seat: &Seat,
    created: bool,
) -> Result<Activation, SeatError> {
    let key_file = app.key_file_text(&license.current_key_file)?;
    Ok(Activation {
        created,
        seat: seat.id.clone(),
        device_key: seat.device_key.clone(),
        key_file: key_file.to_string(),
        state: seat.state,
        expires_at: license.expires_at,
        return_token: (created && seat.device_jkt.is_none())
            .then(|| app.identity.return_token(&seat.id, seat.cycle)),
        overage: seat.overage,
        generation: seat.generation,
    })
}
