//! Row types: `X` for what is read, `NewX` for what is inserted.
//!
//! Insertables with `Option` fields say `treat_none_as_default_value = false`: `None` is
//! stored as NULL, so the INSERT text does not depend on the values and SQLite's prepared
//! statement is cached instead of compiled on every insert.

use diesel::prelude::*;

use super::word::Word;
use crate::admins::Role;
use crate::keyfile::LicenseModel;
use crate::seats::{LicenseStatus, SeatState};

use super::schema::{admins, audit_log, key_files, licenses, seats};

/// A license as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset, serde::Serialize)]
#[diesel(table_name = licenses, treat_none_as_default_value = false)]
pub struct License {
    pub id: String,
    pub issuer: String,
    pub customer_id: String,
    pub customer_name: String,
    pub product_id: String,
    pub product_name: String,
    pub product_edition: i64,
    #[diesel(deserialize_as = Word<LicenseModel>, serialize_as = Word<LicenseModel>)]
    pub model: LicenseModel,
    /// Seats bought.
    pub seats: i64,
    /// Seats grantable (seats + overage).
    pub capacity: i64,
    /// Seats held now.
    pub in_use: i64,
    /// Upper bound for `in_use` (capacity, or more while a down-renewal drains).
    pub ceiling: i64,
    /// The key file `seq` in force.
    pub seq: i64,
    pub not_before: Option<i64>,
    pub expires_at: Option<i64>,
    /// Reissues per seat per 365 days.
    pub reissue_limit: i64,
    /// Returns per seat per 365 days.
    pub return_limit: i64,
    /// Overage allowance in percent.
    pub overage_percent: i64,
    /// JSON array of admin emails (a JSON value in `--json` output).
    #[serde(serialize_with = "stored_json")]
    pub admins: String,
    /// Federation URL.
    pub federation_url: Option<String>,
    /// JSON channel ids (a JSON value in `--json` output).
    #[serde(serialize_with = "stored_json_opt")]
    pub channel: Option<String>,
    /// Digest of the newest key file.
    pub current_key_file: String,
    #[diesel(deserialize_as = Word<LicenseStatus>, serialize_as = Word<LicenseStatus>)]
    pub status: LicenseStatus,
    pub created_at: i64,
    pub updated_at: i64,
    /// Changes recorded so far: the journal's gapless per-license counter.
    pub change_seq: i64,
    /// The current seats_exhausted episode (a release or a raising renewal starts the next).
    pub exhaust_episode: i64,
    /// The key file's `federation.grace`, seconds.
    pub federation_grace: Option<i64>,
    /// The key file's `federation.user_data`: batches carry raw device ids and user names.
    pub federation_user_data: bool,
    /// `metered`: the key file's `meter` claim (JSON `MeterTerms`).
    #[serde(serialize_with = "stored_json_opt")]
    pub meter_terms: Option<String>,
    /// Units that may be issued in all: the terms' cap, or `meter_issued` when a renewal
    /// lowered the cap below it (see the migration `2026-12-03-000001_metered`).
    pub meter_cap: i64,
    /// Units issued so far.
    pub meter_issued: i64,
}

/// Serializes a column holding JSON text as the JSON value it holds (as text if it is not
/// JSON, which the import never stores).
fn stored_json<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize as _;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value.serialize(serializer),
        Err(_) => serializer.serialize_str(text),
    }
}

fn stored_json_opt<S: serde::Serializer>(
    text: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match text {
        Some(text) => stored_json(text, serializer),
        None => serializer.serialize_none(),
    }
}

/// A stored key file.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = key_files)]
pub struct KeyFileRow {
    /// sha256 of the compact JWS.
    pub digest: String,
    pub license_id: String,
    pub seq: i64,
    pub jti: String,
    /// Header `kid`.
    pub kid: String,
    /// The file as imported.
    pub raw: String,
    pub imported_at: i64,
    pub imported_by: String,
}

/// A seat (one per license and device).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = seats, treat_none_as_default_value = false)]
pub struct Seat {
    pub id: String,
    pub license_id: String,
    pub device_id: String,
    pub user_name: String,
    #[diesel(deserialize_as = Word<SeatState>, serialize_as = Word<SeatState>)]
    pub state: SeatState,
    /// Device key generation.
    pub generation: i64,
    pub cycle: i64,
    /// The signed device key.
    #[serde(skip)]
    pub device_key: String,
    /// sha256 of the return token.
    #[serde(skip)]
    pub return_token_hash: String,
    /// Device-supplied info (JSON).
    pub device_info: Option<String>,
    /// Granted beyond `seats` under the overage allowance.
    pub overage: bool,
    /// Start of this activation.
    pub activated_at: i64,
    pub updated_at: i64,
    /// When retired or returned.
    pub released_at: Option<i64>,
    /// The public key the device registered (a JWK, JSON), when it did.
    #[serde(skip)]
    pub device_jwk: Option<String>,
    /// Its RFC 7638 thumbprint.
    pub device_jkt: Option<String>,
    /// `metered`: the last packet `seq` issued to this seat (gapless from 1).
    pub packet_seq: i64,
    /// The highest packet the device reported applied.
    pub reported_last_seq: i64,
    /// Units the device reported used in all.
    pub reported_used: i64,
    /// Why the seat gets no packets (an impossible reported state), until reset.
    pub meter_flag: Option<String>,
}

/// An audit row to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub struct NewAuditEntry<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub license_id: Option<&'a str>,
    pub seat_id: Option<&'a str>,
    pub detail: String,
    /// The license's change number (none for changes outside a license).
    pub license_seq: Option<i64>,
}

/// An audit row.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub license_id: Option<String>,
    pub seat_id: Option<String>,
    pub detail: String,
    /// The license's change number.
    pub license_seq: Option<i64>,
}

/// An admin account.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admins)]
pub struct Admin {
    pub id: String,
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    #[diesel(deserialize_as = Word<Role>, serialize_as = Word<Role>)]
    pub role: Role,
    pub created_at: i64,
    pub updated_at: i64,
}
