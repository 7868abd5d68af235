//! Who may change a seat (DESIGN §5). A device id is a hardware serial and every device of a
//! site holds the same key file, so neither proves that a request comes from the device that
//! holds the seat. A seat created with a `device_jwk` is changed only with a fresh proof
//! signed by that key; a seat without one only with the return token from the 201 that
//! created it.

use diesel::prelude::*;
use seatkeep_device::DeviceJwk;
use seatkeep_device::proof::{self, Expected, ProofAction};

use super::{SeatAuth, SeatError, rules};
use crate::app::App;
use crate::db::models::Seat;
use crate::db::schema::device_proofs;
use crate::db::{DbConn, is_unique_violation};

/// How long an accepted proof's jti is remembered: past its freshness window either way, a
/// replay fails the `iat` check anyway.
pub const PROOF_MEMORY_SECS: i64 = 4 * proof::PROOF_MAX_AGE_SECS;

/// The key a seat's device registered, if any.
pub(super) fn registered_key(seat: &Seat) -> Result<Option<DeviceJwk>, SeatError> {
    seat.device_jwk
        .as_deref()
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                SeatError::InvalidDeviceProof(format!(
                    "the seat's stored device key is unreadable: {e}"
                ))
            })
        })
        .transpose()
}

/// Checks `auth` for `action` on `seat`. Returns the proof's jti, which the change records
/// in its own transaction ([`record_proof`]), so a proof is accepted once. Callers run it
/// through `super::lockout::guard`, which counts the failures.
pub(super) fn authorize(
    app: &App,
    seat: &Seat,
    auth: &SeatAuth,
    action: ProofAction,
    user_name: Option<&str>,
    now: i64,
) -> Result<Option<String>, SeatError> {
    match (registered_key(seat)?, auth) {
        (None, SeatAuth::ReturnToken(token)) => {
            rules::check_return_token(seat, token)?;
            Ok(None)
        }
        (None, SeatAuth::Proof(_)) => Err(SeatError::InvalidDeviceProof(
            "this seat has no device key: send its return_token".into(),
        )),
        (Some(_), SeatAuth::ReturnToken(_)) => Err(SeatError::InvalidDeviceProof(
            "this seat has a device key: send a proof signed by it, not a return_token".into(),
        )),
        (Some(jwk), SeatAuth::Proof(token)) => {
            let expected = Expected {
                device_id: &seat.device_id,
                server_id: app.identity.id(),
                seat: &seat.id,
                action,
                user_name,
                now,
            };
            let claims = proof::verify(token, &jwk, &expected)
                .map_err(|e| SeatError::InvalidDeviceProof(e.to_string()))?;
            // Checked here so a replay is refused as one whatever the seat's state; the
            // insert in the change's transaction settles a race between two uses.
            if super::txn::read(app, |conn| Ok(proof_seen(conn, &seat.id, &claims.jti)?))? {
                return Err(SeatError::InvalidDeviceProof(
                    proof::ProofError::Replayed.to_string(),
                ));
            }
            Ok(Some(claims.jti))
        }
    }
}

fn proof_seen(conn: &mut DbConn, seat_id: &str, jti: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        device_proofs::table
            .filter(device_proofs::seat_id.eq(seat_id))
            .filter(device_proofs::jti.eq(jti)),
    ))
    .get_result(conn)
}

/// Records an accepted proof inside the change's transaction; a jti seen before for this
/// seat is a replay.
pub(super) fn record_proof(
    conn: &mut DbConn,
    seat_id: &str,
    jti: Option<&str>,
    now: i64,
) -> Result<(), SeatError> {
    let Some(jti) = jti else {
        return Ok(());
    };
    let inserted = diesel::insert_into(device_proofs::table)
        .values((
            device_proofs::seat_id.eq(seat_id),
            device_proofs::jti.eq(jti),
            device_proofs::used_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Err(e) if is_unique_violation(&e) => Err(SeatError::InvalidDeviceProof(
            proof::ProofError::Replayed.to_string(),
        )),
        other => Ok(other.map(|_| ())?),
    }
}

/// Forgets proofs older than [`PROOF_MEMORY_SECS`] (a job of `serve`).
pub fn prune_proofs(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    diesel::delete(device_proofs::table.filter(device_proofs::used_at.lt(now - PROOF_MEMORY_SECS)))
        .execute(conn)
}
