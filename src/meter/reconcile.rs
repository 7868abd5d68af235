//! What a device reports with each packet request (`state: {last_seq, used, balance}`),
//! checked against what the server gave it (DESIGN §10.3). A state that went backwards, or
//! spends more than was issued, is a restored or forged state file: the seat is flagged and
//! gets nothing until an operator resets it.

use diesel::prelude::*;
use seatkeep_device::meter::wire::ReportedState;

use super::MeterError;
use crate::db::models::Seat;
use crate::db::schema::{meter_packets, seats};
use crate::db::{DbConn, DbError};
use crate::journal::{self, Change, ChangeKind};

/// Why a report cannot be true, or `None` when it can. `applied_units` is what the packets
/// up to the reported `last_seq` granted.
pub fn impossible(seat: &Seat, state: &ReportedState, applied_units: i64) -> Option<String> {
    if state.last_seq > seat.packet_seq {
        return Some(format!(
            "reports packet {} applied, but only {} were issued",
            state.last_seq, seat.packet_seq
        ));
    }
    if state.last_seq < seat.reported_last_seq {
        return Some(format!(
            "last_seq went back from {} to {}",
            seat.reported_last_seq, state.last_seq
        ));
    }
    if state.used < seat.reported_used {
        return Some(format!(
            "used went back from {} to {}",
            seat.reported_used, state.used
        ));
    }
    // `used` is rounded up and `balance` down, so their sum never exceeds what was applied;
    // units that lapsed only make it smaller.
    if state.used.saturating_add(state.balance) > applied_units {
        return Some(format!(
            "used {} + balance {} is more than the {} units of the packets applied",
            state.used, state.balance, applied_units
        ));
    }
    None
}

/// Units granted by the packets `1..=last_seq` of the seat's current device key.
pub fn applied_units(conn: &mut DbConn, seat: &Seat, last_seq: i64) -> Result<i64, DbError> {
    // Summed here: SUM(BIGINT) is NUMERIC on PostgreSQL, and a seat has few packets.
    let amounts: Vec<i64> = meter_packets::table
        .filter(meter_packets::seat_id.eq(&seat.id))
        .filter(meter_packets::device_jkt.eq(seat.device_jkt.as_deref().unwrap_or_default()))
        .filter(meter_packets::seq.le(last_seq))
        .select(meter_packets::amount)
        .load(conn)?;
    Ok(amounts.iter().sum())
}

/// Flags the seat with `reason` in one write transaction, audited and federated as
/// `usage.state_invalid`. A seat flagged already keeps its first reason.
pub fn flag(
    conn: &mut DbConn,
    seat: &Seat,
    state: &ReportedState,
    reason: &str,
    now: i64,
    actor: &str,
) -> Result<(), MeterError> {
    journal::record(
        conn,
        &Change {
            at: now,
            actor,
            kind: ChangeKind::UsageStateInvalid,
            license: Some(&seat.license_id),
            seat: Some(&seat.id),
            detail: serde_json::json!({
                "device_id": seat.device_id,
                "user_name": seat.user_name,
                "reason": reason,
                "reported": state,
                "packet_seq": seat.packet_seq,
            }),
        },
    )?;
    let changed = diesel::update(
        seats::table
            .filter(seats::id.eq(&seat.id))
            .filter(seats::meter_flag.is_null()),
    )
    .set(seats::meter_flag.eq(reason))
    .execute(conn)?;
    if changed != 1 {
        // Flagged meanwhile: roll this entry back, the first flag stands.
        return Err(MeterError::DeviceStateInvalid(reason.to_owned()));
    }
    Ok(())
}
