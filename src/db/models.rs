//! Row types: `X` for what is read, `NewX` for what is inserted.
//!
//! Insertables with `Option` fields say `treat_none_as_default_value = false`: `None` is
//! stored as NULL, so the INSERT text does not depend on the values and SQLite's prepared
//! statement is cached instead of compiled on every insert.

use diesel::prelude::*;

use super::schema::{admins, audit_log, key_files, licenses, seat_refusals, seats};

/// A license as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset, serde::Serialize)]
#[diesel(table_name = licenses, treat_none_as_default_value = false)]
pub struct License {
    /// `lic`.
    pub id: String,
    /// Provider id.
    pub issuer: String,
    /// Customer id.
    pub customer_id: String,
    /// Customer name.
    pub customer_name: String,
    /// Product id.
    pub product_id: String,
    /// Product name.
    pub product_name: String,
    /// Product edition.
    pub product_edition: i64,
    /// `node_locked` or `single_device`.
    pub model: String,
    /// Seats bought.
    pub seats: i64,
    /// Seats grantable (seats + overage).
    pub capacity: i64,
    /// Seats held now.
    pub in_use: i64,
    /// Upper bound for `in_use` (capacity, or more while a down-renewal drains).
    pub ceiling: i64,
    /// Version.
    pub seq: i64,
    /// Term start.
    pub not_before: Option<i64>,
    /// Term end.
    pub expires_at: Option<i64>,
    /// Reissues per seat per 365 days.
    pub reissue_limit: i64,
    /// Returns per seat per 365 days.
    pub return_limit: i64,
    /// Overage allowance in percent.
    pub overage_percent: i64,
    /// JSON array of admin emails.
    pub admins: String,
    /// Federation URL.
    pub federation_url: Option<String>,
    /// JSON channel ids.
    pub channel: Option<String>,
    /// Digest of the newest key file.
    pub current_key_file: String,
    /// `active` or `revoked`.
    pub status: String,
    /// Created.
    pub created_at: i64,
    /// Updated.
    pub updated_at: i64,
}

/// A stored key file.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = key_files)]
pub struct KeyFileRow {
    /// sha256 of the compact JWS.
    pub digest: String,
    /// License.
    pub license_id: String,
    /// `seq`.
    pub seq: i64,
    /// `jti`.
    pub jti: String,
    /// Header `kid`.
    pub kid: String,
    /// The file as imported.
    pub raw: String,
    /// When.
    pub imported_at: i64,
    /// Who.
    pub imported_by: String,
}

/// A seat (one per license and device).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = seats, treat_none_as_default_value = false)]
pub struct Seat {
    /// Seat id.
    pub id: String,
    /// License.
    pub license_id: String,
    /// Device id.
    pub device_id: String,
    /// User name.
    pub user_name: String,
    /// `active`, `retired`, `returned`, `revoked`.
    pub state: String,
    /// Device key generation.
    pub generation: i64,
    /// Activation cycle.
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
    /// Last change.
    pub updated_at: i64,
    /// When retired or returned.
    pub released_at: Option<i64>,
}

/// An audit row to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub struct NewAuditEntry<'a> {
    /// When.
    pub at: i64,
    /// Who.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// License.
    pub license_id: Option<&'a str>,
    /// Seat.
    pub seat_id: Option<&'a str>,
    /// JSON detail.
    pub detail: String,
}

/// An audit row.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// License.
    pub license_id: Option<String>,
    /// Seat.
    pub seat_id: Option<String>,
    /// JSON detail.
    pub detail: String,
}

/// A refusal to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = seat_refusals)]
pub struct NewSeatRefusal<'a> {
    /// License.
    pub license_id: &'a str,
    /// Refused device.
    pub device_id: &'a str,
    /// When.
    pub at: i64,
}

/// An admin account.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admins)]
pub struct Admin {
    /// Id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `owner`, `admin`, `viewer`.
    pub role: String,
    /// Created.
    pub created_at: i64,
    /// Updated.
    pub updated_at: i64,
}
