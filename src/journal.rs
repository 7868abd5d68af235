//! The journal: the one call every change makes inside its write transaction, writing what
//! the change owes the world (DESIGN §6, the transactional outbox). That is the audit row
//! the email outbox rows the change owes (`crate::notify::on_change`) and the federation
//! event (`crate::federation::events::record`), so a new kind of change cannot forget one.
//!
//! A change of a license also takes the license's next change number: a gapless counter on
//! the license row (DESIGN §7: a database sequence would not do, since on PostgreSQL a lower
//! id can commit after a higher one). Incrementing it locks the license row, so every change
//! locks its license before any seat, and instances cannot deadlock:
//!
//! * a change that updates the license row anyway (the seat counter of a grant or a release)
//!   takes the number in that same statement, with [`take_number`] in its `SET` and
//!   `licenses::change_seq` in its `RETURNING`, and calls [`record_numbered`] (one statement
//!   fewer on the hot path);
//! * any other change calls [`record`] as its first statement, which takes the number itself.

use diesel::prelude::*;

use crate::db::models::NewAuditEntry;
use crate::db::schema::{audit_log, licenses};
use crate::db::{DbConn, DbError};

/// What changed. The strings are the audit actions and, for changes of a license, the
/// federation event types (`crate::federation::events::event_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new license from its first key file.
    LicenseImported,
    /// A higher `seq` replaced seats and term.
    LicenseRenewed,
    /// An operator revoked the license: every device request for it is refused.
    LicenseRevoked,
    /// An operator lifted the revocation.
    LicenseReinstated,
    /// A device took a seat (or took its returned seat back).
    SeatActivated,
    /// The user name on a seat changed.
    SeatReissued,
    /// The device gave its seat back.
    SeatReturned,
    /// An admin freed a seat.
    SeatRetired,
    /// An admin account was created.
    AdminAdded,
    /// An admin's password changed.
    AdminPasswordChanged,
    /// An admin's role changed.
    AdminRoleChanged,
    /// An admin account was removed.
    AdminRemoved,
    /// An unsent email was made due now.
    NotificationRetried,
    /// A packet of usage units was issued to a metered seat (DESIGN §10.3).
    UsageProvisioned,
    /// A metered seat reported an impossible state and was flagged.
    UsageStateInvalid,
    /// An operator cleared a metered seat's flag (`seatkeep usage reset-device`).
    UsageDeviceReset,
}

impl ChangeKind {
    /// The audit action.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LicenseImported => "license.imported",
            Self::LicenseRenewed => "license.renewed",
            Self::LicenseRevoked => "license.revoked",
            Self::LicenseReinstated => "license.reinstated",
            Self::SeatActivated => "seat.activated",
            Self::SeatReissued => "seat.reissued",
            Self::SeatReturned => "seat.returned",
            Self::SeatRetired => "seat.retired",
            Self::AdminAdded => "admin.added",
            Self::AdminPasswordChanged => "admin.password_changed",
            Self::AdminRoleChanged => "admin.role_changed",
            Self::AdminRemoved => "admin.removed",
            Self::NotificationRetried => "notification.retried",
            Self::UsageProvisioned => "usage.provisioned",
            Self::UsageStateInvalid => "usage.state_invalid",
            Self::UsageDeviceReset => "usage.device_reset",
        }
    }
}

/// One change, as the journal records it.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// When (unix seconds, from the application clock).
    pub at: i64,
    /// `device`, `cli`, `admin:NAME`, `quickstart`, …
    pub actor: &'a str,
    pub kind: ChangeKind,
    /// The license it belongs to; `None` for changes outside any license (admin accounts).
    pub license: Option<&'a str>,
    /// The seat, for seat changes.
    pub seat: Option<&'a str>,
    /// Kind-specific facts (JSON object).
    pub detail: serde_json::Value,
}

/// What the journal assigned to a change of a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The license's change number: 1, 2, 3… without gaps.
    pub seq: i64,
    /// Seats in use after the change.
    pub in_use: i64,
    pub seats: i64,
    /// The license's key file `seq` at the time.
    pub key_file_seq: i64,
}

/// Records `change` inside the caller's write transaction. For a change of a license, locks
/// the license row and takes its next change number; `Ok(None)` for other changes.
pub fn record(conn: &mut DbConn, change: &Change<'_>) -> Result<Option<Recorded>, DbError> {
    let recorded = match change.license {
        Some(lic) => Some(next_change(conn, lic)?),
        None => None,
    };
    write(conn, change, recorded)?;
    Ok(recorded)
}

/// The `RETURNING` columns of a statement on the license row that make a [`Recorded`]
/// (with [`Recorded::from`]).
pub fn recorded_columns() -> (
    licenses::change_seq,
    licenses::in_use,
    licenses::seats,
    licenses::seq,
) {
    (
        licenses::change_seq,
        licenses::in_use,
        licenses::seats,
        licenses::seq,
    )
}

impl From<(i64, i64, i64, i64)> for Recorded {
    /// From the values of [`recorded_columns`].
    fn from((seq, in_use, seats, key_file_seq): (i64, i64, i64, i64)) -> Self {
        Self {
            seq,
            in_use,
            seats,
            key_file_seq,
        }
    }
}

/// The `SET` clause that takes the next change number in the caller's own `UPDATE licenses`.
pub fn take_number()
-> diesel::dsl::Eq<licenses::change_seq, diesel::dsl::Add<licenses::change_seq, i64>> {
    licenses::change_seq.eq(licenses::change_seq + 1)
}

/// Records a change of a license whose number the caller's statement on the license row
/// already took with [`take_number`] (`recorded` is what that statement returned).
pub fn record_numbered(
    conn: &mut DbConn,
    change: &Change<'_>,
    recorded: Recorded,
) -> Result<(), DbError> {
    write(conn, change, Some(recorded))
}

fn write(
    conn: &mut DbConn,
    change: &Change<'_>,
    recorded: Option<Recorded>,
) -> Result<(), DbError> {
    let entry = NewAuditEntry {
        at: change.at,
        actor: change.actor,
        action: change.kind.as_str(),
        license_id: change.license,
        seat_id: change.seat,
        detail: change.detail.to_string(),
        license_seq: recorded.map(|r| r.seq),
    };
    // Once per change, so on the concrete connection (see `on_backend!`).
    crate::on_backend!(conn, |c| diesel::insert_into(audit_log::table)
        .values(&entry)
        .execute(c))?;
    if let (Some(license), Some(_)) = (change.license, change.seat) {
        crate::seats::moves::record(conn, change.kind, license, change.at)?;
    }
    // The emails and the federation event this change owes, in the same transaction.
    crate::notify::on_change(conn, change, recorded)?;
    if let Some(recorded) = recorded {
        crate::federation::events::record(conn, change, recorded)?;
    }
    Ok(())
}

/// Increments the license's change counter: the row lock and the number in one statement.
fn next_change(conn: &mut DbConn, lic: &str) -> Result<Recorded, DbError> {
    let row: (i64, i64, i64, i64) = diesel::update(licenses::table.filter(licenses::id.eq(lic)))
        .set(take_number())
        .returning(recorded_columns())
        .get_result(conn)?;
    Ok(Recorded::from(row))
}
