//! Metered usage on the server (DESIGN §10): the pool of a `metered` license, packet
//! requests from registered devices, and the operators' view of both.
//!
//! * [`pool`]: the pool on the license row and its one conditional `UPDATE`;
//! * [`reconcile`]: what a device reports, checked against what it was given;
//! * [`request`]: `POST /api/v1/activations/{seat}/packets`, in the order of §10.3;
//! * [`issue`]: the write transaction that issues a packet, and signing after the commit;
//! * [`ops`]: `seatkeep usage status | devices | reset-device`;
//! * [`daily`]: units issued per license and day, for the console's charts.
//!
//! The formats are the device crate's ([`seatkeep_device::meter::wire`]): one definition for
//! both sides.

pub mod daily;
pub mod issue;
pub mod ops;
pub mod pool;
pub mod reconcile;
pub mod request;

pub use ops::{DeviceUsage, PoolStatus, devices, reset_device, status};
pub use request::{PacketsReply, request_packets, request_packets_as};

use seatkeep_device::ProblemCode;
use seatkeep_device::meter::MeterTerms;

use crate::db::DbError;
use crate::db::models::License;
use crate::seats::SeatError;
use crate::signing::SigningError;

/// Why a packet request (or a usage command) was refused. [`MeterError::code`] gives the
/// stable code of DESIGN §5.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// Refusals shared with the seat operations: unknown seat, license revoked or expired,
    /// seat not active, clock untrusted, federation overdue, database.
    #[error(transparent)]
    Seat(#[from] SeatError),
    /// Not a packet request of the right shape, `typ`, `alg` or claims.
    #[error("{0}")]
    InvalidPacketRequest(String),
    /// Not signed by the key registered for the seat.
    #[error("the packet request is not signed by this seat's device key")]
    InvalidDeviceSignature,
    #[error("license {0} is not metered")]
    MeterNotEnabled(String),
    /// A known request id with another body.
    #[error("request id {0} was already used for another request")]
    RequestIdReused(String),
    /// The device reported a state that cannot be true; it gets nothing until reset.
    #[error("device state invalid: {0}")]
    DeviceStateInvalid(String),
    #[error(
        "amt {amt} is outside this license's packet range {min}..{max} (0 asks for the time only)"
    )]
    AmountOutOfRange { amt: i64, min: i64, max: i64 },
    #[error(
        "the usage pool of license {license} is spent: {issued} of {units} units issued, {available} available"
    )]
    UsageExhausted {
        license: String,
        units: i64,
        issued: i64,
        available: i64,
    },
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl From<DbError> for MeterError {
    fn from(e: DbError) -> Self {
        Self::Seat(SeatError::Db(e))
    }
}

crate::query_errors_into!(MeterError);

impl From<crate::clock::ClockUntrusted> for MeterError {
    fn from(e: crate::clock::ClockUntrusted) -> Self {
        Self::Seat(e.into())
    }
}

impl MeterError {
    /// The stable problem code (DESIGN §5).
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::Seat(e) => e.code(),
            Self::InvalidPacketRequest(_) => ProblemCode::InvalidPacketRequest,
            Self::InvalidDeviceSignature => ProblemCode::InvalidDeviceSignature,
            Self::MeterNotEnabled(_) => ProblemCode::MeterNotEnabled,
            Self::RequestIdReused(_) => ProblemCode::RequestIdReused,
            Self::DeviceStateInvalid(_) => ProblemCode::DeviceStateInvalid,
            Self::AmountOutOfRange { .. } => ProblemCode::AmountOutOfRange,
            Self::UsageExhausted { .. } => ProblemCode::UsageExhausted,
            Self::Signing(_) => ProblemCode::InternalError,
        }
    }
}

/// The meter terms of a license: `None` unless it is `metered`. Stored terms that do not
/// read back are a database fault (the import stored them from validated claims).
pub fn terms_of(license: &License) -> Result<Option<MeterTerms>, DbError> {
    license
        .meter_terms
        .as_deref()
        .map(|text| {
            serde_json::from_str(text)
                .map_err(|e| DbError::Query(diesel::result::Error::DeserializationError(e.into())))
        })
        .transpose()
}
