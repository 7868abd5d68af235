//! The seat rules in one place: what a seat's state may be, how many seats a license grants,
//! the ceiling that lets a down-renewal drain, who must give a user name, which licenses are
//! usable, and the input limits of DESIGN §5. Everything here is pure except
//! [`check_reissue_limit`], which counts the seat's past reissues in the audit log on the
//! connection it is given; the transactions that apply these rules are in `activate.rs` and
//! `change.rs`.

use diesel::sql_types::BigInt;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::SeatError;
use crate::db::models::{License, Seat};
use crate::identity::hash_return_token;
use crate::keyfile::{self, LicenseModel};

/// Window for `reissue_limit` and `return_limit`.
pub const LIMIT_WINDOW_SECS: i64 = 365 * 24 * 3600;
/// Longest device id.
pub const MAX_DEVICE_ID: usize = 128;
/// Longest user name, in Unicode scalar values.
pub const MAX_USER_NAME: usize = 64;
/// Largest `device_info`, serialized.
pub const MAX_DEVICE_INFO: usize = 4096;
/// Longest reason an admin may give for retiring a seat (characters).
pub const MAX_REASON_CHARS: usize = 500;

/// Where a seat is in its life. Only `Active` holds one of the license's seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    /// Held by its device.
    Active,
    /// Freed by an admin.
    Retired,
    /// Given back by the device.
    Returned,
    /// Ended with its license.
    Revoked,
}

crate::stored_word!(SeatState, "seat state", {
    Active => "active",
    Retired => "retired",
    Returned => "returned",
    Revoked => "revoked",
});

impl SeatState {
    /// The state's word, as stored and as devices see it.
    pub fn as_str(self) -> &'static str {
        crate::db::word::StoredWord::as_str(self)
    }
}

impl std::fmt::Display for SeatState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a license may grant seats at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    /// In force (subject to its term).
    Active,
    /// Ended by the provider.
    Revoked,
}

crate::stored_word!(LicenseStatus, "license status", {
    Active => "active",
    Revoked => "revoked",
});

impl LicenseStatus {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        crate::db::word::StoredWord::as_str(self)
    }
}

// Stored as the key file claim's words, which the device crate defines.
crate::stored_word!(LicenseModel, "license model", words of LicenseModel::ALL);

/// Seats that may be in use at once: `seats` plus the overage allowance, rounded down;
/// a `single_device` license holds exactly one device.
pub fn capacity(model: LicenseModel, seats: i64, overage_percent: i64) -> i64 {
    match model {
        LicenseModel::SingleDevice => 1,
        _ => seats + seats * overage_percent / 100,
    }
}

/// The upper bound for `in_use`: the capacity, or the seats still held when a renewal
/// lowered the capacity below them, so held seats survive and drain as they are released.
pub fn ceiling(capacity: i64, in_use: i64) -> i64 {
    capacity.max(in_use)
}

/// The SQL type of the `ceiling` expression (boxed: the two callers differ in their binds).
pub type CeilingSql = Box<
    dyn diesel::BoxableExpression<
            crate::db::schema::licenses::table,
            <crate::db::DbConn as diesel::Connection>::Backend,
            SqlType = BigInt,
        >,
>;

/// [`ceiling`] as SQL for an `UPDATE licenses SET ceiling = …`: `capacity` is the new
/// capacity (`None`: the row's own), `in_use_change` what the same statement adds to
/// `in_use`. SQL sees the row's old values in every SET expression, so both are explicit.
pub fn ceiling_sql(capacity: Option<i64>, in_use_change: i64) -> CeilingSql {
    use diesel::dsl::sql;
    use diesel::sql_types::Nullable;
    Box::new(
        sql::<BigInt>("CASE WHEN COALESCE(")
            .bind::<Nullable<BigInt>, _>(capacity)
            .sql(", capacity) >= in_use + ")
            .bind::<BigInt, _>(in_use_change)
            .sql(" THEN COALESCE(")
            .bind::<Nullable<BigInt>, _>(capacity)
            .sql(", capacity) ELSE in_use + ")
            .bind::<BigInt, _>(in_use_change)
            .sql(" END"),
    )
}

/// A license grants a new seat only while `in_use < capacity` (the grant's `UPDATE` says the
/// same in SQL; this is the cheap pre-check that skips signing for a full license).
pub fn has_free_seat(license: &License) -> bool {
    license.in_use < license.capacity
}

/// Refuses every device request for a revoked license.
pub fn check_not_revoked(license: &License) -> Result<(), SeatError> {
    if license.status == LicenseStatus::Revoked {
        return Err(SeatError::LicenseRevoked(license.id.clone()));
    }
    Ok(())
}

/// What a device sees as its seat's state: an active seat of a revoked license reads
/// `revoked` (the seat itself stays active, so a reinstatement gives it back).
pub fn visible_state(seat: &Seat, license: &License) -> SeatState {
    if seat.state == SeatState::Active && license.status == LicenseStatus::Revoked {
        SeatState::Revoked
    } else {
        seat.state
    }
}

/// Refuses licenses that are revoked or outside their term.
pub fn check_usable(license: &License, now: i64) -> Result<(), SeatError> {
    check_not_revoked(license)?;
    keyfile::check_term(license.not_before, license.expires_at, now)?;
    Ok(())
}

/// Every seat carries a user name, except on a `single_device` license, where the device is
/// the whole license.
pub fn require_user_name(model: LicenseModel, user_name: &str) -> Result<(), SeatError> {
    if user_name.is_empty() && model != LicenseModel::SingleDevice {
        return Err(SeatError::InvalidField {
            field: "user_name",
            reason: format!("must not be empty for a {} license", model.as_str()),
        });
    }
    Ok(())
}

/// A `metered` seat is bound to the device's initialization key (DESIGN §10.2): packets are
/// requested with it, so a metered activation without one cannot be served.
pub fn require_device_jwk(
    model: LicenseModel,
    key: Option<&RegisteredKey>,
) -> Result<(), SeatError> {
    if model == LicenseModel::Metered && key.is_none() {
        return Err(SeatError::InvalidField {
            field: "device_jwk",
            reason: "is required for a metered license (the device's Ed25519 public key)".into(),
        });
    }
    Ok(())
}

/// Reissue and return need a seat that is still held.
pub fn require_active(seat: &Seat) -> Result<(), SeatError> {
    if seat.state == SeatState::Active {
        Ok(())
    } else {
        Err(SeatError::SeatNotActive {
            seat: seat.id.clone(),
            state: seat.state.as_str().to_owned(),
        })
    }
}

/// Checks a presented return token against the stored hash, in constant time.
pub fn check_return_token(seat: &Seat, token: &str) -> Result<(), SeatError> {
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

/// Seconds until the oldest event in a limit window leaves it (for `Retry-After`).
pub fn retry_after(oldest: Option<i64>, now: i64) -> i64 {
    oldest.map_or(LIMIT_WINDOW_SECS, |t| (t + LIMIT_WINDOW_SECS - now).max(1))
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

/// Length of a seat id: `st_` and 22 characters of base64url (128 random bits).
pub const SEAT_ID_LEN: usize = 25;

/// Refuses, before any query, a seat id this server cannot have issued (so a NUL byte or
/// a megabyte of path never reaches the database): `unknown_seat`, as for any other id.
pub fn validate_seat_id(seat_id: &str) -> Result<(), SeatError> {
    let well_formed = seat_id.len() == SEAT_ID_LEN
        && seat_id.starts_with("st_")
        && seat_id[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if well_formed {
        Ok(())
    } else {
        Err(SeatError::UnknownSeat(
            seat_id.escape_debug().take(64).collect(),
        ))
    }
}

/// A checked `device_jwk`: the JWK as stored and its thumbprint.
#[derive(Debug, Clone)]
pub struct RegisteredKey {
    pub json: String,
    pub jkt: String,
}

/// Checks a `device_jwk` (an Ed25519 public key, not of small order).
pub fn validate_device_jwk(
    jwk: Option<&seatkeep_device::DeviceJwk>,
) -> Result<Option<RegisteredKey>, SeatError> {
    let Some(jwk) = jwk else {
        return Ok(None);
    };
    jwk.verifying_key().map_err(|e| SeatError::InvalidField {
        field: "device_jwk",
        reason: e.to_string(),
    })?;
    let json = serde_json::to_string(jwk).map_err(|e| SeatError::InvalidField {
        field: "device_jwk",
        reason: e.to_string(),
    })?;
    Ok(Some(RegisteredKey {
        json,
        jkt: jwk.thumbprint(),
    }))
}

/// Refuses a name change when the seat had `limit` of them in the last 365 days (reissues,
/// and activations under a new name after a return).
pub fn check_reissue_limit(
    conn: &mut crate::db::DbConn,
    seat_id: &str,
    limit: i64,
    now: i64,
) -> Result<(), SeatError> {
    let (count, oldest) = crate::audit::count_since(
        conn,
        seat_id,
        crate::journal::ChangeKind::SeatReissued,
        now - LIMIT_WINDOW_SECS,
    )?;
    if count >= limit {
        return Err(SeatError::ReissueLimitReached {
            seat: seat_id.to_owned(),
            limit,
            retry_after: retry_after(oldest, now),
        });
    }
    Ok(())
}

/// Checks the key file text is present.
pub fn validate_key_file_text(key_file: &str) -> Result<(), SeatError> {
    if key_file.trim().is_empty() {
        return Err(SeatError::InvalidField {
            field: "key_file",
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

/// Checks `device_info` (a JSON object of at most 4 KiB) and returns it serialized.
pub fn validate_device_info(
    device_info: Option<&serde_json::Value>,
) -> Result<Option<String>, SeatError> {
    match device_info {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_adds_the_overage_rounded_down() {
        assert_eq!(capacity(LicenseModel::NodeLocked, 10, 0), 10);
        assert_eq!(capacity(LicenseModel::NodeLocked, 10, 15), 11);
        assert_eq!(capacity(LicenseModel::NodeLocked, 3, 50), 4);
        assert_eq!(capacity(LicenseModel::SingleDevice, 7, 100), 1);
    }

    #[test]
    fn ceiling_keeps_held_seats() {
        assert_eq!(ceiling(10, 4), 10);
        assert_eq!(ceiling(5, 8), 8);
    }

    #[test]
    fn seat_ids_are_checked_before_the_database() {
        assert!(validate_seat_id("st_AAAAAAAAAAAAAAAAAAAAAA").is_ok());
        for bad in [
            "",
            "st_",
            "st_AAAAAAAAAAAAAAAAAAAAA\0",
            "xx_AAAAAAAAAAAAAAAAAAAAAA",
            "st_AAAAAAAAAAAAAAAAAAAA\u{e9}",
        ] {
            assert!(validate_seat_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_name_rule() {
        assert!(require_user_name(LicenseModel::NodeLocked, "").is_err());
        assert!(require_user_name(LicenseModel::NodeLocked, "Ada").is_ok());
        assert!(require_user_name(LicenseModel::SingleDevice, "").is_ok());
    }
}
